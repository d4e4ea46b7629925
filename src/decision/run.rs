//! Warms planned at one look and sent at later ticks without a look.
//!
//! Between two metrics reads nothing new is known about a function: every
//! warm in between repeats the last look's decision at the learned interval,
//! and each cost a state read and write (most of forewarm's DynamoDB bill,
//! one write per warm). A look that warms now plans the warms that follow it
//! as a [`Run`]: same pings, same hold, every interval, until the next read
//! falls due or the forecast for a slot would change its target. The run is
//! saved with the look; the state item also carries the run's spacing and
//! end as plain attributes ([`Slots`]), so the tick tells from the policy
//! scan alone which functions have a slot now. A slot is sent from the
//! loaded state and not saved when its replies hold no news (no cold reply,
//! no failure, nothing cut): the next look finds what it did in the stored
//! run ([`settle`]). A slot with news is saved, and ends the run.

use serde::{Deserialize, Serialize};

use super::FunctionState;
use super::demand::WarmRecord;
use super::pings::ReportSummary;

/// The shortest spacing of a run's slots: the controller's schedule.
pub(crate) const MIN_EVERY_MS: u64 = 60_000;
/// The longest a run lasts: a function whose reads have stretched to an
/// hour is still looked at once an hour.
pub(crate) const MAX_RUN_MS: u64 = 60 * 60_000;
/// How far a tick's time may fall from a slot's and still send it: half
/// the schedule's period, so each slot falls to exactly one tick of a
/// schedule that fires once a minute, a few seconds late or early.
pub(crate) const SLOT_TOLERANCE_MS: u64 = 30_000;

/// The warms a look planned after its own, stored as an array
/// `[first_ms, every_ms, until_ms, n, hold_ms, reached, busy]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    from = "(u64, u64, u64, u32, u32, u32, u32)",
    into = "(u64, u64, u64, u32, u32, u32, u32)"
)]
pub struct Run {
    /// The first slot, epoch ms; the state's `next_check_ms` says it too.
    pub first_ms: u64,
    /// Between slots, ms (whole minutes, at least `MIN_EVERY_MS`).
    pub every_ms: u64,
    /// No slot at or after this, epoch ms: the look that ends the run.
    pub until_ms: u64,
    /// Pings per slot.
    pub n: u32,
    /// Hold per ping, ms.
    pub hold_ms: u32,
    /// Sandboxes warm after a slot (pings plus those real traffic uses).
    pub reached: u32,
    /// Sandboxes real traffic was taken to be using.
    pub busy: u32,
}

impl From<(u64, u64, u64, u32, u32, u32, u32)> for Run {
    fn from(
        (first_ms, every_ms, until_ms, n, hold_ms, reached, busy): (
            u64,
            u64,
            u64,
            u32,
            u32,
            u32,
            u32,
        ),
    ) -> Self {
        Run {
            first_ms,
            every_ms,
            until_ms,
            n,
            hold_ms,
            reached,
            busy,
        }
    }
}

impl From<Run> for (u64, u64, u64, u32, u32, u32, u32) {
    fn from(r: Run) -> Self {
        (
            r.first_ms, r.every_ms, r.until_ms, r.n, r.hold_ms, r.reached, r.busy,
        )
    }
}

/// What the policy scan reads of a run: with the item's `next_check_ms`
/// (the first slot), enough to tell when its slots fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// Between slots, ms.
    pub every_ms: u64,
    /// The run's end, epoch ms.
    pub until_ms: u64,
}

impl Run {
    /// What the scan needs of it.
    pub fn slots(&self) -> Slots {
        Slots {
            every_ms: self.every_ms,
            until_ms: self.until_ms,
        }
    }

    /// The record of its slot sent at `at_ms`.
    pub fn record(&self, at_ms: u64) -> WarmRecord {
        WarmRecord {
            at_ms,
            n: self.n,
            hold_ms: self.hold_ms,
            reached: self.reached,
            busy: self.busy,
        }
    }

    /// Whether its figures could have been written by a controller: a
    /// state item is untrusted, and a spacing of 0 would divide by zero.
    pub fn is_sane(&self) -> bool {
        self.slots().is_sane(self.first_ms)
    }
}

impl Slots {
    fn is_sane(&self, first_ms: u64) -> bool {
        self.every_ms >= MIN_EVERY_MS
            && self.every_ms <= MAX_RUN_MS
            && self.until_ms > first_ms
            && self.until_ms - first_ms <= MAX_RUN_MS
    }

    /// The first slot after `after_ms` (exclusive), if the run has one.
    fn next_after(&self, first_ms: u64, after_ms: u64) -> Option<u64> {
        let s = if after_ms < first_ms {
            first_ms
        } else {
            first_ms + ((after_ms - first_ms) / self.every_ms + 1) * self.every_ms
        };
        (s < self.until_ms).then_some(s)
    }

    /// Whether a slot falls to the tick at `now_ms`, the one before it
    /// having run at `prev_ms`.
    fn due(&self, first_ms: u64, prev_ms: u64, now_ms: u64) -> bool {
        self.next_after(first_ms, prev_ms.saturating_add(SLOT_TOLERANCE_MS))
            .is_some_and(|s| s <= now_ms.saturating_add(SLOT_TOLERANCE_MS))
    }
}

/// The time of the tick before this one, as the run's claim said it: the
/// schedule's period before `now_ms` when unknown (a first tick, a dry run)
/// or not before now (a clock that moved back).
pub(crate) fn previous_tick(last_tick_ms: Option<u64>, now_ms: u64) -> u64 {
    last_tick_ms
        .filter(|&p| p < now_ms)
        .unwrap_or(now_ms.saturating_sub(MIN_EVERY_MS))
}

/// Whether the tick at `now_ms` may leave a function alone, from what the
/// scan read of it: its next look is ahead and, during a run, no slot falls
/// to this tick. A run's end is a look.
pub(crate) fn rests(next_check_ms: u64, slots: Option<Slots>, prev_ms: u64, now_ms: u64) -> bool {
    match slots.filter(|s| s.is_sane(next_check_ms)) {
        Some(s) if now_ms < s.until_ms => !s.due(next_check_ms, prev_ms, now_ms),
        _ => next_check_ms > now_ms,
    }
}

/// Takes into the state what the run's slots before this tick did (ticks
/// that sent them did not save): a warm record for each, the next warm's
/// due time after the last, and the last warm as the survival learner
/// measures the next gap from.
pub(crate) fn settle(state: &mut FunctionState, run: &Run, prev_ms: u64) {
    let slots = run.slots();
    let mut s = run.first_ms;
    let sent_until = prev_ms.saturating_add(SLOT_TOLERANCE_MS);
    let warms = &mut state.warms;
    while s < run.until_ms && s <= sent_until {
        if !warms.iter().any(|w| w.at_ms == s) {
            let at = warms.partition_point(|w| w.at_ms < s);
            warms.insert(at, run.record(s));
        }
        state.next_due_ms = state.next_due_ms.max(s + run.every_ms);
        if state.survival.last_warm_ms < s {
            state.survival.last_warm_ms = s;
            state.survival.last_reached = run.reached;
        }
        match slots.next_after(run.first_ms, s) {
            Some(next) => s = next,
            None => break,
        }
    }
}

/// Whether a slot is due at `now_ms`.
pub(crate) fn slot_due(run: &Run, prev_ms: u64, now_ms: u64) -> bool {
    now_ms < run.until_ms && run.slots().due(run.first_ms, prev_ms, now_ms)
}

/// Whether a planned warm's replies say something the stored state must
/// learn: a sandbox that came back cold (one died, or the pool changed), a
/// ping that failed, or fewer sandboxes than planned.
pub(crate) fn news(summary: &ReportSummary, run_n: u32) -> bool {
    summary.cold > 0
        || summary.failed > 0
        || summary.requested != run_n
        || summary.distinct + summary.anonymous < summary.requested
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000 * 60_000;

    fn run() -> Run {
        Run {
            first_ms: T0 + 240_000,
            every_ms: 240_000,
            until_ms: T0 + 15 * 60_000,
            n: 3,
            hold_ms: 300,
            reached: 4,
            busy: 1,
        }
    }

    #[test]
    fn each_slot_falls_to_exactly_one_tick_of_a_jittery_schedule() {
        let r = run();
        let jitter = [0i64, 4_000, -3_000, 9_000, -8_000, 2_000];
        let mut prev = T0;
        let mut sent = Vec::new();
        for k in 1..=16u64 {
            let now = (T0 + k * 60_000).saturating_add_signed(jitter[k as usize % jitter.len()]);
            if slot_due(&r, prev, now) {
                sent.push(k);
            }
            assert_eq!(
                rests(r.first_ms, Some(r.slots()), prev, now),
                !slot_due(&r, prev, now) && now < r.until_ms,
                "tick {k}"
            );
            prev = now;
        }
        // Slots at 4, 8 and 12 minutes; the run ends at 15.
        assert_eq!(sent, vec![4, 8, 12]);
    }

    #[test]
    fn a_missed_tick_sends_its_slot_at_the_next() {
        let r = run();
        // The ticks at 4 and 5 minutes never ran.
        assert!(slot_due(&r, T0 + 3 * 60_000, T0 + 6 * 60_000));
        assert!(!slot_due(&r, T0 + 6 * 60_000, T0 + 7 * 60_000));
    }

    #[test]
    fn the_end_of_a_run_and_a_run_that_makes_no_sense_are_looks() {
        let r = run();
        assert!(!rests(r.first_ms, Some(r.slots()), T0, r.until_ms));
        let broken = Slots {
            every_ms: 0,
            until_ms: u64::MAX,
        };
        assert!(!rests(T0, Some(broken), T0 - 60_000, T0));
        assert!(rests(T0 + 60_000, Some(broken), T0 - 60_000, T0));
    }

    #[test]
    fn settling_records_the_slots_sent_before_this_tick() {
        let r = run();
        let mut st = FunctionState::new(&crate::decision::Policy::default());
        settle(&mut st, &r, T0 + 9 * 60_000);
        let at: Vec<u64> = st.warms.iter().map(|w| (w.at_ms - T0) / 60_000).collect();
        assert_eq!(at, vec![4, 8]);
        assert_eq!(st.next_due_ms, T0 + 12 * 60_000);
        // The next warm's gap is measured from the last slot sent.
        assert_eq!(st.survival.last_warm_ms, T0 + 8 * 60_000);
        assert_eq!(st.survival.last_reached, 4);
        // Settling again adds nothing.
        settle(&mut st, &r, T0 + 9 * 60_000);
        assert_eq!(st.warms.len(), 2);
    }
}
