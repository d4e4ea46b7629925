//! Whether warming a function pays: the cold starts warming can avoid, at
//! what the policy says one is worth, against what its pings and its
//! bookkeeping cost.
//!
//! The cold starts warming can avoid are those real traffic would pay
//! without it: in each minute, the sandboxes its real peak needs beyond the
//! most real traffic kept alive in the minutes just before (sandboxes live
//! idle for about the learned interval). That is an upper bound on what a
//! forecast can avoid, so the judgement errs towards warming: a function is
//! left cold only where even perfect warming would not pay. It is learned
//! from real peaks alone (pings taken out), so not warming a function does
//! not change its estimate.
//!
//! The cost is what warming the current target at the learned interval
//! would cost per hour: its pings (requests and held GB-seconds) and the
//! state writes of its looks beyond the hourly one of a function left cold.

use serde::{Deserialize, Serialize};

use super::policy::{Policy, WINDOW_MINUTES};
use super::{READ_EVERY_MAX_MINUTES, ReadCadence};
use crate::cost::{DEFAULT_MEMORY_MB, Prices};

/// Minutes of real peaks seen before a function is judged: a day, so that
/// a function quiet at night is not judged by its night. Until then it is
/// warmed as forecast.
pub const JUDGED_AFTER_MINUTES: u32 = 1_440;
/// The INIT taken for a function whose pings never measured one: the order
/// of a managed runtime's cold start with its dependencies loaded.
pub const UNMEASURED_INIT_MS: u64 = 1_000;
/// Metrics reads per hour at a gap of `minutes`.
fn reads_per_hour(minutes: u64) -> f64 {
    60.0 / minutes.max(1) as f64
}

/// Real cold starts warming could avoid, per minute, running over the last
/// day. Stored as `[per_minute, minutes]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "(f32, u32)", into = "(f32, u32)")]
pub struct Avoidable {
    /// Running mean of each minute's avoidable cold starts: the plain mean
    /// of the minutes seen up to a day of them, then a day's moving average.
    pub per_minute: f32,
    /// Minutes folded in, up to a day of them.
    pub minutes: u32,
}

impl From<(f32, u32)> for Avoidable {
    fn from((per_minute, minutes): (f32, u32)) -> Self {
        Avoidable {
            per_minute,
            minutes,
        }
    }
}

impl From<Avoidable> for (f32, u32) {
    fn from(a: Avoidable) -> Self {
        (significant(a.per_minute, 3), a.minutes)
    }
}

/// `x` to `digits` significant digits: what the state item stores of a
/// running figure (it is billed by its size, and a judgement against a
/// cost does not need more).
fn significant(x: f32, digits: usize) -> f32 {
    if x.is_finite() && x != 0.0 {
        format!("{x:.*e}", digits - 1).parse().unwrap_or(x)
    } else {
        x
    }
}

impl Avoidable {
    /// Folds in one minute: its real `peak` beside the highest real peak of
    /// the minutes before it whose sandboxes would still be alive
    /// (`alive_before`). Peaks are concurrency, so whole sandboxes are
    /// counted by rounding.
    pub(crate) fn add(&mut self, peak: f64, alive_before: f64) {
        let cold = (peak.round() - alive_before.round()).max(0.0);
        // Counted up to a day only: past it the weight stays the same, and
        // a constant stores in fewer bytes. A stored count is untrusted, so
        // it saturates rather than overflows.
        self.minutes = self.minutes.saturating_add(1).min(JUDGED_AFTER_MINUTES);
        let weight = 1.0 / f64::from(self.minutes);
        let next = self.per_minute as f64 + weight * (cold - self.per_minute as f64);
        self.per_minute = if next.is_finite() { next as f32 } else { 0.0 };
    }

    /// The avoidable cold starts an hour.
    pub fn per_hour(&self) -> f64 {
        self.per_minute as f64 * 60.0
    }

    /// Whether a day of minutes has been seen.
    pub fn judged(&self) -> bool {
        self.minutes >= JUDGED_AFTER_MINUTES
    }
}

/// The highest real peak of the last minutes, whose sandboxes are still
/// alive, as minutes are read in order.
pub(crate) struct Alive {
    life: usize,
    peaks: std::collections::VecDeque<f64>,
}

impl Alive {
    /// Sandboxes live for about `interval_s` after their last real call;
    /// `last_peak` is the recent real peak before the first minute read,
    /// `None` for a function read for the first time: it had its sandboxes
    /// before anyone watched, so its first minutes' peaks are not cold
    /// starts to avoid (one cold start at the first call would otherwise
    /// weigh for days).
    pub(crate) fn new(interval_s: u32, last_peak: Option<f64>) -> Self {
        let life = (interval_s as usize).div_ceil(60).max(1);
        let mut peaks = std::collections::VecDeque::with_capacity(life + 1);
        peaks.push_back(last_peak.unwrap_or(f64::INFINITY));
        Alive { life, peaks }
    }

    /// Folds the next minute's real `peak` into `avoidable`.
    pub(crate) fn see(&mut self, avoidable: &mut Avoidable, peak: f64) {
        avoidable.add(peak, self.peaks.iter().copied().fold(0.0, f64::max));
        self.peaks.push_back(peak);
        if self.peaks.len() > self.life {
            self.peaks.pop_front();
        }
    }
}

/// What warming a function is worth against what it costs, USD per hour.
/// Stored as `[value, cost]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "(f32, f32)", into = "(f32, f32)")]
pub struct Worth {
    /// The avoidable cold starts per hour at what one is worth.
    pub value_usd_h: f32,
    /// The pings and bookkeeping warming the current target would take.
    pub cost_usd_h: f32,
}

impl From<(f32, f32)> for Worth {
    fn from((value_usd_h, cost_usd_h): (f32, f32)) -> Self {
        Worth {
            value_usd_h,
            cost_usd_h,
        }
    }
}

impl From<Worth> for (f32, f32) {
    fn from(w: Worth) -> Self {
        (significant(w.value_usd_h, 2), significant(w.cost_usd_h, 2))
    }
}

impl Worth {
    /// Whether warming pays: worth at least what it costs. A stored figure
    /// that is not a number (an edited item) says nothing, and warms.
    pub fn pays(&self) -> bool {
        self.value_usd_h.partial_cmp(&self.cost_usd_h) != Some(std::cmp::Ordering::Less)
    }
}

/// What warming a function now would take: its pings, their spacing and
/// hold, its memory, the tick's read cadence and its INIT.
pub(crate) struct Inputs {
    /// Pings each warm would send (the target less what real traffic holds).
    pub pings: u32,
    /// Seconds between warms.
    pub interval_s: u32,
    /// Hold per ping, ms.
    pub hold_ms: u32,
    /// Configured memory, MB, when known.
    pub memory_mb: Option<u32>,
    /// The tick's read cadence (`None`: the tick reads each look).
    pub reads: Option<ReadCadence>,
    /// The slowest INIT lately measured, ms (0: none measured).
    pub init_ms: u32,
}

/// The figures for `avoidable` under `policy`, at list prices (what the
/// controller is billed); `None` before a day of minutes has been seen.
pub(crate) fn estimate(policy: &Policy, avoidable: &Avoidable, i: &Inputs) -> Option<Worth> {
    if !avoidable.judged() {
        return None;
    }
    let p = Prices::LIST;
    let init_ms = if i.init_ms == 0 {
        UNMEASURED_INIT_MS
    } else {
        i.init_ms as u64
    };
    let value = avoidable.per_hour() * policy.cold_start_worth_usd(init_ms);
    let warms_per_hour = 3_600.0 / i.interval_s.max(60) as f64;
    let memory = i.memory_mb.map_or(DEFAULT_MEMORY_MB, f64::from);
    let per_warm = p.pings_usd(
        i.pings.into(),
        memory,
        f64::from(i.pings) * f64::from(i.hold_ms),
    );
    let pings_usd = per_warm * warms_per_hour;
    // Reads are not counted: a warmed function whose forecast holds is
    // read once an hour, as one left cold is, or less often when it is
    // cheap to warm (`READ_EVERY_MAX_CHEAP_MINUTES`), so leaving it cold
    // saves no read. Counting a read every base
    // gap made warming look far dearer than it was: on the bundled day at
    // `wait_usd_per_s = 0.001` the estimates of the 562 functions left cold
    // summed to $0.024 an hour, and leaving them cold saved $0.06 over the
    // two days. Each read of a warmed function is a look with a state
    // write (about one unit), beyond the hourly one.
    let base = i.reads.map_or(WINDOW_MINUTES as u64, |r| r.every_minutes);
    let writes = reads_per_hour(base) - reads_per_hour(READ_EVERY_MAX_MINUTES.max(base));
    let bookkeeping = writes * p.dynamodb_write_unit_usd;
    Some(Worth {
        value_usd_h: value as f32,
        cost_usd_h: (pings_usd + bookkeeping) as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(minutes: u32, every: u32) -> Avoidable {
        let mut a = Avoidable::default();
        for k in 0..minutes {
            let peak = if k % every == 0 { 1.0 } else { 0.0 };
            a.add(peak, 0.0);
        }
        a
    }

    fn inputs(pings: u32, init_ms: u32) -> Inputs {
        Inputs {
            pings,
            interval_s: 240,
            hold_ms: 300,
            memory_mb: Some(512),
            reads: Some(ReadCadence {
                every_minutes: 15,
                lag_minutes: 2,
            }),
            init_ms,
        }
    }

    #[test]
    fn a_function_is_not_judged_before_a_day_of_windows() {
        let a = seen(JUDGED_AFTER_MINUTES - 1, 1);
        assert!(estimate(&Policy::default(), &a, &inputs(1, 500)).is_none());
        let a = seen(JUDGED_AFTER_MINUTES, 1);
        assert!(estimate(&Policy::default(), &a, &inputs(1, 500)).is_some());
    }

    #[test]
    fn a_rare_caller_with_a_quick_init_is_not_worth_warming_a_vpc_one_is() {
        // A call every two hours after the sandboxes died: 12 cold starts a
        // day that one sandbox warmed around the clock would avoid.
        let rare = seen(2 * JUDGED_AFTER_MINUTES, 120);
        // A caller whose second of waiting is worth a hundredth of a cent.
        let p = Policy {
            wait_usd_per_s: 0.000_1,
            ..Policy::default()
        };
        let quick = estimate(&p, &rare, &inputs(1, 200)).unwrap();
        assert!(!quick.pays(), "{quick:?}");
        let vpc = estimate(&p, &rare, &inputs(1, 10_000)).unwrap();
        assert!(vpc.pays(), "{vpc:?}");
        assert!(vpc.value_usd_h > 40.0 * quick.value_usd_h);
        // Nothing avoidable: never worth its pings.
        let steady = seen(JUDGED_AFTER_MINUTES, u32::MAX);
        assert!(!estimate(&p, &steady, &inputs(1, 10_000)).unwrap().pays());
    }

    #[test]
    fn the_cost_counts_pings_and_bookkeeping_and_the_value_follows_the_policy() {
        let a = seen(JUDGED_AFTER_MINUTES, 60);
        let p = Policy {
            cold_start_usd: Some(0.01),
            ..Policy::default()
        };
        let w = estimate(&p, &a, &inputs(4, 0)).unwrap();
        // One cold start an hour at a cent.
        assert!((w.value_usd_h - 0.01).abs() < 1e-4, "{w:?}");
        let more = estimate(&p, &a, &inputs(8, 0)).unwrap();
        let none = estimate(&p, &a, &inputs(0, 0)).unwrap();
        assert!(none.cost_usd_h > 0.0, "reads and writes remain");
        let per_ping_set = more.cost_usd_h - w.cost_usd_h;
        assert!((w.cost_usd_h - none.cost_usd_h - per_ping_set).abs() < 1e-9);
    }

    #[test]
    fn a_stored_count_at_its_limit_does_not_overflow() {
        let mut a = Avoidable {
            per_minute: 0.0,
            minutes: u32::MAX,
        };
        a.add(1.0, 0.0);
        assert_eq!(a.minutes, JUDGED_AFTER_MINUTES);
        assert!(a.per_minute > 0.0);
    }

    #[test]
    fn a_peak_that_live_sandboxes_cover_is_not_a_cold_start() {
        let mut a = Avoidable::default();
        a.add(3.0, 3.0);
        a.add(5.0, 3.0);
        assert_eq!(a.per_minute, 1.0);
        let w = Worth {
            value_usd_h: f32::NAN,
            cost_usd_h: 1.0,
        };
        assert!(w.pays(), "a figure that is not a number says nothing");
    }
}
