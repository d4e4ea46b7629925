//! The delay tuner: how long each ping must hold its sandbox so that N
//! concurrent pings reach N distinct sandboxes, and no longer (a held
//! sandbox is one a real request cannot use).

use serde::{Deserialize, Serialize};

use super::pings::ReportSummary;
use super::policy::Policy;

/// How the delay tuner moved the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelayChange {
    /// Fewer distinct sandboxes than identified pings: hold longer.
    Raised,
    /// Every ping found its own sandbox with time to spare: hold less.
    Lowered,
    /// Overlap held and the margin is right.
    Kept,
    /// Too few identified replies to judge.
    NoEvidence,
}

/// Hold needed per ms of measured start spread: every ping must still hold
/// its sandbox when the last one starts, plus a quarter for the next fan-out
/// being a little slower.
const SPREAD_FACTOR: f64 = 1.25;
/// Fixed allowance for clock differences between sandboxes and scheduling.
const SPREAD_SLACK_MS: f64 = 30.0;

/// Sets the next hold from a warm report.
///
/// N pings reach N sandboxes only if each is still running when the last one
/// starts, so the hold must cover the start spread. The target is the measured
/// spread plus margin; a collapse (two pings on one sandbox) raises the hold by
/// half at once, slack lowers it by a fifth per warm, so it settles from above.
pub fn tune_delay(policy: &Policy, current_ms: u32, s: &ReportSummary) -> (u32, DelayChange) {
    let identified = identified(s);
    let clamp = |x: f64| (x.round() as u32).clamp(policy.delay_ms_min, policy.delay_ms_max);
    if identified < 2 || identified * 2 < s.ok {
        return (
            current_ms.clamp(policy.delay_ms_min, policy.delay_ms_max),
            DelayChange::NoEvidence,
        );
    }
    let target = covering(s.spread_ms as f64);
    let current = current_ms as f64;
    if s.distinct < identified {
        let next = clamp((current * 1.5).max(target));
        (
            next,
            if next > current_ms {
                DelayChange::Raised
            } else {
                DelayChange::Kept
            },
        )
    } else if current > target {
        let next = clamp((current * 0.8).max(target));
        (
            next,
            if next < current_ms {
                DelayChange::Lowered
            } else {
                DelayChange::Kept
            },
        )
    } else {
        let next = clamp(target);
        (
            next,
            if next > current_ms {
                DelayChange::Raised
            } else {
                DelayChange::Kept
            },
        )
    }
}

/// Answered pings that named their sandbox.
fn identified(s: &ReportSummary) -> u32 {
    s.ok - s.anonymous
}

/// The hold that covers a start spread of `spread_ms`, with its margins.
fn covering(spread_ms: f64) -> f64 {
    spread_ms * SPREAD_FACTOR + SPREAD_SLACK_MS
}

/// The start-to-start gap of a warm's pings, µs: its measured start spread
/// over its identified pings less one. `None` from fewer than two.
pub(crate) fn fan_out_us(s: &ReportSummary) -> Option<u32> {
    let identified = identified(s);
    (identified >= 2).then(|| {
        let us = s.spread_ms.saturating_mul(1_000) / u64::from(identified - 1);
        us.min(u64::from(FAN_OUT_MAX_US)) as u32
    })
}

/// Largest fan-out gap believed, µs: a second between two pings' starts is
/// no fan-out but a stall, and a corrupted state must not hold pings long.
pub(crate) const FAN_OUT_MAX_US: u32 = 1_000_000;

/// The hold a warm of `n` pings asks for: the tuned hold, or longer when
/// `n` pings at the measured fan-out (`fan_out_us`, 0 when not measured)
/// spread further than the warm the hold was tuned on. The tuner learns
/// from the last warm only, so a function warmed one sandbox at a time for
/// hours had tuned its hold down to the policy's floor; its first warm of
/// 100 then spread over 200 ms, its pings met the sandboxes the first ones
/// had freed, and a quarter of the target was warmed.
pub(crate) fn hold_for(policy: &Policy, tuned_ms: u32, fan_out_us: u32, n: u32) -> u32 {
    let spread_ms = f64::from(fan_out_us) / 1_000.0 * f64::from(n.saturating_sub(1));
    let need = covering(spread_ms);
    (f64::from(tuned_ms)
        .max(need)
        .round()
        .min(f64::from(u32::MAX)) as u32)
        .clamp(policy.delay_ms_min, policy.delay_ms_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::pings::{PingFailure, PingOutcome, WarmReport};

    /// A warm where `distinct` sandboxes answered `n` pings, starts spread
    /// evenly over `spread_ms`.
    fn report(n: u32, distinct: u32, spread_ms: u64, delay_ms: u32) -> WarmReport {
        let pings = (0..n)
            .map(|i| {
                let start = 1_000 + spread_ms * i as u64 / (n.max(2) - 1) as u64;
                PingOutcome::answered(format!("sb-{}", i % distinct), true, start)
            })
            .collect();
        WarmReport {
            requested: n,
            delay_ms,
            sent_at_ms: 1_000,
            pings,
        }
    }

    #[test]
    fn summaries_count_distinct_cold_and_failed() {
        let mut r = report(4, 2, 90, 300);
        r.pings.push(PingOutcome::anonymous());
        r.pings.push(PingOutcome::failed(PingFailure::Timeout));
        r.pings.push(PingOutcome::failed(PingFailure::BadReply));
        r.pings.push(PingOutcome::failed(PingFailure::BadReply));
        let s = r.summary();
        assert_eq!(
            (s.ok, s.distinct, s.anonymous, s.cold, s.failed, s.spread_ms),
            (5, 2, 1, 4, 3, 90)
        );
        assert_eq!((s.failures.timeout, s.failures.bad_reply), (1, 2));
        let words = s.failures.describe();
        assert!(
            words.contains("1 timed out")
                && words.contains("2 no forewarm reply")
                && words.contains("is the shim installed"),
            "{words}"
        );
    }

    #[test]
    fn a_collapse_raises_the_delay_at_once() {
        let (d, why) = tune_delay(&Policy::default(), 100, &report(20, 12, 400, 100).summary());
        assert_eq!(why, DelayChange::Raised);
        assert!(d >= 530, "covers 1.25 x 400 ms + slack: {d}");
    }

    #[test]
    fn slack_lowers_the_delay_gently_toward_the_spread() {
        let (d, why) = tune_delay(
            &Policy::default(),
            1_000,
            &report(20, 20, 100, 1_000).summary(),
        );
        assert_eq!((d, why), (800, DelayChange::Lowered));
        let mut cur = 1_000;
        for _ in 0..30 {
            cur = tune_delay(&Policy::default(), cur, &report(20, 20, 100, cur).summary()).0;
        }
        assert_eq!(cur, 155, "settles at 1.25 x spread + 30 ms");
    }

    #[test]
    fn a_larger_warm_holds_for_its_own_fan_out_within_the_policy() {
        let p = Policy::default();
        // 20 pings spread over 95 ms: 5 ms from one start to the next.
        let us = fan_out_us(&report(20, 20, 95, 150).summary());
        assert_eq!(us, Some(5_000));
        assert_eq!(fan_out_us(&report(1, 1, 0, 150).summary()), None);
        // A warm of 100 spreads over 495 ms: 1.25 x that + 30 ms.
        assert_eq!(hold_for(&p, 150, 5_000, 100), 649);
        assert_eq!(hold_for(&p, 150, 5_000, 3), 150, "the tuned hold covers it");
        assert_eq!(hold_for(&p, 150, 0, 100), 150, "fan-out not measured");
        assert_eq!(hold_for(&p, 150, FAN_OUT_MAX_US, 1_000), p.delay_ms_max);
        assert_eq!(hold_for(&p, 0, 0, 1), p.delay_ms_min);
    }

    #[test]
    fn the_delay_stays_within_the_policy() {
        let p = Policy {
            delay_ms_min: 200,
            delay_ms_max: 600,
            ..Policy::default()
        };
        assert_eq!(
            tune_delay(&p, 100, &report(10, 10, 0, 100).summary()).0,
            200
        );
        assert_eq!(
            tune_delay(&p, 500, &report(10, 3, 2_000, 500).summary()).0,
            600
        );
    }

    #[test]
    fn anonymous_replies_are_no_evidence() {
        let r = WarmReport {
            requested: 5,
            delay_ms: 300,
            sent_at_ms: 0,
            pings: vec![PingOutcome::anonymous(); 5],
        };
        assert_eq!(
            tune_delay(&Policy::default(), 300, &r.summary()),
            (300, DelayChange::NoEvidence)
        );
    }
}
