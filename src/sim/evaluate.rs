//! The controller's forecasts, scored against what real traffic then did.
//!
//! `forewarm forecast` runs the real controller over the simulated platform,
//! as `forewarm simulate` does (its pings, CloudWatch's view of them, the
//! metrics' lag and its own read cadence), and keeps two things per function:
//! the target in force for each window (the forecast the window began with,
//! before any cap) and the peak concurrency of *real* requests in each minute,
//! pings not counted. A window for which the controller issued nothing (an
//! idle function resting until its next look) was forecast as zero: that is
//! what the controller committed to.
//!
//! Beside it, on the same windows and the same truth, three baselines that a
//! user could build in an afternoon, each given every minute up to the
//! metrics' lag before the window starts (more than the controller reads, so
//! the comparison does not flatter forewarm):
//!
//! * `last_window`: the peak of the last window's worth of known minutes;
//! * `hour_max`: the peak of the last hour of known minutes;
//! * `seasonal_naive`: the peak of the same window a day before.
//!
//! Each is scored by the pinball (quantile) loss at the policy's quantile,
//! `q·(peak − f)⁺ + (1 − q)·(f − peak)⁺` per window, the share of windows it
//! under-provisioned, and the sandboxes it left short or warmed for nothing.

use serde::Serialize;

use crate::decision::policy::WINDOW_MINUTES;

use super::ports::NO_FORECAST;

/// What one run of the controller forecast, and what came.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Per function, the target in force for each window
    /// ([`NO_FORECAST`] where none was issued).
    pub targets: Vec<Vec<u32>>,
    /// Per function, the peak concurrency of real requests in each minute.
    pub real_peaks: Vec<Vec<u16>>,
    /// The first minute of the report period (earlier plays are learning).
    pub report_from_minute: usize,
    /// Minutes a minute's metrics take to be known.
    pub lag_minutes: usize,
}

/// Minutes of a function's history before its windows are scored: a
/// brand-new function's first call is nobody's forecast.
pub(crate) const HISTORY_MINUTES: usize = 60;

/// The day a seasonal naive forecast looks back.
const DAY_MINUTES: usize = 1_440;

/// The forecasters compared, in report order.
pub(crate) const FORECASTERS: [&str; 4] = ["forewarm", "last_window", "hour_max", "seasonal_naive"];

/// One forecaster's score over the scored windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub(crate) struct Score {
    /// Mean pinball loss per window at the quantile, in sandboxes.
    pub pinball: f64,
    /// Share of scored windows whose real peak exceeded the forecast.
    pub under_share: f64,
    /// The same among windows with any real demand.
    pub under_share_active: f64,
    /// Sandboxes short of the real peak, per window.
    pub short_per_window: f64,
    /// Sandboxes forecast beyond the real peak, per window.
    pub over_per_window: f64,
    /// Sum of the forecasts over scored windows.
    pub forecast_sum: u64,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub(crate) struct ForecastReport {
    /// The quantile the loss is taken at (the policy's).
    pub quantile: f64,
    /// Functions replayed.
    pub functions: usize,
    /// Windows scored: in the report period, after a function's first hour.
    pub scored_windows: u64,
    /// Scored windows with any real demand.
    pub active_windows: u64,
    /// Scored windows the controller issued a forecast for.
    pub issued_windows: u64,
    /// Sum of the real peaks over scored windows (the scale of the above).
    pub realized_sum: u64,
    /// Window length, minutes.
    pub window_minutes: u32,
    /// The metrics' lag given to the baselines, minutes.
    pub lag_minutes: usize,
    /// Scores by forecaster, in the order of [`FORECASTERS`].
    pub forecasters: Vec<Named>,
    /// Scored windows the controller issued a forecast for that had real
    /// demand.
    pub issued_active_windows: u64,
    /// The same scores over only the windows the controller issued a
    /// forecast for: the forecaster apart from the functions it let rest
    /// (their windows count as zero above). Every forecaster is scored on
    /// the same windows.
    pub issued: Vec<Named>,
}

/// A forecaster's name and score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Named {
    /// One of [`FORECASTERS`].
    pub name: &'static str,
    /// Its score.
    #[serde(flatten)]
    pub score: Score,
}

/// One scored window of one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    /// Function index in the trace.
    pub function: usize,
    /// Minute the window starts at, from the start of the run.
    pub window_start_min: usize,
    /// Each forecaster's forecast, in the order of [`FORECASTERS`].
    pub forecasts: [u32; 4],
    /// The window's real peak.
    pub realized_peak: u32,
}

fn peak(minutes: &[u16], from: usize, until: usize) -> u32 {
    let until = until.min(minutes.len());
    minutes
        .get(from.min(until)..until)
        .map_or(0, |m| m.iter().copied().max().unwrap_or(0) as u32)
}

/// The forecasts every forecaster makes for the window starting at minute
/// `s`, knowing `peaks` before `s − lag`.
fn forecasts(peaks: &[u16], target: u32, s: usize, lag: usize) -> [u32; 4] {
    let w = WINDOW_MINUTES as usize;
    let known = s.saturating_sub(lag);
    let forewarm = if target == NO_FORECAST { 0 } else { target };
    let seasonal = match s.checked_sub(DAY_MINUTES) {
        Some(a) => peak(peaks, a, a + w),
        None => 0,
    };
    [
        forewarm,
        peak(peaks, known.saturating_sub(w), known),
        peak(peaks, known.saturating_sub(60), known),
        seasonal,
    ]
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    loss: f64,
    under: u64,
    short: u64,
    over: u64,
    forecast: u64,
}

/// Scores every forecaster on `record` at quantile `q`; `emit` sees each
/// scored window.
pub(crate) fn score(record: &Record, q: f64, mut emit: impl FnMut(&Row)) -> ForecastReport {
    let w = WINDOW_MINUTES as usize;
    let mut report = ForecastReport {
        quantile: q,
        functions: record.real_peaks.len(),
        window_minutes: WINDOW_MINUTES,
        lag_minutes: record.lag_minutes,
        ..ForecastReport::default()
    };
    let mut sums = [Sums::default(); 4];
    let mut issued = [Sums::default(); 4];
    for (i, peaks) in record.real_peaks.iter().enumerate() {
        let Some(first) = peaks.iter().position(|&p| p > 0) else {
            continue;
        };
        let from = record.report_from_minute.max(first + HISTORY_MINUTES);
        let targets = record.targets.get(i).map_or(&[][..], Vec::as_slice);
        for (k, s) in (0..peaks.len()).step_by(w).enumerate() {
            if s < from {
                continue;
            }
            let y = peak(peaks, s, s + w);
            let target = targets.get(k).copied().unwrap_or(NO_FORECAST);
            let f = forecasts(peaks, target, s, record.lag_minutes);
            report.scored_windows += 1;
            report.realized_sum += y as u64;
            report.active_windows += u64::from(y > 0);
            let was_issued = target != NO_FORECAST;
            report.issued_windows += u64::from(was_issued);
            report.issued_active_windows += u64::from(was_issued && y > 0);
            for (sum, &f) in sums.iter_mut().zip(&f) {
                sum.add(q, y, f);
            }
            if was_issued {
                for (sum, &f) in issued.iter_mut().zip(&f) {
                    sum.add(q, y, f);
                }
            }
            emit(&Row {
                function: i,
                window_start_min: s,
                forecasts: f,
                realized_peak: y,
            });
        }
    }
    report.forecasters = named(&sums, report.scored_windows, report.active_windows);
    report.issued = named(&issued, report.issued_windows, report.issued_active_windows);
    report
}

impl Sums {
    /// One window: real peak `y`, forecast `f`, loss at quantile `q`.
    fn add(&mut self, q: f64, y: u32, f: u32) {
        let (short, over) = (y.saturating_sub(f), f.saturating_sub(y));
        self.loss += q * short as f64 + (1.0 - q) * over as f64;
        self.short += short as u64;
        self.over += over as u64;
        self.forecast += f as u64;
        self.under += u64::from(short > 0);
    }
}

/// Each forecaster's score from its sums over `windows` windows, `active`
/// of them with demand.
fn named(sums: &[Sums; 4], windows: u64, active: u64) -> Vec<Named> {
    let per = |x: f64, n: u64| if n == 0 { 0.0 } else { x / n as f64 };
    FORECASTERS
        .iter()
        .zip(sums)
        .map(|(name, s)| {
            let score = Score {
                pinball: per(s.loss, windows),
                under_share: per(s.under as f64, windows),
                // A short window always had demand.
                under_share_active: per(s.under as f64, active),
                short_per_window: per(s.short as f64, windows),
                over_per_window: per(s.over as f64, windows),
                forecast_sum: s.forecast,
            };
            Named { name, score }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of one function: its minute peaks and the controller's
    /// target for every window.
    fn record(peaks: Vec<u16>, target: impl Fn(usize) -> u32) -> Record {
        let windows = peaks.len().div_ceil(WINDOW_MINUTES as usize);
        Record {
            targets: vec![(0..windows).map(target).collect()],
            real_peaks: vec![peaks],
            report_from_minute: 0,
            lag_minutes: 2,
        }
    }

    fn of<'a>(r: &'a ForecastReport, name: &str) -> &'a Score {
        &r.forecasters.iter().find(|n| n.name == name).unwrap().score
    }

    #[test]
    fn a_forecast_that_matches_the_truth_loses_nothing() {
        let r = record(vec![3; 600], |_| 3);
        let s = score(&r, 0.95, |_| {});
        assert_eq!(s.scored_windows, 108, "the first hour is history");
        let f = of(&s, "forewarm");
        assert_eq!(
            (f.pinball, f.under_share, f.over_per_window),
            (0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn losses_weigh_shortfalls_by_the_quantile() {
        // Truth 4 everywhere; a forecast of 2 is short by 2 in every window,
        // one of 7 over by 3.
        let short = score(&record(vec![4; 600], |_| 2), 0.9, |_| {});
        let over = score(&record(vec![4; 600], |_| 7), 0.9, |_| {});
        let (a, b) = (of(&short, "forewarm"), of(&over, "forewarm"));
        assert!((a.pinball - 0.9 * 2.0).abs() < 1e-9, "{a:?}");
        assert!((b.pinball - 0.1 * 3.0).abs() < 1e-9, "{b:?}");
        assert_eq!((a.under_share, b.under_share), (1.0, 0.0));
        assert_eq!((a.short_per_window, b.over_per_window), (2.0, 3.0));
    }

    #[test]
    fn a_window_with_no_forecast_issued_counts_as_zero() {
        let r = record(vec![1; 600], |_| NO_FORECAST);
        let s = score(&r, 0.95, |_| {});
        assert_eq!(s.issued_windows, 0);
        assert_eq!(of(&s, "forewarm").under_share, 1.0);
    }

    #[test]
    fn the_issued_score_leaves_out_the_windows_the_controller_let_rest() {
        // A peak of 2 everywhere; a target of 2 in every other window and
        // nothing issued in the others.
        let r = record(vec![2; 600], |k| if k % 2 == 0 { 2 } else { NO_FORECAST });
        let s = score(&r, 0.95, |_| {});
        assert_eq!(s.issued_windows, 54);
        assert_eq!(s.issued_active_windows, 54);
        let all = of(&s, "forewarm");
        assert!((all.under_share - 0.5).abs() < 1e-9, "{all:?}");
        let issued = &s.issued[0];
        assert_eq!(issued.name, "forewarm");
        assert_eq!((issued.score.pinball, issued.score.under_share), (0.0, 0.0));
        // The baselines are scored on the same windows.
        assert_eq!(s.issued[1].score.forecast_sum, 54 * 2);
    }

    #[test]
    fn baselines_know_only_minutes_older_than_the_lag() {
        // One spike of 9 at minute 118: the window starting at 120 cannot
        // know it (lag 2), the one at 125 does, through both recent baselines.
        let mut peaks = vec![1u16; 2_000];
        peaks[118] = 9;
        let mut rows = Vec::new();
        score(&record(peaks, |_| 1), 0.95, |r| rows.push(*r));
        let at = |s: usize| rows.iter().find(|r| r.window_start_min == s).unwrap();
        assert_eq!(at(115).realized_peak, 9);
        assert_eq!(at(120).forecasts[1..3], [1, 1], "{:?}", at(120));
        assert_eq!(at(125).forecasts[1..3], [9, 9]);
        assert_eq!(at(130).forecasts[1..3], [1, 9], "the hour still holds it");
        assert_eq!(at(115 + DAY_MINUTES).forecasts[3], 9, "a day later");
    }
}
