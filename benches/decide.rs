//! The decision core's speed: one `decide`, and a tick's decisions for 10,000
//! functions (targets: under 50 µs, and under 0.5 s).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use forewarm::decision::policy::{Policy, PolicyDoc, Season};
use forewarm::decision::{
    self, Action, FunctionState, Limits, MetricsStatus, MinuteMetrics, Observation, PingOutcome,
    WarmReport,
};
use forewarm::ports::FunctionRef;
use forewarm::ports::memory::{MemoryMetrics, MemoryStore, MemoryWarmer};
use forewarm::tick::{TickConfig, block_on_ready, run_tick};

const MIN: u64 = 60_000;

fn demand(f: u64, m: u64) -> f64 {
    let day = m % 1_440;
    let base = 2.0 + (f % 17) as f64;
    if (540..1_020).contains(&day) {
        base * 4.0 + (m % 7) as f64
    } else {
        base + (m % 3) as f64
    }
}

fn minute(f: u64, m: u64) -> MinuteMetrics {
    let c = demand(f, m);
    MinuteMetrics {
        minute: m,
        concurrency_max: Some(c),
        invocations: Some(c * 60.0),
        duration_avg_ms: Some(1_000.0),
        cold_starts: Some(0.0),
    }
}

/// A function that has been under the controller for a week (weekly season).
fn trained(policy: &Policy, f: u64) -> (FunctionState, u64) {
    let mut state = FunctionState::new(policy);
    let mut now = 7 * 1_440 * MIN;
    let obs = Observation {
        minutes: (0..7 * 1_440).map(|m| minute(f, m)).collect(),
        complete_until_minute: 7 * 1_440,
        limits: Limits::default(),
        metrics: MetricsStatus::Fresh,
        detail: true,
        ..Observation::default()
    };
    // Fold the week in one-day steps (the backfill cap is a day).
    let mut st = state.clone();
    for day in 1..=7u64 {
        let o = Observation {
            minutes: obs
                .minutes
                .iter()
                .filter(|m| m.minute < day * 1_440)
                .copied()
                .collect(),
            complete_until_minute: day * 1_440,
            ..obs.clone()
        };
        let _ = decision::decide(policy, &mut st, &o, day * 1_440 * MIN);
    }
    state = st;
    now += 5 * MIN;
    (state, now)
}

fn next_obs(f: u64, state: &FunctionState, now: u64) -> Observation {
    let from = state.watermark_minute.map_or(0, |w| w + 1);
    let until = now / MIN - 2;
    Observation {
        minutes: (from..until).map(|m| minute(f, m)).collect(),
        complete_until_minute: until,
        limits: Limits {
            reserved: Some(500),
            ..Limits::default()
        },
        metrics: MetricsStatus::Fresh,
        detail: true,
        ..Observation::default()
    }
}

fn bench_decide(c: &mut Criterion) {
    let policy = Policy {
        season: Season::Week,
        max: 1_000,
        ..Policy::default()
    };
    let (state, now) = trained(&policy, 3);
    let obs = next_obs(3, &state, now);
    c.bench_function("decide one function (week season, 5 new minutes)", |b| {
        b.iter_batched(
            || state.clone(),
            |mut s| {
                let d = decision::decide(&policy, &mut s, black_box(&obs), now);
                if let Action::Warm { n, delay_ms } = d.action {
                    let rep = WarmReport {
                        requested: n,
                        delay_ms,
                        sent_at_ms: now,
                        pings: (0..n)
                            .map(|i| {
                                PingOutcome::answered(format!("sb-{i}"), false, now + i as u64)
                            })
                            .collect(),
                    };
                    decision::apply_report(&policy, &mut s, &rep, Some(&d), now);
                }
                black_box(d)
            },
            BatchSize::SmallInput,
        )
    });

    let fleet: Vec<(FunctionState, Observation)> = (0..10_000u64)
        .map(|f| {
            let mut s = state.clone();
            s.forecaster.z = 2.0 + (f % 5) as f64 * 0.1;
            let o = next_obs(f, &s, now);
            (s, o)
        })
        .collect();
    let mut g = c.benchmark_group("tick");
    g.sample_size(10);
    g.bench_function("decisions for 10,000 functions", |b| {
        b.iter_batched(
            || fleet.clone(),
            |mut fleet| {
                for (s, o) in fleet.iter_mut() {
                    let _ = black_box(decision::decide(&policy, s, o, now));
                }
            },
            BatchSize::LargeInput,
        )
    });

    // The whole tick through the ports, in memory: the run's claim, JSON state in and
    // out, one batched metrics read, warm reports fed back.
    let store = MemoryStore::new();
    for f in 0..10_000u64 {
        store.put_policy(
            &FunctionRef::unqualified(format!("fn-{f}")),
            PolicyDoc::new(),
        );
    }
    // CloudWatch answers each function's shape; Lambda has room for every
    // ping, each on its own sandbox.
    let metrics = MemoryMetrics {
        shape: Some(|f, m| {
            let n = f.name.trim_start_matches("fn-").parse().unwrap_or(0);
            minute(n, m)
        }),
        ..MemoryMetrics::default()
    };
    let lambda = MemoryWarmer {
        reserved: (0..10_000u64).map(|f| (format!("fn-{f}"), 500)).collect(),
        ..MemoryWarmer::default()
    };
    let cfg = TickConfig::new("bench");
    let mut t = 10 * 1_440 * MIN;
    g.bench_function("run_tick over 10,000 functions (in-memory ports)", |b| {
        b.iter(|| {
            t += MIN;
            black_box(block_on_ready(run_tick(
                &store,
                &metrics,
                &lambda,
                &forewarm::ports::FixedClock(t),
                &cfg,
                t,
            )))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
