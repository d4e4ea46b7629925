//! Real demand from CloudWatch minutes, with forewarm's own pings taken out.
//!
//! Pings are invocations: they raise `ConcurrentExecutions` and `Invocations`
//! like real traffic. If they reached the forecaster, warming N would make it
//! forecast N, and the forecast would feed on itself. Every warm is recorded in
//! the state ([`WarmRecord`]); for each minute a warm touched, its pings are
//! subtracted before the minute becomes demand.

use serde::{Deserialize, Serialize};

/// One minute of a function's CloudWatch metrics. `None` is "no datapoint".
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MinuteMetrics {
    /// Epoch minute (epoch ms / 60 000).
    pub minute: u64,
    /// `ConcurrentExecutions`, Maximum.
    pub concurrency_max: Option<f64>,
    /// `Invocations`, Sum.
    pub invocations: Option<f64>,
    /// `Duration`, Average, milliseconds.
    pub duration_avg_ms: Option<f64>,
    /// The shims' `Forewarm/ColdStart`, Sum: real requests that paid an init.
    pub cold_starts: Option<f64>,
}

impl MinuteMetrics {
    /// A minute in which nothing ran (Lambda emits no datapoints then).
    pub fn idle(minute: u64) -> Self {
        MinuteMetrics {
            minute,
            concurrency_max: Some(0.0),
            invocations: Some(0.0),
            ..MinuteMetrics::default()
        }
    }
}

/// A warm forewarm sent: enough to find and subtract its pings later.
/// Stored as an array `[at_ms, n, hold_ms, reached, busy]`: the state item
/// is billed per KB written, and it holds dozens of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u64, u32, u32, u32, u32)", into = "(u64, u32, u32, u32, u32)")]
pub struct WarmRecord {
    /// When the fan-out started, epoch ms.
    pub at_ms: u64,
    /// Pings sent.
    pub n: u32,
    /// How long each ping held its sandbox, ms.
    pub hold_ms: u32,
    /// Sandboxes warm after it: those the pings reached (the whole target
    /// until the report) plus those real traffic was taken to be using.
    pub reached: u32,
    /// Sandboxes real traffic was taken to be using when it went out (the
    /// part of the target it did not ping).
    pub busy: u32,
}

impl WarmRecord {
    /// Whether a minute of this warm (its pings, held, and the minute its
    /// last one may start in) comes at or after `read_until_ms`, the end
    /// of the minutes read: its pings are still to be taken out of a read.
    pub(crate) fn unread(&self, read_until_ms: u64) -> bool {
        self.at_ms + self.hold_ms as u64 + 62_000 > read_until_ms
    }
}

impl From<(u64, u32, u32, u32, u32)> for WarmRecord {
    fn from((at_ms, n, hold_ms, reached, busy): (u64, u32, u32, u32, u32)) -> Self {
        WarmRecord {
            at_ms,
            n,
            hold_ms,
            reached,
            busy,
        }
    }
}

impl From<WarmRecord> for (u64, u32, u32, u32, u32) {
    fn from(w: WarmRecord) -> Self {
        (w.at_ms, w.n, w.hold_ms, w.reached, w.busy)
    }
}

/// Slack after a warm's nominal end: pings start over a spread and return
/// over network latency, and CloudWatch may count them in the next minute.
const PING_SLACK_MS: u64 = 2_000;

impl WarmRecord {
    fn end_ms(&self) -> u64 {
        self.at_ms + self.hold_ms as u64 + PING_SLACK_MS
    }

    fn touches(&self, minute: u64) -> bool {
        let (start, end) = (minute * 60_000, (minute + 1) * 60_000);
        self.at_ms < end && self.end_ms() > start
    }
}

/// Peak real concurrency in one minute.
///
/// Untouched minutes are `ConcurrentExecutions` Maximum, or, where Lambda
/// does not report it, Little's law on invocations and duration (at least one
/// sandbox if anything ran). A minute a warm touched is censored: the real
/// peak lies between the maximum less the pings and the maximum, because the
/// pings held sandboxes only for their hold, not the whole minute. The lower
/// end is taken (pings alone never look like demand); the window's peak comes
/// from its untouched minutes wherever it has them, which it does unless
/// warms come every minute. What stays above the pings is real work, also a
/// long request that started in an earlier minute and so has no invocation in
/// this one.
#[cfg(test)]
pub(crate) fn real_demand(m: &MinuteMetrics, warms: &[WarmRecord]) -> f64 {
    bounded(corrected(m, pings_in(m.minute, warms)))
}

/// What one minute says of real traffic once the pings are taken out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RealUse {
    /// Peak real concurrency ([`real_demand`]).
    pub demand: f64,
    /// Average real concurrency (Little's law: real invocations times their
    /// average duration, over the minute). A minute read without its
    /// duration figure (not a detail read) takes the usual duration given;
    /// one read without its invocation figure (a routine read has only the
    /// concurrency series) has none.
    pub busy: Option<f64>,
    /// The average duration of the minute's real invocations, ms, when the
    /// minute has a duration figure and real calls.
    pub duration_ms: Option<f64>,
}

/// [`RealUse`] of one minute, finding the pings in it once.
pub(crate) fn real_use(m: &MinuteMetrics, warms: &[WarmRecord], usual_duration_ms: f64) -> RealUse {
    let (pings, ping_ms) = pings_in(m.minute, warms);
    let invocations = m.invocations.unwrap_or(0.0).max(0.0);
    let real_ms = match m.duration_avg_ms {
        Some(avg) => (invocations * avg.max(0.0) - ping_ms).max(0.0),
        None => (invocations - pings).max(0.0) * usual_duration_ms.max(0.0),
    };
    let busy = if m.invocations.is_none() && m.concurrency_max.is_some() {
        None
    } else if invocations > pings {
        Some(bounded(real_ms / 60_000.0))
    } else {
        Some(0.0)
    };
    let real = invocations - pings;
    let duration_ms = m
        .duration_avg_ms
        .and(m.invocations)
        .map(|_| real_ms / real)
        .filter(|d| real >= 1.0 && d.is_finite())
        .map(|d| d.min(MAX_DURATION_MS));
    RealUse {
        demand: bounded(corrected(m, (pings, ping_ms))),
        busy,
        duration_ms,
    }
}

fn bounded(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, super::forecast::MAX_DEMAND)
    } else {
        0.0
    }
}

/// Lambda's longest timeout, ms: no real invocation lasts longer.
pub(crate) const MAX_DURATION_MS: f64 = 900_000.0;

fn pings_in(minute: u64, warms: &[WarmRecord]) -> (f64, f64) {
    warms
        .iter()
        .filter(|w| w.touches(minute))
        .fold((0.0, 0.0), |(n, ms), w| {
            (n + w.n as f64, ms + w.n as f64 * w.hold_ms as f64)
        })
}

fn corrected(m: &MinuteMetrics, (pings, ping_ms): (f64, f64)) -> f64 {
    let invocations = m.invocations.unwrap_or(0.0).max(0.0);
    let real_inv = (invocations - pings).max(0.0);
    let little = |inv: f64, total_ms: f64| {
        if inv <= 0.0 {
            0.0
        } else {
            (total_ms / 60_000.0).ceil().max(1.0)
        }
    };
    match m.concurrency_max {
        Some(c) if c.is_finite() => (c - pings).max(0.0),
        _ => {
            let real_ms = (invocations * m.duration_avg_ms.unwrap_or(0.0) - ping_ms).max(0.0);
            little(real_inv, real_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(m: u64, conc: f64, inv: f64, dur: f64) -> MinuteMetrics {
        MinuteMetrics {
            minute: m,
            concurrency_max: Some(conc),
            invocations: Some(inv),
            duration_avg_ms: Some(dur),
            ..MinuteMetrics::default()
        }
    }

    #[test]
    fn untouched_minutes_are_the_reported_maximum() {
        assert_eq!(real_demand(&minute(5, 7.0, 300.0, 200.0), &[]), 7.0);
        assert_eq!(real_demand(&MinuteMetrics::idle(5), &[]), 0.0);
    }

    #[test]
    fn without_concurrency_littles_law_estimates_it() {
        let m = MinuteMetrics {
            minute: 1,
            invocations: Some(600.0),
            duration_avg_ms: Some(500.0),
            ..Default::default()
        };
        assert_eq!(real_demand(&m, &[]), 5.0);
        let one = MinuteMetrics {
            minute: 1,
            invocations: Some(1.0),
            duration_avg_ms: Some(20.0),
            ..Default::default()
        };
        assert_eq!(real_demand(&one, &[]), 1.0);
    }

    #[test]
    fn a_minute_of_pings_alone_is_no_demand() {
        let warm = WarmRecord {
            at_ms: 10 * 60_000 + 5_000,
            n: 20,
            hold_ms: 400,
            reached: 20,
            busy: 0,
        };
        assert_eq!(real_demand(&minute(10, 20.0, 20.0, 400.0), &[warm]), 0.0);
        // A warm spanning a minute boundary is subtracted on both sides.
        let late = WarmRecord {
            at_ms: 11 * 60_000 - 500,
            n: 20,
            hold_ms: 400,
            reached: 20,
            busy: 0,
        };
        assert_eq!(real_demand(&minute(11, 20.0, 20.0, 400.0), &[late]), 0.0);
        assert_eq!(
            real_demand(&minute(12, 3.0, 90.0, 100.0), &[late]),
            3.0,
            "untouched"
        );
    }

    #[test]
    fn real_traffic_beside_pings_survives_the_correction() {
        let warm = WarmRecord {
            at_ms: 10 * 60_000,
            n: 10,
            hold_ms: 500,
            reached: 10,
            busy: 0,
        };
        // 10 pings on top of 4 real sandboxes; 240 real calls of 1 s.
        let m = minute(10, 14.0, 250.0, (240.0 * 1_000.0 + 10.0 * 500.0) / 250.0);
        assert_eq!(real_demand(&m, &[warm]), 4.0);
    }

    #[test]
    fn a_long_request_running_beside_pings_is_still_demand() {
        let warm = WarmRecord {
            at_ms: 10 * 60_000,
            n: 5,
            hold_ms: 500,
            reached: 5,
            busy: 0,
        };
        // Only the 5 pings started this minute, but 6 ran at once: one real
        // request started earlier and is still running.
        assert_eq!(real_demand(&minute(10, 6.0, 5.0, 500.0), &[warm]), 1.0);
        // The gauge alone (no invocation datapoint), as CloudWatch reports a
        // minute a request runs through.
        let gauge = MinuteMetrics {
            minute: 10,
            concurrency_max: Some(6.0),
            ..MinuteMetrics::default()
        };
        assert_eq!(real_demand(&gauge, &[warm]), 1.0);
        assert_eq!(real_demand(&minute(10, 5.0, 5.0, 500.0), &[warm]), 0.0);
    }
}
