//! The controller Lambda: one tick per scheduled event.
//!
//! Not wired to AWS yet: it logs that it is not configured and returns.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    tracing::warn!("controller not configured");
    Ok(json!({"status": "not configured"}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(handler)).await
}
