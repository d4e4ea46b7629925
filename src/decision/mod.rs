//! The pure decision core: no I/O, no clock, no environment.
//!
//! [`decide`] takes a function's [`Policy`], its remembered [`FunctionState`],
//! a fresh [`Observation`] and `now`, and returns a [`Decision`] (data, with
//! a [`Reason`]) while updating the state in place. [`apply_report`] feeds a
//! warm's outcome back. The controller Lambda and the simulator both call these
//! through [`crate::tick`], so what the simulator measures is what runs in
//! production.
//!
//! One decision, in order:
//!
//! 1. **observe**: fold the minutes since the watermark into the forecaster,
//!    after taking forewarm's own pings out (`demand`);
//!    Each closed window scores the forecast that was in force for it, and
//!    the forecaster's calibrated offset moves so that the share of windows
//!    above target stays at `1 - quantile` (`forecast`);
//! 2. **forecast** the peak over the coming interval: point forecast plus
//!    the calibrated offset, in whole sandboxes;
//! 3. **cap** it (`caps`): policy range, room for real traffic below
//!    reserved or account concurrency, Lambda's scaling rate;
//! 4. **warm** when due (the learned interval has passed: the idle gap the
//!    account's warms showed safe, `reaping`, inside the function's own
//!    deaths, `survival`) or
//!    when the target rose above what is warm now, with as many pings as the
//!    target exceeds the sandboxes real traffic is using (a ping cannot land
//!    on a busy sandbox: pinging the whole target would warm busy + target);
//! 5. **judge** whether warming pays: the cold starts it can avoid at what
//!    the policy says one is worth, against its pings and bookkeeping
//!    (`worth`); where it does not, say so and leave the function cold;
//! 6. **plan** the warms after this one up to the next metrics read, while
//!    the forecast keeps the target (`run`): later ticks send them from
//!    the stored plan without a look or a state write.

pub(crate) mod caps;
pub mod delay;
pub(crate) mod demand;
pub(crate) mod forecast;
pub mod pings;
pub mod policy;
mod reaping;
mod repair;
pub(crate) mod run;
pub(crate) mod survival;
pub mod worth;

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, DiscreteCDF};

pub use caps::{Cap, Limits};
pub use demand::{MinuteMetrics, WarmRecord};
pub use forecast::Forecast;
pub use forecast::Forecaster;
pub use pings::{Failures, InstanceId, PingFailure, PingOutcome, ReportSummary, WarmReport};
pub use policy::{Mode, Policy};
pub use reaping::{Reaped, Reaping};
pub use run::Run;
pub use survival::{Evidence, Survival};
pub use worth::{Avoidable, Worth};

/// Version of the [`FunctionState`] layout; bumped when a field changes
/// meaning, so an old item is recognized and rebuilt, never misread.
pub const STATE_SCHEMA: u32 = 3;

/// The most history folded in one decision: a controller that was off for a
/// week catches up on the last day instead of spending its tick on the past.
pub const MAX_BACKFILL_MINUTES: u64 = 1_440;

/// Windows of history kept (an hour of 5-minute windows): the recent real
/// peak the caps leave room for, and what people see in `forewarm status`.
const OUTCOMES_KEPT: usize = 12;
/// Warms remembered for the pool at least this long: longer than any sandbox
/// is expected to live idle. Warms whose minutes have not been read yet are
/// kept beyond it (up to [`WARMS_KEPT_MAX`]), so that the pings of a warm
/// sent during a metrics outage are still taken out when the minutes arrive.
const WARMS_KEPT_MS: u64 = 30 * 60_000;
/// The most warms remembered, whatever the outage: a day of warms every
/// four minutes would not fit the state item. Four hours of them (60)
/// do, so a function read every four hours
/// ([`READ_EVERY_MAX_CHEAP_MINUTES`]) keeps every warm its read needs; 64
/// warm records deflate to under 600 bytes. At 48, reads had to come sooner
/// for the warms to fit, and the bundled day's CloudWatch and DynamoDB
/// cost 5 % more.
const WARMS_KEPT_MAX: usize = 64;
/// Warms waiting for their minutes to be read at which the read falls due,
/// whatever the read gap: room for the warms a tick sends before the read
/// comes (CloudWatch's lag, a minute a warm at most), so that none is
/// dropped with its pings still to be taken out. Four hours between the
/// reads of a function warmed every four minutes dropped 12 warms a read,
/// and their pings were read as real traffic.
const WARMS_UNREAD_MAX: usize = WARMS_KEPT_MAX - 8;
/// Weight of each read minute in the running real concurrency.
const BUSY_WEIGHT: f64 = 0.3;
/// Weight of each minute with real invocations in the running duration.
const DURATION_WEIGHT: f64 = 0.1;
/// Decisions remembered for people (`forewarm status`).
const DECISIONS_KEPT: usize = 3;
/// Weight of each tick's observed cold-start share in its running average.
const COLD_RATE_WEIGHT: f64 = 0.2;
/// How often a function with traffic or warm sandboxes is looked at: once
/// per forecast window.
pub const ACTIVE_CHECK_MS: u64 = policy::WINDOW_MINUTES as u64 * 60_000;
/// How often an idle function (nothing forecast, nothing warm, no recent
/// traffic) is looked at.
pub const IDLE_CHECK_MS: u64 = 30 * 60_000;
/// Minutes between detail reads (invocations, duration and the shims' cold
/// starts, on top of concurrency). They move slowly: the busy share and the
/// average duration only scale the sandboxes real traffic holds, and the
/// cold-start share only gates narrowing the forecast band. A day: a detail
/// read asks for four metrics where a routine read asks for one, so at
/// twelve hours they were a quarter of the CloudWatch bill. Measured with
/// `forewarm simulate` against twelve hours (the previous cadence, itself
/// chosen against three and six): on the bundled day CloudWatch 0.693 to
/// 0.652 USD, cold starts 3,727 against 3,726 (mean over the bundled seed
/// and seeds 2-6), and within 1 % with `--ttl 10m`, vpc-2018 and
/// lambda-2019; on synthetic fleets 0.8 % more cold starts on 300 × 3 days
/// (seed 7), 12-14 % fewer on 300 × 7 (seed 11) and 500 × 4 (seed 3), 2 %
/// fewer over three seeds of 1,000 × 3 (seed 11). The fleets' gain comes with 1-8 % more pings and is
/// the cold-start gate's doing: a cold share learned from fewer reads lets
/// the band narrow less often.
pub const DETAIL_EVERY_MINUTES: u64 = 1_440;
/// Minutes between detail reads of a function cheap to warm (see
/// [`CHEAP_TARGET`]): two days. Its busy share and duration only decide
/// whether one of its few sandboxes is left to its own traffic.
/// Measured with `forewarm simulate --json` against a day: bundled day
/// CloudWatch 0.304 to 0.284 USD, cold starts 3,205 against 3,207 (mean
/// over the bundled seed and seeds 2-6).
pub const DETAIL_EVERY_CHEAP_MINUTES: u64 = 2_880;
/// Cold pings in one warm that do not call for a read: a sandbox reaped
/// between warms is the platform's routine (5-7 minutes idle on Lambda
/// since 2021), and the interval learner judges it at the next read; more
/// than one say the pool changed. Reading at once on any cold ping read the
/// functions keeping three to ten sandboxes warm every 15 minutes: counted
/// so, the bundled day's CloudWatch was 0.386 USD against 0.323, for
/// 3,221 cold starts against 3,205 and 1 % more pings (mean over the
/// bundled seed and seeds 2-6).
pub const REAPED_COLD_PINGS: u32 = 1;
/// The longest a function whose forecast keeps holding goes between reads.
/// A read in which the forecast held ([`forecast_held`]: no more windows
/// whose real peak passed the target forecast for them than the quantile
/// allows) doubles the gap, from the base cadence up to this; a read that
/// did not, or a warm with more than [`REAPED_COLD_PINGS`] cold pings or a
/// reply from a sandbox no warm had reached ([`FunctionState::known`]),
/// brings it back to the base.
pub const READ_EVERY_MAX_MINUTES: u64 = 60;
/// The longest gap between reads for a function cheap to warm (see
/// [`CHEAP_TARGET`]) whose forecast keeps holding and whose last warm's
/// replies were all warm, from sandboxes recent warms had reached: there a
/// read costs more than the warming it steers (a routine read is 10
/// micro-USD, an hour of one sandbox's pings about 5), and traffic that
/// outgrows the warm sandboxes shows in the replies first (see
/// [`FunctionState::known`]). Measured with `forewarm simulate --json`
/// against the hourly cap for every function, with the rules that came
/// with it (a read holds while its misses are what the quantile allows,
/// replies from unknown sandboxes call for a read, unread warms bound the
/// gap): CloudWatch 41 % less on the bundled day (0.650 to 0.386 USD, mean
/// of the bundled seed and seeds 2-6) and 35-50 % less on every other run
/// tried; cold starts 4.8 % fewer on the bundled day at the same pings,
/// 5-7 % fewer with `--ttl 10m` and lambda-2019 at 3-6 % more pings,
/// level with vpc-2018 at 8 % more, 3 % fewer on 300 × 3 days (seed 7)
/// at 17 % fewer pings, and 1-3 % more on 300 × 7 (seed 11), 500 × 4
/// (seed 3) and 1,000 × 3 (seed 11) at 0-27 % fewer pings.
pub const READ_EVERY_MAX_CHEAP_MINUTES: u64 = 240;
/// The most sandboxes a function may keep warm and count as cheap to warm:
/// four sandboxes pinged every five minutes are 48 pings an hour, about
/// 18 micro-USD at 512 MB and 300 ms holds, what two routine reads cost
/// (10 micro-USD each). Larger targets spend more on an hour's pings than
/// reads do, and a stale forecast there wastes pings (stretched for every
/// warmed function, a 300 × 7 fleet sent 62 % more pings). Against two
/// sandboxes, with the interval learner's cold pings bounded by the
/// forecast (`simulate --json --policy forewarm`): bundled day 3,240 → 3,225
/// cold starts for 0.836 → 0.820 USD (mean over the bundled seed and seeds
/// 2-6); `--ttl 10m` 3,046 → 3,052 and lambda-2019 3,050 → 3,065; 300 × 3
/// (seed 7) 8,330 → 8,281; 500 × 4 (seed 3) 2,539 → 2,474; 300 × 7
/// (seed 11) 2,330 → 2,116 at 2 % more pings; 1,000 × 3 (seed 11) 12,788
/// → 12,152 at 5 % more pings and 3 % more cost; 1,350 × 14 (seed 3)
/// 31,117 → 30,869. Three, six and ten moved the bundled day by under 1 %.
pub const CHEAP_TARGET: u32 = 4;
/// The most sandbox ids kept per function ([`FunctionState::known`]): a
/// function whose warms reach more keeps none. Past a few, the pings reach
/// a different few of its sandboxes each time, and kept ids would call
/// every other reply a stranger (kept up to four for every function, the
/// bundled day read 8 % more and had 8 % more cold starts).
pub const KNOWN_MAX: usize = 4;
/// How unlikely a read's missed windows must be, for a forecast that
/// misses one window in `1 - quantile` by design, before the read counts
/// as a miss ([`forecast_held`]).
pub const HOLD_SIGNIFICANCE: f64 = 0.05;
/// How far back CloudWatch's `ListMetrics` with `RecentlyActive=PT3H` sees:
/// a function absent from it had no `Invocations` datapoint for three hours.
pub const SCREEN_SEES_MINUTES: u64 = 180;
/// Minutes at each end of that window not taken as idle: a metric that
/// reappears may take up to 15 minutes to show in `ListMetrics` (so the
/// latest minutes may be busy), and an invocation that started before the
/// window may run for 15 minutes into it (Lambda's longest).
pub const SCREEN_MARGIN_MINUTES: u64 = 15;
/// Functions one `ListMetrics` page is taken to cover: a page lists 500
/// metrics, and a function has about two `Invocations` series (its name
/// alone, and per alias or version).
pub const SCREEN_FUNCTIONS_PER_PAGE: usize = 250;

/// The hold a new function starts with: the seed's hand-tuned 300 ms.
pub const INITIAL_DELAY_MS: u32 = 300;

/// What the controller learned about a function, kept between ticks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionState {
    /// Layout version ([`STATE_SCHEMA`]).
    pub schema: u32,
    /// Last minute folded into the forecaster (epoch minute).
    pub watermark_minute: Option<u64>,
    /// The forecaster's memory.
    pub forecaster: Forecaster,
    /// The hold the delay tuner set on the last warm's replies, ms; a
    /// larger warm holds longer (see `delay::hold_for`).
    pub delay_ms: u32,
    /// The start-to-start gap of a warm's pings, µs, as the last warm of
    /// two or more identified pings measured. 0: not measured yet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fan_out_us: u32,
    /// When the next warm is due, epoch ms.
    pub next_due_ms: u64,
    /// When the controller should next look at the function, epoch ms.
    #[serde(default)]
    pub next_check_ms: u64,
    /// What is known about sandbox survival.
    pub survival: Survival,
    /// Recent warms: for the own-traffic correction, and to know what was
    /// warm at any recent moment.
    pub warms: Vec<WarmRecord>,
    /// The last warm's figures.
    pub last_warm: Option<ReportSummary>,
    /// Recent windows: realized peak against the pool warm at the time.
    pub outcomes: Vec<WindowOutcome>,
    /// Running share of real invocations that started cold.
    #[serde(serialize_with = "short")]
    pub cold_rate: f64,
    /// Running average of real concurrency (Little's law on the minutes
    /// read: real invocations times their average duration): the sandboxes
    /// real traffic is using at a typical moment, which a ping cannot reach.
    #[serde(default, serialize_with = "short")]
    pub busy: f64,
    /// The fewest sandboxes real traffic held in any minute of the last
    /// read (Little's law per minute, as for [`FunctionState::busy`]): what
    /// it surely holds at the moment of a warm. Pings are the target less
    /// this, not less the running average: between the bursts of on/off
    /// traffic nothing runs, and the average of a read that ended in a
    /// burst left a third of a 100-sandbox target unpinged for the next
    /// burst (a sandbox too many costs a ping; one too few, a cold start).
    #[serde(default, serialize_with = "short")]
    pub busy_low: f64,
    /// Running share of a minute's real peak that is busy on average
    /// ([`FunctionState::busy`] over the peak), learned from minutes read
    /// with their invocations: a routine read has only the concurrency
    /// series, and this turns its peaks into busy figures.
    #[serde(default, serialize_with = "short")]
    pub busy_share: f64,
    /// The last few decisions, newest last.
    pub decisions: Vec<DecisionRecord>,
    /// The last error met while handling this function, for people.
    pub last_error: Option<String>,
    /// Minutes between metrics reads now (0: the base cadence). Grows while
    /// the forecast holds; see [`READ_EVERY_MAX_MINUTES`].
    #[serde(default)]
    pub read_every_minutes: u64,
    /// Last minute a detail read covered.
    #[serde(default)]
    pub detail_minute: Option<u64>,
    /// Running average duration of real invocations, ms, from detail reads:
    /// the running concurrency between them.
    #[serde(default, serialize_with = "short")]
    pub duration_ms: f64,
    /// The slowest INIT cold pings' replies reported lately, ms, forgetting
    /// an eighth per warm with cold replies; doubled by a warm whose pings
    /// timed out (they report nothing). The warmer waits twice this for a
    /// cold ping (see [`pings::learned_init_allowance_ms`]). 0: none seen.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub init_ms: u32,
    /// The sandboxes the last warms reached, newest first, as the low 32
    /// bits of their ids ([`InstanceId`]), at most [`KNOWN_MAX`]; none once
    /// a warm reaches more. A warm reply from a sandbox not among them was
    /// made by real traffic since (or by another warmer): real traffic
    /// outgrew what was warm, which calls for a read at once
    /// ([`ReportSummary::strangers`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<u32>,
    /// The warms planned after the last look's, sent without a look (see
    /// `run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// The real cold starts warming could avoid, per minute (see `worth`).
    #[serde(default)]
    pub avoidable: Avoidable,
    /// What warming was worth against what it would cost, USD per hour,
    /// when the last look left the function cold for it (`not_worth_it`);
    /// kept only then, since the state item is billed by its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worth: Option<Worth>,
    /// The last forecast and what it depended on (not stored: recomputed
    /// after a load, reused while its inputs are unchanged).
    #[serde(skip)]
    pub forecast_cache: Option<(ForecastKey, forecast::Forecast)>,
}

/// One window's realized peak against what was warm. Stored as a
/// three-element array `[index, realized, warmed]`, to keep the item small.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "(u64, f32, u32)", into = "(u64, f32, u32)")]
pub struct WindowOutcome {
    /// Window index (epoch minute / 5).
    pub index: u64,
    /// Real peak concurrency.
    pub realized: f32,
    /// Sandboxes warmed for it.
    pub warmed: u32,
}

/// A decision as remembered in the state, stored as an array
/// `[at_ms, reason, forecast, target, warmed]` to keep the item small.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    from = "(u64, Reason, f32, u32, u32)",
    into = "(u64, Reason, f32, u32, u32)"
)]
pub struct DecisionRecord {
    /// When, epoch ms.
    pub at_ms: u64,
    /// Why.
    pub reason: Reason,
    /// Forecast mean peak.
    pub forecast: f32,
    /// Sandboxes targeted after caps.
    pub target: u32,
    /// Pings sent (0 when not warming).
    pub warmed: u32,
}

impl From<(u64, Reason, f32, u32, u32)> for DecisionRecord {
    fn from((at_ms, reason, forecast, target, warmed): (u64, Reason, f32, u32, u32)) -> Self {
        DecisionRecord {
            at_ms,
            reason,
            forecast,
            target,
            warmed,
        }
    }
}

impl From<DecisionRecord> for (u64, Reason, f32, u32, u32) {
    fn from(d: DecisionRecord) -> Self {
        (d.at_ms, d.reason, d.forecast, d.target, d.warmed)
    }
}

impl From<(u64, f32, u32)> for WindowOutcome {
    fn from((index, realized, warmed): (u64, f32, u32)) -> Self {
        WindowOutcome {
            index,
            realized,
            warmed,
        }
    }
}

impl From<WindowOutcome> for (u64, f32, u32) {
    fn from(o: WindowOutcome) -> Self {
        (o.index, o.realized, o.warmed)
    }
}

/// Writes a learned figure with six significant digits: the learners'
/// running averages carry no more information than that, and the state item
/// is billed by its size.
pub(crate) fn short<S: serde::Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    let rounded = if x.is_finite() && *x != 0.0 {
        format!("{x:.5e}").parse().unwrap_or(*x)
    } else {
        *x
    };
    s.serialize_f64(rounded)
}

impl FunctionState {
    /// Reads a state as stored (JSON), or says why it cannot be used, in
    /// words for the function's `last_error`: the caller starts afresh.
    pub fn from_stored(json: &str) -> Result<FunctionState, String> {
        match serde_json::from_str::<FunctionState>(json) {
            Ok(st) if st.schema == STATE_SCHEMA => Ok(st),
            Ok(st) => Err(format!(
                "stored state has layout {}, this controller writes {STATE_SCHEMA}: started afresh",
                st.schema
            )),
            Err(e) => Err(format!("stored state unreadable ({e}): started afresh")),
        }
    }

    /// The state of a function the controller has never seen.
    pub fn new(policy: &Policy) -> Self {
        FunctionState {
            schema: STATE_SCHEMA,
            watermark_minute: None,
            forecaster: Forecaster::new(policy),
            delay_ms: INITIAL_DELAY_MS.clamp(policy.delay_ms_min, policy.delay_ms_max),
            next_due_ms: 0,
            next_check_ms: 0,
            survival: Survival::default(),
            warms: Vec::new(),
            last_warm: None,
            outcomes: Vec::new(),
            cold_rate: 0.0,
            busy: 0.0,
            busy_low: 0.0,
            busy_share: 0.0,
            decisions: Vec::new(),
            last_error: None,
            read_every_minutes: 0,
            detail_minute: None,
            duration_ms: 0.0,
            init_ms: 0,
            fan_out_us: 0,
            known: Vec::new(),
            run: None,
            avoidable: Avoidable::default(),
            worth: None,
            forecast_cache: None,
        }
    }

    /// Recent real peak concurrency (the last hour of windows), for caps.
    pub fn recent_peak(&self) -> f64 {
        let open = self.forecaster.open.map_or(0.0, |w| w.peak);
        self.outcomes
            .iter()
            .map(|o| o.realized as f64)
            .fold(open, f64::max)
    }

    /// Sandboxes believed warm at `at_ms`: what the latest warm before it
    /// reached, while those sandboxes are expected to survive; else none.
    /// They are counted for the interval and the minute a warm due then
    /// may take to go out, not at its end: the interval is a minute inside
    /// the shortest gap seen to kill, so at the interval plus a minute the
    /// sandboxes may be going. Counted up to and including the end, a
    /// look a whole minute after the warm's due slot still found the pool
    /// warm and did not warm it: on the bundled day `interval_s=240` had
    /// 4,654 cold starts against 3,954 counted so, the learned interval
    /// 4,244 against 3,868.
    /// `interval_s` is the interval in force ([`Survival::interval_s`]).
    pub fn pool_at(&self, interval_s: u32, at_ms: u64) -> u32 {
        let life_ms = (interval_s as u64 + 60) * 1_000;
        self.warms
            .iter()
            .rev()
            .find(|w| w.at_ms <= at_ms)
            .filter(|w| at_ms - w.at_ms < life_ms)
            .map_or(0, |w| w.reached)
    }
}

impl FunctionState {
    /// Its average real concurrency as the account's pool counts it (for
    /// the items' `real_busy`): the learned figure when it is one.
    pub fn real_busy(&self) -> f64 {
        checked_busy(self.busy).unwrap_or(0.0)
    }
}

/// An average real concurrency read from outside, when it is a figure a
/// controller could have written: finite, not negative, within any account.
pub fn checked_busy(busy: f64) -> Option<f64> {
    (busy.is_finite() && (0.0..=1e6).contains(&busy)).then_some(busy)
}

/// What the controller saw of a function this tick.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// Minutes with any datapoint, ascending. Minutes below
    /// `complete_until_minute` that are absent are minutes when nothing ran.
    pub minutes: Vec<MinuteMetrics>,
    /// Minutes before this one are final (CloudWatch lags by a few minutes).
    pub complete_until_minute: u64,
    /// The function's concurrency limits and memory.
    pub limits: Limits,
    /// Whether `minutes` is fresh, not read this tick, or failed to read.
    pub metrics: MetricsStatus,
    /// Whether the read carried the detail series (duration, cold starts).
    #[serde(default)]
    pub detail: bool,
    /// When the tick before this one ran, epoch ms, if known: the slots of
    /// a run up to it were sent (`run::settle`).
    #[serde(default)]
    pub last_tick_ms: Option<u64>,
    /// How the tick reads metrics; a warm plans the warms after it up to the
    /// next read. `None`: no run is planned, each warm is a look.
    #[serde(default)]
    pub reads: Option<ReadCadence>,
    /// What the account's warms taught about idle reaping: the gap this
    /// function's next warm may leave.
    #[serde(default)]
    pub reaped: Reaped,
}

/// How often the tick reads a function's metrics, to know when its next
/// read falls due ([`next_read_ms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadCadence {
    /// The base gap between reads, minutes.
    pub every_minutes: u64,
    /// Minutes CloudWatch needs before a minute is final.
    pub lag_minutes: u64,
}

/// Whether an observation carries fresh metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsStatus {
    /// Read this tick.
    Fresh,
    /// Not read this tick: less than a window of new minutes, and not due.
    /// Reading metrics costs money (GetMetricData bills per metric
    /// requested), so a function is read once per window, not per tick.
    #[default]
    NotRead,
    /// The read failed: the decision rests on what the forecaster knows.
    Unavailable,
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The policy's mode is `off`.
    Off,
    /// The policy's mode is `observe`: decided, but no pings.
    Observe,
    /// The pool is warm and the next warm is not due yet.
    NotDue,
    /// The interval passed: re-warm.
    Due,
    /// The forecast rose above what is warm: warm before the interval.
    Rising,
    /// Due, but the forecast (after caps) is zero sandboxes.
    NothingForecast,
    /// Metrics unavailable: decided on the last forecast.
    StaleMetrics,
    /// A warm the last look planned (see `run`).
    Planned,
    /// Due, but the cold starts warming could avoid are worth less than its
    /// pings and bookkeeping (the figures are the decision's `worth`).
    NotWorthIt,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// Send `n` concurrent pings, each asking to hold `delay_ms`.
    Warm {
        /// Pings.
        n: u32,
        /// Hold per ping, ms.
        delay_ms: u32,
    },
    /// Send nothing.
    Nothing,
}

/// One function's decision, as data.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: Reason,
    /// Forecast mean of the coming peak.
    pub forecast: f64,
    /// The forecast quantile before caps.
    pub raw_target: u32,
    /// The target after caps.
    pub target: u32,
    /// Which cap bound, if any.
    pub capped_by: Option<Cap>,
    /// The calibrated quantile the targets use: how many of each window's
    /// learned spreads they add to its point forecast (the running quantile
    /// of the forecast's errors in those units).
    pub margin: f64,
    /// When the next warm is due, epoch ms.
    pub next_due_ms: u64,
    /// When the function should next be looked at, epoch ms.
    pub next_check_ms: u64,
    /// What warming is worth against what it costs, USD per hour, once a
    /// day of the function's minutes has been seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worth: Option<Worth>,
}

impl Decision {
    fn nothing(reason: Reason, state: &FunctionState) -> Self {
        Decision {
            action: Action::Nothing,
            reason,
            forecast: 0.0,
            raw_target: 0,
            target: 0,
            capped_by: None,
            margin: state.forecaster.z,
            next_due_ms: state.next_due_ms,
            next_check_ms: state.next_check_ms,
            worth: None,
        }
    }

    /// Pings this decision sends.
    pub fn pings(&self) -> u32 {
        match self.action {
            Action::Warm { n, .. } => n,
            Action::Nothing => 0,
        }
    }
}

/// Decides what to do for one function now, updating its state.
pub fn decide(
    policy: &Policy,
    state: &mut FunctionState,
    obs: &Observation,
    now_ms: u64,
) -> Decision {
    if policy.mode == Mode::Off {
        return Decision::nothing(Reason::Off, state);
    }
    state.forecaster.conform(policy);
    state.delay_ms = state
        .delay_ms
        .clamp(policy.delay_ms_min, policy.delay_ms_max);
    if let Some(d) = planned_slot(policy, state, obs, now_ms) {
        return d;
    }
    if obs.metrics == MetricsStatus::Fresh {
        // Covered windows lower the offset only while real cold starts stay
        // within the policy's budget.
        state.forecaster.may_narrow = state.cold_rate <= policy.cold_start_budget;
        observe(policy, state, obs, now_ms);
    }
    forget_warms(state, now_ms);

    let now_minute = now_ms / 60_000;
    let interval_s = state.survival.interval_s(policy, obs.reaped);
    let horizon = interval_s.div_ceil(60);
    let forecast = cached_forecast(state, now_minute, horizon);
    let warm_now = state.pool_at(interval_s, now_ms);
    let (target, capped_by) = caps::apply(
        policy,
        forecast.target,
        &obs.limits,
        state.recent_peak(),
        warm_now,
    );

    let due = now_ms >= state.next_due_ms;
    let rising = target > warm_now;
    let idle = target == 0 && warm_now == 0 && state.recent_peak() == 0.0;
    let (pays, worth) = judge(policy, state, obs, target, interval_s);
    let mut d = Decision {
        action: Action::Nothing,
        reason: Reason::NotDue,
        forecast: forecast.mean,
        raw_target: forecast.target,
        target,
        capped_by,
        margin: state.forecaster.z,
        next_due_ms: state.next_due_ms,
        next_check_ms: 0,
        worth,
    };
    if policy.mode == Mode::Observe {
        d.reason = Reason::Observe;
    } else if (due || rising) && !pays {
        // Left cold: nothing changes its judgement before new minutes, and
        // those it reads only once an hour (a read costs what a few hours
        // of its pings would).
        d.reason = Reason::NotWorthIt;
        state.read_every_minutes = READ_EVERY_MAX_MINUTES;
    } else if due || rising {
        start_warm(policy, state, &mut d, obs, due, interval_s, now_ms);
    }
    state.worth = worth.filter(|_| d.reason == Reason::NotWorthIt);
    d.next_check_ms = next_look(policy, state, obs, d.reason, idle, now_ms);
    if let (Action::Warm { .. }, Some(reads)) = (d.action, obs.reads)
        && let Some(r) = plan_run(state, reads, now_ms, interval_s, forecast.target)
    {
        d.next_check_ms = r.first_ms;
        state.run = Some(r);
    }
    state.next_check_ms = d.next_check_ms;
    remember(state, &d, now_ms);
    d
}

/// Whether warming the target pays, and the figures once a day of minutes
/// was seen. The policy's `min` is kept warm whatever it costs; with
/// nothing to ping there is nothing to judge.
fn judge(
    policy: &Policy,
    state: &FunctionState,
    obs: &Observation,
    target: u32,
    interval_s: u32,
) -> (bool, Option<Worth>) {
    let pings = target - busy_now(state, target);
    let worth = worth::estimate(
        policy,
        &state.avoidable,
        &worth::Inputs {
            pings,
            interval_s,
            hold_ms: delay::hold_for(policy, state.delay_ms, state.fan_out_us, pings),
            memory_mb: obs.limits.memory_mb,
            reads: obs.reads,
            init_ms: state.init_ms,
        },
    );
    let pays = policy.min > 0 || pings == 0 || worth.is_none_or(|w| w.pays());
    (pays, worth)
}

/// When the function is next looked at, after a look that decided `reason`.
fn next_look(
    policy: &Policy,
    state: &FunctionState,
    obs: &Observation,
    reason: Reason,
    idle: bool,
    now_ms: u64,
) -> u64 {
    // Never read (its first metrics read failed): nothing says it is idle,
    // so it is looked at again at the next tick, not in half an hour.
    if state.watermark_minute.is_none() && obs.metrics == MetricsStatus::Unavailable {
        return now_ms + 60_000;
    }
    if reason == Reason::NotWorthIt {
        // Left cold: looked at when its next (hourly) read falls due.
        return obs
            .reads
            .and_then(|r| next_read_ms(state, r))
            .unwrap_or(now_ms + IDLE_CHECK_MS)
            .max(now_ms + 60_000);
    }
    next_check(policy, state, now_ms, idle, obs.reads)
}

/// This tick's slot of the stored plan, sent as planned, when one falls
/// to it; any other stored plan is settled (the slots it sent recorded) and
/// ended, and the tick looks.
fn planned_slot(
    policy: &Policy,
    state: &mut FunctionState,
    obs: &Observation,
    now_ms: u64,
) -> Option<Decision> {
    let prev_tick = run::previous_tick(obs.last_tick_ms, now_ms);
    let r = state.run.take()?;
    run::settle(state, &r, prev_tick);
    // Anything but a slot falling to this tick is a look, which plans
    // again if it warms: new minutes, a run over, another mode, a
    // stored look time that is not the run's first slot (repaired or
    // edited: the scan did not find the slots by it), or missed ticks
    // (the slots between were never sent; the look takes in only those
    // up to the last tick that ran).
    let planned = policy.mode == Mode::Warm
        && obs.metrics != MetricsStatus::Fresh
        && state.next_check_ms == r.first_ms
        && now_ms - prev_tick <= run::MIN_EVERY_MS + run::SLOT_TOLERANCE_MS
        && run::slot_due(&r, prev_tick, now_ms);
    if planned && let Some(d) = planned_warm(policy, state, obs, &r, now_ms) {
        state.run = Some(r);
        return Some(d);
    }
    None
}

/// A warm is due or the target rises: the next warm is due an interval
/// from now, and the pings go to the sandboxes the target wants that real
/// traffic is not holding.
fn start_warm(
    policy: &Policy,
    state: &mut FunctionState,
    d: &mut Decision,
    obs: &Observation,
    due: bool,
    interval_s: u32,
    now_ms: u64,
) {
    d.next_due_ms = now_ms + interval_s as u64 * 1_000;
    state.next_due_ms = d.next_due_ms;
    // Sandboxes real traffic holds now cannot take a ping and are warm
    // anyway: ping only the rest of the target.
    let busy = busy_now(state, d.target);
    let n = d.target - busy;
    if n == 0 {
        d.reason = Reason::NothingForecast;
    } else {
        d.reason = if obs.metrics == MetricsStatus::Unavailable {
            Reason::StaleMetrics
        } else if due {
            Reason::Due
        } else {
            Reason::Rising
        };
        let hold_ms = delay::hold_for(policy, state.delay_ms, state.fan_out_us, n);
        d.action = Action::Warm {
            n,
            delay_ms: hold_ms,
        };
        // Recorded now, before the pings go out: their minutes must be
        // corrected even if the report never comes back.
        state.warms.push(WarmRecord {
            at_ms: now_ms,
            n,
            hold_ms,
            reached: d.target,
            busy,
        });
    }
}

fn remember(state: &mut FunctionState, d: &Decision, now_ms: u64) {
    state.decisions.push(DecisionRecord {
        at_ms: now_ms,
        reason: d.reason,
        forecast: d.forecast as f32,
        target: d.target,
        warmed: d.pings(),
    });
    if state.decisions.len() > DECISIONS_KEPT {
        state.decisions.remove(0);
    }
}

/// The slot of a run due now, as the look that planned it decided it;
/// `None` when the function's limits now cap it below the run's target
/// (then a look decides afresh).
fn planned_warm(
    policy: &Policy,
    state: &mut FunctionState,
    obs: &Observation,
    r: &Run,
    now_ms: u64,
) -> Option<Decision> {
    let warm_now = state.pool_at(state.survival.interval_s(policy, obs.reaped), now_ms);
    let (target, capped_by) = caps::apply(
        policy,
        r.reached,
        &obs.limits,
        state.recent_peak(),
        warm_now,
    );
    // A stored plan is untrusted: more pings than its own target is not a
    // plan this controller made.
    if target < r.reached || r.n > target {
        return None;
    }
    state.next_due_ms = now_ms + r.every_ms;
    state.warms.push(r.record(now_ms));
    let d = Decision {
        action: Action::Warm {
            n: r.n,
            delay_ms: r.hold_ms,
        },
        reason: Reason::Planned,
        forecast: state.decisions.last().map_or(0.0, |d| d.forecast as f64),
        raw_target: r.reached,
        target: r.reached,
        capped_by,
        margin: state.forecaster.z,
        next_due_ms: state.next_due_ms,
        // The stored run's first slot: the scan finds the others from it.
        next_check_ms: state.next_check_ms,
        worth: None,
    };
    remember(state, &d, now_ms);
    Some(d)
}

/// The warms to send after the one decided now, at the learned interval
/// (in whole minutes, the schedule's unit), while nothing new can be known:
/// up to the next metrics read (about [`run::MAX_RUN_MS`] at most), and only while
/// the forecast a look would make at each slot keeps the target decided
/// now. Each slot's forecast is issued now, as that look would have issued
/// it, so the windows inside the run are scored as before. Each slot repeats
/// the warm recorded now. `None` when not even one slot fits.
fn plan_run(
    state: &mut FunctionState,
    reads: ReadCadence,
    now_ms: u64,
    interval_s: u32,
    raw_target: u32,
) -> Option<Run> {
    let every_ms = (interval_s as u64).div_ceil(60).max(1) * 60_000;
    let first_ms = now_ms + every_ms;
    // The slot at or after the next read ends the run: that look reads and
    // warms at once (a read a few minutes later than due, one save fewer).
    let read_ms = next_read_ms(state, reads)?.min(now_ms + run::MAX_RUN_MS);
    let mut until_ms = first_ms + read_ms.saturating_sub(first_ms).div_ceil(every_ms) * every_ms;
    // No more slots than the warms still to be read leave room for.
    let room = state.watermark_minute.map_or(0, |w| {
        WARMS_UNREAD_MAX.saturating_sub(unread_warms(state, w)) as u64
    });
    until_ms = until_ms.min(first_ms + room * every_ms);
    let horizon = interval_s.div_ceil(60);
    let mut s = first_ms;
    while s < until_ms {
        if state.forecaster.issue(s / 60_000, horizon).target != raw_target {
            until_ms = s;
        }
        s += every_ms;
    }
    let last = state.warms.last().filter(|w| w.at_ms == now_ms)?;
    (first_ms < until_ms).then_some(Run {
        first_ms,
        every_ms,
        until_ms,
        n: last.n,
        hold_ms: last.hold_ms,
        reached: last.reached,
        busy: last.busy,
    })
}

/// Real concurrency taken to be running now, in whole sandboxes, never more
/// than the target: the running average, but never more than the last
/// read's quietest minute held ([`FunctionState::busy_low`]), rounded down
/// (rounding down errs towards one ping more).
fn busy_now(state: &FunctionState, target: u32) -> u32 {
    let b = state.busy.min(state.busy_low);
    if b.is_finite() && b > 0.0 {
        ((b + 0.01).floor().min(u32::MAX as f64) as u32).min(target)
    } else {
        0
    }
}

/// The next look: at the next window boundary (when a window of new minutes
/// can be read and the forecast horizon moves), sooner if a warm falls due.
/// An idle function rests until the first half hour at or after its next
/// metrics read (the next half hour where the read cadence is not known):
/// until new minutes come only its forecast for later windows can change,
/// and that is known now; on the half hours idle functions come due
/// together, so that one `ListMetrics` screen can spare their reads. If the
/// forecast wakes up before then, it is looked at a minute before the first
/// window that needs a sandbox. Each look costs a state read and write, so
/// nothing is looked at every tick.
fn next_check(
    policy: &Policy,
    state: &FunctionState,
    now_ms: u64,
    idle: bool,
    reads: Option<ReadCadence>,
) -> u64 {
    let cadence = if idle { IDLE_CHECK_MS } else { ACTIVE_CHECK_MS };
    let boundary = (now_ms / cadence + 1) * cadence;
    let due_at = state.next_due_ms.max(now_ms + 1);
    if idle {
        let boundary = reads
            .and_then(|r| next_read_ms(state, r))
            .map_or(boundary, |r| r.max(boundary).div_ceil(cadence) * cadence);
        let now_minute = now_ms / 60_000;
        // The window that starts at the boundary is in reach too: the look
        // at the boundary itself would warm it only as it begins.
        let until = boundary / 60_000 + policy::WINDOW_MINUTES as u64;
        return match state.forecaster.first_needed_window(now_minute, until) {
            Some(index) => {
                let start_ms = index * policy::WINDOW_MINUTES as u64 * 60_000;
                start_ms
                    .saturating_sub(60_000)
                    .clamp(now_ms + 60_000, boundary)
            }
            None => boundary,
        };
    }
    if policy.mode == Mode::Observe {
        boundary
    } else if due_at <= now_ms + ACTIVE_CHECK_MS {
        // A warm falls due within a window: look then, not also at the
        // boundary before it (the last warm's target already covered the
        // windows up to its due time).
        due_at
    } else {
        boundary.min(due_at)
    }
}

/// What to read of a function's metrics now, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    /// First minute to read.
    pub from_minute: u64,
    /// Whether to read the detail series too.
    pub detail: bool,
}

/// Whether a function's metrics are due, with final minutes up to
/// `until_minute` (exclusive): a new function at once (its last
/// `first_history` minutes), else once its read gap has passed: the base
/// cadence `every_minutes`, stretched while the forecast holds (see
/// [`READ_EVERY_MAX_MINUTES`]), and cut back to the base when the last warm
/// found cold sandboxes, which says the function changed.
pub fn read_plan(
    state: &FunctionState,
    until_minute: u64,
    every_minutes: u64,
    first_history: u64,
) -> Option<ReadPlan> {
    let from = match state.watermark_minute {
        None => until_minute.saturating_sub(first_history),
        Some(w) => {
            let every = read_gap(state, w, every_minutes);
            if until_minute < w + 1 + every {
                return None;
            }
            w + 1
        }
    }
    .max(until_minute.saturating_sub(MAX_BACKFILL_MINUTES));
    if from >= until_minute {
        return None;
    }
    // A function with no real traffic lately has no duration or cold starts
    // to learn, and one left cold uses none of them (they scale its pings
    // and gate narrowing its band): its detail waits until it is warmed.
    // Read for every function with traffic, the bundled day's detail reads
    // of functions left cold were 7 % of CloudWatch's bill and changed no
    // cold start (3,205 either way, mean over the bundled seed and seeds
    // 2-6).
    let warmed = state.decisions.last().is_some_and(|d| d.target > 0);
    let active = warmed && (state.recent_peak() > 0.0 || state.busy > 0.01);
    let every = if cheap_to_warm(state) {
        DETAIL_EVERY_CHEAP_MINUTES
    } else {
        DETAIL_EVERY_MINUTES
    };
    let detail = state
        .detail_minute
        .is_none_or(|d| active && until_minute >= d + 1 + every);
    Some(ReadPlan {
        from_minute: from,
        detail,
    })
}

/// Minutes between the watermark `w` and the next read: the base cadence
/// `every_minutes`, stretched while the forecast holds (up to
/// [`READ_EVERY_MAX_CHEAP_MINUTES`] for a function cheap to warm, else
/// [`READ_EVERY_MAX_MINUTES`]), and the base again when a warm after the
/// watermark says the function changed (more than [`REAPED_COLD_PINGS`]
/// cold pings, or strangers), or when waiting longer would drop warms or
/// survival evidence the read must judge.
fn read_gap(state: &FunctionState, w: u64, every_minutes: u64) -> u64 {
    let base = every_minutes.max(1);
    let changed = state.last_warm.is_some_and(|l| {
        (l.cold > REAPED_COLD_PINGS || l.strangers > 0) && l.at_ms >= (w + 1) * 60_000
    });
    if changed || state.survival.pending_full() || unread_warms(state, w) >= WARMS_UNREAD_MAX {
        return base;
    }
    let longest = if cheap_to_warm(state) {
        READ_EVERY_MAX_CHEAP_MINUTES
    } else {
        READ_EVERY_MAX_MINUTES
    };
    state.read_every_minutes.clamp(base, longest.max(base))
}

/// Whether the last look kept one to [`CHEAP_TARGET`] sandboxes warm and
/// the last warm's replies were answered, from known sandboxes, with no
/// more than a reaped sandbox's cold ping. A function left
/// cold (target 0) is not: nothing but a read can tell it that traffic
/// came, so it keeps the hourly read.
fn cheap_to_warm(state: &FunctionState) -> bool {
    let quiet = state
        .last_warm
        .as_ref()
        .is_none_or(|l| l.cold <= REAPED_COLD_PINGS && l.failed == 0 && l.strangers == 0);
    quiet
        && state
            .decisions
            .last()
            .is_some_and(|d| (1..=CHEAP_TARGET).contains(&d.target))
}

/// Whether a read's closed windows bear the forecast out: `misses` of
/// `windows` had a real peak above the target forecast for them. A target
/// at the policy's `quantile` misses one window in `1 - quantile` by
/// design, so a miss alone says nothing: the forecast fails only when that
/// many misses would be rarer than [`HOLD_SIGNIFICANCE`] (binomial). At the
/// default 0.95, one miss in 3 windows holds, two do not; up to 5 in 48 do.
/// Counted as failed on any miss before, a read four hours long held one
/// time in eight, so no function's reads ever stretched that far.
pub fn forecast_held(quantile: f64, windows: u64, misses: u64) -> bool {
    if misses == 0 {
        return true;
    }
    // Out-of-range quantiles are refused when the policy is parsed; NaN
    // or the like here holds only with no miss.
    match Binomial::new((1.0 - quantile).clamp(0.0, 1.0), windows) {
        Ok(b) => misses <= windows && b.sf(misses - 1) > HOLD_SIGNIFICANCE,
        Err(_) => false,
    }
}

/// The warms whose minutes are still to be read after the watermark `w`,
/// the stored run's slots counted as sent: their pings are taken out of
/// those minutes' maxima, so they must be read before the state has to drop
/// any ([`WARMS_KEPT_MAX`]).
fn unread_warms(state: &FunctionState, w: u64) -> usize {
    let read_until_ms = (w + 1) * 60_000;
    let kept = state
        .warms
        .iter()
        .filter(|x| x.unread(read_until_ms))
        .count();
    let planned = state.run.map_or(0, |r| {
        (r.until_ms.saturating_sub(r.first_ms)).div_ceil(r.every_ms.max(1)) as usize
    });
    kept.saturating_add(planned)
}

/// When the function's next metrics read falls due, epoch ms, as
/// [`read_plan`] will find it; `None` for a function never read.
pub fn next_read_ms(state: &FunctionState, reads: ReadCadence) -> Option<u64> {
    let w = state.watermark_minute?;
    let every = read_gap(state, w, reads.every_minutes);
    Some((w + 1 + every + reads.lag_minutes) * 60_000)
}

/// Whether screening for recently active functions pays this tick: a
/// `ListMetrics` page costs what one metric of `GetMetricData` does, so it
/// pays when the reads it may spare (`candidates`, functions due for a read
/// with nothing forecast and nothing warm, `series` metrics each) cost more
/// than the pages: those the last screen took, and at least one per
/// [`SCREEN_FUNCTIONS_PER_PAGE`] of the `fleet` looked after.
pub fn screening_pays(candidates: usize, series: u64, fleet: usize, last_pages: u64) -> bool {
    let pages = (fleet.div_ceil(SCREEN_FUNCTIONS_PER_PAGE) as u64)
        .max(last_pages)
        .max(1);
    candidates as u64 * series > pages
}

/// For a function the screen found without any invocation: the minutes
/// `plan.from_minute..end` that are known idle without reading them, `end`
/// returned. `None` when the read reaches back before what the screen saw
/// (a new function's history, a long gap), or nothing is left to fold.
pub fn screened_until(plan: &ReadPlan, until_minute: u64, screen_minute: u64) -> Option<u64> {
    let seen_from = screen_minute.saturating_sub(SCREEN_SEES_MINUTES - SCREEN_MARGIN_MINUTES);
    let end = until_minute.min(screen_minute.saturating_sub(SCREEN_MARGIN_MINUTES));
    (plan.from_minute >= seen_from && end > plan.from_minute).then_some(end)
}

/// Drops warms that matter no more: older than [`WARMS_KEPT_MS`] and with
/// every minute they touched already read.
fn forget_warms(state: &mut FunctionState, now_ms: u64) {
    let read_until_ms = state.watermark_minute.map_or(0, |w| (w + 1) * 60_000);
    state
        .warms
        .retain(|w| w.at_ms + WARMS_KEPT_MS > now_ms || w.unread(read_until_ms));
    let extra = state.warms.len().saturating_sub(WARMS_KEPT_MAX);
    state.warms.drain(..extra);
}

/// What a forecast depends on. Between windows, with no new minutes, the
/// forecast is the same, and so are the predictions it issued; most ticks of
/// most functions are such ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastKey {
    watermark: Option<u64>,
    first_window: u64,
    last_window: u64,
    z: u64,
    bucket_minutes: u32,
    season_minutes: u32,
}

fn cached_forecast(state: &mut FunctionState, now_minute: u64, horizon: u32) -> forecast::Forecast {
    let w = policy::WINDOW_MINUTES as u64;
    let key = ForecastKey {
        watermark: state.watermark_minute,
        first_window: now_minute / w,
        last_window: (now_minute + horizon as u64) / w,
        z: state.forecaster.z.to_bits(),
        bucket_minutes: state.forecaster.bucket_minutes,
        season_minutes: state.forecaster.season_minutes,
    };
    if let Some((k, f)) = state.forecast_cache
        && k == key
    {
        return f;
    }
    let f = state.forecaster.issue(now_minute, horizon);
    state.forecast_cache = Some((key, f));
    f
}

/// Folds the observation's final minutes into the forecaster, records the
/// windows that closed, and moves the watermark.
fn observe(policy: &Policy, state: &mut FunctionState, obs: &Observation, now_ms: u64) {
    let alpha = policy.alpha;
    let end = obs.complete_until_minute; // exclusive
    let first = match state.watermark_minute {
        Some(w) => w + 1,
        None => obs.minutes.first().map_or(end, |m| m.minute),
    }
    .max(end.saturating_sub(MAX_BACKFILL_MINUTES));
    if first >= end {
        // Nothing new, or a new function with no datapoint at all: every
        // minute read was idle. Moving the watermark keeps the next read to
        // the minutes after it, instead of the whole history again.
        if end > 0 && state.watermark_minute.is_none_or(|w| w < end - 1) {
            state.watermark_minute = Some(end - 1);
        }
        return;
    }
    let mut points = obs
        .minutes
        .iter()
        .filter(|m| m.minute >= first && m.minute < end)
        .peekable();
    let (mut colds, mut real_inv) = (0.0, 0.0);
    let mut busy_low = f64::INFINITY;
    let (mut windows, mut misses) = (0, 0);
    let mut alive = worth::Alive::new(
        state.survival.interval_s(policy, obs.reaped),
        state.watermark_minute.map(|_| state.recent_peak()),
    );
    for minute in first..end {
        let m = match points.peek() {
            Some(p) if p.minute == minute => *points.next().unwrap_or(&MinuteMetrics::idle(minute)),
            _ => MinuteMetrics::idle(minute),
        };
        // A minute with its own duration figure needs no usual one, so the
        // running duration can move after its busy figure is taken.
        let real = demand::real_use(&m, &state.warms, state.duration_ms);
        if obs.detail
            && let Some(d) = real.duration_ms
        {
            state.duration_ms += DURATION_WEIGHT * (d - state.duration_ms);
        }
        let demand = real.demand;
        alive.see(&mut state.avoidable, demand);
        state.survival.settle(minute, m.concurrency_max, now_ms);
        busy_low = busy_low.min(learn_busy(state, real.busy, demand));
        colds += m.cold_starts.unwrap_or(0.0).max(0.0);
        real_inv += m.invocations.unwrap_or(0.0).max(0.0);
        if let Some(w) = state.forecaster.observe_minute(minute, demand, alpha) {
            windows += 1;
            misses += u64::from(!record_outcome(policy, state, obs.reaped, w));
        }
    }
    if let Some(w) = state.forecaster.close_before(end, alpha) {
        windows += 1;
        misses += u64::from(!record_outcome(policy, state, obs.reaped, w));
    }
    let held = forecast_held(policy.quantile, windows, misses);
    state.survival.settled_until(end);
    state.busy_low = checked_busy(busy_low).unwrap_or(0.0);
    if obs.detail {
        learn_cold_rate(state, first..end, colds, real_inv);
    }
    state.read_every_minutes = if held {
        // Capped by the longest any function may wait; `read_gap` applies
        // this function's own cap when the read falls due.
        (state.read_every_minutes.max(1) * 2).min(READ_EVERY_MAX_CHEAP_MINUTES)
    } else {
        0
    };
    state.watermark_minute = Some(end - 1);
}

/// The running real concurrency and, from a minute read with invocations
/// and real demand, the share of its peak that is busy at a typical moment.
/// Returns the minute's busy figure.
fn learn_busy(state: &mut FunctionState, busy: Option<f64>, demand: f64) -> f64 {
    let busy = match busy {
        Some(b) => {
            if demand >= 1.0 {
                let share = (b / demand).clamp(0.0, 1.0);
                state.busy_share += BUSY_WEIGHT * (share - state.busy_share);
            }
            b
        }
        None => state.busy_share * demand,
    };
    state.busy += BUSY_WEIGHT * (busy - state.busy);
    busy
}

/// The share of real calls that started cold over the `minutes` of a
/// detail read, into its running average.
fn learn_cold_rate(
    state: &mut FunctionState,
    minutes: std::ops::Range<u64>,
    colds: f64,
    invocations: f64,
) {
    // Pings are invocations too, but never report cold starts (the shims
    // only report real ones), so the share is of real calls at worst low.
    let pings: f64 = state
        .warms
        .iter()
        .filter(|w| (minutes.start * 60_000..minutes.end * 60_000).contains(&w.at_ms))
        .map(|w| w.n as f64)
        .sum();
    let real = (invocations - pings).max(0.0);
    if real > 0.0 {
        let share = (colds / real).min(1.0);
        state.cold_rate += COLD_RATE_WEIGHT * (share - state.cold_rate);
    }
    state.detail_minute = Some(minutes.end - 1);
}

/// Remembers one closed window's real peak beside what was warm when it
/// began (a warm that reacted to the peak inside the window came too late
/// to spare it cold starts).
/// Returns whether the forecast held for the window: its peak within the
/// target forecast for it (or, where none was issued, within the pool).
fn record_outcome(
    policy: &Policy,
    state: &mut FunctionState,
    reaped: Reaped,
    w: forecast::ClosedWindow,
) -> bool {
    let window_start_ms = w.index * policy::WINDOW_MINUTES as u64 * 60_000;
    let warmed = state.pool_at(state.survival.interval_s(policy, reaped), window_start_ms);
    let covered = w.missed.map_or(w.peak <= warmed as f64, |m| !m);
    state.outcomes.push(WindowOutcome {
        index: w.index,
        realized: w.peak as f32,
        warmed,
    });
    if state.outcomes.len() > OUTCOMES_KEPT {
        state.outcomes.remove(0);
    }
    covered
}

/// Feeds a warm's outcome back into the state: the delay tuner, the
/// interval learner, the pool size, and the record of the warm itself.
/// `sent_by` is the decision that sent the warm, where it is known.
///
/// Returns the report's summary, so callers need not sum it up again.
pub fn apply_report(
    policy: &Policy,
    state: &mut FunctionState,
    report: &WarmReport,
    sent_by: Option<&Decision>,
    now_ms: u64,
) -> ReportSummary {
    let summary = report.summary();
    let (delay, _) = delay::tune_delay(policy, state.delay_ms, &summary);
    state.delay_ms = delay;
    if let Some(us) = delay::fan_out_us(&summary) {
        state.fan_out_us = us;
    }
    state.survival.learn(
        report,
        summary.distinct + summary.anonymous,
        real_beside(state, sent_by),
        now_ms,
    );
    if let Some(rec) = state
        .warms
        .iter_mut()
        .rev()
        .find(|w| w.at_ms == report.sent_at_ms)
    {
        rec.n = report.pings.len() as u32;
        rec.hold_ms = report.delay_ms;
        // Sandboxes named in replies, plus replies without a name (each at
        // least warmed something), beside those real traffic was using.
        rec.reached = summary.distinct + summary.anonymous + rec.busy;
    }
    learn_init(state, report, &summary);
    let summary = ReportSummary {
        strangers: meet_sandboxes(state, report),
        ..summary
    };
    state.last_warm = Some(summary);
    summary
}

/// How much real traffic may have run beside a warm's pings, as far as is
/// known when its replies come back: the bound under which the interval
/// learner waits for the warm minute's metrics before it calls cold pings
/// deaths ([`Survival::learn`]).
///
/// The recent real peak, or the forecast's target where that is larger
/// (before caps: a pool the policy's `min` keeps is no forecast of
/// traffic): the forecast said that many requests could come, and a ping
/// cannot land on a sandbox a request holds. Bounded by the recent peak
/// alone, a function whose bursts come and go within minutes (bundled day,
/// function 945: a minute of 102 calls every half hour or so, warmed 100
/// wide) took each warm that met a burst, 74 of its 100 pings cold at a
/// 120 s gap, for a death, was warmed every minute for the rest of the day
/// and pinged 50,920 times for 7 cold starts, against 11,465 and 2 at a
/// fixed 300 s.
///
/// A warm its caps cut below the forecast is the exception: the function
/// wanted more than it may have warm, so its bursts outgrow the pool, and
/// cold pings past the recent peak still count at once. Such a function is
/// then warmed every minute while its bursts run, and each warm's pings
/// land beside the busy sandboxes and add the cap's worth again, the only
/// way past a cap lower than the bursts (300x3d, function 233: 250 calls a
/// minute for 20 minutes, off for 30, its forecast's target up to 634 and
/// cut to 100; bounded by that target too, it was warmed every 3 minutes,
/// and its cold starts in a burst's second to fourth minutes went from 436
/// to 6,316).
fn real_beside(state: &FunctionState, sent_by: Option<&Decision>) -> f64 {
    let recent = state.recent_peak();
    match sent_by {
        Some(d) if d.target >= d.raw_target => recent.max(d.raw_target as f64),
        Some(_) | None => recent,
    }
}

/// Counts the warm replies from sandboxes none of the last warms reached
/// ([`FunctionState::known`]), and keeps this warm's among them. A cold
/// reply is no stranger: the ping made it.
fn meet_sandboxes(state: &mut FunctionState, report: &WarmReport) -> u32 {
    let mut met: Vec<u32> = Vec::new();
    let mut strangers = 0;
    for p in &report.pings {
        let Some(id) = p.instance else { continue };
        // The low half is the full FNV-1a of the id (see `InstanceId`).
        let low = id.0 as u32;
        if met.contains(&low) {
            continue;
        }
        if p.cold == Some(false) && !state.known.is_empty() && !state.known.contains(&low) {
            strangers += 1;
        }
        met.push(low);
    }
    if met.len() > KNOWN_MAX {
        state.known.clear();
    } else {
        state.known.retain(|k| !met.contains(k));
        met.append(&mut state.known);
        met.truncate(KNOWN_MAX);
        state.known = met;
    }
    strangers
}

/// Updates the slowest INIT lately seen ([`FunctionState::init_ms`]) from a
/// warm: cold replies say how long their INIT took; pings that timed out say
/// nothing, so the allowance doubles until they are answered.
fn learn_init(state: &mut FunctionState, report: &WarmReport, summary: &ReportSummary) {
    let cap = pings::MAX_INIT_WAIT_MS as u32;
    if let Some(seen) = report.pings.iter().filter_map(|p| p.init_ms).max() {
        let kept = state.init_ms - state.init_ms / 8;
        state.init_ms = kept.max(seen.min(cap as u64) as u32);
    }
    if summary.failures.timeout > 0 {
        let floor = (pings::INIT_LIMIT_MS / 2) as u32;
        state.init_ms = state.init_ms.max(floor).saturating_mul(2).min(cap);
    }
}

fn is_zero(x: &u32) -> bool {
    *x == 0
}

/// After a warm whose replies were news (`run::news`): the warms planned
/// on the old replies are dropped, and the next falls due by the interval
/// learned from the new ones (sandboxes that died sooner than the planned
/// spacing must not wait for it).
pub fn replan(policy: &Policy, state: &mut FunctionState, reaped: Reaped, sent_ms: u64) {
    state.run = None;
    let due = sent_ms + state.survival.interval_s(policy, reaped) as u64 * 1_000;
    state.next_due_ms = state.next_due_ms.min(due);
    // Looked at when that warm falls due (or sooner, as already planned),
    // but not before the next tick.
    state.next_check_ms = state
        .next_check_ms
        .min(state.next_due_ms)
        .max(sent_ms + run::MIN_EVERY_MS);
}

/// Records that the warm decided at `at_ms` sends `n` pings (fewer than
/// decided: the tick shared the account's pool out).
pub fn warm_resized(state: &mut FunctionState, at_ms: u64, n: u32) {
    if let Some(w) = state.warms.iter_mut().rev().find(|w| w.at_ms == at_ms) {
        w.n = n;
        w.reached = w.busy + n;
    }
}

/// Brings the function's next warm `early_ms` forward, but not to before
/// the next tick and never later than it was, and its next look with it;
/// returns when the warm now falls due. For a warm the tick cut to share
/// the account's pool: see the tick's `share_account_pool`.
pub fn warm_sooner(state: &mut FunctionState, early_ms: u64, now_ms: u64) -> u64 {
    let due = state
        .next_due_ms
        .saturating_sub(early_ms)
        .max(now_ms + run::MIN_EVERY_MS);
    state.next_due_ms = state.next_due_ms.min(due);
    state.next_check_ms = state.next_check_ms.min(state.next_due_ms);
    state.next_due_ms
}

/// Forgets a warm that never went out (the invoke failed as a whole), so its
/// pings are not subtracted from real demand.
pub fn warm_failed(state: &mut FunctionState, at_ms: u64) {
    state.warms.retain(|w| w.at_ms != at_ms);
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod watermark_tests {
    use super::*;

    #[test]
    fn a_screened_function_folds_only_what_the_screen_saw() {
        let plan = |from| ReadPlan {
            from_minute: from,
            detail: false,
        };
        // Listed at minute 1,000: idle is known for 835..985.
        assert_eq!(screened_until(&plan(900), 998, 1_000), Some(985));
        assert_eq!(screened_until(&plan(835), 998, 1_000), Some(985));
        // A read reaching back before the screen's window is made for real.
        assert_eq!(screened_until(&plan(834), 998, 1_000), None);
        // Nothing older than the margin left to fold.
        assert_eq!(screened_until(&plan(985), 998, 1_000), None);
        // Never past what the read itself would cover.
        assert_eq!(screened_until(&plan(900), 950, 1_000), Some(950));
    }

    #[test]
    fn screening_pays_once_it_spares_more_metrics_than_it_lists_pages() {
        // 1,350 functions: 6 pages; each spared read is 2 metrics.
        assert!(!screening_pays(3, 2, 1_350, 0));
        assert!(screening_pays(4, 2, 1_350, 0));
        assert!(!screening_pays(0, 2, 10, 0));
        assert!(screening_pays(1, 2, 10, 0));
        // An account of 5,000 functions, 10 of them opted in: its last
        // screen took 20 pages, more than ten reads would cost.
        assert!(!screening_pays(10, 2, 10, 20));
    }

    #[test]
    fn an_idle_function_rests_for_half_an_hour() {
        let policy = Policy::default();
        let mut state = FunctionState::new(&policy);
        let now = 1_000 * 60_000;
        let obs = Observation {
            complete_until_minute: 998,
            metrics: MetricsStatus::Fresh,
            ..Default::default()
        };
        let d = decide(&policy, &mut state, &obs, now);
        assert_eq!(d.reason, Reason::NothingForecast);
        assert_eq!(d.next_check_ms, (now / IDLE_CHECK_MS + 1) * IDLE_CHECK_MS);
    }

    #[test]
    fn an_idle_function_rests_until_the_half_hour_of_its_next_read() {
        // Read every hour: between reads only its forecast for later
        // windows could wake it, and that is known at this look, so the
        // half hours before its next read are not looked at.
        let policy = Policy::default();
        let mut state = FunctionState::new(&policy);
        state.read_every_minutes = READ_EVERY_MAX_MINUTES;
        let now = 1_000 * 60_000;
        let reads = ReadCadence {
            every_minutes: 15,
            lag_minutes: 2,
        };
        let obs = Observation {
            complete_until_minute: 998,
            metrics: MetricsStatus::Fresh,
            reads: Some(reads),
            ..Default::default()
        };
        let d = decide(&policy, &mut state, &obs, now);
        assert_eq!(d.reason, Reason::NothingForecast);
        let next_read = next_read_ms(&state, reads).unwrap();
        let half_hour = (now / IDLE_CHECK_MS + 1) * IDLE_CHECK_MS;
        assert!(next_read > half_hour, "{next_read} {half_hour}");
        assert_eq!(
            d.next_check_ms,
            next_read.div_ceil(IDLE_CHECK_MS) * IDLE_CHECK_MS
        );
    }

    #[test]
    fn a_new_function_whose_first_read_failed_is_looked_at_next_tick() {
        let policy = Policy::default();
        let mut state = FunctionState::new(&policy);
        let now = 1_000 * 60_000;
        let obs = Observation {
            metrics: MetricsStatus::Unavailable,
            ..Default::default()
        };
        let d = decide(&policy, &mut state, &obs, now);
        assert_eq!(d.next_check_ms, now + 60_000, "{d:?}");
    }

    #[test]
    fn an_idle_new_function_moves_its_watermark() {
        let policy = Policy::default();
        let mut state = FunctionState::new(&policy);
        let obs = Observation {
            minutes: vec![],
            complete_until_minute: 1_000,
            metrics: MetricsStatus::Fresh,
            ..Default::default()
        };
        let _ = decide(&policy, &mut state, &obs, 1_002 * 60_000);
        assert_eq!(
            state.watermark_minute,
            Some(999),
            "the next read starts after the idle minutes"
        );
    }
}
