//! The simulator against numbers it did not produce: SimFaaS's published
//! steady-state table, the closed form for one sandbox with a fixed TTL, and
//! small scenarios counted by hand. Plus determinism.

use rand::Rng;
use rand_distr::{Distribution, Exp};
use rand_pcg::Pcg64Mcg;

use super::model::Model;
use super::platform::{FnSim, Setup};
use super::policy::PolicySpec;
use super::*;
use crate::sim::trace::FunctionTrace;

/// One function, Poisson arrivals at `rate` per second, service times from
/// `service` (ms), a fixed TTL and a fixed cold-start latency, no warming:
/// the share of requests that start cold.
fn p_cold(
    rate: f64,
    ttl_s: f64,
    cold_ms: f64,
    seconds: f64,
    seed: u64,
    service: impl Fn(&mut Pcg64Mcg) -> u64,
) -> (f64, u64) {
    let mut model = Model::load("lambda-2021").unwrap().with_ttl(ttl_s, ttl_s);
    model.cold_start.median_ms = cold_ms;
    model.cold_start.p95_ms = cold_ms;
    let setup = Setup {
        gb: 1.0,
        limit: 100_000,
        shares_pool: false,
        report_from_ms: 0,
        oracle: false,
        record_metrics: false,
        real_peak_minutes: 0,
    };
    let mut f = FnSim::new(&model, setup, seed);
    let mut rng = Pcg64Mcg::new(seed as u128 * 7 + 1);
    let gap = Exp::new(rate / 1_000.0).unwrap();
    let mut t = 0.0;
    let end = seconds * 1_000.0;
    loop {
        t += gap.sample(&mut rng);
        if t >= end {
            break;
        }
        let s = service(&mut rng);
        f.request(t as u64, s);
    }
    (
        f.stats.cold_starts as f64 / f.stats.requests as f64,
        f.stats.requests,
    )
}

/// SimFaaS (Mahmoudi & Khazaei, CLOSER 2021; its simulator simfaas 0.2.2,
/// run with these inputs): warm service exponential with mean
/// 1.991 s, cold 2.244 s, newest-idle routing, instances expire a fixed time
/// after their last departure. Our cold request is a fixed 253 ms INIT plus
/// the same exponential service (mean 2.244 s overall).
#[test]
fn matches_simfaas_steady_state_cold_probability() {
    let exp: Exp<f64> = Exp::new(1.0 / 1_991.0).unwrap();
    // (rate /s, ttl s, SimFaaS P(cold), its run length s)
    let table = [
        (0.01, 60.0, 0.566, 2e5),
        (0.1, 60.0, 0.075, 5e4),
        (0.1, 600.0, 0.0077, 5e4),
        (0.9, 60.0, 0.017, 5e4),
        (0.01, 300.0, 0.066, 2e5),
    ];
    for (rate, ttl, simfaas, their_s) in table {
        let ours_s = their_s * 10.0;
        let (p, n) = p_cold(rate, ttl, 253.0, ours_s, 11, |r| {
            exp.sample(r).round() as u64
        });
        // Sampling error of both runs (binomial), three standard deviations.
        let theirs_n = rate * their_s;
        let sd = (simfaas * (1.0 - simfaas) / theirs_n + p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (p - simfaas).abs() <= 3.0 * sd + 1e-4,
            "rate {rate}, TTL {ttl}: ours {p:.4} over {n} requests, SimFaaS {simfaas} (3 sd = {:.4})",
            3.0 * sd
        );
    }
}

/// One sandbox, rare arrivals, deterministic service `s`: a request is cold
/// when the previous one left more than the TTL `T` before it arrived, or
/// when it arrives while the previous one still runs. With exponential gaps
/// P(cold) = e^(-λ(T+s)) + (1 - e^(-λs)).
#[test]
fn matches_the_closed_form_for_one_sandbox_and_a_fixed_ttl() {
    for (rate, ttl, s) in [
        (0.002f64, 300.0f64, 1.0f64),
        (0.01, 60.0, 0.5),
        (0.0005, 600.0, 2.0),
    ] {
        let expected = (-rate * (ttl + s)).exp() + (1.0 - (-rate * s).exp());
        let (p, n) = p_cold(rate, ttl, 0.0, 20_000.0 / rate, 5, |_| (s * 1_000.0) as u64);
        let sd = (expected * (1.0 - expected) / n as f64).sqrt();
        assert!(
            (p - expected).abs() <= 4.0 * sd,
            "rate {rate}, TTL {ttl}: {p:.4} vs {expected:.4} over {n}"
        );
    }
}

fn tiny_trace(per_minute: &[u32], duration_ms: f64) -> Trace {
    let active = per_minute
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(m, n)| (m as u32, *n))
        .collect();
    Trace {
        functions: vec![FunctionTrace {
            id: "f".into(),
            active,
            duration_ms,
            memory_mb: 1_024,
            duration_percentiles: None,
            timer: false,
        }],
        minutes: per_minute.len(),
    }
}

fn run_one(trace: &Trace, model: &str, spec: &str) -> PolicyRun {
    run_model(trace, Model::load(model).unwrap(), spec)
}

fn run_model(trace: &Trace, model: Model, spec: &str) -> PolicyRun {
    let cfg = RunConfig {
        scenario: "test".into(),
        model,
        seed: 7,
        repeat: 1,
        policies: vec![PolicySpec::parse(spec).unwrap()],
        timeline_function: Some(0),
        reaping_change: None,
        record_forecasts: false,
        init_allowance_ms: crate::decision::pings::INIT_LIMIT_MS,
    };
    run_first(trace, &cfg)
}

#[test]
fn a_fixed_warmer_on_an_idle_function_counted_by_hand() {
    // 15 idle minutes, 10-minute TTL, instant cold starts. Warms at 0, 5 and
    // 10 minutes send 2 pings, 2 ms apart, holding 300 ms each. Only the first
    // two pings create sandboxes; the later ones find them idle.
    let mut model = Model::load("lambda-2019").unwrap();
    model.cold_start.median_ms = 0.0;
    model.cold_start.p95_ms = 0.0;
    let r = run_model(
        &tiny_trace(&[0; 15], 100.0),
        model,
        "fixed:n=2,every=5m,delay=300ms",
    )
    .report;
    assert_eq!(
        (r.warm_pings, r.ping_cold_starts, r.requests, r.cold_starts),
        (6, 2, 0, 0)
    );
    // Cost: 6 requests and 6 holds of 300 ms at 1 GB.
    let expected = 6.0 * 0.000_000_2 + 6.0 * 0.3 * 0.000_016_666_7;
    assert!(
        (r.warm_cost_usd - expected).abs() < 1e-9,
        "{} vs {expected}",
        r.warm_cost_usd
    );
    // Idle, newest-idle first: sandbox 0 (pinged at 0 ms) is idle 0.300-300.002,
    // 300.302-600.000 and 600.300-900 s; sandbox 1 (pinged at 2 ms) 0.302-300.000,
    // 300.300-600.002 and 600.302-900 s.
    let idle_s = (299.702 + 299.698 + 299.7) + (299.698 + 299.702 + 299.698);
    assert!(
        (r.idle_gb_s - idle_s).abs() < 1e-6,
        "{} vs {idle_s}",
        r.idle_gb_s
    );
}

#[test]
fn no_warming_pays_one_cold_start_per_burst_after_the_ttl() {
    // One call in minute 0, one in minute 30: the TTL (10 min) separates them.
    let mut calls = vec![0; 40];
    calls[0] = 1;
    calls[30] = 1;
    let r = run_one(&tiny_trace(&calls, 50.0), "lambda-2019", "none").report;
    assert_eq!((r.requests, r.cold_starts), (2, 2));
    let o = run_one(&tiny_trace(&calls, 50.0), "lambda-2019", "oracle").report;
    assert_eq!((o.requests, o.cold_starts), (2, 0), "the oracle hides both");
}

#[test]
fn forewarm_in_the_simulator_runs_the_real_tick() {
    // A steady function: 60 calls a minute of 2 s (two sandboxes busy) for
    // six hours. The controller learns and keeps it warm.
    let trace = tiny_trace(&[60; 360], 2_000.0);
    let none = run_one(&trace, "lambda-2021", "none").report;
    let fw = run_one(&trace, "lambda-2021", "forewarm");
    assert!(fw.report.warm_pings > 0);
    assert!(
        fw.report.cold_starts <= none.cold_starts,
        "{} vs {}",
        fw.report.cold_starts,
        none.cold_starts
    );
    assert!(
        fw.timeline.iter().skip(30).any(|p| p.target >= 2),
        "the controller targeted the real concurrency"
    );
    assert!(fw.report.warm_cost_usd > 0.0);
}

fn fleet(seed: u64) -> Trace {
    let mut rng = Pcg64Mcg::new(seed as u128 + 3);
    let functions = (0..40)
        .map(|i| {
            let rate: f64 = [0.02, 0.2, 2.0, 30.0][i % 4];
            let active = (0..720u32)
                .filter_map(|m| {
                    let n = (rate * (1.0 + (m as f64 / 120.0).sin()) * rng.random::<f64>()).round()
                        as u32;
                    (n > 0).then_some((m, n))
                })
                .collect();
            FunctionTrace {
                id: format!("fn{i}"),
                active,
                duration_ms: 300.0 + 100.0 * (i % 7) as f64,
                memory_mb: 256,
                duration_percentiles: None,
                timer: false,
            }
        })
        .collect();
    Trace {
        functions,
        minutes: 720,
    }
}

#[test]
fn the_same_seed_gives_a_byte_identical_report() {
    let trace = fleet(1);
    let cfg = |seed| RunConfig {
        scenario: "determinism".into(),
        model: Model::load("lambda-2021").unwrap(),
        seed,
        repeat: 2,
        policies: [
            "none",
            "fixed:n=2,every=5m,delay=300ms",
            "lambda-warmer:n=3,every=5m",
            "provisioned:auto",
            "forewarm",
            "oracle",
        ]
        .iter()
        .map(|s| PolicySpec::parse(s).unwrap())
        .collect(),
        timeline_function: None,
        reaping_change: None,
        record_forecasts: false,
        init_allowance_ms: crate::decision::pings::INIT_LIMIT_MS,
    };
    // Wall-clock figures measure the machine, not the simulation.
    let json = |seed| {
        let (mut r, _) = scenario::run(&cfg(seed), &trace.repeated(2), &|_, _| {});
        r.wall_seconds = 0.0;
        r.events_per_second = 0.0;
        r.to_json()
    };
    let a = json(42);
    assert_eq!(a, json(42));
    assert_ne!(a, json(43), "the seed matters");
    assert_report_keys(&serde_json::from_str(&a).unwrap());
}

/// The report's keys, and each policy's cost parts summing to its cost.
fn assert_report_keys(v: &serde_json::Value) {
    let mut keys: Vec<&str> = v["policies"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want = vec![
        "name",
        "requests",
        "cold_starts",
        "cold_start_rate",
        "ping_cold_starts",
        "interference_cold_starts",
        "throttles",
        "warm_pings",
        "warm_cost_usd",
        "warm_cost_parts",
        "idle_gb_s",
        "p99_added_latency_ms",
        "not_worth_it_functions",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    for p in v["policies"].as_array().unwrap() {
        let parts = p["warm_cost_parts"].as_object().unwrap();
        let mut names: Vec<&str> = parts.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "cloudwatch",
                "controller",
                "dynamodb",
                "init",
                "pings",
                "provisioned"
            ]
        );
        let sum: f64 = parts.values().map(|x| x.as_f64().unwrap()).sum();
        let total = p["warm_cost_usd"].as_f64().unwrap();
        assert!(
            (sum - total).abs() < 1e-8,
            "{}: parts {sum} vs {total}",
            p["name"]
        );
    }
    let mut top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    top.sort_unstable();
    assert_eq!(
        top,
        [
            "events_per_second",
            "functions",
            "policies",
            "scenario",
            "sim_seconds",
            "wall_seconds"
        ]
    );
}

#[test]
fn policies_order_as_they_must() {
    let trace = fleet(2).repeated(2);
    let runs: Vec<PolicyReport> = ["none", "fixed:n=3,every=5m,delay=300ms", "oracle"]
        .iter()
        .map(|s| {
            let cfg = RunConfig {
                scenario: "order".into(),
                model: Model::load("lambda-2021").unwrap(),
                seed: 9,
                repeat: 2,
                policies: vec![PolicySpec::parse(s).unwrap()],
                timeline_function: None,
                reaping_change: None,
                record_forecasts: false,
                init_allowance_ms: crate::decision::pings::INIT_LIMIT_MS,
            };
            run_first(&trace, &cfg).report
        })
        .collect();
    let (none, fixed, oracle) = (&runs[0], &runs[1], &runs[2]);
    assert_eq!(
        none.requests, fixed.requests,
        "the same workload under every policy"
    );
    assert!(fixed.cold_starts < none.cold_starts);
    assert_eq!(oracle.cold_starts, 0);
    assert_eq!(none.warm_cost_usd, 0.0);
}

#[test]
fn the_forecast_record_holds_what_the_controller_issued_and_what_real_traffic_did() {
    // Ten calls of 20 s every minute for a day played twice: about four
    // real requests in flight at any time, while the controller pings.
    let trace = Trace {
        functions: vec![FunctionTrace {
            id: "steady".into(),
            active: (0..1_440).map(|m| (m, 10)).collect(),
            duration_ms: 20_000.0,
            memory_mb: 256,
            duration_percentiles: None,
            timer: false,
        }],
        minutes: 1_440,
    }
    .repeated(2);
    let cfg = RunConfig {
        scenario: "record".into(),
        model: Model::load("lambda-2021").unwrap(),
        seed: 5,
        repeat: 2,
        policies: vec![PolicySpec::parse("forewarm").unwrap()],
        timeline_function: None,
        reaping_change: None,
        record_forecasts: true,
        init_allowance_ms: crate::decision::pings::INIT_LIMIT_MS,
    };
    let run = run_first(&trace, &cfg);
    let record = run.forecasts.expect("recorded");
    assert_eq!(record.report_from_minute, 1_440);
    assert_eq!(record.real_peaks[0].len(), 2_880);
    assert_eq!(record.targets[0].len(), 576);
    assert!(run.report.warm_pings > 0, "the controller warmed it");
    // The truth is the real requests alone: pings ran beside them, but a
    // peak never reaches what ten 20-second calls a minute could not make.
    let peaks = &record.real_peaks[0][1_440..];
    assert!(peaks.iter().all(|&p| (1..=12).contains(&p)), "{peaks:?}");
    let s = super::evaluate::score(&record, 0.99, |_| {});
    assert_eq!(s.scored_windows, 288);
    assert!(
        s.issued_windows > 250,
        "a busy function is looked at every window: {s:?}"
    );
    let forewarm = &s.forecasters[0];
    assert_eq!(forewarm.name, "forewarm");
    assert!(forewarm.score.under_share < 0.05, "{s:?}");
    assert!(forewarm.score.forecast_sum >= s.realized_sum, "{s:?}");
}

#[test]
fn a_timer_below_the_keep_alive_is_cold_only_once() {
    // A 5-minute timer for two days on the 2021 model (idle sandboxes live
    // 300-420 s): fired at a fixed second, each call finds the sandbox the
    // last one left 300 s minus its duration ago. Placed at random seconds
    // (as any function whose trigger is unknown), about one gap in twelve
    // runs past 300 s and may meet a sandbox reaped.
    let fires: Vec<u32> = (0..2 * 1_440).map(|m| u32::from(m % 5 == 0)).collect();
    let mut trace = tiny_trace(&fires, 200.0);
    trace.functions[0].timer = true;
    let timed = run_one(&trace, "lambda-2021", "none").report;
    assert_eq!((timed.requests, timed.cold_starts), (576, 1));
    trace.functions[0].timer = false;
    let random = run_one(&trace, "lambda-2021", "none").report;
    assert!(random.cold_starts > 10, "{}", random.cold_starts);
}
