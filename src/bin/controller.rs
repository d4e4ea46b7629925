//! The controller Lambda: one tick per scheduled event.
//!
//! Clients are built once per sandbox and borrowed by every invocation.
//! Configuration comes from the environment (see `forewarm::aws::controller`);
//! logs are JSON lines, and each function's decision is also one Embedded
//! Metric Format line.

use forewarm::aws::AwsPorts;
use forewarm::aws::controller::{self, ControllerConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// Time kept after the tick's deadline for releasing the claim and printing
/// the report, ms.
const REPORT_RESERVE_MS: u64 = 2_000;

async fn handler(
    event: LambdaEvent<Value>,
    ports: &AwsPorts,
    cfg: &ControllerConfig,
    memory_mb: f64,
) -> Result<Value, Error> {
    let now_ms = forewarm::ports::Clock::now_ms(&forewarm::ports::SystemClock);
    let started = std::time::Instant::now();
    let mut tick = cfg.tick(event.context.request_id.clone(), false);
    // The tick stops in time to release its claim and print its lines
    // before Lambda ends the invocation.
    tick.deadline_ms = Some(event.context.deadline.saturating_sub(REPORT_RESERVE_MS));
    let mut report = controller::run(ports, &tick, now_ms).await;
    // This run's own duration at the sandbox's memory is the controller part.
    report.cost.controller =
        forewarm::cost::Prices::LIST.pings_usd(1, memory_mb, started.elapsed().as_millis() as f64);
    for line in controller::emf_lines(&report, now_ms, cfg.emf_per_function, |_| None) {
        println!("{line}");
    }
    println!("{}", controller::emf_cost_line(&report, now_ms));
    if let Some(e) = report.error {
        // Failing the invocation lets the schedule's retry policy, the
        // dead-letter queue and the error alarm see it.
        return Err(e.into());
    }
    let problems: Vec<Value> = report
        .functions
        .iter()
        .filter_map(|f| {
            f.note
                .as_ref()
                .map(|n| json!({"function": f.function.to_string(), "note": n.to_string()}))
        })
        .collect();
    Ok(json!({
        "functions": report.functions.len(),
        "resting": report.resting,
        "pings": report.pings(),
        "skipped": report.skipped,
        "notes": problems,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AWS_LAMBDA_LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
    let cfg = ControllerConfig::from_env()?;
    let memory_mb = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|m| m.parse::<f64>().ok())
        .unwrap_or(128.0);
    let ports = controller::ports(&cfg).await;
    let (ports, cfg) = (&ports, &cfg);
    lambda_runtime::run(service_fn(move |ev| async move {
        handler(ev, ports, cfg, memory_mb).await
    }))
    .await
}
