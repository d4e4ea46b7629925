//! One function on the simulated platform.
//!
//! Sandboxes are Initializing/Busy (one request each), Idle, or Reaped. A
//! request takes the most recently freed idle sandbox (as SimFaaS does, and
//! as Lambda appears to), else cold-starts a new one, subject to the
//! function's concurrency limit, the room left in the account's shared pool
//! (set by [`super::fleet::Fleet`] before each event) and Lambda's scaling
//! rate; past any of them it is throttled. An idle sandbox is reaped a drawn
//! TTL after it was freed.
//!
//! Events of one function are processed strictly in time order: completions
//! sit in a min-heap and are released before each arrival; arrivals (real
//! requests and pings) are fed in ascending time by the engine. Reaping is
//! lazy: an expired sandbox is removed when a request looks at it, and its
//! idle time is charged up to its reap time, never further.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use rand_pcg::Pcg64Mcg;

use super::model::Model;
use crate::decision::MinuteMetrics;

/// What occupies a busy sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A real request.
    Real,
    /// A warming ping.
    Ping,
    /// A real request on a Provisioned Concurrency sandbox.
    Provisioned,
}

#[derive(Debug, Clone, Copy)]
struct Idle {
    id: u32,
    free_ms: u64,
    reap_ms: u64,
    /// When the sandbox last started a real request (0: never), as the
    /// shims report it in ping replies.
    last_real_ms: u64,
}

/// Totals of one run, over the report period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Real requests.
    pub requests: u64,
    /// Real requests that paid a cold start.
    pub cold_starts: u64,
    /// Real cold starts while pings held sandboxes of the function.
    pub interference_cold_starts: u64,
    /// Real requests throttled.
    pub throttles: u64,
    /// Pings sent.
    pub pings: u64,
    /// Sandboxes created by pings.
    pub ping_cold_starts: u64,
    /// Pings throttled.
    pub ping_throttles: u64,
    /// Pings that reached a sandbox but answered after the controller's
    /// timeout (a slow INIT), so it counted them failed.
    pub ping_timeouts: u64,
    /// GB-ms of ping duration (holds).
    pub ping_gb_ms: f64,
    /// GB-ms of INIT of ping-created sandboxes.
    pub ping_init_gb_ms: f64,
    /// GB-ms of INIT, paid ahead by the oracle for every cold start it hides.
    pub oracle_init_gb_ms: f64,
    /// GB-ms of sandboxes idle (kept alive and not running anything).
    pub idle_gb_ms: f64,
    /// GB-ms of Provisioned Concurrency kept ready.
    pub provisioned_gb_ms: f64,
    /// Added latency of each real cold start, ms.
    pub cold_latency_ms: Vec<u32>,
    /// Events processed (arrivals, completions, pings).
    pub events: u64,
}

impl Stats {
    /// Adds another run's totals.
    pub fn merge(&mut self, o: &Stats) {
        self.requests += o.requests;
        self.cold_starts += o.cold_starts;
        self.interference_cold_starts += o.interference_cold_starts;
        self.throttles += o.throttles;
        self.pings += o.pings;
        self.ping_cold_starts += o.ping_cold_starts;
        self.ping_throttles += o.ping_throttles;
        self.ping_timeouts += o.ping_timeouts;
        self.ping_gb_ms += o.ping_gb_ms;
        self.ping_init_gb_ms += o.ping_init_gb_ms;
        self.oracle_init_gb_ms += o.oracle_init_gb_ms;
        self.idle_gb_ms += o.idle_gb_ms;
        self.provisioned_gb_ms += o.provisioned_gb_ms;
        self.cold_latency_ms.extend_from_slice(&o.cold_latency_ms);
        self.events += o.events;
    }
}

/// How a ping went, for the warm report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PingResult {
    /// Reached sandbox `id`; `cold` when the ping created it.
    Reached {
        /// Sandbox id.
        id: u32,
        /// Created by this ping.
        cold: bool,
        /// When the sandbox last started a real request, if ever.
        last_real_ms: Option<u64>,
        /// The INIT it waited for before its hold began (0 when warm).
        init_ms: u64,
    },
    /// Throttled.
    Throttled,
}

/// Per-function settings the engine fixes up front.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    /// Memory, GB.
    pub gb: f64,
    /// Concurrency available to the function: its reserved concurrency, or
    /// the account's limit when it has none.
    pub limit: u32,
    /// Whether the function draws on the account's unreserved pool (it has
    /// no reserved concurrency of its own).
    pub shares_pool: bool,
    /// Start of the report period, ms: nothing before it is counted.
    pub report_from_ms: u64,
    /// Whether real cold starts are hidden by perfect foresight.
    pub oracle: bool,
    /// Whether to record CloudWatch-style minute metrics.
    pub record_metrics: bool,
    /// Minutes of real peak concurrency to record (0: none), the truth
    /// `forewarm forecast` scores forecasts against.
    pub real_peak_minutes: usize,
}

/// Counts of real requests, real cold starts and pings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RawCounts {
    /// Real requests.
    pub requests: u64,
    /// Real cold starts.
    pub cold_starts: u64,
    /// Pings.
    pub pings: u64,
}

/// One function's sandboxes and its share of the totals.
#[derive(Debug, Clone)]
pub(crate) struct FnSim {
    setup: Setup,
    ttl_ms: (u64, u64),
    cold: LogNormal<f64>,
    fixed_cold_ms: Option<u64>,
    new_per_ms: f64,
    burst: f64,
    rng: Pcg64Mcg,
    idle: Vec<Idle>,
    /// `(until, id, kind, last real start)`.
    busy: BinaryHeap<Reverse<(u64, u32, Kind, u64)>>,
    on_demand_busy: u32,
    ping_busy: u32,
    provisioned_busy: u32,
    provisioned: u32,
    provisioned_since_ms: u64,
    next_id: u32,
    tokens: f64,
    tokens_ms: u64,
    now_ms: u64,
    /// Sandboxes this function may hold from the account's unreserved pool
    /// (its own in use plus what no other function holds), set by the fleet.
    pub(crate) pool_room: u32,
    /// Totals so far (over the report period).
    pub stats: Stats,
    /// Counts since the start, report period or not (for timelines).
    pub raw: RawCounts,
    minute: Option<MinuteAcc>,
    /// Real arrivals not yet processed, `(at, duration)`, ascending.
    queued: std::collections::VecDeque<(u64, u64)>,
    /// Recorded minutes (only those in which something ran), ascending.
    pub history: std::collections::VecDeque<MinuteMetrics>,
    /// The last minute an invocation (real or ping) started in.
    pub last_invoked_minute: Option<u64>,
    /// Highest concurrency of real requests in the current hour (for
    /// scheduled Provisioned Concurrency).
    pub hour_peak: u32,
    /// Peak concurrency of real requests (pings not counted) in each minute
    /// from the start, when [`Setup::real_peak_minutes`] asks for it.
    pub real_peaks: Vec<u16>,
    /// The last minute a real request's start or end was noted in.
    real_minute: usize,
}

#[derive(Debug, Clone, Copy)]
struct MinuteAcc {
    minute: u64,
    max: u32,
    invocations: u32,
    duration_ms: f64,
    cold: u32,
}

impl FnSim {
    /// A function with no sandboxes at time 0.
    pub(crate) fn new(model: &Model, setup: Setup, seed: u64) -> FnSim {
        let (mu, sigma) = model.cold_start_lognormal();
        FnSim {
            ttl_ms: (
                (model.reaping.ttl_min_s * 1_000.0) as u64,
                (model.reaping.ttl_max_s * 1_000.0) as u64,
            ),
            cold: LogNormal::new(mu, sigma.max(1e-12)).expect("finite log-normal"),
            fixed_cold_ms: (sigma == 0.0).then_some(model.cold_start.median_ms.round() as u64),
            new_per_ms: model.scaling.new_per_10s / 10_000.0,
            burst: model.scaling.new_per_10s,
            rng: Pcg64Mcg::new(seed as u128 | 1),
            idle: Vec::new(),
            busy: BinaryHeap::new(),
            on_demand_busy: 0,
            ping_busy: 0,
            provisioned_busy: 0,
            provisioned: 0,
            provisioned_since_ms: 0,
            next_id: 0,
            tokens: model.scaling.new_per_10s,
            tokens_ms: 0,
            now_ms: 0,
            pool_room: u32::MAX,
            stats: Stats::default(),
            raw: RawCounts::default(),
            minute: None,
            queued: std::collections::VecDeque::new(),
            last_invoked_minute: None,
            history: std::collections::VecDeque::new(),
            hour_peak: 0,
            real_peaks: vec![0; setup.real_peak_minutes],
            real_minute: 0,
            setup,
        }
    }

    fn counted(&self, t: u64) -> bool {
        t >= self.setup.report_from_ms
    }

    /// Charges an interval of `gb`-sized time to a counter, clipped to the
    /// report period.
    fn clip(&self, from: u64, to: u64) -> f64 {
        to.saturating_sub(from.max(self.setup.report_from_ms)) as f64
    }

    /// Releases every completion up to `t` and moves the clock there.
    pub(crate) fn advance(&mut self, t: u64) {
        while let Some(&Reverse((until, id, kind, last_real_ms))) = self.busy.peek() {
            if until > t {
                break;
            }
            self.busy.pop();
            self.stats.events += 1;
            self.roll_minutes(until);
            if kind != Kind::Ping {
                self.note_real(until, false);
            }
            match kind {
                Kind::Provisioned => self.provisioned_busy -= 1,
                Kind::Real | Kind::Ping => {
                    self.on_demand_busy -= 1;
                    if kind == Kind::Ping {
                        self.ping_busy -= 1;
                    }
                    let ttl = if self.ttl_ms.0 == self.ttl_ms.1 {
                        self.ttl_ms.0
                    } else {
                        self.rng.random_range(self.ttl_ms.0..=self.ttl_ms.1)
                    };
                    self.idle.push(Idle {
                        id,
                        free_ms: until,
                        reap_ms: until + ttl,
                        last_real_ms,
                    });
                }
            }
        }
        self.roll_minutes(t);
        self.now_ms = self.now_ms.max(t);
    }

    fn concurrency(&self) -> u32 {
        self.on_demand_busy + self.provisioned_busy
    }

    /// What the function holds of the account's unreserved pool: its
    /// requests in flight and its Provisioned Concurrency (allocated whether
    /// busy or not); nothing when it has reserved concurrency.
    pub(crate) fn pool_usage(&self) -> u32 {
        if self.setup.shares_pool {
            self.on_demand_busy + self.provisioned
        } else {
            0
        }
    }

    /// Whether the function draws on the account's unreserved pool.
    pub(crate) fn shares_pool(&self) -> bool {
        self.setup.shares_pool
    }

    /// Provisioned Concurrency allocated now.
    pub(crate) fn provisioned(&self) -> u32 {
        self.provisioned
    }

    /// The function's own concurrency limit.
    pub(crate) fn limit(&self) -> u32 {
        self.setup.limit
    }

    /// When the next busy sandbox frees, if any.
    pub(crate) fn next_completion(&self) -> Option<u64> {
        self.busy.peek().map(|Reverse((until, ..))| *until)
    }

    /// When the next queued real arrival comes, if any.
    pub(crate) fn next_arrival(&self) -> Option<u64> {
        self.queued.front().map(|&(at, _)| at)
    }

    /// Counts a ping sent at `t` that the controller gave up on.
    pub(crate) fn note_ping_timeout(&mut self, t: u64) {
        if self.counted(t) {
            self.stats.ping_timeouts += 1;
        }
    }

    /// Processes the next queued real arrival.
    pub(crate) fn run_next(&mut self) {
        if let Some((at, d)) = self.queued.pop_front() {
            self.request(at, d);
        }
    }

    /// Notes a real request starting or ending at `t` in the minute peaks,
    /// with the request still counted in flight. Events come in time order,
    /// so what was in flight before this one was in flight at the start of
    /// every minute since the last event: a request running through a
    /// minute counts in it, as CloudWatch's gauge counts it.
    fn note_real(&mut self, t: u64, starts: bool) {
        if self.real_peaks.is_empty() {
            return;
        }
        let clip = |n: u32| n.min(u16::MAX as u32) as u16;
        // Real requests in flight, this one included.
        let now = self.concurrency() - self.ping_busy;
        let before = if starts { now.saturating_sub(1) } else { now };
        let m = ((t / 60_000) as usize).min(self.real_peaks.len() - 1);
        if m > self.real_minute {
            if before > 0 {
                for p in &mut self.real_peaks[self.real_minute + 1..=m] {
                    *p = (*p).max(clip(before));
                }
            }
            self.real_minute = m;
        }
        if starts {
            let p = &mut self.real_peaks[m];
            *p = (*p).max(clip(now));
        }
    }

    /// A real request arriving at `t` that runs `duration_ms` once started.
    pub(crate) fn request(&mut self, t: u64, duration_ms: u64) {
        self.advance(t);
        self.stats.events += 1;
        let counted = self.counted(t);
        self.raw.requests += 1;
        if counted {
            self.stats.requests += 1;
        }
        if self.provisioned_busy < self.provisioned {
            self.provisioned_busy += 1;
            self.start(t + duration_ms, u32::MAX, Kind::Provisioned, duration_ms, t);
            return;
        }
        if !self.has_room() {
            if counted {
                self.stats.throttles += 1;
            }
            return;
        }
        if let Some((id, _)) = self.take_idle(t) {
            self.start(t + duration_ms, id, Kind::Real, duration_ms, t);
            return;
        }
        match self.create(t) {
            None => {
                if counted {
                    self.stats.throttles += 1;
                }
            }
            Some((id, init)) => {
                let added = if self.setup.oracle { 0 } else { init };
                if !self.setup.oracle {
                    self.raw.cold_starts += 1;
                }
                if counted {
                    if self.setup.oracle {
                        self.stats.oracle_init_gb_ms += init as f64 * self.setup.gb;
                    } else {
                        self.stats.cold_starts += 1;
                        self.stats
                            .cold_latency_ms
                            .push(init.min(u32::MAX as u64) as u32);
                        if self.ping_busy > 0 {
                            self.stats.interference_cold_starts += 1;
                        }
                    }
                }
                if let Some(m) = self.minute.as_mut() {
                    m.cold += 1;
                }
                self.start(t + added + duration_ms, id, Kind::Real, duration_ms, t);
            }
        }
    }

    /// Reaps sandboxes that go idle from now on after `min_s..=max_s`
    /// seconds (those idle already keep the time they drew).
    pub(crate) fn set_ttl(&mut self, min_s: f64, max_s: f64) {
        self.ttl_ms = (
            (min_s * 1_000.0) as u64,
            (max_s.max(min_s) * 1_000.0) as u64,
        );
    }

    /// Queues real arrivals (ascending) to be processed in time order with
    /// any pings that come between them.
    pub(crate) fn queue(&mut self, arrivals: &[(u64, u64)]) {
        self.queued.extend(arrivals.iter().copied());
    }

    /// Processes queued arrivals before `t`.
    fn run_queued_before(&mut self, t: u64) {
        while let Some(&(at, d)) = self.queued.front() {
            if at >= t {
                break;
            }
            self.queued.pop_front();
            self.request(at, d);
        }
    }

    /// Idle sandboxes now (some may be past their reap time until looked at).
    pub(crate) fn idle_count(&self) -> u32 {
        self.idle.iter().filter(|i| i.reap_ms > self.now_ms).count() as u32
    }

    /// The function's memory, MB.
    pub(crate) fn memory_mb(&self) -> u32 {
        (self.setup.gb * 1024.0).round() as u32
    }

    /// A ping arriving at `t` that holds its sandbox for `hold_ms` once started.
    pub(crate) fn ping(&mut self, t: u64, hold_ms: u64) -> PingResult {
        self.run_queued_before(t);
        self.advance(t);
        self.stats.events += 1;
        let counted = self.counted(t);
        self.raw.pings += 1;
        if counted {
            self.stats.pings += 1;
            self.stats.ping_gb_ms += hold_ms.max(1) as f64 * self.setup.gb;
        }
        if !self.has_room() {
            if counted {
                self.stats.ping_throttles += 1;
            }
            return PingResult::Throttled;
        }
        if let Some((id, last_real_ms)) = self.take_idle(t) {
            self.ping_busy += 1;
            self.start(t + hold_ms, id, Kind::Ping, hold_ms, last_real_ms);
            return PingResult::Reached {
                id,
                cold: false,
                last_real_ms: (last_real_ms > 0).then_some(last_real_ms),
                init_ms: 0,
            };
        }
        match self.create(t) {
            None => {
                if counted {
                    self.stats.ping_throttles += 1;
                }
                PingResult::Throttled
            }
            Some((id, init)) => {
                if counted {
                    self.stats.ping_cold_starts += 1;
                    self.stats.ping_init_gb_ms += init as f64 * self.setup.gb;
                }
                self.ping_busy += 1;
                self.start(t + init + hold_ms, id, Kind::Ping, hold_ms, 0);
                PingResult::Reached {
                    id,
                    cold: true,
                    last_real_ms: None,
                    init_ms: init,
                }
            }
        }
    }

    /// The most recently freed idle sandbox that is still alive at `t`, and
    /// when it last started a real request.
    fn take_idle(&mut self, t: u64) -> Option<(u32, u64)> {
        while let Some(top) = self.idle.pop() {
            if top.reap_ms <= t {
                self.stats.idle_gb_ms += self.clip(top.free_ms, top.reap_ms) * self.setup.gb;
                continue;
            }
            self.stats.idle_gb_ms += self.clip(top.free_ms, t) * self.setup.gb;
            return Some((top.id, top.last_real_ms));
        }
        None
    }

    /// Whether one more invocation may run: concurrency counts what runs,
    /// warm or cold, against the function's limit and the account's pool.
    fn has_room(&self) -> bool {
        let held = self.on_demand_busy + self.provisioned;
        held < self.setup.limit && (!self.setup.shares_pool || held < self.pool_room)
    }

    /// A new sandbox at `t` (room checked by the caller), if the scaling
    /// rate allows: its id and INIT time.
    fn create(&mut self, t: u64) -> Option<(u32, u64)> {
        self.tokens =
            (self.tokens + (t - self.tokens_ms.min(t)) as f64 * self.new_per_ms).min(self.burst);
        self.tokens_ms = t;
        if self.tokens < 1.0 {
            return None;
        }
        self.tokens -= 1.0;
        let id = self.next_id;
        self.next_id += 1;
        let init = self
            .fixed_cold_ms
            .unwrap_or_else(|| self.cold.sample(&mut self.rng).round() as u64);
        Some((id, init))
    }

    fn start(&mut self, until: u64, id: u32, kind: Kind, duration_ms: u64, last_real_ms: u64) {
        if kind != Kind::Provisioned {
            self.on_demand_busy += 1;
        }
        self.busy.push(Reverse((until, id, kind, last_real_ms)));
        if kind != Kind::Ping {
            // A real request's start is its `last_real_ms`.
            self.note_real(last_real_ms, true);
        }
        let c = self.concurrency();
        if kind != Kind::Ping {
            self.hour_peak = self.hour_peak.max(c - self.ping_busy);
        }
        if let Some(m) = self.minute.as_mut() {
            m.max = m.max.max(c);
            m.invocations += 1;
            m.duration_ms += duration_ms as f64;
            self.last_invoked_minute = Some(m.minute);
        }
    }

    /// Sets the Provisioned Concurrency kept ready from `t` on, charging the
    /// standby time of the old setting.
    pub(crate) fn set_provisioned(&mut self, t: u64, n: u32) {
        self.advance(t);
        self.stats.provisioned_gb_ms +=
            self.clip(self.provisioned_since_ms, t) * self.provisioned as f64 * self.setup.gb;
        self.provisioned = n;
        self.provisioned_since_ms = t;
    }

    /// Ends the run at `t`: charges idle sandboxes and standby up to then.
    pub(crate) fn finish(&mut self, t: u64) {
        self.set_provisioned(t, 0);
        for i in std::mem::take(&mut self.idle) {
            self.stats.idle_gb_ms += self.clip(i.free_ms, i.reap_ms.min(t)) * self.setup.gb;
        }
        if let Some(m) = self.minute.take() {
            self.history.push_back(m.into_metrics());
        }
    }

    /// Closes minute accumulators up to the minute containing `t`.
    fn roll_minutes(&mut self, t: u64) {
        if !self.setup.record_metrics {
            return;
        }
        let minute = t / 60_000;
        match self.minute {
            Some(m) if m.minute == minute => {}
            Some(m) if m.minute > minute => {}
            _ => {
                let c = self.concurrency();
                if let Some(m) = self.minute.take() {
                    let last = m.minute;
                    self.history.push_back(m.into_metrics());
                    // Minutes with no start or end in them: what ran through
                    // them still shows in ConcurrentExecutions (a gauge
                    // CloudWatch samples while anything runs); no other
                    // metric has a datapoint then.
                    if c > 0 {
                        for k in last + 1..minute {
                            self.history.push_back(MinuteMetrics {
                                minute: k,
                                concurrency_max: Some(c as f64),
                                ..MinuteMetrics::default()
                            });
                        }
                    }
                }
                self.minute = Some(MinuteAcc {
                    minute,
                    max: c,
                    invocations: 0,
                    duration_ms: 0.0,
                    cold: 0,
                });
            }
        }
    }

    /// Finalizes minutes before `minute` and returns the recorded ones in
    /// `from..until` (CloudWatch's view: minutes with no datapoint are absent).
    pub(crate) fn metrics(&mut self, from: u64, until: u64) -> Vec<MinuteMetrics> {
        self.advance(until * 60_000);
        // Reads ask for the latest minutes: walk back from the end rather than
        // search the whole day kept.
        let mut end = self.history.len();
        while end > 0 && self.history[end - 1].minute >= until {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && self.history[start - 1].minute >= from {
            start -= 1;
        }
        self.history.range(start..end).copied().collect()
    }

    /// Drops recorded minutes before `minute` (the controller never reads
    /// further back than a day).
    pub(crate) fn forget_before(&mut self, minute: u64) {
        while self.history.front().is_some_and(|m| m.minute < minute) {
            self.history.pop_front();
        }
    }
}

impl MinuteAcc {
    fn into_metrics(self) -> MinuteMetrics {
        let inv = self.invocations as f64;
        MinuteMetrics {
            minute: self.minute,
            concurrency_max: Some(self.max as f64),
            invocations: Some(inv),
            duration_avg_ms: (self.invocations > 0).then(|| self.duration_ms / inv),
            cold_starts: Some(self.cold as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(ttl_s: f64, cold_ms: f64) -> Model {
        Model::load("lambda-2021")
            .unwrap()
            .with_ttl(ttl_s, ttl_s)
            .with_cold(cold_ms)
    }

    impl Model {
        fn with_cold(mut self, ms: f64) -> Model {
            self.cold_start.median_ms = ms;
            self.cold_start.p95_ms = ms;
            self
        }
    }

    fn setup() -> Setup {
        Setup {
            gb: 1.0,
            limit: 1_000,
            shares_pool: true,
            report_from_ms: 0,
            oracle: false,
            record_metrics: true,
            real_peak_minutes: 10,
        }
    }

    #[test]
    fn three_requests_by_hand() {
        // TTL 10 s, cold start 100 ms, requests of 1 s at 0 s, 0.5 s and 20 s.
        let mut f = FnSim::new(&model(10.0, 100.0), setup(), 1);
        f.request(0, 1_000); // cold: sandbox 0 busy 0..1100
        f.request(500, 1_000); // sandbox 0 busy: cold, sandbox 1 busy 500..1600
        f.request(20_000, 1_000); // both reaped at 11.1 s and 11.6 s: cold again
        f.finish(30_000);
        assert_eq!(f.stats.requests, 3);
        assert_eq!(f.stats.cold_starts, 3);
        assert_eq!(f.stats.cold_latency_ms, vec![100, 100, 100]);
        // Idle: sandbox 0 from 1.1 s to 11.1 s, sandbox 1 from 1.6 s to 11.6 s,
        // sandbox 2 from 21.1 s to the end at 30 s.
        assert_eq!(f.stats.idle_gb_ms, 10_000.0 + 10_000.0 + 8_900.0);
    }

    #[test]
    fn real_peaks_count_requests_in_flight_and_never_pings() {
        let mut f = FnSim::new(&model(600.0, 100.0), setup(), 1);
        for k in 0..5 {
            f.ping(k * 10, 30_000); // five pings held through minute 0
        }
        f.request(1_000, 150_000); // runs through minutes 0, 1 and 2
        f.request(2_000, 1_000);
        f.request(200_000, 1_000); // minute 3
        f.finish(600_000);
        assert_eq!(f.real_peaks[..5], [2, 1, 1, 1, 0], "{:?}", f.real_peaks);
    }

    #[test]
    fn the_newest_idle_sandbox_serves_and_pings_keep_them_warm() {
        let mut f = FnSim::new(&model(60.0, 100.0), setup(), 1);
        assert_eq!(
            f.ping(0, 500),
            PingResult::Reached {
                id: 0,
                cold: true,
                last_real_ms: None,
                init_ms: 100
            }
        );
        assert_eq!(
            f.ping(10, 500),
            PingResult::Reached {
                id: 1,
                cold: true,
                last_real_ms: None,
                init_ms: 100
            }
        );
        // Both free by 0.61 s; a request at 1 s takes sandbox 1 (freed last).
        f.request(1_000, 200);
        assert_eq!(f.stats.cold_starts, 0);
        assert_eq!(f.stats.ping_cold_starts, 2);
        // A ping holding the only idle sandbox makes a real request go cold.
        f.advance(5_000);
        assert!(matches!(
            f.ping(5_000, 2_000),
            PingResult::Reached { cold: false, .. }
        ));
        assert!(matches!(
            f.ping(5_001, 2_000),
            PingResult::Reached { cold: false, .. }
        ));
        f.request(5_500, 100);
        assert_eq!(
            (f.stats.cold_starts, f.stats.interference_cold_starts),
            (1, 1)
        );
    }

    #[test]
    fn pings_without_a_hold_collapse_and_held_pings_spread() {
        // Four idle sandboxes; a fan-out of four pings 2 ms apart.
        let mut f = FnSim::new(&model(600.0, 0.0), setup(), 1);
        for i in 0..4 {
            f.ping(i, 10_000);
        }
        f.advance(20_000);
        let reached = |f: &mut FnSim, t0: u64, hold: u64| {
            let mut ids: Vec<u32> = (0..4)
                .map(|i| match f.ping(t0 + 2 * i, hold) {
                    PingResult::Reached { id, .. } => id,
                    PingResult::Throttled => panic!("throttled"),
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        // No hold: each ping is done before the next arrives and takes the
        // sandbox just freed.
        assert_eq!(reached(&mut f, 30_000, 0), 1);
        // A hold longer than the 6 ms spread: four sandboxes.
        assert_eq!(reached(&mut f, 40_000, 10), 4);
    }

    #[test]
    fn limits_and_the_scaling_rate_throttle() {
        let mut s = setup();
        s.limit = 2;
        let mut f = FnSim::new(&model(60.0, 0.0), s, 1);
        for t in 0..3 {
            f.request(t, 10_000);
        }
        assert_eq!(f.stats.throttles, 1);
        let mut burst = FnSim::new(&model(60.0, 0.0), setup(), 1);
        for i in 0..1_200 {
            burst.request(i / 100, 60_000); // 1,200 new sandboxes within 12 ms
        }
        assert_eq!(burst.stats.throttles, 200, "1,000 per 10 s");
    }

    #[test]
    fn provisioned_sandboxes_serve_first_and_bill_standby() {
        let mut f = FnSim::new(&model(60.0, 100.0), setup(), 1);
        f.set_provisioned(0, 2);
        f.request(1_000, 500);
        f.request(1_100, 500);
        f.request(1_200, 500); // third at once: on demand, cold
        f.finish(10_000);
        assert_eq!(f.stats.cold_starts, 1);
        assert_eq!(f.stats.provisioned_gb_ms, 2.0 * 10_000.0);
    }

    #[test]
    fn the_oracle_hides_cold_starts_but_pays_their_init() {
        let mut s = setup();
        s.oracle = true;
        let mut f = FnSim::new(&model(60.0, 250.0), s, 1);
        f.request(0, 100);
        assert_eq!((f.stats.cold_starts, f.stats.oracle_init_gb_ms), (0, 250.0));
    }

    #[test]
    fn minute_metrics_count_pings_like_cloudwatch_does() {
        let mut f = FnSim::new(&model(600.0, 0.0), setup(), 1);
        for i in 0..3 {
            f.ping(60_000 + i, 300);
        }
        f.request(61_000, 2_000);
        f.request(185_000, 1_000);
        let m = f.metrics(0, 4);
        assert_eq!(m.len(), 2, "minute 1 and minute 3: {m:?}");
        assert_eq!(
            (m[0].minute, m[0].concurrency_max, m[0].invocations),
            (1, Some(3.0), Some(4.0))
        );
        assert_eq!(m[0].duration_avg_ms, Some((900.0 + 2_000.0) / 4.0));
        assert_eq!((m[1].minute, m[1].concurrency_max), (3, Some(1.0)));
    }

    #[test]
    fn a_request_running_through_minutes_shows_in_their_concurrency() {
        let mut f = FnSim::new(&model(600.0, 0.0), setup(), 1);
        f.request(30_000, 200_000); // minute 0 to minute 3
        f.request(250_000, 1_000); // minute 4
        let m = f.metrics(0, 5);
        let seen: Vec<(u64, Option<f64>, Option<f64>)> = m
            .iter()
            .map(|x| (x.minute, x.concurrency_max, x.invocations))
            .collect();
        assert_eq!(
            seen,
            [
                (0, Some(1.0), Some(1.0)),
                (1, Some(1.0), None),
                (2, Some(1.0), None),
                (3, Some(1.0), Some(0.0)),
                (4, Some(1.0), Some(1.0)),
            ],
            "the gauge in minutes 1-2, which have no event"
        );
    }
}
