//! An in-memory [`StateStore`] with DynamoDB's semantics: versioned,
//! conditional saves marked with the run that made them, the run's claim,
//! `last_error` written alone. Tests use it as a fake (the simulator has its
//! own, faster store); state goes in and out in the item's stored form
//! (deflated JSON, `ports::stored`), as it does through the real table, so
//! a field the item would lose is lost here too.

use std::collections::BTreeMap;
use std::future::{Future, ready};
use std::sync::Mutex;

use crate::decision::FunctionState;
use crate::decision::policy::{Policy, PolicyDoc};
use crate::ports::{
    AdminStore, ErrorKind, FunctionRef, PolicyItem, PortError, StateItem, StateStore, Stored,
    Target,
};

/// A state attribute as the table can hold it.
#[derive(Debug, Clone)]
enum Body {
    /// What the controller writes.
    Deflated(Vec<u8>),
    /// Plain JSON text, as an earlier controller or a person wrote it.
    Text(String),
}

impl Body {
    fn read(&self) -> Result<FunctionState, String> {
        match self {
            Body::Deflated(b) => super::stored::decode(b),
            Body::Text(json) => FunctionState::from_stored(json),
        }
    }

    /// The JSON inside, if there is any to be had.
    fn json(&self) -> Option<String> {
        match self {
            Body::Deflated(b) => {
                let st = super::stored::decode(b).ok()?;
                serde_json::to_string(&st).ok()
            }
            Body::Text(json) => Some(json.clone()),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Item {
    state: Option<Body>,
    version: u64,
    last_error: Option<String>,
    next_check_ms: u64,
    slots: Option<crate::decision::run::Slots>,
    real_busy: Option<f64>,
    saved_by: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    defaults: Option<PolicyDoc>,
    policies: BTreeMap<FunctionRef, PolicyDoc>,
    items: BTreeMap<FunctionRef, Item>,
    /// The run's claim: owner and until when, epoch ms.
    run: Option<(String, u64)>,
    /// The time of the last claim, epoch ms.
    last_tick_ms: Option<u64>,
    /// Failures to return from the next calls, by operation name.
    failures: Vec<(&'static str, PortError)>,
    /// Failures to return from the next calls *after* applying them (an
    /// answer lost on the way back), by operation name.
    lost_answers: Vec<(&'static str, PortError)>,
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a function's policy item.
    pub fn put_policy(&self, f: &FunctionRef, doc: PolicyDoc) {
        self.lock().policies.insert(f.clone(), doc);
    }

    /// Writes the account-wide defaults item (`pk = "*"`).
    pub fn put_defaults(&self, doc: PolicyDoc) {
        self.lock().defaults = Some(doc);
    }

    /// The function's state as stored, its version and `last_error`.
    pub fn get(&self, f: &FunctionRef) -> (Option<FunctionState>, u64, Option<String>) {
        let g = self.lock();
        g.items.get(f).map_or((None, 0, None), |i| {
            (
                i.state.as_ref().and_then(|b| b.read().ok()),
                i.version,
                i.last_error.clone(),
            )
        })
    }

    /// The JSON of a function's state as it sits in the table (inflated
    /// when it is stored deflated).
    pub fn state_json(&self, f: &FunctionRef) -> Option<String> {
        self.lock()
            .items
            .get(f)
            .and_then(|i| i.state.as_ref())
            .and_then(Body::json)
    }

    /// Overwrites a function's stored state with raw JSON, as a person (or a
    /// broken writer) editing the table could.
    pub fn put_state_json(&self, f: &FunctionRef, json: &str) {
        let mut g = self.lock();
        let item = g.items.entry(f.clone()).or_default();
        item.state = Some(Body::Text(json.to_string()));
        item.version += 1;
    }

    /// The run's claim, when one is held: owner and until when.
    pub fn run_claim(&self) -> Option<(String, u64)> {
        self.lock().run.clone()
    }

    /// Overwrites when a function asks to be looked at next.
    pub fn set_next_check(&self, f: &FunctionRef, at_ms: u64) {
        self.lock()
            .items
            .entry(f.clone())
            .or_default()
            .next_check_ms = at_ms;
    }

    /// Makes the next call of `op` (`targets`, `claim_run`, `release_run`,
    /// `load`, `save`, `last_save`, `record_error`) fail with `err`.
    pub fn fail_next(&self, op: &'static str, err: PortError) {
        self.lock().failures.push((op, err));
    }

    /// Makes the next call of `op` apply, then fail with `err`, as when
    /// the answer is lost on the way back.
    pub fn lose_answer_next(&self, op: &'static str, err: PortError) {
        self.lock().lost_answers.push((op, err));
    }

    fn lost_answer(g: &mut Inner, op: &str) -> Option<PortError> {
        let i = g.lost_answers.iter().position(|(o, _)| *o == op)?;
        Some(g.lost_answers.remove(i).1)
    }

    fn injected(g: &mut Inner, op: &str) -> Option<PortError> {
        let i = g.failures.iter().position(|(o, _)| *o == op)?;
        Some(g.failures.remove(i).1)
    }

    fn stored(item: Option<&Item>) -> Stored {
        let Some(i) = item else {
            return Stored {
                state: None,
                version: 0,
                unreadable: None,
            };
        };
        let (state, unreadable) = match i.state.as_ref().map(Body::read) {
            None => (None, None),
            Some(Ok(st)) => (Some(Box::new(st)), None),
            Some(Err(why)) => (None, Some(why)),
        };
        Stored {
            state,
            version: i.version,
            unreadable,
        }
    }
}

/// The same items as the controller sees them, for people's commands.
impl AdminStore for MemoryStore {
    fn get_policy(
        &self,
        pk: &str,
    ) -> impl Future<Output = Result<Option<PolicyDoc>, PortError>> + Send {
        let g = self.lock();
        ready(Ok(if pk == "*" {
            g.defaults.clone()
        } else {
            g.policies.get(&FunctionRef::parse(pk)).cloned()
        }))
    }

    fn put_policy(
        &self,
        pk: &str,
        doc: &PolicyDoc,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let mut g = self.lock();
        if pk == "*" {
            g.defaults = Some(doc.clone());
        } else {
            g.policies.insert(FunctionRef::parse(pk), doc.clone());
        }
        ready(Ok(()))
    }

    fn list_policies(&self) -> impl Future<Output = Result<Vec<PolicyItem>, PortError>> + Send {
        let g = self.lock();
        let mut out: Vec<PolicyItem> = g
            .defaults
            .iter()
            .map(|d| ("*".to_string(), d))
            .chain(g.policies.iter().map(|(f, d)| (f.to_string(), d)))
            .map(|(pk, doc)| PolicyItem {
                pk,
                doc: doc.clone(),
                key_problem: None,
            })
            .collect();
        out.sort_by(|a, b| a.pk.cmp(&b.pk));
        ready(Ok(out))
    }

    fn states(
        &self,
        only: Option<&str>,
    ) -> impl Future<Output = Result<Vec<StateItem>, PortError>> + Send {
        let g = self.lock();
        let only = only.map(FunctionRef::parse);
        let out = g
            .items
            .iter()
            .filter(|(f, _)| only.as_ref().is_none_or(|o| o == *f))
            .map(|(f, i)| {
                let (state, problem) = match i.state.as_ref().map(Body::read) {
                    None => (None, None),
                    Some(Ok(st)) => (Some(st), None),
                    Some(Err(why)) => (None, Some(why)),
                };
                StateItem {
                    function: f.to_string(),
                    version: i.version,
                    state,
                    last_error: problem.or_else(|| i.last_error.clone()),
                    lease_owner: None,
                    lease_until_ms: 0,
                }
            })
            .collect();
        ready(Ok(out))
    }

    fn run_claim(&self) -> impl Future<Output = Result<Option<(String, u64)>, PortError>> + Send {
        ready(Ok(self.lock().run.clone()))
    }
}

impl StateStore for MemoryStore {
    fn targets(&self) -> impl Future<Output = Result<Vec<Target>, PortError>> + Send {
        let mut g = self.lock();
        if let Some(e) = Self::injected(&mut g, "targets") {
            return ready(Err(e));
        }
        let defaults = g.defaults.clone();
        ready(Ok(g
            .policies
            .iter()
            .map(|(f, doc)| Target {
                function: f.clone(),
                policy: Policy::from_items(defaults.as_ref(), doc),
                next_check_ms: g.items.get(f).map_or(0, |i| i.next_check_ms),
                slots: g.items.get(f).and_then(|i| i.slots),
                real_busy: g.items.get(f).and_then(|i| i.real_busy),
            })
            .collect()))
    }

    fn load(&self, f: &FunctionRef) -> impl Future<Output = Result<Stored, PortError>> + Send {
        let mut g = self.lock();
        if let Some(e) = Self::injected(&mut g, "load") {
            return ready(Err(e));
        }
        ready(Ok(Self::stored(g.items.get(f))))
    }

    fn claim_run(
        &self,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> impl Future<Output = Result<Option<u64>, PortError>> + Send {
        let mut g = self.lock();
        if let Some(e) = Self::injected(&mut g, "claim_run") {
            return ready(Err(e));
        }
        if let Some((other, until)) = &g.run
            && other != owner
            && *until > now_ms
        {
            return ready(Err(PortError::new(
                ErrorKind::Conflict,
                format!("the run is claimed by {other} until {until} ms"),
            )));
        }
        g.run = Some((owner.to_string(), until_ms));
        ready(Ok(g.last_tick_ms.replace(now_ms)))
    }

    fn release_run(&self, owner: &str) -> impl Future<Output = Result<(), PortError>> + Send {
        let mut g = self.lock();
        if let Some(e) = Self::injected(&mut g, "release_run") {
            return ready(Err(e));
        }
        if g.run.as_ref().is_some_and(|(o, _)| o == owner) {
            g.run = None;
        }
        ready(Ok(()))
    }

    fn save(
        &self,
        f: &FunctionRef,
        state: Box<FunctionState>,
        version: u64,
        run: &str,
    ) -> impl Future<Output = Result<u64, PortError>> + Send {
        let mut g = self.lock();
        if let Some(e) = Self::injected(&mut g, "save") {
            return ready(Err(e));
        }
        let lost = Self::lost_answer(&mut g, "save");
        let item = g.items.entry(f.clone()).or_default();
        if item.version != version {
            return ready(Err(PortError::new(
                ErrorKind::Conflict,
                format!(
                    "{f}: state changed since version {version} (now {})",
                    item.version
                ),
            )));
        }
        let body = match super::stored::encode(&state) {
            Ok(b) => Body::Deflated(b),
            Err(e) => return ready(Err(PortError::new(ErrorKind::Invalid, e))),
        };
        item.state = Some(body);
        item.version += 1;
        item.last_error = state.last_error.clone();
        item.next_check_ms = state.next_check_ms;
        item.slots = state.run.map(|r| r.slots());
        item.real_busy = Some(state.real_busy());
        item.saved_by = Some(run.to_string());
        let v = item.version;
        ready(lost.map_or(Ok(v), Err))
    }

    fn last_save(
        &self,
        f: &FunctionRef,
        run: &str,
    ) -> impl Future<Output = Result<(u64, bool), PortError>> + Send {
        let mut g = self.lock();
        if let Some(e) = Self::injected(&mut g, "last_save") {
            return ready(Err(e));
        }
        ready(Ok(g.items.get(f).map_or((0, false), |i| {
            (i.version, i.saved_by.as_deref() == Some(run))
        })))
    }

    fn record_error(
        &self,
        f: &FunctionRef,
        error: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let mut g = self.lock();
        if let Some(e) = Self::injected(&mut g, "record_error") {
            return ready(Err(e));
        }
        let item = g.items.entry(f.clone()).or_default();
        item.last_error = Some(error.to_string());
        ready(Ok(()))
    }
}
