//! The account: every function's sandboxes drawing on one concurrency pool.
//!
//! Lambda's concurrency limit is the account's (1,000 by default), shared by
//! every function without reserved concurrency; a function with reserved
//! concurrency has that much to itself and the rest of the account has that
//! much less. So one function's burst (or a warmer's fan-out to every
//! function at once) throttles its neighbours, and the fleet's events must
//! meet in time order: the fleet keeps every function's next real arrival
//! and next completion in two heaps and processes them globally in time
//! order (completions first on a tie, function index after), so when a
//! function asks for a sandbox at `t` every other function has freed what it
//! freed by `t` and started what it started before `t`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::platform::{FnSim, PingResult};
use crate::decision::MinuteMetrics;

/// Concurrency Lambda keeps unreserved and unprovisioned in every account,
/// for functions without a reservation.
pub(crate) const UNRESERVED_MINIMUM: u32 = 100;

/// Minutes of the pool's use the fleet keeps: the controller reads the
/// last few only.
const POOL_MINUTES_KEPT: u64 = 60;

/// Every function of the account, and the account's pool.
#[derive(Debug)]
pub(crate) struct Fleet {
    /// The functions, in trace order.
    pub fns: Vec<FnSim>,
    unreserved: u32,
    in_use: u32,
    /// Provisioned Concurrency allocated to functions drawing on the pool.
    provisioned_total: u32,
    /// `(minute, most of the pool held at once in it)`, the last
    /// [`POOL_MINUTES_KEPT`] minutes with any event: what CloudWatch's
    /// `UnreservedConcurrentExecutions` (Maximum) reports, pings included.
    pool_minutes: VecDeque<(u64, u32)>,
    /// `(time, function)`: each function's next completion. An entry is
    /// live when it equals `next_completion[function]`; others are stale.
    completions: BinaryHeap<Reverse<(u64, u32)>>,
    next_completion: Vec<Option<u64>>,
    /// `(time, function)`: the next queued real arrival of each function
    /// that has one (exactly one entry each).
    arrivals: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Fleet {
    /// The account with `account_limit` concurrency; functions without
    /// [`super::platform::Setup::shares_pool`] carve their own limit out of it.
    pub(crate) fn new(fns: Vec<FnSim>, account_limit: u32) -> Fleet {
        let reserved: u32 = fns
            .iter()
            .filter(|f| !f.shares_pool())
            .map(FnSim::limit)
            .sum();
        Fleet {
            next_completion: vec![None; fns.len()],
            fns,
            unreserved: account_limit.saturating_sub(reserved),
            in_use: 0,
            provisioned_total: 0,
            pool_minutes: VecDeque::new(),
            completions: BinaryHeap::new(),
            arrivals: BinaryHeap::new(),
        }
    }

    /// The account's unreserved concurrency, shared by every function
    /// without a reservation.
    pub(crate) fn unreserved(&self) -> u32 {
        self.unreserved
    }

    /// Queues function `i`'s real arrivals (ascending, none before the
    /// fleet's clock).
    pub(crate) fn queue(&mut self, i: usize, arrivals: &[(u64, u64)]) {
        let had = self.fns[i].next_arrival();
        self.fns[i].queue(arrivals);
        if had.is_none()
            && let Some(at) = self.fns[i].next_arrival()
        {
            self.arrivals.push(Reverse((at, i as u32)));
        }
    }

    /// Processes, in time order across the fleet, every real arrival before
    /// `t` and every completion at or before it.
    pub(crate) fn run_until(&mut self, t: u64) {
        loop {
            let c = self.completions.peek().map(|r| r.0);
            let a = self.arrivals.peek().map(|r| r.0);
            match (c, a) {
                (Some((tc, i)), a) if tc <= t && a.is_none_or(|(ta, _)| tc <= ta) => {
                    self.completions.pop();
                    let i = i as usize;
                    if self.next_completion[i] == Some(tc) {
                        self.next_completion[i] = None;
                        self.act(i, tc, |f| f.advance(tc));
                    }
                }
                (_, Some((ta, i))) if ta < t => {
                    self.arrivals.pop();
                    let i = i as usize;
                    self.act(i, ta, FnSim::run_next);
                    if let Some(next) = self.fns[i].next_arrival() {
                        self.arrivals.push(Reverse((next, i as u32)));
                    }
                }
                _ => return,
            }
        }
    }

    /// A ping to function `i` at `t` (everything before it processed first).
    pub(crate) fn ping(&mut self, i: usize, t: u64, hold_ms: u64) -> PingResult {
        self.run_until(t);
        self.act(i, t, |f| f.ping(t, hold_ms))
    }

    /// Sets function `i`'s Provisioned Concurrency from `t` on, as much of
    /// `n` as Lambda would allocate: a function drawing on the shared pool
    /// gets no more than the pool less [`UNRESERVED_MINIMUM`] less what the
    /// other functions hold provisioned (Lambda refuses the rest). Returns
    /// what was allocated.
    pub(crate) fn set_provisioned(&mut self, i: usize, t: u64, n: u32) -> u32 {
        self.run_until(t);
        let n = if self.fns[i].shares_pool() {
            let others = self.provisioned_total - self.fns[i].provisioned();
            n.min(
                self.unreserved
                    .saturating_sub(UNRESERVED_MINIMUM)
                    .saturating_sub(others),
            )
        } else {
            n
        };
        self.act(i, t, |f| f.set_provisioned(t, n));
        n
    }

    /// Function `i`'s recorded minutes in `from..until` (see
    /// [`FnSim::metrics`]).
    pub(crate) fn metrics(&mut self, i: usize, from: u64, until: u64) -> Vec<MinuteMetrics> {
        self.run_until(until * 60_000);
        self.act(i, until * 60_000, |f| f.metrics(from, until))
    }

    /// Ends the run at `t`.
    pub(crate) fn finish(&mut self, t: u64) {
        self.run_until(t);
        for i in 0..self.fns.len() {
            self.act(i, t, |f| {
                f.advance(t);
                f.finish(t);
            });
        }
    }

    /// The pool's use per minute in `from..until` (see `pool_minutes`).
    pub(crate) fn pool_in_use(&mut self, from: u64, until: u64) -> Vec<(u64, u32)> {
        self.run_until(until * 60_000);
        self.pool_minutes
            .iter()
            .filter(|(m, _)| (from..until).contains(m))
            .copied()
            .collect()
    }

    /// Books the pool's use from `before` to `after` at `t`.
    fn note_pool(&mut self, t: u64, before: u32, after: u32) {
        let minute = t / 60_000;
        match self.pool_minutes.back_mut() {
            Some((m, most)) if *m == minute => *most = (*most).max(after),
            // A new minute starts at the level the last event left.
            _ => self.pool_minutes.push_back((minute, before.max(after))),
        }
        while self
            .pool_minutes
            .front()
            .is_some_and(|&(m, _)| m + POOL_MINUTES_KEPT < minute)
        {
            self.pool_minutes.pop_front();
        }
    }

    /// Runs `op` on function `i` at `t` with the pool's room set, then books
    /// what it took or gave back and reschedules its next completion.
    fn act<R>(&mut self, i: usize, t: u64, op: impl FnOnce(&mut FnSim) -> R) -> R {
        let before = self.in_use;
        let f = &mut self.fns[i];
        let others = self.in_use - f.pool_usage();
        let pc_before = f.provisioned();
        f.pool_room = self.unreserved.saturating_sub(others);
        let r = op(f);
        self.in_use = others + f.pool_usage();
        let after = self.in_use;
        if after != before {
            self.note_pool(t, before, after);
        }
        let f = &self.fns[i];
        if f.shares_pool() {
            self.provisioned_total = self.provisioned_total - pc_before + f.provisioned();
        }
        let next = f.next_completion();
        if next != self.next_completion[i] {
            if let Some(n) = next {
                self.completions.push(Reverse((n, i as u32)));
            }
            self.next_completion[i] = next;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use rand_distr::{Distribution, Exp};
    use rand_pcg::Pcg64Mcg;

    use super::*;
    use crate::sim::model::Model;
    use crate::sim::platform::Setup;

    fn model() -> Model {
        let mut m = Model::load("lambda-2021").unwrap().with_ttl(600.0, 600.0);
        m.cold_start.median_ms = 1.0;
        m.cold_start.p95_ms = 1.0;
        m
    }

    fn function(limit: u32, shares_pool: bool, seed: u64) -> FnSim {
        let setup = Setup {
            gb: 1.0,
            limit,
            shares_pool,
            report_from_ms: 0,
            oracle: false,
            record_metrics: false,
            real_peak_minutes: 0,
        };
        FnSim::new(&model(), setup, seed)
    }

    /// Poisson arrivals at `per_s` with exponential service of `mean_ms`,
    /// for `seconds`, queued minute by minute as the engine does.
    fn poisson(fleet: &mut Fleet, i: usize, per_s: f64, mean_ms: f64, seconds: u64, seed: u64) {
        let mut rng = Pcg64Mcg::new(seed as u128 | 1);
        let gap = Exp::new(per_s / 1_000.0).unwrap();
        let service = Exp::new(1.0 / mean_ms).unwrap();
        let mut t = 0.0;
        let mut all = Vec::new();
        loop {
            t += gap.sample(&mut rng);
            if t >= seconds as f64 * 1_000.0 {
                break;
            }
            all.push((t as u64, (service.sample(&mut rng) as u64).max(1)));
        }
        fleet.queue(i, &all);
    }

    /// Erlang's loss formula: the share of arrivals a pool of `n` servers
    /// turns away under `a` erlangs of offered load.
    fn erlang_b(a: f64, n: u32) -> f64 {
        (1..=n).fold(1.0, |b, k| a * b / (k as f64 + a * b))
    }

    #[test]
    fn the_accounts_pool_series_counts_the_pings_with_the_real_traffic() {
        // Two functions sharing the pool, one reserved. Three real requests
        // at once 10 s in (two of 10 s, one of 50 s), then 5 pings to the
        // other function at 30 s, held 2 s, beside the one request still
        // running: CloudWatch's `UnreservedConcurrentExecutions` maximum for
        // that minute is 1 + 5, not the 3 real ones; the reserved function's
        // request is not in it; the next minute starts where the last left
        // it (the 50 s request).
        let fns = vec![
            function(100, true, 1),
            function(100, true, 2),
            function(10, false, 3),
        ];
        let mut fleet = Fleet::new(fns, 100);
        fleet.queue(0, &[(10_000, 10_000), (10_001, 10_000), (10_002, 50_000)]);
        fleet.queue(2, &[(15_000, 30_000)]);
        for _ in 0..5 {
            fleet.ping(1, 30_000, 2_000);
        }
        assert_eq!(fleet.pool_in_use(0, 2), [(0, 6), (1, 1)]);
        assert_eq!(fleet.pool_in_use(1, 2), [(1, 1)], "only the minutes asked");
    }

    #[test]
    fn two_functions_sharing_the_pool_lose_what_erlang_b_says() {
        // Two functions at 25 requests/s with 2 s service under an account
        // limit of 100: 100 erlangs on 100 servers, B = 7.6 %. Each alone
        // (the old per-function limit) would lose none.
        let seconds = 4_000;
        let fns = vec![function(100, true, 1), function(100, true, 2)];
        let mut fleet = Fleet::new(fns, 100);
        poisson(&mut fleet, 0, 25.0, 2_000.0, seconds, 11);
        poisson(&mut fleet, 1, 25.0, 2_000.0, seconds, 12);
        fleet.finish(seconds * 1_000 + 60_000);
        let (lost, offered) = fleet.fns.iter().fold((0, 0), |(l, o), f| {
            (l + f.stats.throttles, o + f.stats.requests)
        });
        let p = lost as f64 / offered as f64;
        let want = erlang_b(100.0, 100);
        assert!((want - 0.0757).abs() < 0.001, "{want}");
        // Successive arrivals' fates are correlated (a full pool stays full
        // for a while): allow 0.5 points around B on 200,000 arrivals.
        assert!((p - want).abs() < 0.005, "lost {p:.4}, Erlang-B {want:.4}");
        // Both functions feel it alike.
        for f in &fleet.fns {
            let own = f.stats.throttles as f64 / f.stats.requests as f64;
            assert!((own - want).abs() < 0.01, "{own:.4}");
        }
    }

    #[test]
    fn reserved_concurrency_is_carved_out_and_kept() {
        // A function with 20 reserved under an account of 100: its
        // neighbour's storm of long requests takes the other 80 and no more,
        // and the reserved one still gets its 20.
        let fns = vec![function(20, false, 1), function(100, true, 2)];
        let mut fleet = Fleet::new(fns, 100);
        assert_eq!(fleet.unreserved(), 80);
        let storm: Vec<(u64, u64)> = (0..200).map(|k| (k, 60_000)).collect();
        fleet.queue(1, &storm);
        let own: Vec<(u64, u64)> = (0..20).map(|k| (1_000 + k, 1_000)).collect();
        fleet.queue(0, &own);
        fleet.finish(120_000);
        assert_eq!(fleet.fns[1].stats.throttles, 120, "80 of 200 ran");
        assert_eq!(fleet.fns[0].stats.throttles, 0);
    }

    #[test]
    fn provisioned_concurrency_is_allocated_only_within_the_pool() {
        // An account of 300: Lambda keeps 100 unprovisioned, so two
        // functions asking 150 each get 150 and 50.
        let fns = vec![function(300, true, 1), function(300, true, 2)];
        let mut fleet = Fleet::new(fns, 300);
        assert_eq!(fleet.set_provisioned(0, 0, 150), 150);
        assert_eq!(fleet.set_provisioned(1, 0, 150), 50);
        // Giving some back makes room again.
        assert_eq!(fleet.set_provisioned(0, 1_000, 0), 0);
        assert_eq!(fleet.set_provisioned(1, 1_000, 150), 150);
    }

    #[test]
    fn a_fan_out_to_every_function_throttles_their_own_traffic() {
        // Ten functions, an account of 50: ten pings each, held 10 s, take
        // the whole pool, and a real request a second later is refused.
        let fns = (0..10).map(|i| function(50, true, i)).collect();
        let mut fleet = Fleet::new(fns, 50);
        fleet.queue(3, &[(1_000, 100)]);
        let mut reached = 0;
        for k in 0..10u64 {
            for i in 0..10 {
                if let PingResult::Reached { .. } = fleet.ping(i, k, 10_000) {
                    reached += 1;
                }
            }
        }
        fleet.finish(60_000);
        assert_eq!(reached, 50);
        assert_eq!(fleet.fns[3].stats.throttles, 1);
    }
}
