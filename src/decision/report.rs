//! What a warm reports back, and the two learners that feed on it: the delay
//! tuner (how long pings must hold so N of them overlap) and the interval
//! learner (how long idle sandboxes survive, so warms come often enough and
//! no more).

use serde::{Deserialize, Serialize};

use super::policy::{Interval, Policy};

/// Why one ping did not produce a usable reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingFailure {
    /// Lambda refused it: `TooManyRequestsException` after back-off.
    Throttled,
    /// No answer within the per-call timeout.
    Timeout,
    /// The function raised an error (or timed out on Lambda's side).
    FunctionError,
    /// The reply was not a forewarm reply (the function ran its handler).
    BadReply,
    /// The call failed for another reason (network, 5xx).
    Other,
}

/// A sandbox as a ping's reply names it, fingerprinted at the border so a
/// report holds no strings. 64 bits tell sandboxes apart (two of a
/// 1,000-ping warm collide with odds of about 1e-13); the low 32 bits are
/// FNV-1a of the id, the hash the state remembers
/// ([`Survival::last_instances`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceId(pub u64);

impl InstanceId {
    /// The fingerprint of an id's bytes.
    pub fn of_bytes(id: &[u8]) -> InstanceId {
        let high = id.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        }) >> 32;
        InstanceId(high << 32 | hash_instance_bytes(id) as u64)
    }

    /// What the state remembers of it.
    pub fn remembered(self) -> u32 {
        self.0 as u32
    }
}

impl From<&str> for InstanceId {
    fn from(id: &str) -> Self {
        InstanceId::of_bytes(id.as_bytes())
    }
}

impl From<String> for InstanceId {
    fn from(id: String) -> Self {
        InstanceId::of_bytes(id.as_bytes())
    }
}

/// One ping's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingOutcome {
    /// The sandbox that answered, when the reply said.
    pub instance: Option<InstanceId>,
    /// Whether that sandbox was new (the ping paid its init).
    pub cold: Option<bool>,
    /// When the sandbox started handling the ping, epoch ms.
    pub started_ms: Option<u64>,
    /// Why the ping failed, if it did.
    pub failure: Option<PingFailure>,
}

impl PingOutcome {
    /// A ping answered by a forewarm shim.
    pub fn answered(instance: impl Into<InstanceId>, cold: bool, started_ms: u64) -> Self {
        PingOutcome {
            instance: Some(instance.into()),
            cold: Some(cold),
            started_ms: Some(started_ms),
            failure: None,
        }
    }
    /// A ping answered with `null`: warmed, identity unknown.
    pub fn anonymous() -> Self {
        PingOutcome {
            instance: None,
            cold: None,
            started_ms: None,
            failure: None,
        }
    }
    /// A failed ping.
    pub fn failed(why: PingFailure) -> Self {
        PingOutcome {
            failure: Some(why),
            ..PingOutcome::anonymous()
        }
    }
}

/// The result of warming one function once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmReport {
    /// Pings asked for.
    pub requested: u32,
    /// Hold each ping asked for, ms.
    pub delay_ms: u32,
    /// When the fan-out started, epoch ms.
    pub sent_at_ms: u64,
    /// One entry per ping sent.
    pub pings: Vec<PingOutcome>,
}

impl WarmReport {
    /// A warm in which every ping found its own sandbox (`{prefix}{i}`),
    /// pings starting `gap_ms` apart: the report of a healthy fan-out, for
    /// fakes and benchmarks.
    pub fn every_ping_distinct(
        n: u32,
        delay_ms: u32,
        at_ms: u64,
        prefix: &str,
        gap_ms: u64,
    ) -> WarmReport {
        WarmReport {
            requested: n,
            delay_ms,
            sent_at_ms: at_ms,
            pings: (0..n)
                .map(|i| {
                    PingOutcome::answered(format!("{prefix}{i}"), false, at_ms + gap_ms * i as u64)
                })
                .collect(),
        }
    }
}

/// The figures people and the learners look at, small enough for the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportSummary {
    /// When the warm started, epoch ms.
    pub at_ms: u64,
    /// Pings asked for.
    pub requested: u32,
    /// Pings answered without error.
    pub ok: u32,
    /// Distinct sandboxes named in replies.
    pub distinct: u32,
    /// Replies without identity (`null`).
    pub anonymous: u32,
    /// Pings that created their sandbox.
    pub cold: u32,
    /// Failed pings.
    pub failed: u32,
    /// First to last ping start, ms, over pings with identity.
    pub spread_ms: u64,
    /// Hold asked for, ms.
    pub delay_ms: u32,
}

impl WarmReport {
    /// Sums the report up.
    pub fn summary(&self) -> ReportSummary {
        let mut ids: Vec<InstanceId> = self.pings.iter().filter_map(|p| p.instance).collect();
        ids.sort_unstable();
        ids.dedup();
        let starts = self
            .pings
            .iter()
            .filter(|p| p.instance.is_some())
            .filter_map(|p| p.started_ms);
        let (lo, hi) = starts.fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
        let ok = self.pings.iter().filter(|p| p.failure.is_none()).count() as u32;
        ReportSummary {
            at_ms: self.sent_at_ms,
            requested: self.requested,
            ok,
            distinct: ids.len() as u32,
            anonymous: self
                .pings
                .iter()
                .filter(|p| p.failure.is_none() && p.instance.is_none())
                .count() as u32,
            cold: self.pings.iter().filter(|p| p.cold == Some(true)).count() as u32,
            failed: self.pings.len() as u32 - ok,
            spread_ms: hi.saturating_sub(lo.min(hi)),
            delay_ms: self.delay_ms,
        }
    }

    /// Sandboxes named in replies, as 32-bit hashes (what the state keeps).
    pub fn instance_hashes(&self) -> Vec<u32> {
        let mut h: Vec<u32> = self
            .pings
            .iter()
            .filter_map(|p| p.instance.map(InstanceId::remembered))
            .collect();
        h.sort_unstable();
        h.dedup();
        h
    }
}

/// FNV-1a: stable across processes and versions, unlike std's hasher.
pub fn hash_instance(id: &str) -> u32 {
    hash_instance_bytes(id.as_bytes())
}

fn hash_instance_bytes(id: &[u8]) -> u32 {
    id.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

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
    // Answered pings that named their sandbox.
    let identified = s.ok - s.anonymous;
    let clamp = |x: f64| (x.round() as u32).clamp(policy.delay_ms_min, policy.delay_ms_max);
    if identified < 2 || identified * 2 < s.ok {
        return (
            current_ms.clamp(policy.delay_ms_min, policy.delay_ms_max),
            DelayChange::NoEvidence,
        );
    }
    let target = s.spread_ms as f64 * SPREAD_FACTOR + SPREAD_SLACK_MS;
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

/// What the interval learner knows about sandbox survival.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Survival {
    /// Longest idle gap, seconds, after which (nearly) all sandboxes answered again.
    pub survived_s: Option<u32>,
    /// Shortest idle gap, seconds, after which most were gone.
    pub died_s: Option<u32>,
    /// When `died_s` was last seen, epoch ms: evidence older than a day is
    /// dropped, because the platform's reaping changes over time.
    pub died_at_ms: u64,
    /// Sandboxes the previous warm reached, hashed (packed as base64).
    #[serde(default, with = "packed_ids")]
    pub last_instances: Vec<u32>,
    /// When the previous warm was, epoch ms.
    pub last_warm_ms: u64,
}

/// Idle lifetimes seen on Lambda: 10 min fixed (2019–20), 5–7 min since 2021.
/// Four minutes is inside both with a minute to spare: the starting interval.
pub const DEFAULT_INTERVAL_S: u32 = 240;
/// The learner never stretches past this, even when nothing ever dies.
pub const MAX_AUTO_INTERVAL_S: u32 = 840;
/// The learner never warms more often than the controller runs.
pub const MIN_INTERVAL_S: u32 = 60;
/// How far each successful gap is stretched when probing for the limit.
const PROBE_STEP_S: u32 = 30;
/// Stay this far inside the shortest gap that killed sandboxes.
const DEATH_MARGIN_S: u32 = 60;
const DAY_MS: u64 = 86_400_000;
/// Instances remembered between warms (bounded so the state stays small).
pub const MAX_REMEMBERED: usize = 64;

impl Survival {
    /// Learns from a warm: of the sandboxes the previous warm reached, how many
    /// answered again after the idle gap between the two?
    pub fn learn(&mut self, report: &WarmReport, now_ms: u64) {
        let current = report.instance_hashes();
        if !self.last_instances.is_empty() && !current.is_empty() {
            let gap_s = (report.sent_at_ms.saturating_sub(self.last_warm_ms) / 1_000) as u32;
            let survivors = self
                .last_instances
                .iter()
                .filter(|h| current.binary_search(h).is_ok())
                .count();
            // Only as many could answer as there were pings.
            let could = self
                .last_instances
                .len()
                .min(report.requested as usize)
                .max(1);
            let share = survivors as f64 / could as f64;
            if share >= 0.9 {
                self.survived_s = Some(self.survived_s.map_or(gap_s, |s| s.max(gap_s)));
            } else if share < 0.5 {
                self.died_s = Some(self.died_s.map_or(gap_s, |d| d.min(gap_s)));
                self.died_at_ms = now_ms;
            }
        }
        if self.died_s.is_some() && now_ms.saturating_sub(self.died_at_ms) > DAY_MS {
            self.died_s = None;
        }
        if let (Some(s), Some(d)) = (self.survived_s, self.died_s)
            && s >= d
        {
            // Contradicting evidence (reaping is random): trust the death.
            self.survived_s = Some(d.saturating_sub(DEATH_MARGIN_S));
        }
        let mut keep = current;
        keep.truncate(MAX_REMEMBERED);
        self.last_instances = keep;
        self.last_warm_ms = report.sent_at_ms;
    }

    /// Seconds until the next warm is due.
    pub fn interval_s(&self, policy: &Policy) -> u32 {
        if let Interval::Seconds(s) = policy.interval {
            return s;
        }
        let probe = self.survived_s.map_or(DEFAULT_INTERVAL_S, |s| {
            (s + PROBE_STEP_S).max(DEFAULT_INTERVAL_S)
        });
        let limit = self
            .died_s
            .map_or(MAX_AUTO_INTERVAL_S, |d| d.saturating_sub(DEATH_MARGIN_S));
        probe.min(limit).clamp(MIN_INTERVAL_S, MAX_AUTO_INTERVAL_S)
    }
}

/// Instance hashes as base64 of little-endian u32s: a third of the JSON.
mod packed_ids {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ids: &[u32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        let bytes = B64
            .decode(String::deserialize(d)?.as_bytes())
            .map_err(serde::de::Error::custom)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = r.summary();
        assert_eq!(
            (s.ok, s.distinct, s.anonymous, s.cold, s.failed, s.spread_ms),
            (5, 2, 1, 4, 1, 90)
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

    fn warm_at(at_s: u64, ids: &[&str]) -> WarmReport {
        WarmReport {
            requested: ids.len() as u32,
            delay_ms: 100,
            sent_at_ms: at_s * 1_000,
            pings: ids
                .iter()
                .map(|i| PingOutcome::answered(*i, false, at_s * 1_000))
                .collect(),
        }
    }

    #[test]
    fn survival_is_probed_upward_and_capped_by_deaths() {
        let p = Policy::default();
        let mut s = Survival::default();
        assert_eq!(s.interval_s(&p), DEFAULT_INTERVAL_S);
        s.learn(&warm_at(0, &["a", "b", "c"]), 0);
        s.learn(&warm_at(240, &["a", "b", "c"]), 240_000);
        assert_eq!(s.survived_s, Some(240));
        assert_eq!(s.interval_s(&p), 270, "probes 30 s further");
        // After a 6-minute gap only new sandboxes answer: they died.
        s.learn(&warm_at(600, &["x", "y", "z"]), 600_000);
        assert_eq!(s.died_s, Some(360));
        assert_eq!(
            s.interval_s(&p),
            270,
            "stays at least a minute inside the death"
        );
        // A day later the death is forgotten and probing resumes.
        s.learn(&warm_at(90_000, &["x", "y", "z"]), 90_000_000);
        assert_eq!(s.died_s, None);
    }

    #[test]
    fn a_fixed_interval_is_obeyed() {
        let p = Policy {
            interval: Interval::Seconds(600),
            ..Policy::default()
        };
        assert_eq!(Survival::default().interval_s(&p), 600);
    }
}
