//! Fan-out overhead of a warm: N = 1,000 pings against a local Invoke
//! endpoint that holds each call for the ping's delay (the scripted endpoint
//! of tests/support/invoke.rs, in this process), reported as wall time minus
//! the delay. Target: under 100 ms. Run with `cargo bench --bench warm`.

#![allow(missing_docs)]

#[path = "../tests/support/invoke.rs"]
mod invoke;

use std::time::Instant;

use forewarm::aws::{LambdaWarmer, WarmerConfig};
use forewarm::ports::{FunctionRef, WarmPlan};
use invoke::{InvokeStub, Reply};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Each connection is a sandbox: the endpoint holds each call for the
    // ping's delay, as a shim would.
    let stub = InvokeStub::start(|req| Reply::shim(&req.body, &format!("c{}", req.connection)));
    rt.block_on(async {
        let client = invoke::client(&stub.endpoint);
        let warmer = LambdaWarmer::new(client, WarmerConfig::default());
        for n in [1u32, 100, 1_000] {
            let mut overheads = Vec::new();
            for round in 0..5 {
                let plan = WarmPlan { function: FunctionRef::unqualified("bench"), n, delay_ms: 300, run: format!("b{round}").into(), at_ms: 0, init_allowance_ms: 0, answer_by_ms: None };
                let t = Instant::now();
                let r = warmer.warm_one(&plan).await.unwrap();
                let wall = t.elapsed().as_millis() as i64;
                assert_eq!(r.summary().ok, n);
                overheads.push(wall - 300);
            }
            overheads.sort_unstable();
            println!("warm n={n:>5} delay=300ms: fan-out overhead (wall - delay) median {} ms, min {} ms, max {} ms", overheads[2], overheads[0], overheads[4]);
        }
    });
}
