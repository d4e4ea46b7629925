//! Caps: the limits no forecast may break.
//!
//! Warming must never hurt real traffic. Pings hold sandboxes, and a sandbox
//! held by a ping counts against the function's reserved concurrency (or the
//! account's unreserved pool) like any request: warming up to the limit would
//! throttle the real requests that arrive meanwhile. Lambda also creates at
//! most 1,000 new execution environments per 10 s per function; a warm that
//! asks for more gets 429s, which are throttles real traffic may then share.

use serde::{Deserialize, Serialize};

use super::policy::Policy;

/// Lambda's scaling rate: new execution environments per function per 10 s.
pub(crate) const SCALING_RATE_PER_10S: u32 = 1_000;

/// What the platform allows a function, read by the warmer adapter each tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    /// Reserved concurrency of the function, when set.
    pub reserved: Option<u32>,
    /// The account's unreserved concurrency, when known (used when the
    /// function has no reservation).
    pub unreserved: Option<u32>,
    /// Configured memory, MB (for cost figures).
    pub memory_mb: Option<u32>,
    /// Configured timeout, ms: the longest a ping's answer can take once its
    /// INIT is done (Lambda retries a failed init inside the invoke, under
    /// this timeout).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Which limit cut the warm target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    /// Raised to the policy's `min`.
    Min,
    /// Cut to the policy's `max`.
    Max,
    /// Cut to leave room for real traffic below reserved or account concurrency.
    Concurrency,
    /// Cut to Lambda's scaling rate.
    ScalingRate,
}

/// Applies every cap to a raw target, in order of precedence: the policy's
/// range first, then the limits that protect real traffic, which win over
/// `min`. `recent_peak` is recent real concurrency; `warm_now` is how many
/// sandboxes are believed warm already (those need no new environment).
pub(crate) fn apply(
    policy: &Policy,
    raw: u32,
    limits: &Limits,
    recent_peak: f64,
    warm_now: u32,
) -> (u32, Option<Cap>) {
    let mut n = raw;
    let mut by = None;
    if n < policy.min {
        n = policy.min;
        by = Some(Cap::Min);
    }
    if n > policy.max {
        n = policy.max;
        by = Some(Cap::Max);
    }
    if let Some(limit) = limits.reserved.or(limits.unreserved) {
        let peak = if recent_peak.is_finite() {
            recent_peak.max(0.0).ceil() as u64
        } else {
            limit as u64
        };
        let room = (limit as u64)
            .saturating_sub(peak)
            .saturating_sub(policy.headroom as u64) as u32;
        if n > room {
            n = room;
            by = Some(Cap::Concurrency);
        }
    }
    let scale = warm_now.saturating_add(SCALING_RATE_PER_10S);
    if n > scale {
        n = scale;
        by = Some(Cap::ScalingRate);
    }
    (n, by)
}

/// Shares the account's unreserved pool among one tick's warms.
///
/// Functions without reserved concurrency draw on one pool: each one's own
/// cap ([`apply`]) leaves room for its own recent peak, but ten functions
/// each warming up to "the pool minus my peak" would together take it all.
/// `room` is the pool less every such function's recent real peak and the
/// headroom; when the warms `wants` (pings per function) do not fit, they
/// are filled level by level (max-min fair): every function gets up to the
/// same number of sandboxes, the level as high as the room allows, and
/// functions wanting less keep all they want. A function's first warm
/// sandbox spares its next request a cold start; its hundredth only matters
/// when a hundred run at once, so cutting the largest warms first loses the
/// fewest cold starts (a cut in proportion took the only sandbox of every
/// function wanting one). Sandboxes left over below the next level go to
/// the earliest functions.
pub(crate) fn share_pool(room: u32, wants: &[u32]) -> Vec<u32> {
    let total: u64 = wants.iter().map(|&w| w as u64).sum();
    if total <= room as u64 {
        return wants.to_vec();
    }
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| (wants[i], i));
    let mut out = vec![0u32; wants.len()];
    let mut left = room;
    for (k, &i) in order.iter().enumerate() {
        let rest = (order.len() - k) as u32;
        let level = left / rest;
        if wants[i] <= level {
            out[i] = wants[i];
            left -= wants[i];
            continue;
        }
        // Everyone from here on wants more than the level: each gets it,
        // and the remainder one more each, earliest function first.
        let mut tail: Vec<usize> = order[k..].to_vec();
        tail.sort_unstable();
        let extra = left - level * rest;
        for (r, &t) in tail.iter().enumerate() {
            out[t] = level + u32::from((r as u32) < extra);
        }
        break;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reserved_concurrency_leaves_room_for_real_traffic() {
        let p = Policy {
            headroom: 5,
            ..Policy::default()
        };
        let lim = Limits {
            reserved: Some(50),
            ..Limits::default()
        };
        assert_eq!(apply(&p, 80, &lim, 30.0, 0), (15, Some(Cap::Concurrency)));
        assert_eq!(apply(&p, 10, &lim, 30.0, 0), (10, None));
        let disabled = Limits {
            reserved: Some(0),
            ..Limits::default()
        };
        assert_eq!(
            apply(
                &Policy {
                    min: 3,
                    ..p.clone()
                },
                2,
                &disabled,
                0.0,
                0
            ),
            (0, Some(Cap::Concurrency))
        );
    }

    #[test]
    fn the_account_pool_counts_when_nothing_is_reserved() {
        let p = Policy {
            max: 5_000,
            headroom: 100,
            ..Policy::default()
        };
        let lim = Limits {
            unreserved: Some(1_000),
            ..Limits::default()
        };
        assert_eq!(
            apply(&p, 2_000, &lim, 400.0, 0),
            (500, Some(Cap::Concurrency))
        );
    }

    #[test]
    fn the_scaling_rate_limits_new_sandboxes() {
        let p = Policy {
            max: 10_000,
            ..Policy::default()
        };
        assert_eq!(
            apply(&p, 3_000, &Limits::default(), 0.0, 200),
            (1_200, Some(Cap::ScalingRate))
        );
    }

    #[test]
    fn the_shared_pool_is_filled_level_by_level() {
        assert_eq!(share_pool(100, &[10, 20, 30]), vec![10, 20, 30]);
        assert_eq!(share_pool(30, &[10, 20, 30]), vec![10, 10, 10]);
        assert_eq!(share_pool(44, &[30, 2, 1, 20]), vec![21, 2, 1, 20]);
        // Fifty functions wanting one and one wanting 500, 100 in the pool:
        // each of the fifty keeps its sandbox (in proportion, they got none).
        let mut wants = vec![1; 50];
        wants.push(500);
        let got = share_pool(100, &wants);
        assert_eq!((&got[..50], got[50]), (&[1; 50][..], 50));
        assert_eq!(share_pool(10, &[1, 1, 1]), vec![1, 1, 1]);
        assert_eq!(share_pool(2, &[1, 1, 1]), vec![1, 1, 0]);
        assert_eq!(share_pool(0, &[4, 4]), vec![0, 0]);
    }

    proptest! {
        #[test]
        fn a_shared_pool_is_never_exceeded(room in 0u32..2_000, wants in proptest::collection::vec(0u32..500, 0..30)) {
            let got = share_pool(room, &wants);
            let total: u64 = wants.iter().map(|&w| w as u64).sum();
            prop_assert_eq!(got.len(), wants.len());
            prop_assert!(got.iter().zip(&wants).all(|(g, w)| g <= w));
            let sum: u64 = got.iter().map(|&g| g as u64).sum();
            prop_assert_eq!(sum, total.min(room as u64));
        }
    }

    proptest! {
        #[test]
        fn the_result_respects_every_cap(raw: u32, min in 0u32..200, span in 0u32..500, headroom in 0u32..50,
                                         reserved in proptest::option::of(0u32..2_000),
                                         unreserved in proptest::option::of(0u32..5_000),
                                         peak in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -10.0f64..3_000.0],
                                         warm_now in 0u32..3_000) {
            let p = Policy { min, max: min + span, headroom, ..Policy::default() };
            let lim = Limits { reserved, unreserved, memory_mb: None, timeout_ms: None };
            let (n, _) = apply(&p, raw, &lim, peak, warm_now);
            prop_assert!(n <= p.max);
            prop_assert!(n <= warm_now.saturating_add(SCALING_RATE_PER_10S));
            if let Some(limit) = reserved.or(unreserved) {
                let real = if peak.is_finite() { peak.max(0.0).ceil() } else { limit as f64 };
                prop_assert!(n as f64 + real + headroom as f64 <= (limit as f64).max(real + headroom as f64));
                prop_assert!(n <= limit);
            } else {
                prop_assert!(n >= p.min.min(warm_now.saturating_add(SCALING_RATE_PER_10S)));
            }
        }
    }
}
