//! The interval learner: how long idle sandboxes survive, so warms come often
//! enough and no more.
//!
//! Lambda reaps an idle sandbox after an undocumented time (10 minutes in
//! 2019–20, 5–7 minutes since 2021). The learner reads it off the replies,
//! and only off what the replies prove. Which idle sandbox Lambda hands a
//! request is not documented, so nothing here depends on pings reaching the
//! sandboxes the previous warm reached:
//!
//! * **survival**: a ping answered `cold: false` by a sandbox whose last real
//!   event started before the previous warm proves that this sandbox sat idle
//!   (touched at most by that warm's ping) through the whole gap. A gap is a
//!   survived gap when at least one such sandbox answered and no death showed;
//! * **death**: pings that had to create a sandbox (`cold: true`) beyond
//!   what the warm added (more pings than the previous warm reached) and what
//!   real traffic busy at that moment could have taken. How many real
//!   requests ran beside the pings is not known when the replies come back,
//!   but CloudWatch tells it afterwards: the `ConcurrentExecutions` maximum of
//!   the warm's minute includes the pings, so the maximum less the pings bounds
//!   real traffic from above at the moment they ran. A warm with cold pings is
//!   therefore judged when its minute is read ([`Survival::settle`]).
//!
//! What the replies prove goes to the account's pooled evidence
//! ([`super::reaping`]), which says the idle gap every function may leave
//! (and which warms scout a minute further). A function's own deaths still
//! bound its own interval: it stays `DEATH_MARGIN_S` inside the shortest gap
//! that killed its sandboxes, for a day.

use serde::{Deserialize, Serialize};

use super::pings::WarmReport;
use super::policy::{Interval, Policy};
use super::reaping::{Reaped, Sighting};

/// What the interval learner knows about sandbox survival.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Survival {
    /// Longest idle gap, seconds, after which no sandbox was missing.
    pub survived_s: Option<u32>,
    /// Shortest idle gap, seconds, after which sandboxes were missing.
    pub died_s: Option<u32>,
    /// When `died_s` was last seen, epoch ms: evidence older than a day is
    /// dropped, because the platform's reaping changes over time.
    pub died_at_ms: u64,
    /// Distinct sandboxes the previous warm reached.
    #[serde(default)]
    pub last_reached: u32,
    /// When the previous warm was, epoch ms.
    pub last_warm_ms: u64,
    /// Warms with cold pings, waiting for their minute's metrics.
    #[serde(default)]
    pub pending: Vec<Pending>,
    /// What the replies and reads showed since the tick last took it, for
    /// the account's evidence (never stored with the function).
    #[serde(skip)]
    pub(crate) seen: Vec<Sighting>,
}

/// A warm whose cold pings are judged once its minute's metrics are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Epoch minute of the warm.
    pub minute: u64,
    /// The idle gap before it, seconds.
    pub gap_s: u32,
    /// Pings sent (they are in the minute's maximum).
    pub pings: u32,
    /// Cold pings the warm's own growth does not explain.
    pub cold: u32,
}

/// What one warm proved about the gap since the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// Every sandbox the pings needed was still there.
    Survived {
        /// The gap, seconds.
        gap_s: u32,
    },
    /// More pings started cold than growth and real traffic explain.
    Died {
        /// The gap, seconds.
        gap_s: u32,
        /// Cold pings nothing else explains.
        missing: u32,
    },
    /// Nothing either way (no previous warm, anonymous or failed replies,
    /// or real traffic kept every sandbox that answered busy since).
    Nothing,
}

enum Judged {
    Survived { gap_s: u32, sandboxes: u32 },
    Later(Pending),
    Nothing,
}

/// Idle lifetimes seen on Lambda: 10 min fixed (2019–20), 5–7 min since 2021.
/// Four minutes is inside both with a minute to spare: the starting interval.
pub(crate) const DEFAULT_INTERVAL_S: u32 = 240;
/// The learner never stretches past this, even when nothing ever dies.
pub(crate) const MAX_AUTO_INTERVAL_S: u32 = 840;
/// The learner never warms more often than the controller runs.
pub(crate) const MIN_INTERVAL_S: u32 = 60;
/// Stay this far inside the shortest gap that killed sandboxes: the
/// controller runs once a minute, so a warm due at `t` goes out up to a
/// minute later.
const DEATH_MARGIN_S: u32 = 60;
const DAY_MS: u64 = 86_400_000;
/// Real requests a warm's cold pings may have met however quiet the
/// function was lately: one call can always arrive.
const QUIET_CALLS: u32 = 1;
/// Warms waiting for their minute's metrics (reads come every 15 minutes
/// to four hours, warms every few: a handful, and an outage must not grow
/// the state; a read falls due before they overflow, see
/// [`Survival::pending_full`]).
const PENDING_KEPT: usize = 6;

impl Survival {
    /// Whether one more warm with cold pings to judge would drop the
    /// oldest waiting: the function's read is due, so that no evidence is
    /// lost to a long read gap.
    pub fn pending_full(&self) -> bool {
        self.pending.len() + 1 >= PENDING_KEPT
    }

    /// Learns what a warm's replies prove at once, and keeps cold pings
    /// that need the warm minute's metrics to be judged.
    ///
    /// `real_peak` bounds real concurrency from above (the recent real
    /// peak): cold pings beyond what even that much real traffic could
    /// explain are deaths at once, so a function whose pool has died is not
    /// left on a killing interval until the next metrics read. The bound is
    /// never below one request: a function quiet for the last hour can be
    /// called at the moment of a warm (a scheduled job's one call), and a
    /// lone cold ping beside it is no death. Read as one, a job run every
    /// two hours whose call met a warm four times had its interval cut to
    /// the 60 s floor, and was pinged every minute all day. `reached`
    /// is what the report's summary counts as reached (distinct sandboxes
    /// and anonymous replies): the next warm is judged against it.
    pub fn learn(
        &mut self,
        report: &WarmReport,
        reached: u32,
        real_peak: f64,
        now_ms: u64,
    ) -> Evidence {
        self.seen.push(Sighting::Warmed);
        let mut survivors = 0;
        let evidence = match self.judge(report) {
            Judged::Survived { gap_s, sandboxes } => {
                survivors = sandboxes;
                Evidence::Survived { gap_s }
            }
            Judged::Later(p) => {
                let bound = if real_peak.is_finite() {
                    real_peak.max(0.0).ceil().min(u32::MAX as f64) as u32
                } else {
                    u32::MAX
                }
                .max(QUIET_CALLS);
                if p.cold > bound {
                    Evidence::Died {
                        gap_s: p.gap_s,
                        missing: p.cold - bound,
                    }
                } else {
                    self.seen.push(Sighting::Waiting {
                        gap_s: p.gap_s,
                        sandboxes: p.cold,
                    });
                    self.pending.push(p);
                    let extra = self.pending.len().saturating_sub(PENDING_KEPT);
                    let dropped: Vec<Pending> = self.pending.drain(..extra).collect();
                    self.forget(&dropped);
                    Evidence::Nothing
                }
            }
            Judged::Nothing => Evidence::Nothing,
        };
        self.record(evidence, survivors, now_ms);
        self.last_reached = reached;
        self.last_warm_ms = report.sent_at_ms;
        evidence
    }

    /// Judges the warms of `minute` now that its `ConcurrentExecutions`
    /// maximum is known: real traffic ran beside the pings on at most
    /// `max - pings` sandboxes, so cold pings beyond that are deaths.
    pub fn settle(&mut self, minute: u64, concurrency_max: Option<f64>, now_ms: u64) -> Evidence {
        let Some(i) = self.pending.iter().position(|p| p.minute == minute) else {
            return Evidence::Nothing;
        };
        let p = self.pending.remove(i);
        let Some(max) = concurrency_max.filter(|m| m.is_finite()) else {
            self.forget(&[p]);
            return Evidence::Nothing;
        };
        let real = (max - p.pings as f64).max(0.0).ceil().min(u32::MAX as f64) as u32;
        let missing = p.cold.saturating_sub(real);
        let evidence = if missing > 0 {
            Evidence::Died {
                gap_s: p.gap_s,
                missing,
            }
        } else {
            Evidence::Nothing
        };
        // The deaths before the wait ends: between the two, the gap would
        // look safe to the account for a moment.
        self.record(evidence, 0, now_ms);
        self.forget(&[p]);
        evidence
    }

    /// Drops pending warms whose minute was read without a datapoint.
    pub fn settled_until(&mut self, minute: u64) {
        let (gone, kept) = self.pending.iter().partition(|p| p.minute < minute);
        self.pending = kept;
        self.forget(&gone);
    }

    /// Tells the account's evidence that these waiting cold pings are
    /// waiting no more (whatever became of them).
    fn forget(&mut self, gone: &[Pending]) {
        self.seen.extend(gone.iter().map(|p| Sighting::Judged {
            gap_s: p.gap_s,
            sandboxes: p.cold,
            since_ms: p.minute * 60_000,
        }));
    }

    /// Keeps what a warm or a read proved, and tells the account's evidence
    /// (`survivors`: the sandboxes a survived gap was proven on).
    fn record(&mut self, evidence: Evidence, survivors: u32, now_ms: u64) {
        match evidence {
            Evidence::Survived { gap_s } => self.seen.push(Sighting::Survived {
                gap_s,
                sandboxes: survivors,
            }),
            Evidence::Died { gap_s, missing } => self.seen.push(Sighting::Died {
                gap_s,
                sandboxes: missing,
            }),
            Evidence::Nothing => {}
        }
        match evidence {
            Evidence::Survived { gap_s } => {
                self.survived_s = Some(self.survived_s.map_or(gap_s, |s| s.max(gap_s)));
            }
            Evidence::Died { gap_s, .. } => {
                if self.survived_s.is_some_and(|s| s >= gap_s) {
                    // A gap that used to be survived now kills: reaping got
                    // faster (or is random, and this gap is at its edge).
                    // What survived is forgotten; probing starts again from
                    // the safe default. What killed is not: a shorter gap
                    // that killed still bounds the probes (replaced by this
                    // longer one, the learner probed back up to a gap it
                    // had seen kill, and lost the pool there again).
                    self.survived_s = None;
                }
                self.died_s = Some(self.died_s.map_or(gap_s, |d| d.min(gap_s)));
                self.died_at_ms = now_ms;
            }
            Evidence::Nothing => {}
        }
        if self.died_s.is_some() && now_ms.saturating_sub(self.died_at_ms) > DAY_MS {
            self.died_s = None;
        }
    }

    fn judge(&self, report: &WarmReport) -> Judged {
        if self.last_reached == 0 || self.last_warm_ms == 0 {
            return Judged::Nothing;
        }
        let gap_ms = report.sent_at_ms.saturating_sub(self.last_warm_ms);
        let gap_s = (gap_ms / 1_000).min(u32::MAX as u64) as u32;
        let mut answered = 0u32;
        let mut cold = 0u32;
        let mut idle_survivors = 0u32;
        for p in &report.pings {
            if p.failure.is_some() {
                continue;
            }
            match (p.instance, p.cold) {
                (Some(_), Some(c)) => {
                    answered += 1;
                    if c {
                        cold += 1;
                    } else if p.last_real_ms.is_none_or(|t| t < self.last_warm_ms) {
                        idle_survivors += 1;
                    }
                }
                // An answer without identity proves nothing about survival.
                _ => return Judged::Nothing,
            }
        }
        // Cold pings the warm itself explains: those beyond what the
        // previous warm reached.
        let growth = answered.saturating_sub(self.last_reached);
        if cold > growth {
            Judged::Later(Pending {
                minute: report.sent_at_ms / 60_000,
                gap_s,
                pings: at_once(report),
                cold: cold - growth,
            })
        } else if idle_survivors > 0 {
            Judged::Survived {
                gap_s,
                sandboxes: idle_survivors,
            }
        } else {
            Judged::Nothing
        }
    }

    /// Seconds until the next warm is due: the gap the account's evidence
    /// says is safe (a minute more for a scout), never past a minute inside
    /// the shortest gap that killed this function's sandboxes lately.
    pub fn interval_s(&self, policy: &Policy, reaped: Reaped) -> u32 {
        if let Interval::Seconds(s) = policy.interval {
            return s;
        }
        let limit = self
            .died_s
            .map_or(MAX_AUTO_INTERVAL_S, |d| d.saturating_sub(DEATH_MARGIN_S));
        reaped
            .gap_s()
            .min(limit)
            .clamp(MIN_INTERVAL_S, MAX_AUTO_INTERVAL_S)
    }
}

/// The most of a warm's answered pings that held their sandboxes at one
/// moment: each from when it reached its sandbox (a cold one's INIT began
/// then, as the adapters report it) until its INIT and hold were over.
/// Only these are surely together in the minute's `ConcurrentExecutions`
/// maximum. A hold shorter than the fan-out lets the first pings end before
/// the last begin (85 pings 2 ms apart, held 120 ms: 60 at once); counting
/// them all took real traffic beside them for less than it was, and its
/// cold pings for deaths. A ping that did not answer
/// with a start is not counted, which errs towards explaining cold pings.
fn at_once(report: &WarmReport) -> u32 {
    let hold = u64::from(report.delay_ms).max(1);
    let mut edges: Vec<(u64, i64)> = report
        .pings
        .iter()
        .filter(|p| p.failure.is_none() && p.instance.is_some())
        .filter_map(|p| p.started_ms.map(|s| (s, p.init_ms.unwrap_or(0))))
        .flat_map(|(at, init)| [(at, 1), (at.saturating_add(init).saturating_add(hold), -1)])
        .collect();
    // An end (-1) sorts before a start (+1) at the same moment: a hold that
    // ends as the next ping begins did not overlap it.
    edges.sort_unstable();
    let (mut now, mut most) = (0i64, 0i64);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most.clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::pings::PingOutcome;

    /// A warm at `at_s` whose pings met these sandboxes: `(id, cold, last
    /// real event in seconds)`.
    fn warm_at(at_s: u64, replies: &[(&str, bool, Option<u64>)]) -> WarmReport {
        WarmReport {
            requested: replies.len() as u32,
            delay_ms: 100,
            sent_at_ms: at_s * 1_000,
            pings: replies
                .iter()
                .map(|&(id, cold, last)| {
                    PingOutcome::answered(id, cold, at_s * 1_000)
                        .with_last_real(last.map(|s| s * 1_000))
                })
                .collect(),
        }
    }

    /// Learns from a warm as `apply_report` does, with its summary's count.
    fn learn(s: &mut Survival, report: &WarmReport, real_peak: f64, now_ms: u64) -> Evidence {
        let sum = report.summary();
        s.learn(report, sum.distinct + sum.anonymous, real_peak, now_ms)
    }

    fn idle(ids: &[&'static str]) -> Vec<(&'static str, bool, Option<u64>)> {
        ids.iter().map(|&i| (i, false, None)).collect()
    }

    fn cold(ids: &[&'static str]) -> Vec<(&'static str, bool, Option<u64>)> {
        ids.iter().map(|&i| (i, true, None)).collect()
    }

    /// The warm's minute as CloudWatch reports it: `real` requests beside
    /// the warm's pings.
    fn settle(s: &mut Survival, at_s: u64, pings: u32, real: u32) -> Evidence {
        s.settle(at_s / 60, Some((pings + real) as f64), at_s * 1_000)
    }

    /// The account's lesson: `safe_s` safe, not scouting.
    fn safe(safe_s: u32) -> Reaped {
        Reaped {
            safe_s,
            scout: false,
        }
    }

    #[test]
    fn the_account_gap_is_kept_inside_the_functions_own_deaths() {
        let p = Policy::default();
        let mut s = Survival::default();
        assert_eq!(s.interval_s(&p, Reaped::default()), DEFAULT_INTERVAL_S);
        assert_eq!(s.interval_s(&p, safe(420)), 420);
        let scout = Reaped {
            safe_s: 300,
            scout: true,
        };
        assert_eq!(s.interval_s(&p, scout), 360, "a scout tries a minute more");
        learn(&mut s, &warm_at(1, &cold(&["a", "b", "c"])), 0.0, 1_000);
        learn(&mut s, &warm_at(241, &idle(&["a", "b", "c"])), 0.0, 241_000);
        assert_eq!(s.survived_s, Some(240));
        // After a 6-minute gap only new sandboxes answer; three real
        // requests could have held the old ones, so the minute decides:
        // nothing real ran beside them, they died.
        let e = learn(&mut s, &warm_at(601, &cold(&["x", "y", "z"])), 3.0, 601_000);
        assert_eq!(e, Evidence::Nothing, "judged when the minute is read");
        assert_eq!(
            settle(&mut s, 601, 3, 0),
            Evidence::Died {
                gap_s: 360,
                missing: 3
            }
        );
        assert_eq!(
            s.interval_s(&p, safe(420)),
            300,
            "a minute inside the death"
        );
        // What the account is told: a warm, three survivals at 4 minutes;
        // a warm, three cold pings waiting at 6, then judged, all died.
        assert_eq!(
            s.seen,
            vec![
                Sighting::Warmed,
                Sighting::Warmed,
                Sighting::Survived {
                    gap_s: 240,
                    sandboxes: 3
                },
                Sighting::Warmed,
                Sighting::Waiting {
                    gap_s: 360,
                    sandboxes: 3
                },
                Sighting::Died {
                    gap_s: 360,
                    sandboxes: 3
                },
                Sighting::Judged {
                    gap_s: 360,
                    sandboxes: 3,
                    since_ms: 600_000
                },
            ]
        );
        // A day later the death is forgotten.
        learn(
            &mut s,
            &warm_at(90_000, &idle(&["x", "y", "z"])),
            0.0,
            90_000_000,
        );
        assert_eq!(s.died_s, None);
    }

    #[test]
    fn pings_reaching_other_sandboxes_than_last_time_are_no_death() {
        // Real traffic took the most recently freed sandboxes, so the pings
        // met different (warm) ones: every reply is warm, none is a death.
        let mut s = Survival::default();
        learn(
            &mut s,
            &warm_at(1, &cold(&["a", "b", "c", "d"])),
            0.0,
            1_000,
        );
        let replies = [
            ("e", false, Some(200)),
            ("f", false, Some(230)),
            ("a", false, None),
            ("b", false, None),
        ];
        let e = learn(&mut s, &warm_at(241, &replies), 2.0, 241_000);
        assert_eq!(e, Evidence::Survived { gap_s: 240 });
        assert!(s.pending.is_empty());
    }

    #[test]
    fn cold_pings_beside_busy_sandboxes_are_explained_by_traffic() {
        let mut s = Survival::default();
        learn(
            &mut s,
            &warm_at(1, &cold(&["a", "b", "c", "d"])),
            0.0,
            1_000,
        );
        // Two of the four are busy with real requests: two pings start cold.
        let replies = [
            ("a", false, None),
            ("b", false, None),
            ("x", true, None),
            ("y", true, None),
        ];
        assert_eq!(
            learn(&mut s, &warm_at(241, &replies), 2.0, 241_000),
            Evidence::Nothing
        );
        // The minute's maximum shows the two real requests beside the pings.
        assert_eq!(settle(&mut s, 241, 4, 2), Evidence::Nothing);
        assert_eq!(s.died_s, None);
    }

    #[test]
    fn sandboxes_kept_warm_by_traffic_prove_no_idle_survival() {
        let mut s = Survival::default();
        learn(&mut s, &warm_at(1, &cold(&["a", "b"])), 0.0, 1_000);
        // Every sandbox that answered served a real request after the warm.
        let replies = [("a", false, Some(500)), ("b", false, Some(600))];
        assert_eq!(
            learn(&mut s, &warm_at(721, &replies), 0.0, 721_000),
            Evidence::Nothing
        );
        assert_eq!(s.survived_s, None);
    }

    #[test]
    fn a_death_after_a_survived_gap_falls_back_at_once() {
        let p = Policy::default();
        let mut s = Survival {
            survived_s: Some(540),
            last_reached: 5,
            last_warm_ms: 1_000_000,
            ..Survival::default()
        };
        assert_eq!(s.interval_s(&p, safe(540)), 540);
        // Reaping got faster: the next 540 s gap kills.
        let e = learn(
            &mut s,
            &warm_at(1_540, &cold(&["v", "w", "x", "y", "z"])),
            1.0,
            1_540_000,
        );
        assert_eq!(
            e,
            Evidence::Died {
                gap_s: 540,
                missing: 4
            },
            "more cold pings than any real traffic explains: judged at once"
        );
        assert_eq!(s.survived_s, None, "the old survival is dropped");
        assert_eq!(
            s.interval_s(&p, safe(540)),
            480,
            "a minute inside the death, whatever the account says"
        );
        assert!(s.seen.contains(&Sighting::Died {
            gap_s: 540,
            sandboxes: 4
        }));
    }

    #[test]
    fn a_real_request_meeting_the_warm_of_a_quiet_function_is_no_death() {
        // A job run every two hours: nothing in the last hour's peaks, one
        // sandbox warm since 240 s ago. Its call runs on that sandbox when
        // the warm comes, so the ping starts a new one. The replies look
        // like a death; the minute's maximum (the call and the ping) says
        // otherwise.
        let p = Policy::default();
        let mut s = Survival::default();
        learn(&mut s, &warm_at(1, &cold(&["a"])), 0.0, 1_000);
        learn(&mut s, &warm_at(241, &idle(&["a"])), 0.0, 241_000);
        let before = s.interval_s(&p, Reaped::default());
        assert_eq!(
            learn(&mut s, &warm_at(481, &cold(&["b"])), 0.0, 481_000),
            Evidence::Nothing,
            "a quiet hour does not rule out one call now"
        );
        assert_eq!(settle(&mut s, 481, 1, 1), Evidence::Nothing);
        assert_eq!(s.died_s, None);
        assert_eq!(
            s.interval_s(&p, Reaped::default()),
            before,
            "the interval stays"
        );
    }

    #[test]
    fn a_fall_back_keeps_the_shorter_gap_that_killed() {
        // Reaping at random between 5 and 7 minutes: a 7-minute gap once
        // survived, a 6-minute one killed, and now a 7-minute gap kills.
        let p = Policy::default();
        let mut s = Survival {
            survived_s: Some(420),
            died_s: Some(360),
            died_at_ms: 1_000_000,
            last_reached: 3,
            last_warm_ms: 1_000_000,
            ..Survival::default()
        };
        let e = learn(
            &mut s,
            &warm_at(1_420, &cold(&["x", "y", "z"])),
            0.0,
            1_420_000,
        );
        assert_eq!(
            e,
            Evidence::Died {
                gap_s: 420,
                missing: 2
            }
        );
        assert_eq!(s.survived_s, None, "what survived is forgotten");
        assert_eq!(s.died_s, Some(360), "what killed sooner is not");
        // Whatever the account allows, the function stays a margin inside
        // the 6 minutes.
        learn(
            &mut s,
            &warm_at(1_720, &idle(&["x", "y", "z"])),
            0.0,
            1_720_000,
        );
        assert_eq!(s.survived_s, Some(300));
        assert_eq!(s.interval_s(&p, safe(420)), 300);
    }

    #[test]
    fn pings_held_briefly_are_counted_as_many_as_ran_at_once() {
        // 85 pings 2 ms apart, each held 120 ms: the first have ended before
        // the last begin, so at most 60 were in the minute's maximum. Five
        // started cold beside five real requests.
        let mut s = Survival {
            survived_s: Some(240),
            last_reached: 85,
            last_warm_ms: 1_000_000,
            ..Survival::default()
        };
        let at = 1_240_000;
        let report = WarmReport {
            requested: 85,
            delay_ms: 120,
            sent_at_ms: at,
            pings: (0..85u64)
                .map(|i| {
                    let cold = i >= 80;
                    PingOutcome::answered(format!("s{i}").as_str(), cold, at + 2 * i)
                        .with_init(cold.then_some(300))
                })
                .collect(),
        };
        assert_eq!(at_once(&report), 60);
        assert_eq!(learn(&mut s, &report, 5.0, at), Evidence::Nothing);
        assert_eq!(
            s.settle(at / 60_000, Some(65.0), at + 180_000),
            Evidence::Nothing,
            "the maximum's 65 are 60 pings and the 5 real requests"
        );
        assert_eq!(s.died_s, None);
    }

    #[test]
    fn a_fixed_interval_is_obeyed() {
        let p = Policy {
            interval: Interval::Seconds(600),
            ..Policy::default()
        };
        assert_eq!(Survival::default().interval_s(&p, safe(300)), 600);
    }
}
