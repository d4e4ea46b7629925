//! An example target function built with the forewarm shim.
//!
//! Real events sleep for `sleep_ms` from the event, else `DEMO_SLEEP_MS`
//! (default 100), to stand in for a function with real work to do; pings are
//! answered by the shim and never reach `handler`. The integration tests run
//! this binary under `cargo lambda watch`.

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    sleep_ms: Option<u64>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

async fn handler(event: LambdaEvent<Request>) -> Result<Value, Error> {
    let default_ms = std::env::var("DEMO_SLEEP_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let ms = event.payload.sleep_ms.unwrap_or(default_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json!({"handled": true, "slept_ms": ms, "event": event.payload.rest}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(forewarm::shim::warm(service_fn(handler))).await
}
