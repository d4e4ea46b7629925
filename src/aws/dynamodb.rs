//! The state store on DynamoDB: one table, two item kinds.
//!
//! Key: `pk` (S) = `name` or `name:qualifier`, `sk` (S) = `policy` | `state`;
//! `pk = "*"` with `sk = "policy"` holds account-wide defaults, and with
//! `sk = "state"` the run's claim (`lease_owner`, `lease_until`, and
//! `last_tick_ms`, the time of the latest claim).
//!
//! * **policy** items are written by people: plain scalar attributes
//!   (strings, numbers, booleans) that read and edit well in the console.
//! * **state** items are written only by the controller: `version` (every
//!   write is conditional on it), `next_check_ms` (read with the policies,
//!   so resting functions cost no state read or write), `last_error`, and
//!   `state`, the controller's memory: its JSON deflated into bytes, so that
//!   most items fit one write unit (`forewarm status` prints it; see
//!   `ports::stored`). A function with warms planned ahead also has
//!   `run_every_ms` and `run_until_ms`: with `next_check_ms` (the first
//!   slot), the scan tells which functions have a planned warm this tick
//!   (see [`crate::decision::run`]). `real_busy`, the function's average
//!   real concurrency, lets a tick count the traffic of functions it does
//!   not look at in the account's pool.
//!
//! A tick claims the run with one conditional `UpdateItem` on the account's
//! state item (free, expired, or already ours), so two overlapping ticks
//! never handle functions at once; each function's state is then read
//! consistently and saved on condition of the version read, so a save that
//! lost a race writes nothing. One claim per tick replaced a lease on each
//! state item, which cost a write billed on the whole item at every look.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConsumedCapacity, KeySchemaElement, KeyType,
    ReturnConsumedCapacity, ReturnValue, ScalarAttributeType,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::port_error;
use crate::decision::policy::{Policy, PolicyDoc, PolicyError, Scalar};
use crate::decision::run::Slots;
use crate::decision::{FunctionState, Reaping, checked_busy};
use crate::ports::{
    AdminStore, Claimed, ErrorKind, FunctionRef, PolicyItem, PoolPings, PortError, RunItem,
    StateItem, StateStore, Stored, Target, Usage, stored,
};

/// The `pk` of the account-wide defaults item.
pub(crate) const DEFAULTS_PK: &str = "*";

/// The longest a run's claim can honestly last, ms: a Lambda's longest run.
const MAX_CLAIM_MS: u64 = 15 * 60_000;

/// The DynamoDB state store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Units consumed, as DynamoDB reported them (`ReturnConsumedCapacity`),
    /// in thousandths: (read, write).
    units: Arc<(AtomicU64, AtomicU64)>,
    /// The state items the last [`StateStore::targets`] scan read, by `pk`,
    /// each handed to the first [`StateStore::load`] of its function.
    scanned: Arc<std::sync::Mutex<Scanned>>,
}

/// What the tick's scan read of the functions' state items. A Scan is
/// billed for every byte of every item it reads, whatever it keeps, so the
/// state of a function it listed is already paid for: a second, consistent
/// read at the look (one unit per function per warm, a third of the
/// bundled day's DynamoDB bill) would pay for it twice.
#[derive(Debug, Default)]
struct Scanned {
    /// State items, by `pk`.
    states: HashMap<String, Item>,
    /// Functions listed with a policy, whether they had a state item or not:
    /// one without had none when the scan ran.
    listed: std::collections::HashSet<String>,
}

/// Thousandths of a unit, so that half read units add up exactly.
fn milli(c: Option<&ConsumedCapacity>) -> u64 {
    c.and_then(|c| c.capacity_units())
        .filter(|u| u.is_finite() && *u >= 0.0)
        .map_or(0, |u| (u * 1_000.0).round() as u64)
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_f64(item: &Item, k: &str) -> Option<f64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|x| x.parse::<f64>().ok())
}

fn get_u64(item: &Item, k: &str) -> Option<u64> {
    get_f64(item, k).map(|x| x.max(0.0) as u64)
}

/// The highest version a state item may carry: a save adds one, and above
/// 2^53 a number read as a float (by people's tools, or ours before) is no
/// longer exact.
const MAX_VERSION: u64 = 1 << 53;

/// What the account's item holds for the next run: the last tick's time, if
/// one claimed before and wrote a number, the pool pings it left (untrusted
/// text: what does not parse counts no pings) and the reaping evidence
/// (untrusted: what does not parse starts afresh, and says why).
fn claimed(old: Option<&Item>) -> Claimed {
    let attr = |k: &str| old.and_then(|o| o.get(k));
    let (reaping, reaping_unreadable) = match attr("reaping").map(|v| v.as_s()) {
        None => (Reaping::default(), None),
        Some(Ok(t)) => match Reaping::parse(t) {
            Ok(r) => (r, None),
            Err(why) => (Reaping::default(), Some(why)),
        },
        Some(Err(_)) => (
            Reaping::default(),
            Some("reaping is not a string attribute".to_string()),
        ),
    };
    Claimed {
        last_tick_ms: attr("last_tick_ms")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok()),
        pool_pings: attr("pool_pings")
            .and_then(|v| v.as_s().ok())
            .map(|t| PoolPings::parse(t))
            .unwrap_or_default(),
        reaping,
        reaping_unreadable,
    }
}

/// An item's `version`: absent is 0; anything but a whole number from 0 to
/// [`MAX_VERSION`] is refused, saying what it was, because a save matches it
/// exactly and would never succeed.
fn version_of(item: &Item) -> Result<u64, String> {
    let Some(v) = item.get("version") else {
        return Ok(0);
    };
    v.as_n()
        .ok()
        .and_then(|x| x.trim().parse::<u64>().ok())
        .filter(|&x| x <= MAX_VERSION)
        .ok_or_else(|| format!("its version ({v:?}) is not a whole number from 0 to 2^53"))
}

fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// A policy item's attributes (keys removed) as the core reads them. Types a
/// person cannot mean for a knob (lists, maps, sets) become a description
/// that validation then rejects with the attribute's name.
pub(crate) fn policy_doc(item: &Item) -> PolicyDoc {
    let mut doc = BTreeMap::new();
    for (k, v) in item {
        if k == "pk" || k == "sk" {
            continue;
        }
        let scalar = match v {
            AttributeValue::S(x) => Scalar::Str(x.clone()),
            AttributeValue::N(x) => x
                .parse::<f64>()
                .map_or_else(|_| Scalar::Str(x.clone()), Scalar::Num),
            AttributeValue::Bool(b) => Scalar::Bool(*b),
            AttributeValue::Null(_) => Scalar::Str("null".into()),
            AttributeValue::L(_) => Scalar::Str("<a list>".into()),
            AttributeValue::M(_) => Scalar::Str("<a map>".into()),
            _ => Scalar::Str("<a set or binary value>".into()),
        };
        doc.insert(k.clone(), scalar);
    }
    doc
}

fn doc_item(pk: &str, doc: &PolicyDoc) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(pk));
    item.insert("sk".into(), s("policy"));
    for (k, v) in doc {
        let av = match v {
            Scalar::Bool(b) => AttributeValue::Bool(*b),
            Scalar::Num(x) => n(x),
            Scalar::Str(x) => s(x.clone()),
        };
        item.insert(k.clone(), av);
    }
    item
}

impl DynamoStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            units: Arc::new((AtomicU64::new(0), AtomicU64::new(0))),
            scanned: Arc::default(),
        }
    }

    fn read(&self, c: Option<&ConsumedCapacity>) {
        self.units.0.fetch_add(milli(c), Ordering::Relaxed);
    }

    fn wrote(&self, c: Option<&ConsumedCapacity>) {
        self.units.1.fetch_add(milli(c), Ordering::Relaxed);
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(pk: &str, sk: &str) -> Item {
        HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
    }

    /// The item's state, or why it cannot be read (then `None`, and the tick
    /// starts the function afresh with the reason as its `last_error`).
    fn parse_state(f: &str, item: &Item) -> (Option<FunctionState>, Option<String>) {
        let read = match item.get("state") {
            None => return (None, None),
            Some(AttributeValue::B(blob)) => stored::decode(blob.as_ref()),
            // Plain JSON: what controllers before deflated items wrote.
            Some(AttributeValue::S(json)) => FunctionState::from_stored(json),
            Some(_) => Err("stored state is neither deflated bytes nor JSON text".into()),
        };
        match read {
            Ok(st) => (Some(st), None),
            Err(why) => {
                tracing::warn!(function = %f, problem = %why, "stored state not usable, starting afresh");
                (None, Some(why))
            }
        }
    }

    fn stored(pk: &str, item: &Item) -> Stored {
        let (state, unreadable) = Self::parse_state(pk, item);
        Stored {
            state: state.map(Box::new),
            version: version_of(item).unwrap_or(0),
            unreadable,
        }
    }

    /// Puts an item whose version cannot be matched back at version 0, on
    /// condition that nobody changed it since it was read, so that saves
    /// can succeed again; the state is started afresh with the reason.
    async fn reset_version(&self, pk: &str, item: &Item, why: String) -> Result<Stored, PortError> {
        let Some(raw) = item.get("version").cloned() else {
            return Err(PortError::new(ErrorKind::Invalid, why));
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, "state")))
            .update_expression("SET #v = :zero")
            .condition_expression("#v = :raw")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":raw", raw)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| port_error(&format!("reset the version of {pk}"), e))?;
        self.wrote(out.consumed_capacity());
        tracing::warn!(function = %pk, problem = %why, "stored version unusable; reset to 0");
        Ok(Stored {
            state: None,
            version: 0,
            unreadable: Some(format!("stored state unusable ({why}): started afresh")),
        })
    }

    /// Every item of the table, page by page.
    async fn scan_all(&self) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| port_error(&format!("scan table {}", self.table), e))?;
            self.read(out.consumed_capacity());
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// Creates the table (on-demand billing), for local stand-ins and first
    /// runs; the SAM template creates it in real accounts.
    pub async fn create_table(&self) -> Result<(), PortError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| PortError::new(ErrorKind::Invalid, e.to_string()))
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .map_err(|e| PortError::new(ErrorKind::Invalid, e.to_string()))
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| port_error(&format!("create table {}", self.table), e))?;
        Ok(())
    }

    /// One item, read consistently; `what` names it in errors.
    async fn get(&self, pk: &str, sk: &str, what: &str) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| port_error(&format!("{what} {pk}"), e))?;
        self.read(out.consumed_capacity());
        Ok(out.item().cloned())
    }
}

impl AdminStore for DynamoStore {
    /// Writes a function's policy item (or the defaults item for `*`),
    /// replacing the previous one.
    async fn put_policy(&self, pk: &str, doc: &PolicyDoc) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(doc_item(pk, doc)))
            .send()
            .await
            .map_err(|e| port_error(&format!("put policy {pk}"), e))?;
        Ok(())
    }

    /// Reads a policy item.
    async fn get_policy(&self, pk: &str) -> Result<Option<PolicyDoc>, PortError> {
        Ok(self
            .get(pk, "policy", "get policy")
            .await?
            .as_ref()
            .map(policy_doc))
    }

    /// Every policy item, by `pk`.
    ///
    /// Each comes with what is wrong with its key, if anything: a `pk` that
    /// is not a canonical function reference, or an `sk` that was meant to
    /// be `policy` but is spelled otherwise (`Policy`, `policy `), which the
    /// controller ignores.
    async fn list_policies(&self) -> Result<Vec<PolicyItem>, PortError> {
        let mut out: Vec<PolicyItem> = self
            .scan_all()
            .await?
            .iter()
            .filter_map(|i| {
                let pk = get_s(i, "pk")?.to_string();
                let sk = get_s(i, "sk")?;
                let problem = if sk == "policy" {
                    if pk == DEFAULTS_PK {
                        None
                    } else {
                        FunctionRef::check_key(&pk).err()
                    }
                } else if sk.trim().eq_ignore_ascii_case("policy") {
                    Some(format!(
                        "sk {sk:?} is not \"policy\": the controller ignores this item"
                    ))
                } else {
                    return None;
                };
                Some(PolicyItem {
                    pk,
                    doc: policy_doc(i),
                    key_problem: problem,
                })
            })
            .collect();
        out.sort_by(|a, b| a.pk.cmp(&b.pk));
        Ok(out)
    }

    async fn run_item(&self) -> Result<RunItem, PortError> {
        let item = self
            .get(DEFAULTS_PK, "state", "read the run's item")
            .await?;
        Ok(item.map_or_else(RunItem::default, |i| RunItem {
            claim: get_s(&i, "lease_owner")
                .map(|o| (o.to_string(), get_u64(&i, "lease_until").unwrap_or(0))),
            reaping: get_s(&i, "reaping").map(str::to_string),
        }))
    }

    /// Every function's state item (or one function's).
    async fn states(&self, only: Option<&str>) -> Result<Vec<StateItem>, PortError> {
        let items: Vec<Item> = match only {
            Some(pk) => self
                .get(pk, "state", "get state of")
                .await?
                .into_iter()
                .collect(),
            None => self
                .scan_all()
                .await?
                .into_iter()
                .filter(|i| get_s(i, "sk") == Some("state") && get_s(i, "pk") != Some(DEFAULTS_PK))
                .collect(),
        };
        let mut out: Vec<StateItem> = items
            .iter()
            .filter_map(|i| {
                let f = get_s(i, "pk")?.to_string();
                let (state, problem) = match version_of(i) {
                    Ok(_) => Self::parse_state(&f, i),
                    Err(why) => (None, Some(format!("stored state unusable ({why})"))),
                };
                // An unreadable state is a problem people must see even
                // before the next tick writes it to `last_error`.
                let stored_error = get_s(i, "last_error").map(str::to_string);
                Some(StateItem {
                    version: version_of(i).unwrap_or(0),
                    state,
                    last_error: match (problem, stored_error) {
                        (Some(p), Some(e)) if !e.contains(&p) => Some(format!("{p}; {e}")),
                        (Some(p), None) => Some(p),
                        (_, e) => e,
                    },
                    lease_owner: get_s(i, "lease_owner").map(str::to_string),
                    lease_until_ms: get_u64(i, "lease_until").unwrap_or(0),
                    function: f,
                })
            })
            .collect();
        out.sort_by(|a, b| a.function.cmp(&b.function));
        Ok(out)
    }
}

impl StateStore for DynamoStore {
    fn usage(&self) -> Usage {
        Usage {
            read_units: self.units.0.load(Ordering::Relaxed) as f64 / 1_000.0,
            write_units: self.units.1.load(Ordering::Relaxed) as f64 / 1_000.0,
            ..Usage::default()
        }
    }

    async fn targets(&self) -> Result<Vec<Target>, PortError> {
        // A failed scan leaves nothing of an older one behind.
        *self.scanned.lock().unwrap_or_else(|e| e.into_inner()) = Scanned::default();
        let items = self.scan_all().await?;
        let mut defaults = None;
        let mut policies: BTreeMap<String, PolicyDoc> = BTreeMap::new();
        let mut next_check: HashMap<String, (u64, Option<Slots>, Option<f64>)> = HashMap::new();
        let mut states: HashMap<String, Item> = HashMap::new();
        for item in items {
            let (Some(pk), Some(sk)) = (get_s(&item, "pk"), get_s(&item, "sk")) else {
                continue;
            };
            let pk = pk.to_string();
            match sk {
                "policy" if pk == DEFAULTS_PK => defaults = Some(policy_doc(&item)),
                "policy" => {
                    policies.insert(pk, policy_doc(&item));
                }
                // The account's state item holds the run's claim, nothing to check.
                "state" if pk == DEFAULTS_PK => {}
                "state" => {
                    // Absent or not numbers: no run, the function is
                    // looked at by its `next_check_ms` alone.
                    let slots = match (
                        get_u64(&item, "run_every_ms"),
                        get_u64(&item, "run_until_ms"),
                    ) {
                        (Some(every_ms), Some(until_ms)) => Some(Slots { every_ms, until_ms }),
                        _ => None,
                    };
                    let at = get_u64(&item, "next_check_ms").unwrap_or(0);
                    let real = get_f64(&item, "real_busy").and_then(checked_busy);
                    next_check.insert(pk.clone(), (at, slots, real));
                    states.insert(pk, item);
                }
                _ => {}
            }
        }
        // Kept for the looks only where a policy lists the function.
        states.retain(|pk, _| policies.contains_key(pk));
        *self.scanned.lock().unwrap_or_else(|e| e.into_inner()) = Scanned {
            states,
            listed: policies.keys().cloned().collect(),
        };
        Ok(policies
            .into_iter()
            .map(|(pk, doc)| {
                let (next_check_ms, slots, real_busy) =
                    next_check.get(&pk).copied().unwrap_or((0, None, None));
                match FunctionRef::check_key(&pk) {
                    Ok(()) => Target {
                        next_check_ms,
                        slots,
                        real_busy,
                        function: FunctionRef::parse(&pk),
                        policy: Policy::from_items(defaults.as_ref(), &doc),
                    },
                    // Kept under its own key (so its last_error lands on its
                    // own item), never read as the function it resembles.
                    Err(why) => Target {
                        next_check_ms: 0,
                        slots: None,
                        real_busy: None,
                        function: FunctionRef::unqualified(pk.as_str()),
                        policy: Err(PolicyError {
                            problems: vec![why],
                        }),
                    },
                }
            })
            .collect())
    }

    async fn load(&self, f: &FunctionRef) -> Result<Stored, PortError> {
        let pk = f.to_string();
        let scanned = {
            let mut sc = self.scanned.lock().unwrap_or_else(|e| e.into_inner());
            sc.listed.remove(&pk).then(|| sc.states.remove(&pk))
        };
        let item = match scanned {
            Some(item) => item,
            None => self.get(&pk, "state", "read state of").await?,
        };
        if let Some(i) = item.as_ref()
            && let Err(why) = version_of(i)
        {
            return self.reset_version(&pk, i, why).await;
        }
        Ok(match item.as_ref() {
            Some(i) => Self::stored(&pk, i),
            None => Stored {
                state: None,
                version: 0,
                unreadable: None,
            },
        })
    }

    async fn claim_run(
        &self,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Claimed, PortError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(DEFAULTS_PK, "state")))
            .update_expression("SET #lo = :o, #lu = :u, #lt = :now")
            // A claim that is not a number, or that ends further ahead than
            // any run's can (no run outlasts a Lambda's 15 minutes), was not
            // written by a run: it must not stop every tick for ever.
            .condition_expression(
                "attribute_not_exists(#lu) OR NOT attribute_type(#lu, :num) OR #lu <= :now \
                 OR #lu > :far OR #lo = :o",
            )
            .expression_attribute_names("#lo", "lease_owner")
            .expression_attribute_names("#lu", "lease_until")
            .expression_attribute_names("#lt", "last_tick_ms")
            .expression_attribute_values(":o", s(owner.to_string()))
            .expression_attribute_values(":u", n(until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":num", s("N"))
            .expression_attribute_values(":far", n(now_ms.saturating_add(MAX_CLAIM_MS)))
            // The whole item as it was (billed the same as the write):
            // the last runs' pool pings too, which the claim leaves alone.
            .return_values(ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| {
                let mut pe = port_error(&format!("claim the run in table {}", self.table), e);
                if pe.kind == ErrorKind::Conflict {
                    pe.message = "the run is claimed by another controller run".into();
                }
                pe
            })?;
        self.wrote(out.consumed_capacity());
        // The attributes as they were before the claim.
        Ok(claimed(out.attributes()))
    }

    async fn peek_run(&self) -> Result<Claimed, PortError> {
        let item = self
            .get(DEFAULTS_PK, "state", "read the run's item")
            .await?;
        Ok(claimed(item.as_ref()))
    }

    async fn release_run(
        &self,
        owner: &str,
        pool_pings: &PoolPings,
        reaping: &Reaping,
    ) -> Result<(), PortError> {
        let pings = pool_pings.text();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(DEFAULTS_PK, "state")))
            .condition_expression("#lo = :o")
            .expression_attribute_names("#lo", "lease_owner")
            .expression_attribute_names("#lu", "lease_until")
            .expression_attribute_names("#pp", "pool_pings")
            .expression_attribute_names("#rp", "reaping")
            .expression_attribute_values(":o", s(owner.to_string()))
            .expression_attribute_values(":rp", s(reaping.text()));
        // DynamoDB refuses an empty string value: no pings is no attribute.
        update = if pings.is_empty() {
            update.update_expression("SET #rp = :rp REMOVE #lo, #lu, #pp")
        } else {
            update
                .update_expression("SET #pp = :pp, #rp = :rp REMOVE #lo, #lu")
                .expression_attribute_values(":pp", s(pings))
        };
        let released = update
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match released {
            Ok(out) => {
                self.wrote(out.consumed_capacity());
                Ok(())
            }
            Err(e) => {
                let pe = port_error(&format!("release the run in table {}", self.table), e);
                // Someone else's claim (ours expired) stays.
                if pe.kind == ErrorKind::Conflict {
                    Ok(())
                } else {
                    Err(pe)
                }
            }
        }
    }

    async fn save(
        &self,
        f: &FunctionRef,
        state: Box<FunctionState>,
        version: u64,
        run: &str,
    ) -> Result<u64, PortError> {
        let pk = f.to_string();
        let bytes = stored::encode(&state)
            .map_err(|e| PortError::new(ErrorKind::Invalid, format!("{e} of {pk}")))?;
        let (set_err, values) = match &state.last_error {
            Some(e) => (", #le = :err", Some(s(e.clone()))),
            None => ("", None),
        };
        let (set_run, run_slots) = match state.run {
            Some(r) => (", #re = :re, #ru = :ru", Some(r.slots())),
            None => ("", None),
        };
        // The per-item lease of earlier versions goes with the first save.
        let mut remove = String::from("REMOVE #lo, #lu");
        if values.is_none() {
            remove.push_str(", #le");
        }
        if run_slots.is_none() {
            remove.push_str(", #re, #ru");
        }
        // A first save also finds an item `record_error` made (no
        // version yet).
        let condition = if version == 0 {
            "attribute_not_exists(#v) OR #v = :v"
        } else {
            "#v = :v"
        };
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&pk, "state")))
            .update_expression(format!(
                "SET #s = :state, #v = :next, #nc = :nc, #sb = :sb, #rb = :rb{set_err}{set_run} {remove}"
            ))
            .condition_expression(condition)
            .expression_attribute_names("#s", "state")
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#nc", "next_check_ms")
            .expression_attribute_names("#sb", "saved_by")
            .expression_attribute_names("#lo", "lease_owner")
            .expression_attribute_names("#lu", "lease_until")
            .expression_attribute_names("#le", "last_error")
            .expression_attribute_names("#rb", "real_busy")
            .expression_attribute_names("#re", "run_every_ms")
            .expression_attribute_names("#ru", "run_until_ms")
            .expression_attribute_values(":state", AttributeValue::B(Blob::new(bytes)))
            .expression_attribute_values(":next", n(version + 1))
            .expression_attribute_values(":v", n(version))
            .expression_attribute_values(":nc", n(state.next_check_ms))
            .expression_attribute_values(":sb", n(crate::ports::save_mark(run)))
            .expression_attribute_values(":rb", n(crate::ports::busy_text(state.real_busy())));
        if let Some(v) = values {
            req = req.expression_attribute_values(":err", v);
        }
        if let Some(r) = run_slots {
            req = req
                .expression_attribute_values(":re", n(r.every_ms))
                .expression_attribute_values(":ru", n(r.until_ms));
        }
        let out = req
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| {
                let mut pe = port_error(&format!("save state of {pk}"), e);
                if pe.kind == ErrorKind::Conflict {
                    pe.message = format!("state of {pk} changed since version {version}");
                }
                pe
            })?;
        self.wrote(out.consumed_capacity());
        Ok(version + 1)
    }

    async fn last_save(&self, f: &FunctionRef, run: &str) -> Result<(u64, bool), PortError> {
        let pk = f.to_string();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&pk, "state")))
            .consistent_read(true)
            .projection_expression("#v, #sb")
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#sb", "saved_by")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| port_error(&format!("read back the save of {pk}"), e))?;
        self.read(out.consumed_capacity());
        let Some(item) = out.item() else {
            return Ok((0, false));
        };
        let mark = crate::ports::save_mark(run) as u64;
        Ok((
            version_of(item).unwrap_or(0),
            get_u64(item, "saved_by") == Some(mark),
        ))
    }

    async fn record_error(&self, f: &FunctionRef, error: &str) -> Result<(), PortError> {
        let pk = f.to_string();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&pk, "state")))
            .update_expression("SET #le = :err")
            .expression_attribute_names("#le", "last_error")
            .expression_attribute_values(":err", s(error.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| port_error(&format!("record error on {pk}"), e))?;
        self.wrote(out.consumed_capacity());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(version: Option<AttributeValue>, state: Option<AttributeValue>) -> Item {
        let mut i = Item::new();
        i.insert("pk".into(), s("orders"));
        i.insert("sk".into(), s("state"));
        if let Some(v) = version {
            i.insert("version".into(), v);
        }
        if let Some(st) = state {
            i.insert("state".into(), st);
        }
        i
    }

    fn any_attribute() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            any::<String>().prop_map(AttributeValue::N),
            "-?[0-9]{0,40}(\\.[0-9]{0,5})?(e[+-]?[0-9]{1,3})?".prop_map(AttributeValue::N),
            any::<String>().prop_map(AttributeValue::S),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
            proptest::collection::vec(any::<String>(), 0..3).prop_map(AttributeValue::Ss),
        ]
    }

    proptest! {
        /// Whatever a person leaves in a state item's `version` and `state`,
        /// reading it never panics; a version is used only when it is a
        /// whole number a save can match, and is otherwise named.
        #[test]
        fn no_stored_attribute_can_panic_a_read(
            version in proptest::option::of(any_attribute()),
            state in proptest::option::of(any_attribute()),
        ) {
            let i = item(version.clone(), state);
            let stored = DynamoStore::stored("orders", &i);
            match version_of(&i) {
                Ok(v) => {
                    prop_assert!(v <= MAX_VERSION);
                    prop_assert_eq!(stored.version, v);
                    if let Some(AttributeValue::N(n)) = &version {
                        prop_assert_eq!(n.trim().parse::<u64>().ok(), Some(v));
                    }
                }
                Err(why) => prop_assert!(why.contains("version"), "{}", why),
            }
        }
    }

    #[test]
    fn versions_a_save_could_never_match_are_refused() {
        for bad in [
            "-5",
            "1e20",
            "100000000000000000000",
            "9007199254740993",
            "1.5",
            "abc",
        ] {
            let i = item(Some(AttributeValue::N(bad.into())), None);
            assert!(version_of(&i).is_err(), "{bad}");
        }
        let i = item(Some(AttributeValue::S("7".into())), None);
        assert!(version_of(&i).is_err(), "a string is not a version");
        let i = item(Some(AttributeValue::N("42".into())), None);
        assert_eq!(version_of(&i), Ok(42));
        assert_eq!(version_of(&item(None, None)), Ok(0));
    }
}
