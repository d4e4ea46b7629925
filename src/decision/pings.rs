//! What one warm reports back: each ping's outcome, and the summary the
//! learners and people read ([`super::delay`] tunes the hold from it,
//! `super::survival` the interval).

use serde::{Deserialize, Serialize};

/// Lambda's limit on the Init phase of an on-demand function, ms. Past it,
/// Lambda retries the init inside the first invoke, under the function's own
/// timeout.
pub const INIT_LIMIT_MS: u64 = 10_000;

/// Time allowed by default beyond a ping's hold and init for the network, ms.
pub const TIMEOUT_MARGIN_MS: u64 = 5_000;

/// How long a ping holding `hold_ms` may take before it counts as timed out:
/// its hold, a cold sandbox's INIT (`init_allowance_ms`) and the network's
/// margin. The Lambda warmer waits this long; the simulator judges its
/// pings by the same rule.
pub fn ping_timeout_ms(hold_ms: u64, init_allowance_ms: u64, margin_ms: u64) -> u64 {
    hold_ms
        .saturating_add(init_allowance_ms)
        .saturating_add(margin_ms)
}

/// The longest INIT allowance a function is given, ms: the controller runs
/// every minute, and a tick that waits longer overlaps the next.
pub const MAX_INIT_WAIT_MS: u64 = 45_000;

/// The INIT allowance a function's own history asks for, ms: twice the
/// slowest INIT its replies reported lately (`learned_init_ms`), no more
/// than Lambda can take to answer (its 10 s Init limit plus the function's
/// timeout, under which a failed init is retried) nor [`MAX_INIT_WAIT_MS`].
/// The warmer takes the larger of this and its configured allowance.
pub fn learned_init_allowance_ms(learned_init_ms: u64, function_timeout_ms: Option<u64>) -> u64 {
    let cap = function_timeout_ms.map_or(MAX_INIT_WAIT_MS, |t| {
        INIT_LIMIT_MS.saturating_add(t).min(MAX_INIT_WAIT_MS)
    });
    learned_init_ms.saturating_mul(2).min(cap)
}

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
/// FNV-1a of the id.
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
    /// When that sandbox last started a real (non-ping) event, epoch ms;
    /// `None` when it never served one. A warm reply from a sandbox whose
    /// last real event came before the previous warm proves the sandbox
    /// survived the whole idle gap, whatever real traffic did meanwhile.
    #[serde(default)]
    pub last_real_ms: Option<u64>,
    /// Why the ping failed, if it did.
    pub failure: Option<PingFailure>,
    /// The INIT a cold sandbox reported, ms (its shim's time from process
    /// start to the reply's handler).
    #[serde(default)]
    pub init_ms: Option<u64>,
}

impl PingOutcome {
    /// A ping answered by a forewarm shim.
    pub fn answered(instance: impl Into<InstanceId>, cold: bool, started_ms: u64) -> Self {
        PingOutcome {
            instance: Some(instance.into()),
            cold: Some(cold),
            started_ms: Some(started_ms),
            last_real_ms: None,
            failure: None,
            init_ms: None,
        }
    }

    /// The same outcome, saying how long the sandbox's INIT took.
    pub fn with_init(mut self, init_ms: Option<u64>) -> Self {
        self.init_ms = init_ms;
        self
    }

    /// The same outcome, saying when the sandbox last served a real event.
    pub fn with_last_real(mut self, last_real_ms: Option<u64>) -> Self {
        self.last_real_ms = last_real_ms;
        self
    }
    /// A ping answered with `null`: warmed, identity unknown.
    pub fn anonymous() -> Self {
        PingOutcome {
            instance: None,
            cold: None,
            started_ms: None,
            last_real_ms: None,
            failure: None,
            init_ms: None,
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
    /// The failed pings by why they failed.
    #[serde(default, skip_serializing_if = "Failures::is_none")]
    pub failures: Failures,
    /// First to last ping start, ms, over pings with identity.
    pub spread_ms: u64,
    /// Hold asked for, ms.
    pub delay_ms: u32,
    /// Warm replies from sandboxes none of the last warms reached: made by
    /// real traffic since (see `FunctionState::known`). Counted when the
    /// report is applied; 0 when nothing was known to compare with.
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub strangers: u32,
}

/// Failed pings of one warm, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Failures {
    /// Throttled by Lambda after back-off.
    #[serde(default)]
    pub throttled: u32,
    /// No answer within the per-call timeout.
    #[serde(default)]
    pub timeout: u32,
    /// The function raised an error.
    #[serde(default)]
    pub function_error: u32,
    /// The function answered, but not as a forewarm shim does.
    #[serde(default)]
    pub bad_reply: u32,
    /// Network or service errors.
    #[serde(default)]
    pub other: u32,
}

impl Failures {
    fn count(&mut self, why: PingFailure) {
        let slot = match why {
            PingFailure::Throttled => &mut self.throttled,
            PingFailure::Timeout => &mut self.timeout,
            PingFailure::FunctionError => &mut self.function_error,
            PingFailure::BadReply => &mut self.bad_reply,
            PingFailure::Other => &mut self.other,
        };
        *slot += 1;
    }

    /// No failure at all.
    pub fn is_none(&self) -> bool {
        *self == Failures::default()
    }

    /// The failures in words, each with what to do about it, for the
    /// function's `last_error` and the logs.
    pub fn describe(&self) -> String {
        let parts = [
            (
                self.throttled,
                "throttled (Lambda refused them: concurrency or scaling limit; lower `max` or raise the function's reserved concurrency)",
            ),
            (
                self.timeout,
                "timed out (no answer within the hold, the INIT allowance and the margin: an init over 10 s? raise FOREWARM_INIT_ALLOWANCE_MS)",
            ),
            (
                self.function_error,
                "function errors (the function failed: see its logs)",
            ),
            (
                self.bad_reply,
                "no forewarm reply (the handler ran and answered something else: is the shim installed on this function?)",
            ),
            (self.other, "network or service errors"),
        ];
        parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
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
        let mut failures = Failures::default();
        for why in self.pings.iter().filter_map(|p| p.failure) {
            failures.count(why);
        }
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
            failures,
            spread_ms: hi.saturating_sub(lo.min(hi)),
            delay_ms: self.delay_ms,
            strangers: 0,
        }
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
