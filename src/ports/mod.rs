//! The seams between the tick and the world: where policies and state
//! live ([`StateStore`]), where metrics come from ([`MetricsSource`]), who
//! sends pings ([`Warmer`]), and what time it is while the tick runs
//! ([`Clock`]).
//!
//! The AWS adapters (`aws` module) implement them with DynamoDB, CloudWatch
//! and Lambda; the simulator implements them over its model of the platform;
//! tests implement them in twenty lines. Only core types cross a seam. The
//! methods return `impl Future + Send` rather than using `async_trait`: static
//! dispatch, no boxing, and the simulator can poll them without a runtime.

pub mod memory;
pub(crate) mod stored;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::cost::Usage;
use crate::decision::policy::{Parsed, PolicyDoc, PolicyError};
use crate::decision::{FunctionState, Limits, MinuteMetrics, Reaping, WarmReport};

/// A function and the qualifier its traffic uses (alias or version; none for
/// the unqualified function). Pings must hit the qualifier real traffic hits,
/// or they warm sandboxes nobody uses. Shared strings: a tick hands the
/// reference to every port and into its report, so a clone must be free.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FunctionRef {
    /// Function name (or ARN).
    pub name: Arc<str>,
    /// Alias or version, if any.
    pub qualifier: Option<Arc<str>>,
}

impl FunctionRef {
    /// The bare function name CloudWatch dimensions use (an ARN's last part).
    pub fn bare_name(&self) -> &str {
        match self.name.strip_prefix("arn:") {
            Some(_) => self.name.rsplit(':').next().unwrap_or(&self.name),
            None => &self.name,
        }
    }

    /// Parses `name` or `name:qualifier` (the DynamoDB `pk`). A full ARN keeps
    /// its colons: only a trailing segment after the function name counts.
    pub fn parse(s: &str) -> Self {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("arn:") {
            // arn:aws:lambda:region:account:function:name[:qualifier]
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() == 7 {
                let (head, q) = s.rsplit_once(':').unwrap_or((s, ""));
                return FunctionRef {
                    name: head.into(),
                    qualifier: Some(q.into()),
                };
            }
            return FunctionRef {
                name: s.into(),
                qualifier: None,
            };
        }
        match s.split_once(':') {
            Some((n, q)) if !q.is_empty() => FunctionRef {
                name: n.into(),
                qualifier: Some(q.into()),
            },
            _ => FunctionRef {
                name: s.trim_end_matches(':').into(),
                qualifier: None,
            },
        }
    }

    /// Checks that `key` is a function reference in its one canonical form:
    /// `name` or `name:qualifier` (Lambda's own character sets and lengths),
    /// or a function ARN with an optional qualifier. Anything else (white
    /// space around it, an empty qualifier, a second colon, a slash) would
    /// otherwise be read as some other key's function and warm it twice.
    /// The error says what is wrong and, where one exists, the canonical key.
    pub fn check_key(key: &str) -> Result<(), String> {
        let why = Self::key_problem(key);
        match why {
            None => Ok(()),
            Some(why) => {
                let guess = key.trim().trim_end_matches(':');
                let hint = if guess != key && Self::key_problem(guess).is_none() {
                    format!(" (did you mean \"{guess}\"?)")
                } else {
                    String::new()
                };
                Err(format!(
                    "key {key:?} is not a function reference: {why}{hint}"
                ))
            }
        }
    }

    fn key_problem(key: &str) -> Option<&'static str> {
        let name_ok = |n: &str| {
            (1..=64).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let qualifier_ok = |q: &str| {
            (1..=128).contains(&q.len())
                && q.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'$')
        };
        if key.is_empty() {
            return Some("it is empty");
        }
        if key.len() > 256 {
            return Some("it is longer than any function reference");
        }
        if key.trim() != key {
            return Some("it has white space around it");
        }
        if let Some(rest) = key.strip_prefix("arn:") {
            // arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
            let parts: Vec<&str> = rest.split(':').collect();
            let shape = matches!(parts.len(), 6 | 7)
                && parts[1] == "lambda"
                && parts[4] == "function"
                && parts[..4].iter().all(|p| !p.is_empty());
            return if !shape {
                Some(
                    "an ARN must read arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]",
                )
            } else if !name_ok(parts[5]) {
                Some("the function name has characters or a length Lambda does not allow")
            } else if parts.len() == 7 && !qualifier_ok(parts[6]) {
                Some("the qualifier is empty or has characters Lambda does not allow")
            } else {
                None
            };
        }
        match key.split_once(':') {
            None if name_ok(key) => None,
            None => Some("the function name has characters or a length Lambda does not allow"),
            Some((_, q)) if q.contains(':') => Some("it has more than one qualifier"),
            Some((n, _)) if !name_ok(n) => {
                Some("the function name has characters or a length Lambda does not allow")
            }
            Some((_, q)) if !qualifier_ok(q) => {
                Some("the qualifier is empty or has characters Lambda does not allow")
            }
            Some(_) => None,
        }
    }

    /// A function without qualifier.
    pub fn unqualified(name: impl Into<Arc<str>>) -> Self {
        FunctionRef {
            name: name.into(),
            qualifier: None,
        }
    }
}

impl fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.qualifier {
            Some(q) => write!(f, "{}:{q}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The mark a save leaves of the run that made it, stored beside the
/// version (`saved_by`): a hash, not the run's id, because every byte of the
/// state item is billed on every save. Two runs racing for one item share a
/// mark once in four billion.
pub fn save_mark(run: &str) -> u32 {
    crate::decision::pings::hash_instance(run)
}

/// A function's average real concurrency as its state item's `real_busy`
/// number: three decimals at most, trailing zeros dropped (the pool share
/// needs no more, and the item stays small).
pub fn busy_text(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.into() }
}

/// The kinds of failure a port reports; the tick's error policy is written
/// against these, never against an SDK's error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Rate-limited (429, `ThrottlingException`): back off, try next tick.
    Throttled,
    /// A conditional write lost, or a lease is held by another run.
    Conflict,
    /// The table, function or item does not exist.
    NotFound,
    /// The service could not be reached or failed (5xx, timeout).
    Unavailable,
    /// The request or the data was invalid (permissions, malformed item).
    Invalid,
}

/// A port's failure: its kind plus a message naming what failed and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// For people: names the resource and the cause.
    pub message: String,
}

impl PortError {
    /// A failure of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PortError {
            kind,
            message: message.into(),
        }
    }
}

/// One function the controller is asked to look after.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Which function.
    pub function: FunctionRef,
    /// Its policy merged over the account defaults, or every problem with it.
    pub policy: Result<Parsed, PolicyError>,
    /// When its state asks to be looked at next, epoch ms (0: now). Read
    /// with the policies, so a tick skips resting functions without reading
    /// or writing their state.
    pub next_check_ms: u64,
    /// The spacing and end of its planned warms, if a run is under way
    /// (with `next_check_ms`, its first slot): the tick leaves it alone
    /// between slots.
    pub slots: Option<crate::decision::run::Slots>,
    /// Its average real concurrency as its last save left it (the state
    /// item's `real_busy`): the tick shares the account's pool beside the
    /// real traffic of the functions it does not look at too.
    pub real_busy: Option<f64>,
}

/// A function's stored state and the version a save must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The state, or `None` for a function not seen before (or whose stored
    /// state could not be read as this version's layout).
    /// Boxed: it moves from store to tick and back at every look.
    pub state: Option<Box<FunctionState>>,
    /// Version of the item (0 when there is none).
    pub version: u64,
    /// Why a stored state could not be read, when it could not: the tick
    /// starts the function afresh and writes this to its `last_error`.
    pub unreadable: Option<String>,
}

/// What a claim finds on the account's item, left by the runs before it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claimed {
    /// When the run before claimed, if one did and wrote a number: the
    /// slots of planned warms up to it were that run's to send
    /// (`crate::decision::run`).
    pub last_tick_ms: Option<u64>,
    /// The pings the last runs sent to functions drawing on the account's
    /// pool, per minute.
    pub pool_pings: PoolPings,
    /// What every function's warms taught about idle reaping, as the last
    /// run left it: afresh when there was none or it could not be read.
    pub reaping: Reaping,
    /// Why the stored reaping evidence could not be read, when it could not.
    pub reaping_unreadable: Option<String>,
}

/// Pings sent to functions drawing on the account's unreserved pool, per
/// minute of the last few: CloudWatch's account series counts them with the
/// real traffic, and the tick takes them back out (see
/// `crate::tick`'s pool sharing). Kept on the account's item as text,
/// `minute:pings` pairs separated by commas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolPings(Vec<(u64, u32)>);

impl PoolPings {
    /// Minutes kept: the tick reads a few minutes back past CloudWatch's lag.
    pub const MINUTES: u64 = 10;

    /// Reads the stored text. It is untrusted: a malformed pair is left
    /// out (a missing minute counts no pings, which only narrows the room).
    pub fn parse(text: &str) -> PoolPings {
        let mut v: Vec<(u64, u32)> = text
            .split(',')
            .filter_map(|pair| {
                let (m, n) = pair.trim().split_once(':')?;
                Some((m.parse().ok()?, n.parse().ok()?))
            })
            .collect();
        v.sort_unstable();
        v.dedup_by_key(|(m, _)| *m);
        let keep = v.len().saturating_sub(Self::MINUTES as usize);
        PoolPings(v.split_off(keep))
    }

    /// The text stored.
    pub fn text(&self) -> String {
        self.0
            .iter()
            .map(|(m, n)| format!("{m}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Pings sent in `minute`.
    pub fn at(&self, minute: u64) -> u32 {
        self.0
            .iter()
            .filter(|(m, _)| *m == minute)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Adds `n` pings sent in `minute`, and forgets minutes older than
    /// [`MINUTES`](Self::MINUTES) before it.
    pub fn add(&mut self, minute: u64, n: u32) {
        self.0.retain(|(m, _)| *m + Self::MINUTES > minute);
        match self.0.iter_mut().find(|(m, _)| *m == minute) {
            Some((_, k)) => *k = k.saturating_add(n),
            None => {
                self.0.push((minute, n));
                self.0.sort_unstable();
            }
        }
    }
}

/// Where policies and state live (DynamoDB in production).
pub trait StateStore {
    /// Every function with a policy item, its policy merged over the `*`
    /// defaults item.
    fn targets(&self) -> impl Future<Output = Result<Vec<Target>, PortError>> + Send;

    /// Claims the run for `owner` until `until_ms`: one conditional write on
    /// the account's state item (`pk = "*"`, `sk = "state"`) per tick, so
    /// two overlapping ticks (EventBridge delivers at least once; a person
    /// runs `forewarm tick`) never handle functions at the same time. Fails
    /// with [`ErrorKind::Conflict`] while another owner's claim is unexpired.
    /// One write per tick instead of one per function looked at: a lease on
    /// each state item cost a write unit per KB of the whole item.
    ///
    /// Returns what the runs before left on the item.
    fn claim_run(
        &self,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> impl Future<Output = Result<Claimed, PortError>> + Send;

    /// What a claim would find on the account's item, without claiming:
    /// a dry run decides with it (the last tick's time, the pool pings, the
    /// reaping evidence) and writes nothing.
    fn peek_run(&self) -> impl Future<Output = Result<Claimed, PortError>> + Send;

    /// Ends `owner`'s claim (a claim of another owner stays), so the next
    /// tick need not wait for it to expire, and leaves `pool_pings` and
    /// `reaping` for it in the same write.
    fn release_run(
        &self,
        owner: &str,
        pool_pings: &PoolPings,
        reaping: &Reaping,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// A function's state and the version a save must match: as this
    /// tick's [`StateStore::targets`] read it, for the first load of each
    /// function it listed (the scan reads, and is billed for, whole items),
    /// else read consistently. Under the run's claim no other run writes
    /// it, and the last run's writes are a minute old when the scan runs; a
    /// copy older than that fails its save's version check, and the look is
    /// discarded, never saved over newer state.
    fn load(&self, f: &FunctionRef) -> impl Future<Output = Result<Stored, PortError>> + Send;

    /// Writes the state if the item is still at `version` (0: no state was
    /// stored), marked as written by `run`; returns the new version. A lost
    /// race is [`ErrorKind::Conflict`] and writes nothing.
    fn save(
        &self,
        f: &FunctionRef,
        state: Box<FunctionState>,
        version: u64,
        run: &str,
    ) -> impl Future<Output = Result<u64, PortError>> + Send;

    /// The item's version now, and whether `run` made it: after a save that
    /// failed, whether it was applied all the same (its answer lost on the
    /// way back, or a retry finding the first attempt's own write).
    fn last_save(
        &self,
        f: &FunctionRef,
        run: &str,
    ) -> impl Future<Output = Result<(u64, bool), PortError>> + Send;

    /// Sets `last_error` on the function's state item, touching nothing else.
    fn record_error(
        &self,
        f: &FunctionRef,
        error: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The read and write units consumed so far (a running count; the tick
    /// takes the difference). A store that is not billed counts nothing.
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

/// A state item as people's commands show it (`forewarm status`).
#[derive(Debug, Clone, PartialEq)]
pub struct StateItem {
    /// The function.
    pub function: String,
    /// Item version.
    pub version: u64,
    /// The controller's memory (None when unreadable or of another layout).
    pub state: Option<FunctionState>,
    /// The last error recorded, and why the state cannot be read if it
    /// cannot.
    pub last_error: Option<String>,
    /// The holder of an earlier version's per-item lease, if one is left.
    pub lease_owner: Option<String>,
    /// When that lease ends, epoch ms.
    pub lease_until_ms: u64,
}

/// A policy item as stored, with what is wrong with its key, if anything: a
/// `pk` that is not a canonical function reference, or an `sk` meant to be
/// `policy` but spelled otherwise, which the controller ignores.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyItem {
    /// The item's `pk`: a function reference, or `*` for the defaults.
    pub pk: String,
    /// Its attributes.
    pub doc: PolicyDoc,
    /// What is wrong with its key.
    pub key_problem: Option<String>,
}

/// What people's commands (`forewarm policy`, `forewarm status`) read and
/// write in the table: policy items and the controller's states.
pub trait AdminStore {
    /// Reads a policy item (`*`: the defaults).
    fn get_policy(
        &self,
        pk: &str,
    ) -> impl Future<Output = Result<Option<PolicyDoc>, PortError>> + Send;

    /// Writes a policy item, replacing the previous one.
    fn put_policy(
        &self,
        pk: &str,
        doc: &PolicyDoc,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Every policy item, by `pk`.
    fn list_policies(&self) -> impl Future<Output = Result<Vec<PolicyItem>, PortError>> + Send;

    /// Every function's state item (or one function's), by function.
    fn states(
        &self,
        only: Option<&str>,
    ) -> impl Future<Output = Result<Vec<StateItem>, PortError>> + Send;

    /// The account's item, in one read.
    fn run_item(&self) -> impl Future<Output = Result<RunItem, PortError>> + Send;
}

/// The account's item as people's commands show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunItem {
    /// The run's claim, when one is recorded: its owner and until when
    /// (epoch ms; an expired claim stays recorded until the next tick
    /// takes it).
    pub claim: Option<(String, u64)>,
    /// The account's reaping evidence as the last run stored it (text, to
    /// be read with [`Reaping::parse`]), if any run stored it.
    pub reaping: Option<String>,
}

/// One function's metrics request: the minutes `from..until` (epoch minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsRequest {
    /// Which function.
    pub function: FunctionRef,
    /// First minute wanted.
    pub from_minute: u64,
    /// First minute not wanted (exclusive).
    pub until_minute: u64,
    /// Whether to read the detail series too (duration and the shims' cold
    /// starts), not only concurrency and invocations.
    pub detail: bool,
}

impl MetricsRequest {
    /// Series this request reads, each billed as one metric requested:
    /// concurrency, plus invocations, duration and the shims' cold starts on
    /// a detail read. Reading invocations on every read as well cost a third
    /// of forewarm's bill on the bundled day and, with busy sandboxes guessed
    /// from invocations times a usual duration, had more cold starts on
    /// every synthetic fleet tried than peaks times a learned busy share.
    pub fn series(&self) -> u64 {
        Self::series_of(self.detail)
    }

    /// Series a read asks for, with or without the detail series.
    pub fn series_of(detail: bool) -> u64 {
        if detail { 4 } else { 1 }
    }
}

/// Where per-minute metrics come from (CloudWatch in production).
pub trait MetricsSource {
    /// Reads many functions at once (the adapter batches: CloudWatch takes 500
    /// queries per call). The outer error fails every request; an inner one
    /// fails one function.
    #[allow(clippy::type_complexity)] // one result per request, inside the batch's
    fn observe(
        &self,
        requests: &[MetricsRequest],
    ) -> impl Future<Output = Result<Vec<Result<Vec<MinuteMetrics>, PortError>>, PortError>> + Send;

    /// The functions (bare names) with any `Invocations` datapoint in about
    /// the last three hours, pings included: CloudWatch's `ListMetrics` with
    /// `RecentlyActive=PT3H`, billed per request of up to 500 metrics, not
    /// per function. A function absent from it ran nothing then, so its idle
    /// minutes need no `GetMetricData` read (see
    /// [`decision::screened_until`](crate::decision::screened_until)).
    /// `None`: this source cannot tell, and every read is made.
    fn recently_active(
        &self,
    ) -> impl Future<Output = Result<Option<BTreeSet<String>>, PortError>> + Send {
        std::future::ready(Ok(None))
    }

    /// The account's unreserved pool in use, per minute of `from..until`:
    /// CloudWatch's `UnreservedConcurrentExecutions` (Maximum, one-minute
    /// periods, no dimension: every function without a reservation, pings
    /// included), one metric requested. Only minutes with a datapoint are
    /// answered; an empty answer tells nothing (a source that cannot tell
    /// answers so).
    fn pool_in_use(
        &self,
        from_minute: u64,
        until_minute: u64,
    ) -> impl Future<Output = Result<Vec<(u64, f64)>, PortError>> + Send {
        let _ = (from_minute, until_minute);
        std::future::ready(Ok(Vec::new()))
    }

    /// `ListMetrics` pages the last [`recently_active`](Self::recently_active)
    /// took (0 before the first): how much the next screen will cost, since
    /// it lists the whole account's functions, not only the opted-in ones.
    fn screen_pages(&self) -> u64 {
        0
    }

    /// The metrics and requests billed so far (a running count; the tick
    /// takes the difference). A source that is not billed counts nothing.
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

/// One warm to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmPlan {
    /// Which function (and qualifier).
    pub function: FunctionRef,
    /// Pings to send at once.
    pub n: u32,
    /// Hold per ping, ms.
    pub delay_ms: u32,
    /// The tick's id, carried in the pings for the logs.
    pub run: Arc<str>,
    /// The decision's time, epoch ms: the report's `sent_at_ms`, so it can be
    /// matched to the warm the state recorded.
    pub at_ms: u64,
    /// The INIT allowance the function's own history asks for, ms (0: none
    /// learned); the warmer waits for a cold ping the larger of this and
    /// its configured allowance.
    pub init_allowance_ms: u64,
    /// Epoch ms by which every answer must be in (`None`: no limit but the
    /// pings' own timeouts): the tick's time ends there, and a ping still
    /// unanswered counts as timed out. Its sandbox comes up all the same.
    pub answer_by_ms: Option<u64>,
}

/// The time while a tick runs, epoch ms. Decisions use the tick's `now_ms`,
/// fixed at its start; the clock counts the run's claim from the moment it
/// is asked for and stops the tick before its deadline, however long the
/// calls before took.
pub trait Clock {
    /// The time now, epoch ms.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that stands still: the simulator's (its ticks take no simulated
/// time) and tests'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
}

/// Who sends pings (Lambda Invoke in production).
pub trait Warmer {
    /// A tick begins: what the warmer cached for the last one (the
    /// functions' limits) may have changed since, and is read afresh.
    fn begin_tick(&self) {}

    /// The function's concurrency limits and memory.
    fn limits(&self, f: &FunctionRef) -> impl Future<Output = Result<Limits, PortError>> + Send;

    /// Performs the warms, all functions at once and each function's pings
    /// together (that is what makes them overlap). One result per plan.
    fn warm(
        &self,
        plans: &[WarmPlan],
    ) -> impl Future<Output = Vec<Result<WarmReport, PortError>>> + Send;
}

#[cfg(test)]
mod tests {
    use super::{FunctionRef, PoolPings};

    #[test]
    fn pool_pings_round_trip_forget_old_minutes_and_survive_bad_text() {
        let mut p = PoolPings::default();
        p.add(100, 7);
        p.add(100, 3);
        p.add(104, 2);
        assert_eq!((p.at(100), p.at(104), p.at(101)), (10, 2, 0));
        assert_eq!(PoolPings::parse(&p.text()), p);
        p.add(100 + PoolPings::MINUTES, 1);
        assert_eq!(p.at(100), 0, "older than the minutes kept");
        // As a person or another program could leave it: what parses is
        // kept, nothing else.
        let odd = PoolPings::parse("12:3, x:4,13:-1,14:99999999999,15:2,,16");
        assert_eq!(
            (odd.at(12), odd.at(15), odd.text()),
            (3, 2, "12:3,15:2".into())
        );
        assert_eq!(PoolPings::parse(""), PoolPings::default());
        let long: Vec<String> = (0..50).map(|m| format!("{m}:1")).collect();
        assert_eq!(
            PoolPings::parse(&long.join(",")).text().split(',').count(),
            PoolPings::MINUTES as usize
        );
    }

    #[test]
    fn one_canonical_key_per_function() {
        for ok in [
            "orders",
            "orders:live",
            "orders:$LATEST",
            "orders:7",
            "arn:aws:lambda:us-east-1:123456789012:function:orders",
            "arn:aws:lambda:us-east-1:123456789012:function:orders:live",
        ] {
            assert_eq!(FunctionRef::check_key(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            (" good-1", "did you mean \"good-1\""),
            ("good-1 ", "did you mean \"good-1\""),
            ("good-1:", "did you mean \"good-1\""),
            ("bad:q:r", "more than one qualifier"),
            ("a/b", "characters"),
            ("tab\there", "characters"),
            ("", "empty"),
            ("arn:aws:s3:::bucket", "an ARN must read"),
        ] {
            let err = FunctionRef::check_key(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
        let long = "x".repeat(2_000);
        assert!(FunctionRef::check_key(&long).is_err());
    }
}
