//! The Rust shim in a real function, over the Lambda Invoke API.
//!
//! `demo-target` (a bin of this crate, built with `forewarm::shim::warm`) runs
//! under `cargo lambda watch`, which starts one OS process per sandbox, up to
//! `--concurrency`: pings that hold their sandbox long enough land on distinct
//! sandboxes, cold or warm.
//!
//! The other half of the story, that pings which do not hold collapse onto
//! fewer sandboxes, is not asserted here: the emulator hands queued invokes
//! to its idle instances in turn (a FIFO of waiting pollers), so even pings
//! that hold nothing spread over idle instances, unlike Lambda, and whether
//! they do on a cold pool depends on how fast instance processes start. The
//! simulator's platform (newest idle sandbox first) shows it deterministically
//! (`sim::platform` tests), and the AWS tests show the delay tuner raising a
//! too-short hold until N pings reach N sandboxes here.
#![cfg(all(feature = "shim", feature = "aws"))]

mod support;

use std::collections::BTreeSet;

use aws_sdk_lambda::primitives::Blob;
use forewarm::protocol::{Ping, SandboxReport, parse_reply};
use serde_json::{Value, json};
use support::{LambdaWatch, lambda_client};

/// One scenario at a time: each starts its own emulator, and function
/// instances of parallel scenarios would contend for cargo's build lock.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FUNCTION: &str = "demo-target";

async fn invoke(client: &aws_sdk_lambda::Client, payload: &Value) -> Vec<u8> {
    let out = client
        .invoke()
        .function_name(FUNCTION)
        .payload(Blob::new(serde_json::to_vec(payload).unwrap()))
        .send()
        .await
        .expect("invoke");
    assert_eq!(out.function_error(), None);
    out.payload().expect("payload").as_ref().to_vec()
}

/// Sends `n` pings at once, each asking for `delay_ms`, and returns the reports.
async fn fan_out(client: &aws_sdk_lambda::Client, n: u32, delay_ms: u64) -> Vec<SandboxReport> {
    let mut set = tokio::task::JoinSet::new();
    for seq in 0..n {
        let client = client.clone();
        let ping = serde_json::to_value(Ping::new("test-run", seq, n, delay_ms)).unwrap();
        set.spawn(async move { invoke(&client, &ping).await });
    }
    let mut reports = Vec::new();
    while let Some(bytes) = set.join_next().await {
        let report = parse_reply(&bytes.unwrap())
            .expect("a forewarm reply")
            .expect("with identity");
        reports.push(report);
    }
    reports
}

fn distinct(reports: &[SandboxReport]) -> usize {
    reports
        .iter()
        .map(|r| r.instance.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pings_held_long_enough_reach_k_distinct_sandboxes() {
    let _serial = SERIAL.lock().await;
    const K: u32 = 4;
    let watch = LambdaWatch::start(K as usize);
    let client = lambda_client(&watch.endpoint);

    // A cold pool: every sandbox must start while the others hold their pings,
    // so the hold covers the whole start spread (here a few `cargo run`s).
    let first = fan_out(&client, K, 6_000).await;
    assert_eq!(
        distinct(&first),
        K as usize,
        "cold burst: {first:?}\n{}",
        watch.log_text()
    );
    assert!(
        first.iter().all(|r| r.cold),
        "every sandbox was new: {first:?}"
    );

    // Warm now: a short hold is enough, and nothing is cold any more.
    let second = fan_out(&client, K, 500).await;
    assert_eq!(distinct(&second), K as usize, "warm burst: {second:?}");
    assert!(second.iter().all(|r| !r.cold));
    let before: BTreeSet<_> = first.iter().map(|r| &r.instance).collect();
    let after: BTreeSet<_> = second.iter().map(|r| &r.instance).collect();
    assert_eq!(before, after, "the same sandboxes answered again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_event_gets_the_handlers_answer() {
    let _serial = SERIAL.lock().await;
    let watch = LambdaWatch::start(1);
    let client = lambda_client(&watch.endpoint);

    // A body that merely mentions the marker is still a real event.
    let event = json!({"sleep_ms": 5, "body": "{\"warmer\": true}"});
    let answer: Value = serde_json::from_slice(&invoke(&client, &event).await).unwrap();
    assert_eq!(
        answer,
        json!({"handled": true, "slept_ms": 5, "event": {"body": "{\"warmer\": true}"}})
    );

    // The sandbox remembers it served one real event; a ping says so.
    let report = fan_out(&client, 1, 0).await.remove(0);
    assert_eq!(report.served, 1);
    assert!(!report.cold);
    assert!(
        watch.log_text().contains("\"ColdStart\":1"),
        "EMF line in the function's stdout"
    );
}

/// `forewarm probe` through the Invoke path, as the field report's check:
/// a fresh pool answers cold; a pool `forewarm warm` has warmed answers warm.
/// The emulator's Invoke answer carries no log tail (`X-Amz-Log-Result`) and
/// does not pass the client context on, so the probe falls back to the
/// latency split with its warm reference; the exact `REPORT`-line path is
/// tested against the scripted endpoint (tests/probe.rs).
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_finds_a_fresh_pool_cold_and_a_warmed_pool_warm() {
    let _serial = SERIAL.lock().await;
    const N: usize = 3;
    let forewarm = |endpoint: &str, args: &[&str]| {
        let out = support::forewarm()
            .args(args)
            .env("AWS_ENDPOINT_URL_LAMBDA", endpoint)
            .env(
                "FOREWARM_TIMEOUT_MARGIN_MS",
                support::EMULATOR_PING_MARGIN_MS.to_string(),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "forewarm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    // 100 ms of work per request; a sandbox's start (`cargo run`) takes seconds.
    let probe = [
        "probe",
        FUNCTION,
        "-n",
        "3",
        "--payload",
        r#"{"sleep_ms": 100}"#,
        "--timeout",
        "90s",
        "--json",
    ];

    let fresh = LambdaWatch::start(N);
    let cold = forewarm(&fresh.endpoint, &probe);
    assert_eq!(
        (cold["cold"].as_u64(), cold["warm"].as_u64()),
        (Some(3), Some(0)),
        "{cold}\n{}",
        fresh.log_text()
    );
    assert_eq!(
        cold["cold_method"], "latency_split",
        "no log tail from the emulator"
    );
    assert!(
        cold["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["sandbox"].is_null())
    );
    drop(fresh);

    let warmed = LambdaWatch::start(N);
    let w = forewarm(
        &warmed.endpoint,
        &["warm", FUNCTION, "-n", "3", "--delay", "6s", "--json"],
    );
    assert_eq!(w["distinct"], 3, "{w}");
    let after = forewarm(&warmed.endpoint, &probe);
    assert_eq!(
        (after["cold"].as_u64(), after["warm"].as_u64()),
        (Some(0), Some(3)),
        "{after}\n{}",
        warmed.log_text()
    );
}
