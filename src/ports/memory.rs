//! An in-memory [`StateStore`] with DynamoDB's semantics: versioned,
//! conditional saves marked with the run that made them, the run's claim,
//! `last_error` written alone. Tests use it as a fake; state goes in and out
//! in the item's stored form (deflated JSON, `ports::stored`), as it does
//! through the real table, so a field the item would lose is lost here too.
//!
//! The rules themselves (`ItemRules`, `ClaimRules`) are shared with the
//! simulator's store, which keeps the state as it is (no JSON round trip:
//! it saves a million times a run) but meets the same conditions.

use std::collections::BTreeMap;
use std::future::{Future, ready};
use std::sync::Mutex;

use crate::decision::policy::{Policy, PolicyDoc};
use crate::decision::{FunctionState, Limits, MinuteMetrics, Reaping, WarmReport};
use crate::ports::{
    AdminStore, Claimed, ErrorKind, FunctionRef, MetricsRequest, MetricsSource, PolicyItem,
    PoolPings, PortError, RunItem, StateItem, StateStore, Stored, Target, WarmPlan, Warmer,
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

/// A state item's attributes beside the state, and the conditions a write
/// to it meets, as the DynamoDB store writes them.
#[derive(Debug, Default, Clone)]
pub(crate) struct ItemRules {
    /// Saves so far; a save must name the version it read.
    pub(crate) version: u64,
    /// The last error, written with a save or alone.
    pub(crate) last_error: Option<String>,
    /// When the function asks to be looked at next.
    pub(crate) next_check_ms: u64,
    /// A planned run's spacing and end.
    pub(crate) slots: Option<crate::decision::run::Slots>,
    /// Its average real concurrency.
    pub(crate) real_busy: Option<f64>,
    /// The mark of the run that saved last ([`super::save_mark`]).
    pub(crate) saved_by: Option<u32>,
}

impl ItemRules {
    /// A save of `state` read at `version` by `run`: refused when another
    /// save came between (DynamoDB's condition on `version`), else the
    /// attributes it writes, and the new version.
    pub(crate) fn save(
        &mut self,
        f: &FunctionRef,
        state: &FunctionState,
        version: u64,
        run: &str,
    ) -> Result<u64, PortError> {
        if self.version != version {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!(
                    "{f}: state changed since version {version} (now {})",
                    self.version
                ),
            ));
        }
        self.version += 1;
        self.last_error = state.last_error.clone();
        self.next_check_ms = state.next_check_ms;
        self.slots = state.run.map(|r| r.slots());
        self.real_busy = Some(state.real_busy());
        self.saved_by = Some(super::save_mark(run));
        Ok(self.version)
    }

    /// The billed size of `function`'s item holding these attributes and a
    /// stored state of `stored_len` bytes.
    pub(crate) fn item_bytes(&self, function: &str, stored_len: usize) -> u64 {
        let busy = super::busy_text(self.real_busy.unwrap_or(0.0));
        crate::cost::dynamodb::StateItem {
            function,
            stored_len,
            version: self.version,
            next_check_ms: self.next_check_ms,
            saved_by: self.saved_by.unwrap_or(0),
            real_busy: &busy,
            slots: self.slots.map(|s| (s.every_ms, s.until_ms)),
            last_error: self.last_error.as_deref(),
        }
        .bytes()
    }

    /// The version, and whether `run` saved last.
    pub(crate) fn last_save(&self, run: &str) -> (u64, bool) {
        (self.version, self.saved_by == Some(super::save_mark(run)))
    }

    /// `last_error` written alone (the item made if there was none).
    pub(crate) fn record_error(&mut self, error: &str) {
        self.last_error = Some(error.to_string());
    }
}

/// The run's claim on the account item (`pk = "*"`), as the DynamoDB
/// store's conditional write keeps it: refused while another run's claim
/// lasts; the last claim's time handed back.
#[derive(Debug, Default, Clone)]
pub(crate) struct ClaimRules {
    /// The claim held: owner and until when, epoch ms.
    pub(crate) run: Option<(String, u64)>,
    /// The time of the last claim, epoch ms.
    pub(crate) last_tick_ms: Option<u64>,
    /// What the last release left.
    pub(crate) pool_pings: PoolPings,
    /// The reaping evidence the last release left.
    pub(crate) reaping: Reaping,
}

impl ClaimRules {
    /// Claims the run for `owner` until `until_ms`; the previous claim's time.
    pub(crate) fn claim(
        &mut self,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Claimed, PortError> {
        if let Some((other, until)) = &self.run
            && other != owner
            && *until > now_ms
        {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("the run is claimed by {other} until {until} ms"),
            ));
        }
        self.run = Some((owner.to_string(), until_ms));
        Ok(Claimed {
            last_tick_ms: self.last_tick_ms.replace(now_ms),
            pool_pings: self.pool_pings.clone(),
            reaping: self.reaping.clone(),
            reaping_unreadable: None,
        })
    }

    /// What a claim would hand back now, without claiming.
    pub(crate) fn peek(&self) -> Claimed {
        Claimed {
            last_tick_ms: self.last_tick_ms,
            pool_pings: self.pool_pings.clone(),
            reaping: self.reaping.clone(),
            reaping_unreadable: None,
        }
    }

    /// Releases `owner`'s claim, leaving `pool_pings` and `reaping`;
    /// someone else's claim stays, and so does what it left.
    pub(crate) fn release(&mut self, owner: &str, pool_pings: &PoolPings, reaping: &Reaping) {
        if self.run.as_ref().is_some_and(|(o, _)| o == owner) {
            self.run = None;
            self.pool_pings = pool_pings.clone();
            self.reaping = reaping.clone();
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Item {
    state: Option<Body>,
    rules: ItemRules,
}

#[derive(Debug, Default)]
struct Inner {
    defaults: Option<PolicyDoc>,
    policies: BTreeMap<FunctionRef, PolicyDoc>,
    items: BTreeMap<FunctionRef, Item>,
    claim: ClaimRules,
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
                i.rules.version,
                i.rules.last_error.clone(),
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
        item.rules.version += 1;
    }

    /// The run's claim, when one is held: owner and until when.
    pub fn run_claim(&self) -> Option<(String, u64)> {
        self.lock().claim.run.clone()
    }

    /// Overwrites when a function asks to be looked at next.
    pub fn set_next_check(&self, f: &FunctionRef, at_ms: u64) {
        self.lock()
            .items
            .entry(f.clone())
            .or_default()
            .rules
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
            version: i.rules.version,
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
                    version: i.rules.version,
                    state,
                    last_error: problem.or_else(|| i.rules.last_error.clone()),
                    lease_owner: None,
                    lease_until_ms: 0,
                }
            })
            .collect();
        ready(Ok(out))
    }

    fn run_item(&self) -> impl Future<Output = Result<RunItem, PortError>> + Send {
        let g = self.lock();
        ready(Ok(RunItem {
            claim: g.claim.run.clone(),
            reaping: g.claim.last_tick_ms.map(|_| g.claim.reaping.text()),
        }))
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
                next_check_ms: g.items.get(f).map_or(0, |i| i.rules.next_check_ms),
                slots: g.items.get(f).and_then(|i| i.rules.slots),
                real_busy: g.items.get(f).and_then(|i| i.rules.real_busy),
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
    ) -> impl Future<Output = Result<Claimed, PortError>> + Send {
        let mut g = self.lock();
        if let Some(e) = Self::injected(&mut g, "claim_run") {
            return ready(Err(e));
        }
        ready(g.claim.claim(owner, now_ms, until_ms))
    }

    fn peek_run(&self) -> impl Future<Output = Result<Claimed, PortError>> + Send {
        ready(Ok(self.lock().claim.peek()))
    }

    fn release_run(
        &self,
        owner: &str,
        pool_pings: &PoolPings,
        reaping: &Reaping,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let mut g = self.lock();
        if let Some(e) = Self::injected(&mut g, "release_run") {
            return ready(Err(e));
        }
        g.claim.release(owner, pool_pings, reaping);
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
        let body = match super::stored::encode(&state) {
            Ok(b) => Body::Deflated(b),
            Err(e) => return ready(Err(PortError::new(ErrorKind::Invalid, e))),
        };
        let item = g.items.entry(f.clone()).or_default();
        let v = match item.rules.save(f, &state, version, run) {
            Ok(v) => v,
            Err(e) => return ready(Err(e)),
        };
        item.state = Some(body);
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
        ready(Ok(g
            .items
            .get(f)
            .map_or((0, false), |i| i.rules.last_save(run))))
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
        item.rules.record_error(error);
        ready(Ok(()))
    }
}

/// CloudWatch in memory, for tests and benchmarks: each function's steady
/// real concurrency (or a shape over the minutes), and what it was asked.
#[derive(Debug, Default)]
pub struct MemoryMetrics {
    /// Each function's steady peak concurrency (absent: idle); a minute
    /// reads it as its maximum, with half-second invocations making half
    /// of it busy on average.
    pub steady: BTreeMap<String, f64>,
    /// Instead of `steady`: each minute of each function.
    pub shape: Option<fn(&FunctionRef, u64) -> MinuteMetrics>,
    /// Every read fails as CloudWatch being down.
    pub down: bool,
    /// Batched reads so far.
    pub calls: Mutex<usize>,
    /// Functions read, every request of every call.
    pub read: Mutex<Vec<String>>,
    /// Whether a `ListMetrics` screen can be made: it answers the
    /// functions with a nonzero steady level.
    pub screens: bool,
    /// Screens so far.
    pub screened: Mutex<usize>,
    /// The account's pool in use, `(minute, maximum)`, pings included.
    pub pool: Vec<(u64, f64)>,
    /// Reads of the account's pool so far, `(from, until)` minutes.
    pub pool_reads: Mutex<Vec<(u64, u64)>>,
}

impl MemoryMetrics {
    /// Steady levels, one per function.
    pub fn steady(pairs: &[(&str, f64)]) -> Self {
        MemoryMetrics {
            steady: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        }
    }
}

impl MetricsSource for MemoryMetrics {
    fn pool_in_use(
        &self,
        from_minute: u64,
        until_minute: u64,
    ) -> impl Future<Output = Result<Vec<(u64, f64)>, PortError>> + Send {
        self.pool_reads
            .lock()
            .unwrap()
            .push((from_minute, until_minute));
        if self.down {
            return ready(Err(PortError::new(
                ErrorKind::Unavailable,
                "cloudwatch is down",
            )));
        }
        ready(Ok(self
            .pool
            .iter()
            .filter(|(m, _)| (from_minute..until_minute).contains(m))
            .copied()
            .collect()))
    }

    fn observe(
        &self,
        requests: &[MetricsRequest],
    ) -> impl Future<Output = Result<Vec<Result<Vec<MinuteMetrics>, PortError>>, PortError>> + Send
    {
        *self.calls.lock().unwrap() += 1;
        self.read
            .lock()
            .unwrap()
            .extend(requests.iter().map(|r| r.function.to_string()));
        if self.down {
            return ready(Err(PortError::new(
                ErrorKind::Unavailable,
                "cloudwatch is down",
            )));
        }
        ready(Ok(requests
            .iter()
            .map(|r| {
                if let Some(shape) = self.shape {
                    return Ok((r.from_minute..r.until_minute)
                        .map(|m| shape(&r.function, m))
                        .collect());
                }
                let c = self.steady.get(&*r.function.name).copied().unwrap_or(0.0);
                Ok((r.from_minute..r.until_minute)
                    .map(|m| MinuteMetrics {
                        minute: m,
                        concurrency_max: Some(c),
                        // Half a second each: half the peak busy on average.
                        invocations: Some(c * 60.0),
                        duration_avg_ms: Some(500.0),
                        ..MinuteMetrics::default()
                    })
                    .collect())
            })
            .collect()))
    }

    fn recently_active(
        &self,
    ) -> impl Future<Output = Result<Option<std::collections::BTreeSet<String>>, PortError>> + Send
    {
        *self.screened.lock().unwrap() += 1;
        ready(Ok(self.screens.then(|| {
            self.steady
                .iter()
                .filter(|(_, c)| **c > 0.0)
                .map(|(k, _)| k.clone())
                .collect()
        })))
    }
}

/// Lambda in memory, for tests and benchmarks: every ping finds its own
/// sandbox (`{function}-{i}`), except for listed functions that do not
/// exist; every plan sent is kept.
#[derive(Debug, Default)]
pub struct MemoryWarmer {
    /// Functions that do not exist (their limits and warms fail).
    pub missing: Vec<String>,
    /// Reserved concurrency by function.
    pub reserved: BTreeMap<String, u32>,
    /// The account's unreserved pool.
    pub unreserved: Option<u32>,
    /// The plans sent so far.
    pub sent: Mutex<Vec<WarmPlan>>,
    /// The first warm at or after this time comes back all cold (its
    /// sandboxes were reaped), once.
    pub cold_once_at: Mutex<Option<u64>>,
}

impl Warmer for MemoryWarmer {
    fn limits(&self, f: &FunctionRef) -> impl Future<Output = Result<Limits, PortError>> + Send {
        ready(if self.missing.iter().any(|m| **m == *f.name) {
            Err(PortError::new(
                ErrorKind::NotFound,
                format!("function {f} not found"),
            ))
        } else {
            Ok(Limits {
                reserved: self.reserved.get(&*f.name).copied(),
                unreserved: self.unreserved,
                ..Limits::default()
            })
        })
    }

    fn warm(
        &self,
        plans: &[WarmPlan],
    ) -> impl Future<Output = Vec<Result<WarmReport, PortError>>> + Send {
        self.sent.lock().unwrap().extend(plans.iter().cloned());
        let mut cold_at = self.cold_once_at.lock().unwrap();
        ready(
            plans
                .iter()
                .map(|p| {
                    let prefix = format!("{}-", p.function);
                    let mut rep =
                        WarmReport::every_ping_distinct(p.n, p.delay_ms, p.at_ms, &prefix, 1);
                    if cold_at.is_some_and(|t| p.at_ms >= t) {
                        *cold_at = None;
                        for ping in rep.pings.iter_mut() {
                            ping.cold = Some(true);
                        }
                    }
                    Ok(rep)
                })
                .collect(),
        )
    }
}
