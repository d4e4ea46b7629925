//! One controller cycle: `observe → decide → warm → save`, for every function.
//!
//! This is the only orchestration in forewarm. The controller Lambda, the
//! `forewarm tick` command and the simulator all call [`run_tick`] with their
//! own ports, so the code the simulator measures is the code that runs.
//!
//! Port failures are handled by a pure [`error_policy`] (kube's
//! `error_policy`, as data): each failure of each stage maps to a
//! [`Recovery`]. The rules that matter:
//!
//! * a failed or lost save never overwrites anything: the stored state stays
//!   as the last successful tick left it;
//! * a run claimed by another tick belongs to that tick: this one does
//!   nothing (an overlapping delivery of the schedule, or a person's
//!   `forewarm tick`);
//! * a metrics outage falls back to the last forecast;
//! * a malformed policy is reported on the state item's `last_error`, and
//!   nothing else of that function is touched; other functions go on.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use serde::Serialize;

use crate::cost::{CostParts, Prices};
use crate::decision::{
    self, Action, Decision, FunctionState, Limits, MetricsStatus, Mode, Observation, ReportSummary,
};
use crate::ports::{
    Claimed, Clock, ErrorKind, FunctionRef, MetricsRequest, MetricsSource, PoolPings, PortError,
    StateStore, Usage, WarmPlan, Warmer,
};

mod note;
pub use note::{Note, Unsaved};

/// Settings of one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickConfig {
    /// This run's id: owner of the run's claim and the `run` field of pings.
    pub owner: std::sync::Arc<str>,
    /// How long the run's claim lasts, ms, counted from the moment it is
    /// asked for. Shorter than the schedule's period; the tick stops taking
    /// on functions before it ends (see [`run_tick`]).
    pub lease_ms: u64,
    /// The latest time the tick may still be working, epoch ms: the
    /// controller Lambda's deadline less what it needs to report. `None`:
    /// only the claim's end limits it.
    pub deadline_ms: Option<u64>,
    /// Minutes CloudWatch needs before a minute's datapoints are final.
    pub metrics_lag_minutes: u64,
    /// History read for a function seen for the first time, minutes.
    pub first_history_minutes: u64,
    /// The base gap between reads of a function's metrics, minutes: one read
    /// per this many minutes, stretched up to
    /// [`decision::READ_EVERY_MAX_MINUTES`] while its forecast holds (up to
    /// [`decision::READ_EVERY_MAX_CHEAP_MINUTES`] for a function cheap to
    /// warm).
    /// GetMetricData bills per metric requested, whatever the span, so
    /// reading every window would cost three times as much for a forecast
    /// that learns the same windows, only later.
    pub metrics_every_minutes: u64,
    /// Decide, but send no pings and save nothing.
    pub dry_run: bool,
}

impl TickConfig {
    /// Defaults for a run named `owner`.
    pub fn new(owner: impl Into<std::sync::Arc<str>>) -> Self {
        TickConfig {
            owner: owner.into(),
            lease_ms: 50_000,
            deadline_ms: None,
            metrics_lag_minutes: 2,
            first_history_minutes: 180,
            metrics_every_minutes: 15,
            dry_run: false,
        }
    }
}

/// Where in the tick a port failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Claiming the run.
    Claim,
    /// Reading the list of policies.
    Targets,
    /// Reading a function's state.
    Load,
    /// Reading metrics.
    Observe,
    /// Reading the function's limits.
    Limits,
    /// Sending pings.
    Warm,
    /// Writing state.
    Save,
}

/// What the tick does about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// Leave everything to the run that holds the claim.
    Skip,
    /// Stop handling this function this tick; record the error on its item.
    RecordAndSkip,
    /// Go on with the last forecast (no new metrics).
    UseLastForecast,
    /// Decide, but send no pings: without limits, warming could throttle real
    /// traffic.
    DecideWithoutWarming,
    /// The warm failed: keep the state, note the error, save.
    SaveWithError,
    /// Our write lost: another run saved since; its state stands.
    Discard,
    /// The write failed: nothing was written, the stored state is intact.
    KeepStored,
    /// Nothing can be done this tick at all.
    Abort,
}

/// The pure error policy.
pub fn error_policy(stage: Stage, kind: ErrorKind) -> Recovery {
    match (stage, kind) {
        (Stage::Claim, ErrorKind::Conflict) => Recovery::Skip,
        (Stage::Claim, _) => Recovery::Abort,
        (Stage::Targets, _) => Recovery::Abort,
        (Stage::Load, _) => Recovery::RecordAndSkip,
        (Stage::Observe, _) => Recovery::UseLastForecast,
        (Stage::Limits, ErrorKind::NotFound | ErrorKind::Invalid) => Recovery::RecordAndSkip,
        (Stage::Limits, _) => Recovery::DecideWithoutWarming,
        (Stage::Warm, _) => Recovery::SaveWithError,
        (Stage::Save, ErrorKind::Conflict) => Recovery::Discard,
        (Stage::Save, _) => Recovery::KeepStored,
    }
}

/// What happened to one function this tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionOutcome {
    /// Which function (`name` or `name:qualifier` in JSON).
    #[serde(serialize_with = "as_text")]
    pub function: FunctionRef,
    /// The decision, when one was made.
    pub decision: Option<Decision>,
    /// The warm's figures, when pings went out.
    pub warm: Option<ReportSummary>,
    /// Whether the state was saved.
    pub saved: bool,
    /// Why the function was skipped or what went wrong, for people.
    pub note: Option<Note>,
}

/// Everything one tick did.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TickReport {
    /// One entry per target.
    pub functions: Vec<FunctionOutcome>,
    /// A failure that stopped the whole tick (the policy list could not be read).
    pub error: Option<String>,
    /// Why the tick did nothing without failing: another run holds the claim.
    pub skipped: Option<String>,
    /// Functions not due for a look this tick (left untouched).
    pub resting: usize,
    /// Functions left for the next tick, untouched, because this tick's time
    /// ran out (its deadline or the end of its claim) before their turn.
    pub late: usize,
    /// What this tick's CloudWatch and DynamoDB calls consumed, as counted
    /// by the ports.
    pub usage: Usage,
    /// What the tick cost at list prices ([`Prices::LIST`]): its pings, and
    /// its CloudWatch and DynamoDB usage. The controller's own run and the
    /// INIT of sandboxes the pings created are not known here; the Lambda
    /// adds its own duration as `controller`.
    pub cost: CostParts,
    /// The account's safe idle gap, seconds, as this tick's replies left
    /// it: the interval the fleet's warms go out at, each kept inside its
    /// function's own deaths (see `decision::reaping`). `None` when the
    /// tick did not run (the claim was refused or failed).
    pub idle_gap_s: Option<u32>,
}

impl TickReport {
    /// Pings sent in total.
    pub fn pings(&self) -> u32 {
        self.functions
            .iter()
            .filter_map(|f| f.decision)
            .map(|d| d.pings())
            .sum()
    }
}

/// A function in flight through the tick.
struct Work {
    function: FunctionRef,
    policy: decision::Policy,
    /// The version the save must match.
    version: u64,
    /// Boxed, as the store hands it over: a tick moves its work list about,
    /// and the state is the bulk.
    state: Box<FunctionState>,
    obs: Observation,
    decision: Option<Decision>,
    warm: Option<ReportSummary>,
    may_warm: bool,
    /// Left for the next tick: out of time before its warm could be sent.
    late: bool,
    /// The warm did not go as planned or said something new: the state
    /// must be saved, even for a planned warm.
    news: bool,
    note: Option<Note>,
}

impl Work {
    fn new(
        function: FunctionRef,
        policy: decision::Policy,
        version: u64,
        state: Box<FunctionState>,
        note: Option<Note>,
    ) -> Self {
        Work {
            function,
            policy,
            version,
            state,
            obs: Observation::default(),
            decision: None,
            warm: None,
            may_warm: true,
            late: false,
            news: false,
            note,
        }
    }

    /// The warm will not be what the function's run planned: the run ends,
    /// and the state is saved.
    fn off_plan(&mut self) {
        self.state.run = None;
        self.news = true;
    }

    /// Whether there is nothing to save: a planned warm that went as
    /// planned (the stored run says what it did).
    fn as_planned(&self) -> bool {
        !self.news
            && self.note.is_none()
            && self
                .decision
                .is_some_and(|d| d.reason == decision::Reason::Planned)
    }

    /// The outcome of a function dropped after a failure: nothing decided,
    /// nothing saved.
    fn dropped(self) -> FunctionOutcome {
        FunctionOutcome {
            function: self.function,
            decision: None,
            warm: None,
            saved: false,
            note: self.note,
        }
    }
}

/// The tick's time: from the moment it asked for the run's claim to the
/// earlier of the claim's end and the tick's deadline. Another run may take
/// the claim once it ends, so nothing this run sends may outlast it: two
/// runs at once would warm a function twice.
struct Budget<'c, C> {
    clock: &'c C,
    end: u64,
    /// Time the state reads took, and how many there were: a save is one
    /// request a function too, so the saves to come take about as long.
    load_ms: u64,
    loads: u64,
    /// Time the run's claim took: a conditional write, as a save is. The
    /// saves' pace is at least this, since the loads of states the scan
    /// already read take no time at all.
    claim_ms: u64,
}

/// Time kept for the stages between the state reads and the saves (the
/// metrics read, the limits, and the warms: a cold ping's INIT allowance and
/// the network's margin), ms.
pub const WARM_RESERVE_MS: u64 =
    decision::pings::INIT_LIMIT_MS + decision::pings::TIMEOUT_MARGIN_MS;

impl<C: Clock> Budget<'_, C> {
    /// Whether another function may be taken on: while its read, the saves
    /// of every function taken on, and [`WARM_RESERVE_MS`] still fit before
    /// the end.
    fn may_take_on(&self) -> bool {
        let need = self
            .pace_ms()
            .saturating_mul(self.loads + 2)
            .saturating_add(WARM_RESERVE_MS);
        self.clock.now_ms().saturating_add(need) <= self.end
    }

    /// Whether time is left at all.
    fn left(&self) -> bool {
        self.clock.now_ms() < self.end
    }

    /// The time one save will take: a state read's on average, and no less
    /// than the claim's write.
    fn pace_ms(&self) -> u64 {
        (self.load_ms / self.loads.max(1)).max(self.claim_ms)
    }

    /// The time `saves` saves will take, at [`Budget::pace_ms`].
    fn saves_ms(&self, saves: usize) -> u64 {
        self.pace_ms().saturating_mul(saves as u64)
    }

    /// By when the warms must be answered so that `saves` saves still fit:
    /// `None` when even that moment has passed.
    fn answer_by(&self, saves: usize) -> Option<u64> {
        let by = self.end.saturating_sub(self.saves_ms(saves));
        (self.clock.now_ms() < by).then_some(by)
    }
}

/// Runs one controller cycle over every target at time `now_ms` (the
/// decisions' time); `clock` says the time as the tick goes on.
///
/// The run's claim lasts [`TickConfig::lease_ms`] from the moment it is
/// asked for, and the tick's time ends with it or at
/// [`TickConfig::deadline_ms`], whichever comes first. Within it: a
/// function is taken on only while its read, the saves of all taken on
/// (at the reads' pace, and no faster than the claim's write: the reads of
/// states the scan brought take no time) and [`WARM_RESERVE_MS`] still fit,
/// longest waiting first; a warm is sent only if its pings can hold and be
/// answered before the end (less the time the saves will take), and its
/// answers are awaited no longer; a function left out is untouched and
/// reported (`late`), for the next tick.
pub async fn run_tick<S, M, W, C>(
    store: &S,
    metrics: &M,
    warmer: &W,
    clock: &C,
    cfg: &TickConfig,
    now_ms: u64,
) -> TickReport
where
    S: StateStore,
    M: MetricsSource,
    W: Warmer,
    C: Clock,
{
    let mut report = TickReport::default();
    warmer.begin_tick();
    let before = store.usage().plus(&metrics.usage());
    let asked = clock.now_ms();
    let until = asked.saturating_add(cfg.lease_ms);
    // A dry run writes nothing, the claim included; it reads what a claim
    // would find, so that it decides as the next tick would (with the
    // account's idle gap, not the first interval). Unreadable, it decides
    // from nothing rather than not at all.
    let claim = if cfg.dry_run {
        Ok(store.peek_run().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the run's item: deciding without it");
            Claimed::default()
        }))
    } else {
        store.claim_run(&cfg.owner, asked, until).await
    };
    let claim_ms = clock.now_ms().saturating_sub(asked);
    match claim {
        Ok(Claimed {
            last_tick_ms,
            mut pool_pings,
            mut reaping,
            reaping_unreadable,
        }) => {
            if let Some(why) = reaping_unreadable {
                tracing::warn!(
                    error = %why,
                    "the account's reaping evidence is unreadable: learning it afresh"
                );
            }
            let mut budget = Budget {
                clock,
                end: cfg.deadline_ms.map_or(until, |d| d.min(until)),
                load_ms: 0,
                loads: 0,
                claim_ms,
            };
            let at = Times {
                now_ms,
                last_tick_ms,
            };
            let ports = (store, metrics, warmer);
            let account = Account {
                pool_pings: &mut pool_pings,
                reaping: &mut reaping,
            };
            run_stages(ports, &mut budget, cfg, at, account, &mut report).await;
            report.idle_gap_s = Some(reaping.safe_s());
            if !cfg.dry_run
                && let Err(e) = store.release_run(&cfg.owner, &pool_pings, &reaping).await
            {
                // It expires on its own within `lease_ms`.
                tracing::warn!(error = %e, "cannot release the run's claim");
            }
        }
        Err(e) => tick_failed(Stage::Claim, &e, &mut report),
    }
    report.usage = store.usage().plus(&metrics.usage()).since(&before);
    let (cloudwatch, dynamodb) = Prices::LIST.usage_usd(&report.usage);
    report.cost.cloudwatch = cloudwatch;
    report.cost.dynamodb = dynamodb;
    report
}

/// What the tick carries on the account's item from run to run.
struct Account<'a> {
    /// Pings sent into the account's unreserved pool, per minute.
    pool_pings: &'a mut PoolPings,
    /// What the fleet's warms taught about idle reaping.
    reaping: &'a mut decision::Reaping,
}

/// The tick's time and the one before it.
#[derive(Debug, Clone, Copy)]
struct Times {
    /// The decisions' time, epoch ms.
    now_ms: u64,
    /// The time the tick before claimed the run, if known.
    last_tick_ms: Option<u64>,
}

async fn run_stages<S, M, W, C>(
    (store, metrics, warmer): (&S, &M, &W),
    budget: &mut Budget<'_, C>,
    cfg: &TickConfig,
    at: Times,
    account: Account<'_>,
    report: &mut TickReport,
) where
    S: StateStore,
    M: MetricsSource,
    W: Warmer,
    C: Clock,
{
    let targets = match store.targets().await {
        Ok(t) => t,
        Err(e) => return tick_failed(Stage::Targets, &e, report),
    };
    report.functions.reserve(targets.len());
    // Every function looked after, resting or due: what a screen lists
    // (at least).
    let fleet = targets.len();
    let now_ms = at.now_ms;
    let mut aside = RealAside::default();
    let mut work = take_on(store, budget, cfg, at, targets, &mut aside, report).await;
    observe_all(store, metrics, cfg, now_ms, fleet, &mut work).await;
    for w in &mut work {
        w.obs.reaped = account
            .reaping
            .reaped(function_key(&w.function, now_ms / 60_000), now_ms);
    }
    let mut work = decide_all(store, warmer, budget, cfg, now_ms, work, report).await;
    if let Some(need) = pool_need(&work, &aside) {
        let seen = pool_seen(metrics, cfg, now_ms, &need, account.pool_pings).await;
        share_account_pool(now_ms, &mut work, need, seen);
    }
    warm_all(store, warmer, budget, cfg, now_ms, &mut work).await;
    account
        .pool_pings
        .add(now_ms / 60_000, pool_pings_sent(&work));
    for w in &mut work {
        for s in w.state.survival.seen.drain(..) {
            account.reaping.see(s, now_ms);
        }
    }
    report.cost.pings = pings_usd(&work);
    save_all(store, cfg, now_ms, work, report).await;
}

/// A hash of the function and `salt`, the same wherever the tick runs: with
/// the minute, it picks the warms that scout past the account's safe gap;
/// with 0, it is the function's own phase in a window (see
/// [`share_account_pool`]).
fn function_key(f: &FunctionRef, salt: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    f.to_string().hash(&mut h);
    salt.hash(&mut h);
    h.finish()
}

/// A failure that concerns the whole tick (its claim, or the policy list).
fn tick_failed(stage: Stage, e: &PortError, report: &mut TickReport) {
    let what = match stage {
        Stage::Claim => "cannot claim the run",
        Stage::Targets => "cannot read policies",
        Stage::Load | Stage::Observe | Stage::Limits | Stage::Warm | Stage::Save => "tick failed",
    };
    match error_policy(stage, e.kind) {
        Recovery::Skip => {
            tracing::info!(error = %e, "another run holds the claim; nothing to do");
            report.skipped = Some(format!("another controller run is in progress: {e}"));
        }
        // A function's recoveries, never the table's answer for the whole
        // tick: nothing is known to be safe, so the tick stops there too.
        Recovery::Abort
        | Recovery::RecordAndSkip
        | Recovery::UseLastForecast
        | Recovery::DecideWithoutWarming
        | Recovery::SaveWithError
        | Recovery::Discard
        | Recovery::KeepStored => {
            tracing::error!(error = %e, "{what}");
            report.error = Some(format!("{what}: {e}"));
        }
    }
}

/// Whether a function goes on through the tick after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    Drop,
}

/// Carries out the error policy's answer to a failure of `stage` for one
/// function, `note` saying what happened: every recovery the table can give
/// for a function is done here, and only here.
async fn recover<S: StateStore>(
    store: &S,
    cfg: &TickConfig,
    now_ms: u64,
    stage: Stage,
    kind: ErrorKind,
    w: &mut Work,
    note: Note,
) -> Flow {
    let recovery = error_policy(stage, kind);
    match recovery {
        Recovery::RecordAndSkip => record_last_error(store, cfg, &w.function, &note).await,
        Recovery::UseLastForecast => w.obs.metrics = MetricsStatus::Unavailable,
        Recovery::DecideWithoutWarming => {
            w.obs.limits = Limits::default();
            w.may_warm = false;
        }
        Recovery::SaveWithError => decision::warm_failed(&mut w.state, now_ms),
        // The save's outcome is settled; what the item says is in the note.
        Recovery::Discard | Recovery::KeepStored => {}
        // For one function: nothing more of it this tick, nothing written.
        Recovery::Skip | Recovery::Abort => {}
    }
    w.note = Some(note);
    flow(recovery)
}

/// Writes `note` to the function's `last_error` alone (not in a dry run).
async fn record_last_error<S: StateStore>(
    store: &S,
    cfg: &TickConfig,
    f: &FunctionRef,
    note: &Note,
) {
    if !cfg.dry_run
        && let Err(re) = store.record_error(f, &note.to_string()).await
    {
        tracing::warn!(function = %f, error = %re, "cannot record last_error");
    }
}

/// Whether a function goes on after a recovery.
fn flow(recovery: Recovery) -> Flow {
    match recovery {
        Recovery::Skip | Recovery::RecordAndSkip | Recovery::Abort => Flow::Drop,
        Recovery::UseLastForecast
        | Recovery::DecideWithoutWarming
        | Recovery::SaveWithError
        | Recovery::Discard
        | Recovery::KeepStored => Flow::Go,
    }
}

/// Reads the state of every enabled function that is due, longest waiting
/// first, while the tick's time allows: those left for the next tick keep
/// their old time and go first then.
async fn take_on<S: StateStore, C: Clock>(
    store: &S,
    budget: &mut Budget<'_, C>,
    cfg: &TickConfig,
    at: Times,
    mut targets: Vec<crate::ports::Target>,
    aside: &mut RealAside,
    report: &mut TickReport,
) -> Vec<Work> {
    let now_ms = at.now_ms;
    let reads = decision::ReadCadence {
        every_minutes: cfg.metrics_every_minutes,
        lag_minutes: cfg.metrics_lag_minutes,
    };
    set_aside_resting(&mut targets, at, aside, report);
    let mut work = Vec::with_capacity(targets.len());
    for t in targets {
        let parsed = match t.policy {
            Ok(p) => p,
            Err(e) => {
                let note = Note::InvalidPolicy(e.to_string());
                tracing::warn!(function = %t.function, error = %note, "invalid policy");
                record_last_error(store, cfg, &t.function, &note).await;
                report.functions.push(skipped(t.function, note));
                continue;
            }
        };
        for w in &parsed.warnings {
            tracing::warn!(function = %t.function, warning = %w, "policy warning");
        }
        if parsed.policy.mode == Mode::Off {
            report.functions.push(skipped(t.function, Note::Off));
            continue;
        }
        if !budget.may_take_on() {
            report.late += 1;
            aside.add(t.real_busy);
            report.functions.push(skipped(t.function, Note::Late));
            continue;
        }
        let load_from = budget.clock.now_ms();
        let loaded = store.load(&t.function).await;
        budget.load_ms += budget.clock.now_ms().saturating_sub(load_from);
        budget.loads += 1;
        let policy = parsed.policy;
        let mut stored = match loaded {
            Ok(s) => s,
            Err(e) => {
                let state = Box::new(FunctionState::new(&policy));
                let mut w = Work::new(t.function, policy, 0, state, None);
                let note = Note::CannotLoad(e.to_string());
                tracing::info!(function = %w.function, note = %note, "skipped");
                match recover(store, cfg, now_ms, Stage::Load, e.kind, &mut w, note).await {
                    Flow::Go => work.push(w),
                    Flow::Drop => report.functions.push(w.dropped()),
                }
                continue;
            }
        };
        let (state, problem) = usable_state(&t.function, &policy, &mut stored, now_ms);
        // The item's look time is not the state's (edited, or repaired):
        // whatever is decided, the save puts them back in step.
        let out_of_step = t.next_check_ms != state.next_check_ms;
        let mut w = Work::new(
            t.function,
            policy,
            stored.version,
            state,
            problem.map(Note::StoredState),
        );
        w.news = out_of_step;
        w.obs.last_tick_ms = at.last_tick_ms;
        w.obs.reads = Some(reads);
        work.push(w);
    }
    work
}

/// Sets the resting functions aside (most of a fleet, most ticks), their
/// real traffic counted in the pool's share, and orders the rest longest
/// waiting first.
fn set_aside_resting(
    targets: &mut Vec<crate::ports::Target>,
    at: Times,
    aside: &mut RealAside,
    report: &mut TickReport,
) {
    let now_ms = at.now_ms;
    let prev_tick = decision::run::previous_tick(at.last_tick_ms, now_ms);
    // No decision plans a look further than an idle function's: the half
    // hour at or after its next read, which is up to the longest read gap
    // and the read lag away. A stored time beyond that and another half hour
    // is not the controller's, and resting on it would leave the function
    // alone forever. (Bounded by the idle rest alone, a function read an
    // hour apart was loaded at every tick of the half hour before its look.)
    let planned = now_ms.saturating_add(
        decision::READ_EVERY_MAX_CHEAP_MINUTES * 60_000 + 2 * decision::IDLE_CHECK_MS,
    );
    targets.retain(|t| {
        let rests = t.next_check_ms <= planned
            && decision::run::rests(t.next_check_ms, t.slots, prev_tick, now_ms);
        if rests {
            report.resting += 1;
            aside.add(t.real_busy);
        }
        !rests
    });
    targets.sort_by_key(|t| t.next_check_ms);
}

/// Reads each function's limits and decides, while the tick's time lasts.
async fn decide_all<S: StateStore, W: Warmer, C: Clock>(
    store: &S,
    warmer: &W,
    budget: &Budget<'_, C>,
    cfg: &TickConfig,
    now_ms: u64,
    work: Vec<Work>,
    report: &mut TickReport,
) -> Vec<Work> {
    let mut keep = Vec::with_capacity(work.len());
    for mut w in work {
        if !budget.left() {
            report.late += 1;
            report.functions.push(skipped(w.function, Note::Late));
            continue;
        }
        match warmer.limits(&w.function).await {
            Ok(l) => w.obs.limits = l,
            Err(e) => {
                let note = match flow(error_policy(Stage::Limits, e.kind)) {
                    Flow::Drop => Note::CannotReadLimits(e.to_string()),
                    Flow::Go => Note::LimitsUnknown(e.to_string()),
                };
                tracing::warn!(function = %w.function, note = %note, "limits not read");
                if recover(store, cfg, now_ms, Stage::Limits, e.kind, &mut w, note).await
                    == Flow::Drop
                {
                    report.functions.push(w.dropped());
                    continue;
                }
            }
        }
        let d = decision::decide(&w.policy, &mut w.state, &w.obs, now_ms);
        tracing::info!(
            function = %w.function,
            reason = ?d.reason,
            forecast = d.forecast,
            target = d.target,
            pings = d.pings(),
            margin = d.margin,
            "decided"
        );
        w.decision = Some(d);
        keep.push(w);
    }
    keep
}

/// What this tick's pings cost at list prices.
fn pings_usd(work: &[Work]) -> f64 {
    work.iter()
        .filter_map(|w| {
            let s = w.warm?;
            let memory = w
                .obs
                .limits
                .memory_mb
                .map_or(crate::cost::DEFAULT_MEMORY_MB, f64::from);
            Some(Prices::LIST.pings_usd(
                s.requested as u64,
                memory,
                s.requested as f64 * s.delay_ms as f64,
            ))
        })
        .sum()
}

/// Saves every function handled (nothing in a dry run), each conditional on
/// the version it was read at, and reports what became of each.
async fn save_all<S: StateStore>(
    store: &S,
    cfg: &TickConfig,
    now_ms: u64,
    work: Vec<Work>,
    report: &mut TickReport,
) {
    // The store keeps the state it is given; the work goes on (to tell what
    // became of the save) with a stand-in, one reused for every function.
    let mut spare: Option<Box<FunctionState>> = None;
    for mut w in work {
        if w.late {
            report.late += 1;
            report.functions.push(skipped(w.function, Note::Late));
            continue;
        }
        let mut saved = false;
        if w.as_planned() {
            tracing::debug!(function = %w.function, "planned warm sent as planned, nothing to save");
        } else if !cfg.dry_run {
            w.state.last_error = w.note.as_ref().map(ToString::to_string);
            let stand_in = spare
                .take()
                .unwrap_or_else(|| Box::new(FunctionState::new(&w.policy)));
            let state = std::mem::replace(&mut w.state, stand_in);
            match store.save(&w.function, state, w.version, &cfg.owner).await {
                Ok(_) => saved = true,
                Err(e) => match read_back(store, &w.function, w.version, &cfg.owner, &e).await {
                    Ok(()) => saved = true,
                    Err((why, uncertain)) => {
                        let note = Note::NotSaved {
                            why,
                            uncertain,
                            error: e.to_string(),
                        };
                        tracing::warn!(function = %w.function, note = %note, "state not saved");
                        recover(store, cfg, now_ms, Stage::Save, e.kind, &mut w, note).await;
                    }
                },
            }
        }
        spare = Some(w.state);
        report.functions.push(FunctionOutcome {
            function: w.function,
            decision: w.decision,
            warm: w.warm,
            saved,
            note: w.note,
        });
    }
}

/// What became of a save that failed, read back from the item rather than
/// guessed from the error: an answer lost on the way back (or a retry that
/// found the first attempt's own write and failed its condition) reads as a
/// failure although the write was applied. `Ok` when it was; else what to
/// tell people.
async fn read_back<S: StateStore>(
    store: &S,
    f: &FunctionRef,
    version: u64,
    run: &str,
    e: &PortError,
) -> Result<(), (Unsaved, Option<String>)> {
    match store.last_save(f, run).await {
        Ok((now, true)) if now == version.saturating_add(1) => {
            tracing::info!(function = %f, error = %e, "the save's answer was lost; read back, it was applied");
            Ok(())
        }
        Ok((now, _)) if now == version => Err((Unsaved::Unchanged, None)),
        Ok(_) => Err((Unsaved::Superseded, None)),
        // Not certain: the error's kind is the best guess left.
        Err(re) => Err((unsaved_guess(e.kind), Some(re.to_string()))),
    }
}

/// What a failed save's error alone suggests became of it.
fn unsaved_guess(kind: ErrorKind) -> Unsaved {
    match error_policy(Stage::Save, kind) {
        Recovery::Discard => Unsaved::Superseded,
        Recovery::KeepStored => Unsaved::Unchanged,
        // Not the table's answer for a save; a failed write is taken to
        // have written nothing.
        Recovery::Skip
        | Recovery::RecordAndSkip
        | Recovery::UseLastForecast
        | Recovery::DecideWithoutWarming
        | Recovery::SaveWithError
        | Recovery::Abort => Unsaved::Unchanged,
    }
}

/// The state to decide on: the stored one, checked and bounded, or a fresh
/// one when nothing was stored or what was stored cannot be used. Returns
/// what was wrong, for the function's `last_error`.
fn usable_state(
    function: &FunctionRef,
    policy: &decision::Policy,
    stored: &mut crate::ports::Stored,
    now_ms: u64,
) -> (Box<FunctionState>, Option<String>) {
    let fresh = || Box::new(FunctionState::new(policy));
    let Some(mut state) = stored.state.take() else {
        return (fresh(), stored.unreadable.take());
    };
    match state.repair(now_ms) {
        Ok(fixed) if fixed.is_empty() => (state, None),
        Ok(fixed) => {
            let msg = format!("stored state repaired: {}", fixed.join("; "));
            tracing::warn!(function = %function, problem = %msg, "stored state repaired");
            (state, Some(msg))
        }
        Err(why) => {
            let msg = format!("stored state unusable ({why}): started afresh");
            tracing::warn!(function = %function, problem = %msg, "stored state refused");
            (fresh(), Some(msg))
        }
    }
}

fn as_text<S: serde::Serializer>(f: &FunctionRef, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(f)
}

fn skipped(function: FunctionRef, note: Note) -> FunctionOutcome {
    FunctionOutcome {
        function,
        decision: None,
        warm: None,
        saved: false,
        note: Some(note),
    }
}

/// One batched metrics read for the functions whose read is due
/// ([`decision::read_plan`]): new ones, and those whose read gap has passed.
/// GetMetricData bills per metric requested, so reading every function every
/// minute would cost far more than the pings.
async fn observe_all<S: StateStore, M: MetricsSource>(
    store: &S,
    metrics: &M,
    cfg: &TickConfig,
    now_ms: u64,
    fleet: usize,
    work: &mut [Work],
) {
    let until = (now_ms / 60_000).saturating_sub(cfg.metrics_lag_minutes);
    let now_minute = now_ms / 60_000;
    // Each due read, and how far a screen could fold it without reading.
    let planned: Vec<(usize, decision::ReadPlan, Option<u64>)> = work
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            decision::read_plan(
                &w.state,
                until,
                cfg.metrics_every_minutes,
                cfg.first_history_minutes,
            )
            .map(|p| (i, p, decision::screened_until(&p, until, now_minute)))
        })
        .collect();
    if planned.is_empty() {
        return;
    }
    let active = screen(metrics, fleet, &planned, work).await;
    let mut wanted = Vec::new();
    let mut requests = Vec::new();
    for (i, plan, screened) in planned {
        let w = &mut work[i];
        if let Some(active) = &active
            && !active.contains(w.function.bare_name())
            && let Some(end) = screened
        {
            // Nothing ran: the minutes read as idle, without reading them.
            w.obs.detail = false;
            w.obs.minutes = Vec::new();
            w.obs.complete_until_minute = end;
            w.obs.metrics = MetricsStatus::Fresh;
            continue;
        }
        wanted.push(i);
        requests.push(MetricsRequest {
            function: w.function.clone(),
            from_minute: plan.from_minute,
            until_minute: until,
            detail: plan.detail,
        });
    }
    if requests.is_empty() {
        return;
    }
    let results = metrics.observe(&requests).await;
    take_reads(store, cfg, now_ms, until, &wanted, &requests, results, work).await;
}

/// Hands each function its read, or acts on its failure.
#[allow(clippy::too_many_arguments)] // the read's request, results and the tick's context
#[allow(clippy::type_complexity)] // the metrics port's answer, as it comes
async fn take_reads<S: StateStore>(
    store: &S,
    cfg: &TickConfig,
    now_ms: u64,
    until: u64,
    wanted: &[usize],
    requests: &[MetricsRequest],
    results: Result<Vec<Result<Vec<decision::MinuteMetrics>, PortError>>, PortError>,
    work: &mut [Work],
) {
    match results {
        Ok(results) => {
            for ((&i, r), req) in wanted.iter().zip(results).zip(requests) {
                let w = &mut work[i];
                match r {
                    Ok(minutes) => {
                        w.obs.detail = req.detail;
                        w.obs.minutes = minutes;
                        w.obs.complete_until_minute = until;
                        w.obs.metrics = MetricsStatus::Fresh;
                    }
                    Err(e) => {
                        tracing::warn!(function = %w.function, error = %e, "metrics unavailable, using last forecast");
                        let note = Note::MetricsUnavailable(e.to_string());
                        recover(store, cfg, now_ms, Stage::Observe, e.kind, w, note).await;
                    }
                }
            }
        }
        Err(e) => {
            // One line for the batch, not one per function.
            tracing::warn!(error = %e, functions = wanted.len(), "metrics unavailable, using last forecasts");
            for &i in wanted {
                let note = Note::MetricsUnavailable(e.to_string());
                recover(
                    store,
                    cfg,
                    now_ms,
                    Stage::Observe,
                    e.kind,
                    &mut work[i],
                    note,
                )
                .await;
            }
        }
    }
}

/// The functions that ran anything lately, when a `ListMetrics` screen
/// pays for itself: functions with nothing forecast and nothing warm are
/// likely idle, and one screen may spare their reads. `None`: not screened,
/// every read is made.
async fn screen<M: MetricsSource>(
    metrics: &M,
    fleet: usize,
    planned: &[(usize, decision::ReadPlan, Option<u64>)],
    work: &[Work],
) -> Option<std::collections::BTreeSet<String>> {
    let candidates = planned
        .iter()
        .filter(|(i, _, end)| {
            let st = &work[*i].state;
            st.recent_peak() <= 0.0 && st.warms.is_empty() && end.is_some()
        })
        .count();
    let base_series = MetricsRequest::series_of(false);
    if !decision::screening_pays(candidates, base_series, fleet, metrics.screen_pages()) {
        return None;
    }
    match metrics.recently_active().await {
        Ok(active) => active,
        Err(e) => {
            // Not screened: every read is made, as without a screen.
            tracing::warn!(error = %e, "cannot list recently active functions");
            None
        }
    }
}

/// The real traffic of the functions a tick leaves alone (resting, or left
/// for the next tick), as their items last said it: it draws on the
/// account's pool all the same. Their averages only, whatever their
/// reservation (the scan does not say it; a reserved function's traffic
/// then narrows the others' room, the safe side): on a synthetic fleet of
/// 1,000 (`trace synth --functions 1000 --days 3 --seed 11`) counting them
/// cut the real requests throttled from 512 to 214 for 9 % more cold
/// starts, and 1.5 % more on the bundled day; adding their bursts in
/// quadrature as well cut throttles only to 197, for 57 % more cold starts
/// on the bundled day (a resting function is one whose burst is over).
#[derive(Debug, Default)]
struct RealAside {
    average: f64,
}

impl RealAside {
    fn add(&mut self, real_busy: Option<f64>) {
        self.average += real_busy.unwrap_or(0.0);
    }
}

/// The tick's view of the account's unreserved pool, before any cut.
#[derive(Debug, Clone)]
struct PoolNeed {
    /// The functions drawing on the pool (indices into the work list).
    shared: Vec<usize>,
    /// The pool's size.
    pool: u32,
    /// The real traffic estimated from the functions' own series.
    real: f64,
    /// The largest headroom any of them asks for.
    headroom: u32,
    /// Pings the decisions ask for, together.
    wants: u32,
}

/// The fleet's real concurrency at the moment of the pings, from the
/// functions' own series: the sum of each function's average concurrency
/// (every function's, those this tick leaves alone too: [`RealAside`])
/// plus the spread of those it looks at: each one's distance from its
/// average to the peak it may reach next, added in quadrature, because the
/// bursts of independent functions do not coincide. Summing every
/// function's hourly peak instead would claim an account whose functions
/// peak at different times is full when it is not.
///
/// The peak a function may reach next is its recent (hourly) peak, but no
/// more than its forecast for the next window (the target before caps,
/// which is the controller's calibrated quantile of that peak): a burst
/// that its own forecast no longer expects is not the next minutes' real
/// traffic. Reserved for the rest of the hour, one function's burst
/// left the pool full on paper while the account's series saw a tenth of
/// it in use, and the shared room, a few sandboxes, went to the functions
/// first in line: on the bundled day (`forewarm simulate --json`, the
/// bundled seed and seeds 2-6) hundreds of one-sandbox functions went
/// unwarmed for two hours after the 04:00 burst, and taking the forecast
/// cut cold starts from 3,726 to 3,382 (mean), with as many real requests
/// throttled (551 against 554). `None` when no function draws on the pool.
fn pool_need(work: &[Work], aside: &RealAside) -> Option<PoolNeed> {
    let shared: Vec<usize> = (0..work.len()).filter(|&i| shares_pool(&work[i])).collect();
    let pool = shared
        .iter()
        .filter_map(|&i| work[i].obs.limits.unreserved)
        .min()?;
    let (mut average, mut spread2) = (aside.average, 0.0);
    for &i in &shared {
        let st = &work[i].state;
        let (busy, recent) = (st.busy, st.recent_peak());
        let peak = work[i]
            .decision
            .map_or(recent, |d| recent.min(f64::from(d.raw_target).max(busy)));
        if busy.is_finite() && peak.is_finite() {
            average += busy.max(0.0);
            spread2 += (peak - busy).max(0.0).powi(2);
        }
    }
    let headroom = shared
        .iter()
        .map(|&i| work[i].policy.headroom)
        .max()
        .unwrap_or(0);
    let wants = shared
        .iter()
        .filter_map(|&i| work[i].decision.map(|d| d.pings()))
        .fold(0u32, u32::saturating_add);
    Some(PoolNeed {
        shared,
        pool,
        real: average + f64::sqrt(spread2),
        headroom,
        wants,
    })
}

fn shares_pool(w: &Work) -> bool {
    w.obs.limits.reserved.is_none() && w.obs.limits.unreserved.is_some()
}

/// Minutes of the account's series a tick reads, the latest CloudWatch has
/// (past the tick's metrics lag): real traffic at the next pings is most
/// like the last minutes'.
const POOL_MINUTES_READ: u64 = 3;

/// The real traffic in the account's pool, as its own series saw it in the
/// last minutes: read only where this tick's pings and headroom could fill
/// the pool beside half as much real traffic again as the functions'
/// estimate (elsewhere the room cannot bind, and the read is a metric
/// billed for nothing; at twice the estimate the read cost 1 % more on a
/// 500-function fleet whose pool never binds, for no decision changed).
///
/// CloudWatch's maximum counts the pings with the real traffic. The pings
/// of a minute go out at once and overlap, so the minute's maximum is at
/// least the real traffic at that moment plus the pings (`pool_pings`,
/// which the runs leave on the account's item): the maximum less the
/// pings lies between the real traffic at the pings and the minute's real
/// peak, both of which the next pings must leave room for. It is taken as
/// a count of independent requests, one standard deviation (its square
/// root) above: on a synthetic 14-day fleet of 1,350 functions whose
/// demand fills a 1,000 pool (`trace synth --functions 1350 --days 14
/// --seed 3`) the functions' own estimate was half the real traffic at
/// the pings, and sizing against this cut real requests throttled from
/// 2,811 to a few hundred with fewer cold starts (the pings had been
/// taking the sandboxes real bursts needed).
async fn pool_seen<M: MetricsSource>(
    metrics: &M,
    cfg: &TickConfig,
    now_ms: u64,
    need: &PoolNeed,
    pool_pings: &PoolPings,
) -> Option<f64> {
    let filled = 1.5 * need.real + f64::from(need.wants) + f64::from(need.headroom);
    if need.wants == 0 || filled < f64::from(need.pool) {
        return None;
    }
    let until = (now_ms / 60_000).saturating_sub(cfg.metrics_lag_minutes);
    let from = until.saturating_sub(POOL_MINUTES_READ);
    match metrics.pool_in_use(from, until).await {
        Ok(minutes) => {
            let real = minutes
                .iter()
                .map(|&(m, most)| (most - f64::from(pool_pings.at(m))).max(0.0))
                .reduce(f64::max)?;
            Some(real + real.sqrt())
        }
        Err(e) => {
            // Sized as without the account's series.
            tracing::warn!(error = %e, "cannot read the account's pool");
            None
        }
    }
}

/// Pings this tick sent to functions drawing on the pool and that ran
/// (a throttled ping holds nothing, so the account's series does not count
/// it).
fn pool_pings_sent(work: &[Work]) -> u32 {
    work.iter()
        .filter(|w| shares_pool(w))
        .filter_map(|w| w.warm.as_ref())
        .map(|s| s.requested.saturating_sub(s.failures.throttled))
        .fold(0, u32::saturating_add)
}

/// Ticks in a forecast window: looks come at the windows' starts.
const WINDOW_TICKS: u64 = decision::ACTIVE_CHECK_MS / 60_000;

/// Whether the tick at `now_ms` starts a forecast window. Looks come on
/// that grid, and warms at an interval of whole windows stay on it: on the
/// 10-minute platform (`--ttl 10m`) the learner warms every 600 s, half of
/// all pings went out in the minutes ending in 0, and the account's pool
/// cut 4,858 of them at those ticks (none at 540 s, which drifts off the
/// grid), taking bursty functions' pools.
fn on_window_grid(now_ms: u64) -> bool {
    (now_ms / 60_000).is_multiple_of(WINDOW_TICKS)
}

/// Cuts this tick's warms of functions without reserved concurrency so that
/// they fit the account's unreserved pool together, beside the real traffic
/// of all of them and the headroom (each decision alone only left room for
/// its own function's traffic). The real traffic is the larger of the
/// functions' estimate ([`pool_need`]) and what the account's series saw
/// (`seen`, [`pool_seen`]).
///
/// A warm cut at a tick on the window grid ([`on_window_grid`]) brings the
/// function's next warm 1 to `WINDOW_TICKS - 1` minutes forward, by its own
/// phase, off the crowded tick (`--ttl 10m`, 6 seeds: 3,184 -> 3,086 cold
/// starts). A cut off the grid moves nothing: where the pool is full at
/// every tick (the synthetic 14-day fleet), moving every cut warm forward
/// only added warms to the crowd (52,004 -> 60,017 cold starts; moving only
/// those cut on the grid, 45,817).
fn share_account_pool(now_ms: u64, work: &mut [Work], need: PoolNeed, seen: Option<f64>) {
    let PoolNeed {
        shared,
        pool,
        real,
        headroom,
        ..
    } = need;
    let real = seen.map_or(real, |s| real.max(s));
    let room = (pool as f64 - real.ceil() - headroom as f64).max(0.0) as u32;
    let (warming, wants): (Vec<usize>, Vec<u32>) = shared
        .into_iter()
        .filter_map(|i| work[i].decision.map(|d| (i, d.pings())))
        .filter(|&(_, n)| n > 0)
        .unzip();
    let got = decision::caps::share_pool(room, &wants);
    for (&i, n) in warming.iter().zip(got) {
        let w = &mut work[i];
        let Some(d) = w.decision.as_mut() else {
            continue;
        };
        let Action::Warm { n: want, delay_ms } = d.action else {
            continue;
        };
        if n == want {
            continue;
        }
        d.capped_by = Some(decision::Cap::Concurrency);
        d.target = d.target.saturating_sub(want - n);
        if on_window_grid(now_ms) {
            let early = (1 + function_key(&w.function, 0) % (WINDOW_TICKS - 1)) * 60_000;
            d.next_due_ms = decision::warm_sooner(&mut w.state, early, now_ms);
            d.next_check_ms = d.next_check_ms.min(d.next_due_ms);
        }
        if n == 0 {
            d.action = Action::Nothing;
            decision::warm_failed(&mut w.state, now_ms);
        } else {
            d.action = Action::Warm { n, delay_ms };
            decision::warm_resized(&mut w.state, now_ms, n);
        }
        w.off_plan();
        tracing::info!(function = %w.function, wanted = want, pings = n, "cut to share the account's unreserved pool");
    }
}

/// Sends every warm at once and feeds the reports back. A warm whose pings
/// could not hold and be answered before the tick's time ends (less the
/// saves') is not sent: the function is left for the next tick.
async fn warm_all<S: StateStore, W: Warmer, C: Clock>(
    store: &S,
    warmer: &W,
    budget: &Budget<'_, C>,
    cfg: &TickConfig,
    now_ms: u64,
    work: &mut [Work],
) {
    let answer_by = budget.answer_by(work.len());
    let mut plans = Vec::new();
    let mut owners = Vec::new();
    for (i, w) in work.iter_mut().enumerate() {
        let Some(Decision {
            action: Action::Warm { n, delay_ms },
            ..
        }) = w.decision
        else {
            continue;
        };
        if cfg.dry_run || !w.may_warm {
            decision::warm_failed(&mut w.state, now_ms);
            w.off_plan();
            continue;
        }
        let now = budget.clock.now_ms();
        if answer_by.is_none_or(|by| now.saturating_add(delay_ms as u64) >= by) {
            w.late = true;
            continue;
        }
        plans.push(WarmPlan {
            function: w.function.clone(),
            n,
            delay_ms,
            run: cfg.owner.clone(),
            at_ms: now_ms,
            init_allowance_ms: decision::pings::learned_init_allowance_ms(
                w.state.init_ms as u64,
                w.obs.limits.timeout_ms,
            ),
            answer_by_ms: answer_by,
        });
        owners.push(i);
    }
    if plans.is_empty() {
        return;
    }
    let results = warmer.warm(&plans).await;
    for (i, r) in owners.into_iter().zip(results) {
        let w = &mut work[i];
        match r {
            Ok(rep) => {
                let s = decision::apply_report(
                    &w.policy,
                    &mut w.state,
                    &rep,
                    w.decision.as_ref(),
                    now_ms,
                );
                if decision::run::news(&s, w.decision.map_or(0, |d| d.pings())) {
                    // A planned run rests on the replies being as before.
                    decision::replan(&w.policy, &mut w.state, w.obs.reaped, now_ms);
                    w.news = true;
                }
                tracing::info!(
                    function = %w.function,
                    requested = s.requested,
                    distinct = s.distinct,
                    cold = s.cold,
                    failed = s.failed,
                    throttled = s.failures.throttled,
                    timed_out = s.failures.timeout,
                    function_errors = s.failures.function_error,
                    bad_replies = s.failures.bad_reply,
                    spread_ms = s.spread_ms,
                    "warmed"
                );
                if s.failed > 0 {
                    w.note = Some(Note::PingsFailed {
                        failed: s.failed,
                        requested: s.requested,
                        what: s.failures.describe(),
                    });
                }
                w.warm = Some(s);
            }
            Err(e) => {
                w.off_plan();
                tracing::warn!(function = %w.function, error = %e, "warm failed");
                let note = Note::WarmFailed(e.to_string());
                recover(store, cfg, now_ms, Stage::Warm, e.kind, w, note).await;
            }
        }
    }
}

/// Polls a future whose ports never wait (the simulator's, and in-memory
/// test fakes) to completion on the current thread, without a runtime.
///
/// Panics if the future is still pending after many polls: a port that
/// really waits needs a real executor.
pub fn block_on_ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("block_on_ready: a port is waiting on real I/O");
}

#[cfg(test)]
mod tests;
