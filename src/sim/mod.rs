//! The offline simulator: replay a workload against a model of Lambda and
//! compare warming policies.
//!
//! * `evaluate`: the controller's forecasts scored against the peaks real
//!   traffic then made, beside simple baselines (`forewarm forecast`).
//! * `fleet`: the account, whose functions share one concurrency pool and
//!   meet event by event in time order.
//! * [`model`]: the platform's numbers (reaping, cold starts, limits, prices),
//!   from `models/*.toml`.
//! * `platform`: one function's sandboxes, processed event by event in
//!   integer milliseconds.
//! * [`policy`]: the policies compared (`none`, `fixed`, `lambda-warmer`,
//!   `provisioned`, `forewarm`, `oracle`).
//! * `ports`: the simulated CloudWatch, DynamoDB and Lambda behind which
//!   the *real* [`crate::tick::run_tick`] runs for the `forewarm` policy:
//!   there is no second implementation of the controller.
//! * `report`: the figures, as JSON (one object per policy, fixed keys) and as a
//!   table.
//! * `service`: how long a real request runs (the trace's percentiles, or
//!   exponential with its mean).
//! * `synth`: a synthetic workload generator with the published shape of
//!   production traces.
//! * [`trace`]: workload traces (Azure Functions 2019 per-minute, 2021
//!   per-invocation) read into one compact form.
//!
//! Determinism: every random draw comes from generators seeded by the
//! scenario's seed and the function's index (arrivals and durations from one
//! stream, identical under every policy; platform draws from another), time
//! is integer milliseconds, and no wall clock or environment is read. The
//! fleet's events are processed in time order across functions (ties by
//! function index), because they share the account's concurrency; the
//! controller (or a baseline's schedule) acts at minute boundaries.

// `evaluate`, `scenario` and `synth` serve the CLI's commands (`forecast`,
// `simulate`'s scenarios, `trace synth`) only; the core built without the CLI
// still compiles them.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) mod evaluate;
pub(crate) mod fleet;
pub mod model;
pub(crate) mod platform;
pub mod policy;
pub(crate) mod ports;
pub(crate) mod report;
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) mod scenario;
pub(crate) mod service;
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) mod synth;
pub mod trace;

use rand::Rng;
use rand_pcg::Pcg64Mcg;

use fleet::Fleet;
use model::Model;
use platform::{FnSim, Setup, Stats};
use policy::PolicySpec;
pub use report::{PolicyReport, SimReport};
use trace::Trace;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Scenario name, for the report.
    pub scenario: String,
    /// The platform model.
    pub model: Model,
    /// Seed of every random draw.
    pub seed: u64,
    /// Times the trace is played; the report covers every play after the first.
    pub repeat: usize,
    /// Policies to run.
    pub policies: Vec<PolicySpec>,
    /// A function whose minute-by-minute timeline to keep (index in the trace).
    pub timeline_function: Option<usize>,
    /// The platform changing its reaping mid-run: from this minute on,
    /// sandboxes that go idle are reaped after a drawn `(min, max)` seconds
    /// (the interval learner must follow such a change).
    pub reaping_change: Option<(usize, (f64, f64))>,
    /// Keep, for the `forewarm` policy, what it forecast for each window and
    /// what real traffic then did (for `forewarm forecast`).
    pub record_forecasts: bool,
    /// What the `forewarm` controller allows a cold ping's INIT before it
    /// counts the ping timed out, ms (`FOREWARM_INIT_ALLOWANCE_MS` of the
    /// real controller; Lambda's 10 s Init limit by default).
    pub init_allowance_ms: u64,
}

/// One minute of one function, for the timeline plot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimelinePoint {
    /// Minute from the start.
    pub minute: u32,
    /// Real requests started.
    pub requests: u32,
    /// Real cold starts.
    pub cold_starts: u32,
    /// Pings sent.
    pub pings: u32,
    /// Idle (warm) sandboxes at the minute's start.
    pub warm_pool: u32,
    /// The controller's target (forewarm only).
    pub target: u32,
}

/// Fleet-wide counts per minute, for the CSV timelines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetTimeline {
    /// Real requests per minute.
    pub requests: Vec<u32>,
    /// Real cold starts per minute.
    pub cold_starts: Vec<u32>,
    /// Pings per minute.
    pub pings: Vec<u32>,
}

/// The outcome of one policy.
#[derive(Debug, Clone)]
pub struct PolicyRun {
    /// The figures.
    pub report: PolicyReport,
    /// Fleet-wide minute counts.
    pub fleet: FleetTimeline,
    /// The chosen function's timeline.
    pub timeline: Vec<TimelinePoint>,
    /// Cold starts and requests per function, in trace order.
    pub per_function: Vec<(u64, u64)>,
    /// What the controller forecast and what came, when asked for.
    pub forecasts: Option<evaluate::Record>,
}

/// A seed for function `i`'s stream `stream`: distinct, well mixed
/// (SplitMix64 finalizer).
pub(crate) fn stream_seed(seed: u64, i: u64, stream: u64) -> u64 {
    let mut z =
        seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Functions active in each minute: `(function, invocations)`, built once per
/// trace and shared by every policy.
pub fn minute_index(trace: &Trace) -> Vec<Vec<(u32, u32)>> {
    let mut by_minute = vec![Vec::new(); trace.minutes];
    for (i, f) in trace.functions.iter().enumerate() {
        for &(m, n) in &f.active {
            if let Some(slot) = by_minute.get_mut(m as usize) {
                slot.push((i as u32, n));
            }
        }
    }
    by_minute
}

/// The first policy of `cfg` over the trace, without progress: how the
/// tests run one.
#[cfg(test)]
pub(crate) fn run_first(trace: &Trace, cfg: &RunConfig) -> PolicyRun {
    run_policy(trace, &minute_index(trace), cfg, &cfg.policies[0], &|_| {})
}

/// Runs one policy over the trace. `progress` is called with the minute
/// reached, every simulated hour.
///
/// Each minute: that minute's real arrivals are queued, the platform runs to
/// the minute's start, the policy acts (`policy::Warming`), and the
/// platform runs to the minute's end. The workload's draws come from their
/// own streams, so every policy meets the same requests.
pub fn run_policy(
    trace: &Trace,
    by_minute: &[Vec<(u32, u32)>],
    cfg: &RunConfig,
    spec: &PolicySpec,
    progress: &(dyn Fn(usize) + Sync),
) -> PolicyRun {
    let model = &cfg.model;
    let total_minutes = trace.minutes;
    let report_from_ms = if cfg.repeat > 1 {
        (total_minutes / cfg.repeat) as u64 * 60_000
    } else {
        0
    };
    let forewarm = matches!(spec, PolicySpec::Forewarm { .. });
    let record = forewarm && cfg.record_forecasts;
    let mut fleet = new_fleet(trace, cfg, spec, report_from_ms, record);
    let mut workload = Workload::new(trace, cfg);
    let mut warming = spec.warming(&policy::Setting {
        model,
        functions: trace.functions.len(),
        minutes: total_minutes,
        seed: cfg.seed,
        record,
        init_allowance_ms: cfg.init_allowance_ms,
    });

    let mut minutes = FleetTimeline {
        requests: vec![0; total_minutes],
        cold_starts: vec![0; total_minutes],
        pings: vec![0; total_minutes],
    };
    let mut timeline = Vec::new();
    #[allow(clippy::needless_range_loop)] // `m` is the clock, not just an index
    for m in 0..total_minutes {
        let t0 = m as u64 * 60_000;
        if m % 60 == 0 {
            progress(m);
        }
        let before = snapshot(&fleet.fns, cfg.timeline_function);
        let start = totals(&fleet.fns);
        workload.queue_minute(&mut fleet, &by_minute[m], t0);
        fleet.run_until(t0);
        if let Some((at, (lo, hi))) = cfg.reaping_change
            && at == m
        {
            for f in fleet.fns.iter_mut() {
                f.set_ttl(lo, hi);
            }
        }
        let target = warming.at_minute(&mut fleet, m, t0, cfg.timeline_function);
        fleet.run_until(t0 + 60_000);
        warming.after_minute(&mut fleet, m);

        let end = totals(&fleet.fns);
        minutes.requests[m] = (end.requests - start.requests) as u32;
        minutes.cold_starts[m] = (end.cold_starts - start.cold_starts) as u32;
        minutes.pings[m] = (end.pings - start.pings) as u32;
        if let (Some(i), Some((was, pool))) = (cfg.timeline_function, before) {
            let now = fleet.fns[i].raw;
            timeline.push(TimelinePoint {
                minute: m as u32,
                requests: (now.requests - was.requests) as u32,
                cold_starts: (now.cold_starts - was.cold_starts) as u32,
                pings: (now.pings - was.pings) as u32,
                warm_pool: pool,
                target,
            });
        }
    }
    let end = total_minutes as u64 * 60_000;
    let mut stats = Stats::default();
    fleet.finish(end);
    let mut per_function = Vec::with_capacity(fleet.fns.len());
    for f in &fleet.fns {
        per_function.push((f.stats.cold_starts, f.stats.requests));
        stats.merge(&f.stats);
    }
    let forecasts = warming.forecasts(&mut fleet, report_from_ms);
    let controller_parts = warming.cost_parts(model, report_from_ms);
    let mut report = PolicyReport::from_stats(spec.to_string(), &stats, model, controller_parts);
    report.not_worth_it_functions = warming.not_worth_it(report_from_ms);
    PolicyRun {
        report,
        fleet: minutes,
        timeline,
        per_function,
        forecasts,
    }
}

/// The account's functions, each on the platform the model describes.
fn new_fleet(
    trace: &Trace,
    cfg: &RunConfig,
    spec: &PolicySpec,
    report_from_ms: u64,
    record: bool,
) -> Fleet {
    let model = &cfg.model;
    let forewarm = matches!(spec, PolicySpec::Forewarm { .. });
    let fns: Vec<FnSim> = trace
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let setup = Setup {
                gb: f.memory_mb as f64 / 1024.0,
                limit: model.scaling.account_concurrency,
                shares_pool: true,
                report_from_ms,
                oracle: matches!(spec, PolicySpec::Oracle),
                record_metrics: forewarm,
                real_peak_minutes: if record { trace.minutes } else { 0 },
            };
            FnSim::new(model, setup, stream_seed(cfg.seed, i as u64, 2))
        })
        .collect();
    Fleet::new(fns, model.scaling.account_concurrency)
}

/// The real requests: when each arrives and how long it runs, drawn from
/// each function's own stream.
struct Workload {
    rng: Vec<Pcg64Mcg>,
    /// Each timer's second within the minute, from its own stream.
    timer_phase: Vec<Option<u64>>,
    service: Vec<service::Service>,
    /// Scratch: one function's arrivals in a minute, `(at, duration)`.
    arrivals: Vec<(u64, u64)>,
}

impl Workload {
    fn new(trace: &Trace, cfg: &RunConfig) -> Workload {
        let seed = cfg.seed;
        Workload {
            rng: (0..trace.functions.len())
                .map(|i| Pcg64Mcg::new(stream_seed(seed, i as u64, 1) as u128 | 1))
                .collect(),
            timer_phase: trace
                .functions
                .iter()
                .enumerate()
                .map(|(i, f)| f.timer.then(|| stream_seed(seed, i as u64, 4) % 60_000))
                .collect(),
            service: trace
                .functions
                .iter()
                .map(|f| service::Service::of(f, cfg.model.durations.shape))
                .collect(),
            arrivals: Vec::new(),
        }
    }

    /// Queues minute `t0`'s real arrivals per function before anything acts,
    /// so pings and requests interleave in time order. A timer's n calls
    /// come evenly spaced from its fixed second (a 5-minute timer is 300 s
    /// apart exactly, as EventBridge fires it); others at uniform random
    /// times in the minute (a Poisson process, given the count).
    fn queue_minute(&mut self, fleet: &mut Fleet, active: &[(u32, u32)], t0: u64) {
        for &(f, n) in active {
            let f = f as usize;
            let rng = &mut self.rng[f];
            self.arrivals.clear();
            let spacing = 60_000 / n.max(1) as u64;
            for k in 0..n as u64 {
                let at = match self.timer_phase[f] {
                    Some(phase) => t0 + phase % spacing + k * spacing,
                    None => t0 + rng.random_range(0..60_000u64),
                };
                let d = self.service[f].sample(rng);
                self.arrivals.push((at, d));
            }
            self.arrivals.sort_unstable();
            fleet.queue(f, &self.arrivals);
        }
    }
}

/// The fleet's real requests, real cold starts and pings so far in the
/// report period.
fn totals(fns: &[FnSim]) -> platform::RawCounts {
    fns.iter()
        .fold(platform::RawCounts::default(), |t, f| platform::RawCounts {
            requests: t.requests + f.stats.requests,
            cold_starts: t.cold_starts + f.stats.cold_starts,
            pings: t.pings + f.stats.pings,
        })
}

/// Function `i`'s counts and idle sandboxes at this moment.
fn snapshot(fns: &[FnSim], i: Option<usize>) -> Option<(platform::RawCounts, u32)> {
    let f = &fns[i?];
    Some((f.raw, f.idle_count()))
}

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;
