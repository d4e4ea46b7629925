//! Scoring the forecaster alone on a trace: what the controller would have
//! asked for, window by window, against what came.
//!
//! Each function's minutes become demand by Little's law (invocations times
//! average duration, at least one sandbox if anything ran), are fed to a fresh
//! [`Forecaster`] in order, and before each window the forecaster is asked for
//! the window's peak at the policy's quantile (no feedback margin: this is
//! the forecaster's own accuracy, which `forewarm simulate` then puts into
//! the whole loop).

use serde::Serialize;

use crate::decision::Forecaster;
use crate::decision::policy::Policy;
use crate::trace::{FunctionTrace, Trace};

/// One window of one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowRow {
    /// Minute the window starts at, from the trace's start.
    pub window_start_min: u64,
    /// Sandboxes the forecaster asked for.
    pub forecast: u32,
    /// The window's real peak concurrency.
    pub realized_peak: u32,
}

/// The forecaster's score on a trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct ForecastScore {
    /// Functions replayed.
    pub functions: usize,
    /// Windows replayed.
    pub windows: u64,
    /// Windows scored: those after a function's first hour of history.
    pub scored_windows: u64,
    /// Scored windows with any demand.
    pub active_windows: u64,
    /// Scored windows where the forecast was below the realized peak.
    pub under_windows: u64,
    /// `under_windows / scored_windows`.
    pub under_share: f64,
    /// `under_windows / active_windows`.
    pub under_share_active: f64,
    /// Mean of `forecast - realized` over scored windows where it is positive
    /// (sandboxes warmed for nothing).
    pub mean_over: f64,
    /// Mean of `max(0, forecast - realized)` over all scored windows.
    pub mean_excess: f64,
    /// Sum of realized peaks over scored windows (scale for the above).
    pub realized_sum: u64,
    /// Sum of forecasts over scored windows.
    pub forecast_sum: u64,
}

/// Windows of history a function needs before its windows are scored: one
/// hour, so that a brand-new function's first call does not count against the
/// forecaster, which cannot know it.
pub const HISTORY_WINDOWS: u64 = 12;

/// Replays every function; `emit` sees each window as it is scored or not.
pub fn replay(
    trace: &Trace,
    policy: &Policy,
    window_minutes: u32,
    mut emit: impl FnMut(&FunctionTrace, &WindowRow),
) -> ForecastScore {
    let w = window_minutes.max(1) as u64;
    let mut s = ForecastScore {
        functions: trace.functions.len(),
        ..ForecastScore::default()
    };
    let (mut over_n, mut over_sum) = (0u64, 0u64);
    for f in &trace.functions {
        let demand: Vec<f64> = f
            .dense(trace.minutes)
            .into_iter()
            .map(|n| f.concurrency(n))
            .collect();
        let mut fc = Forecaster::new(policy);
        let mut seen_from: Option<u64> = None;
        let mut start = 0u64;
        while start < trace.minutes as u64 {
            let end = (start + w).min(trace.minutes as u64);
            let forecast = fc.issue(start, (w - 1) as u32).target;
            let realized = demand[start as usize..end as usize]
                .iter()
                .fold(0.0f64, |a, &b| a.max(b)) as u32;
            for m in start..end {
                fc.observe_minute(m, demand[m as usize], policy.alpha);
            }
            fc.close_before(end, policy.alpha);
            let row = WindowRow {
                window_start_min: start,
                forecast,
                realized_peak: realized,
            };
            emit(f, &row);
            s.windows += 1;
            if seen_from.is_some_and(|first| start >= first + HISTORY_WINDOWS * 5) {
                s.scored_windows += 1;
                s.realized_sum += realized as u64;
                s.forecast_sum += forecast as u64;
                if realized > 0 {
                    s.active_windows += 1;
                }
                if forecast < realized {
                    s.under_windows += 1;
                } else if forecast > realized {
                    over_n += 1;
                    over_sum += (forecast - realized) as u64;
                }
            }
            if seen_from.is_none() && realized > 0 {
                seen_from = Some(start);
            }
            start = end;
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    s.under_share = ratio(s.under_windows, s.scored_windows);
    s.under_share_active = ratio(s.under_windows, s.active_windows);
    s.mean_over = ratio(over_sum, over_n);
    s.mean_excess = ratio(over_sum, s.scored_windows);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(active: Vec<(u32, u32)>) -> FunctionTrace {
        FunctionTrace {
            id: "f".into(),
            active,
            duration_ms: 60_000.0,
            memory_mb: 128,
        }
    }

    #[test]
    fn a_steady_function_is_covered_once_it_has_history() {
        let t = Trace {
            functions: vec![function((0..2_880).map(|m| (m, 4)).collect())],
            minutes: 2_880,
        };
        let mut rows = Vec::new();
        let s = replay(&t, &Policy::default(), 5, |_, r| rows.push(*r));
        assert_eq!(rows.len(), 576);
        assert_eq!(rows[0].forecast, 0, "nothing known before the first minute");
        assert_eq!(s.under_windows, 0, "{s:?}");
        assert!(
            rows.iter()
                .skip(1)
                .all(|r| r.realized_peak == 4 && r.forecast >= 4)
        );
    }

    #[test]
    fn higher_quantiles_under_provision_less() {
        // A noisy function: demand cycles 1..=9 with a 7-minute period.
        let act: Vec<(u32, u32)> = (0..4_320).map(|m| (m, 1 + (m * 5 % 7) * 4 / 3)).collect();
        let t = Trace {
            functions: vec![function(act)],
            minutes: 4_320,
        };
        let at = |q| {
            replay(
                &t,
                &Policy {
                    quantile: q,
                    ..Policy::default()
                },
                5,
                |_, _| {},
            )
        };
        let (lo, hi) = (at(0.6), at(0.99));
        assert!(hi.under_share <= lo.under_share, "{lo:?} {hi:?}");
        assert!(hi.mean_excess >= lo.mean_excess);
    }
}
