//! The simulator's speed on the bundled Azure day (927,272 invocations):
//! one policy per iteration, so invocations per second per policy on one
//! core is 927,272 divided by the time shown.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, criterion_group, criterion_main};
use forewarm::sim::model::Model;
use forewarm::sim::policy::PolicySpec;
use forewarm::sim::{RunConfig, minute_index, run_policy};

fn bench(c: &mut Criterion) {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("simulations/azure2019/invocations.csv");
    let trace = forewarm::sim::trace::read_azure2019(&[path]).expect("bundled trace");
    let by_minute = minute_index(&trace);
    let mut g = c.benchmark_group("simulate azure day (927,272 invocations)");
    g.sample_size(10);
    for spec in [
        "none",
        "fixed:n=3,every=5m,delay=300ms",
        "lambda-warmer:n=3,every=5m",
        "oracle",
        "forewarm",
    ] {
        let cfg = RunConfig {
            scenario: "bench".into(),
            model: Model::load("lambda-2021").unwrap(),
            seed: 1,
            repeat: 1,
            policies: vec![PolicySpec::parse(spec).unwrap()],
            timeline_function: None,
            reaping_change: None,
            record_forecasts: false,
            init_allowance_ms: forewarm::decision::pings::INIT_LIMIT_MS,
        };
        g.bench_function(spec, |b| {
            b.iter(|| run_policy(&trace, &by_minute, &cfg, &cfg.policies[0], &|_| {}))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
