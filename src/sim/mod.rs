//! The offline simulator: replay a workload against a model of Lambda and
//! compare warming policies.
//!
//! * [`evaluate`]: the controller's forecasts scored against the peaks real
//!   traffic then made, beside simple baselines (`forewarm forecast`).
//! * [`fleet`]: the account, whose functions share one concurrency pool and
//!   meet event by event in time order.
//! * [`model`]: the platform's numbers (reaping, cold starts, limits, prices),
//!   from `models/*.toml`.
//! * [`platform`]: one function's sandboxes, processed event by event in
//!   integer milliseconds.
//! * [`policy`]: the policies compared (`none`, `fixed`, `lambda-warmer`,
//!   `provisioned`, `forewarm`, `oracle`).
//! * [`ports`]: the simulated CloudWatch, DynamoDB and Lambda behind which
//!   the *real* [`crate::tick::run_tick`] runs for the `forewarm` policy:
//!   there is no second implementation of the controller.
//! * [`report`]: the figures, as JSON (one object per policy, fixed keys) and as a
//!   table.
//! * [`service`]: how long a real request runs (the trace's percentiles, or
//!   exponential with its mean).
//! * [`synth`]: a synthetic workload generator with the published shape of
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

pub mod evaluate;
pub mod fleet;
pub mod model;
pub mod platform;
pub mod policy;
pub mod ports;
pub mod report;
pub mod scenario;
pub mod service;
pub mod synth;
pub mod trace;

use rand::Rng;
use rand_pcg::Pcg64Mcg;

use fleet::Fleet;
use model::Model;
use platform::{FnSim, Setup, Stats};
use policy::PolicySpec;
pub use report::{PolicyReport, Report};
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
pub fn stream_seed(seed: u64, i: u64, stream: u64) -> u64 {
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

/// Runs one policy over the trace. `progress` is called with the minute
/// reached, every simulated hour.
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
                real_peak_minutes: if record { total_minutes } else { 0 },
            };
            FnSim::new(model, setup, stream_seed(cfg.seed, i as u64, 2))
        })
        .collect();
    let mut fleet = Fleet::new(fns, model.scaling.account_concurrency);
    let mut workload: Vec<Pcg64Mcg> = (0..trace.functions.len())
        .map(|i| Pcg64Mcg::new(stream_seed(cfg.seed, i as u64, 1) as u128 | 1))
        .collect();
    // The policies' own draws (lambda-warmer's async delays) have their own
    // stream, so the workload is the same under every policy.
    let mut policy_rng: Vec<Pcg64Mcg> = (0..trace.functions.len())
        .map(|i| Pcg64Mcg::new(stream_seed(cfg.seed, i as u64, 3) as u128 | 1))
        .collect();
    // Each timer's second within the minute, from its own stream.
    let timer_phase: Vec<Option<u64>> = trace
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| f.timer.then(|| stream_seed(cfg.seed, i as u64, 4) % 60_000))
        .collect();
    let service: Vec<service::Service> = trace
        .functions
        .iter()
        .map(|f| service::Service::of(f, model.durations.shape))
        .collect();

    let mut minutes = FleetTimeline {
        requests: vec![0; total_minutes],
        cold_starts: vec![0; total_minutes],
        pings: vec![0; total_minutes],
    };
    let mut timeline = Vec::new();
    let mut controller = match spec {
        PolicySpec::Forewarm { policy, .. } => Some(
            ports::Controller::new(trace.functions.len(), policy.clone(), model)
                .with_init_allowance_ms(cfg.init_allowance_ms),
        ),
        _ => None,
    };
    if let Some(c) = controller.as_mut().filter(|_| record) {
        c.record_forecasts(
            total_minutes.div_ceil(crate::decision::policy::WINDOW_MINUTES as usize),
        );
    }
    let mut pc_peaks: Vec<[u32; 24]> = vec![[0; 24]; trace.functions.len()];
    let gap = model.invoke.fanout_gap_ms.round() as u64;
    let mut arrivals: Vec<(u64, u64)> = Vec::new();

    #[allow(clippy::needless_range_loop)] // `m` is the clock, not just an index
    for m in 0..total_minutes {
        let t0 = m as u64 * 60_000;
        if m % 60 == 0 {
            progress(m);
        }
        let before = snapshot(&fleet.fns, cfg.timeline_function);
        let (req0, cold0, ping0) = totals(&fleet.fns);

        // 1. This minute's real arrivals, queued per function before anything
        //    acts, so pings and requests interleave in time order. A timer's
        //    n calls come evenly spaced from its fixed second (a 5-minute
        //    timer is 300 s apart exactly, as EventBridge fires it); others
        //    at uniform random times in the minute (a Poisson process, given
        //    the count).
        for &(f, n) in &by_minute[m] {
            let rng = &mut workload[f as usize];
            arrivals.clear();
            let spacing = 60_000 / n.max(1) as u64;
            for k in 0..n as u64 {
                let at = match timer_phase[f as usize] {
                    Some(phase) => t0 + phase % spacing + k * spacing,
                    None => t0 + rng.random_range(0..60_000u64),
                };
                let d = service[f as usize].sample(rng);
                arrivals.push((at, d));
            }
            arrivals.sort_unstable();
            fleet.queue(f as usize, &arrivals);
        }
        fleet.run_until(t0);

        if let Some((at, (lo, hi))) = cfg.reaping_change
            && at == m
        {
            for f in fleet.fns.iter_mut() {
                f.set_ttl(lo, hi);
            }
        }

        // 2. The policy acts at the minute's start.
        let mut target = 0;
        match spec {
            PolicySpec::None | PolicySpec::Oracle => {}
            PolicySpec::Fixed {
                n,
                every_ms,
                delay_ms,
            } => {
                if t0.is_multiple_of(*every_ms) {
                    // In time order across the fleet: the k-th ping of
                    // every function before the next one of any.
                    for k in 0..*n as u64 {
                        for i in 0..fleet.fns.len() {
                            fleet.ping(i, t0 + k * gap, *delay_ms);
                        }
                    }
                }
            }
            PolicySpec::LambdaWarmer { n, every_ms } => {
                if t0.is_multiple_of(*every_ms) {
                    let mut pings: Vec<(u64, u32, u64)> = Vec::new();
                    for (i, rng) in policy_rng.iter_mut().enumerate() {
                        lambda_warmer_fanout(&mut pings, i as u32, model, *n, t0, rng);
                    }
                    pings.sort_unstable();
                    for (at, i, hold) in pings {
                        fleet.ping(i as usize, at, hold);
                    }
                }
            }
            PolicySpec::Provisioned { n: Some(n) } => {
                if m == 0 {
                    for i in 0..fleet.fns.len() {
                        fleet.set_provisioned(i, t0, *n);
                    }
                }
            }
            PolicySpec::Provisioned { n: None } => {
                if m % 60 == 0 {
                    let hour = (m / 60) % 24;
                    for (i, peaks) in pc_peaks.iter_mut().enumerate() {
                        let f = &mut fleet.fns[i];
                        if m > 0 {
                            peaks[(hour + 23) % 24] = f.hour_peak;
                        }
                        f.hour_peak = 0;
                        fleet.set_provisioned(i, t0, peaks[hour]);
                    }
                }
            }
            PolicySpec::Forewarm { .. } => {
                if let Some(c) = controller.as_mut() {
                    let r = c.tick(&mut fleet, t0);
                    if let Some(i) = cfg.timeline_function {
                        target = r.get(i).copied().unwrap_or(0);
                    }
                }
            }
        }

        // 3. The rest of the minute.
        fleet.run_until(t0 + 60_000);
        if forewarm && m % 60 == 0 {
            for f in fleet.fns.iter_mut() {
                f.forget_before(
                    (m as u64).saturating_sub(crate::decision::MAX_BACKFILL_MINUTES + 60),
                );
            }
        }

        let (req1, cold1, ping1) = totals(&fleet.fns);
        minutes.requests[m] = (req1 - req0) as u32;
        minutes.cold_starts[m] = (cold1 - cold0) as u32;
        minutes.pings[m] = (ping1 - ping0) as u32;
        if let (Some(i), Some((r, c, p, pool))) = (cfg.timeline_function, before) {
            let f = &fleet.fns[i];
            timeline.push(TimelinePoint {
                minute: m as u32,
                requests: (f.raw.0 - r) as u32,
                cold_starts: (f.raw.1 - c) as u32,
                pings: (f.raw.2 - p) as u32,
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
    let forecasts = controller
        .as_mut()
        .filter(|_| record)
        .map(|c| evaluate::Record {
            targets: c.forecasts(),
            real_peaks: fleet
                .fns
                .iter_mut()
                .map(|f| std::mem::take(&mut f.real_peaks))
                .collect(),
            report_from_minute: (report_from_ms / 60_000) as usize,
            lag_minutes: c.metrics_lag_minutes() as usize,
        });
    let controller_parts = controller
        .as_ref()
        .map_or_else(Default::default, |c| c.cost_parts(model, report_from_ms));
    let sim_seconds = (end - report_from_ms) as f64 / 1_000.0;
    PolicyRun {
        report: PolicyReport::from_stats(
            spec.to_string(),
            &stats,
            model,
            controller_parts,
            sim_seconds,
        ),
        fleet: minutes,
        timeline,
        per_function,
        forecasts,
    }
}

fn totals(fns: &[FnSim]) -> (u64, u64, u64) {
    fns.iter().fold((0, 0, 0), |(r, c, p), f| {
        (
            r + f.stats.requests,
            c + f.stats.cold_starts,
            p + f.stats.pings,
        )
    })
}

fn snapshot(fns: &[FnSim], i: Option<usize>) -> Option<(u64, u64, u64, u32)> {
    let f = &fns[i?];
    Some((f.raw.0, f.raw.1, f.raw.2, f.idle_count()))
}

/// lambda-warmer's fan-out: one ping reaches the function, which then invokes
/// itself `n - 2` times asynchronously (through Lambda's queue, so they arrive
/// spread over the async delay) and once synchronously, and waits for the
/// synchronous one; the fan-out pings sleep 75 ms. Adds function `i`'s
/// pings to `out` as `(at, function, hold)`.
fn lambda_warmer_fanout(
    out: &mut Vec<(u64, u32, u64)>,
    i: u32,
    model: &Model,
    n: u32,
    t0: u64,
    rng: &mut Pcg64Mcg,
) {
    if n == 0 {
        return;
    }
    let gap = model.invoke.fanout_gap_ms.round() as u64;
    let hold = crate::protocol::LAMBDA_WARMER_DELAY_MS;
    // The first invocation stays busy while it fans out and awaits the sync
    // one: about one hop plus the sync ping's sleep.
    let first_hold = if n > 1 { gap + hold } else { 0 };
    out.push((t0, i, first_hold));
    if n == 1 {
        return;
    }
    let mut fan: Vec<u64> = (0..n - 2)
        .map(|_| {
            let (lo, hi) = (
                model.invoke.async_delay_min_ms,
                model.invoke.async_delay_max_ms,
            );
            t0 + (lo + (hi - lo) * rng.random::<f64>()).round() as u64
        })
        .collect();
    fan.push(t0 + gap);
    out.extend(fan.into_iter().map(|at| (at, i, hold)));
}

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;
