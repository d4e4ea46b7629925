//! The AWS adapters: DynamoDB, CloudWatch and Lambda behind the core's ports.
//!
//! SDK types never leave this module: each adapter converts requests and
//! answers at its border, and SDK errors become [`PortError`]s of the kinds
//! the tick's error policy knows. Clients are built once from one
//! `SdkConfig` (`aws_config::defaults(BehaviorVersion::latest())`, which
//! honours `AWS_REGION`, `AWS_PROFILE` and `AWS_ENDPOINT_URL_*`) and
//! borrowed by every tick. Pings are the one exception to "the SDK sends":
//! the SDK prepares and signs each Invoke and `http` sends it, because a
//! thousand whole SDK calls in flight cost the controller 42 MB (see
//! `lambda`). `probe` sends `forewarm probe`'s real requests, to URLs
//! over the same transport and to functions through Invoke. [`controller`]
//! assembles them into one tick over AWS, configured from the environment,
//! for the Lambda and the CLI.

pub(crate) mod cloudwatch;
pub mod controller;
pub(crate) mod dynamodb;
pub(crate) mod http;
pub(crate) mod lambda;
#[cfg(feature = "cli")]
pub(crate) mod probe;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::ports::{ErrorKind, PortError};

pub use cloudwatch::CloudWatchMetrics;
pub use dynamodb::DynamoStore;
pub use lambda::{INIT_LIMIT_MS, LambdaWarmer, WarmerConfig};

/// The three adapters over one SDK configuration.
#[derive(Debug, Clone)]
pub struct AwsPorts {
    /// Policies and state (DynamoDB).
    pub store: DynamoStore,
    /// Metrics (CloudWatch).
    pub metrics: CloudWatchMetrics,
    /// Pings (Lambda).
    pub warmer: LambdaWarmer,
}

impl AwsPorts {
    /// Builds every client once from a shared configuration.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        table: impl Into<String>,
        warmer: WarmerConfig,
    ) -> AwsPorts {
        AwsPorts {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table),
            metrics: CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(sdk)),
            warmer: LambdaWarmer::new(aws_sdk_lambda::Client::new(sdk), warmer),
        }
    }
}

/// Loads the standard AWS configuration from the environment.
pub(crate) async fn load_config(timeouts: CallTimeouts) -> aws_config::SdkConfig {
    use aws_config::timeout::TimeoutConfig;
    use std::time::Duration;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_millis(timeouts.call_ms))
                .operation_attempt_timeout(Duration::from_millis(timeouts.attempt_ms))
                .build(),
        )
        .load()
        .await
}

/// Client-side time limits of every DynamoDB, CloudWatch and Lambda control
/// plane call (pings have their own: their hold plus a margin). Without
/// them a stalled endpoint holds a call for as long as the SDK's retries
/// last, past the controller Lambda's own timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimeouts {
    /// The whole call, retries included, ms.
    pub call_ms: u64,
    /// One attempt, ms.
    pub attempt_ms: u64,
}

/// Maps any SDK error to a port error: `what` names the call and resource.
pub(crate) fn port_error<E>(what: &str, err: SdkError<E>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::ServiceError(se) => {
            // The code the SDK parsed from the answer (its metadata), else
            // the HTTP status alone.
            kind_of(se.err().code(), se.raw().status().as_u16())
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Invalid,
    };
    PortError::new(kind, format!("{what}: {}", DisplayErrorContext(&err)))
}

/// The kind of a service error, by its code (or HTTP status).
pub(crate) fn kind_of(code: Option<&str>, status: u16) -> ErrorKind {
    match code.unwrap_or("") {
        "ConditionalCheckFailedException" | "TransactionConflictException" => ErrorKind::Conflict,
        "ResourceNotFoundException" | "ResourceNotFound" => ErrorKind::NotFound,
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "LimitExceededException" => ErrorKind::Throttled,
        "ServiceUnavailable"
        | "InternalServerError"
        | "InternalFailure"
        | "ServiceException"
        | "InternalServiceError" => ErrorKind::Unavailable,
        _ if status == 429 => ErrorKind::Throttled,
        _ if status >= 500 => ErrorKind::Unavailable,
        _ if status == 404 => ErrorKind::NotFound,
        _ => ErrorKind::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_map_to_kinds() {
        assert_eq!(
            kind_of(Some("ConditionalCheckFailedException"), 400),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind_of(Some("ResourceNotFoundException"), 400),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of(Some("TooManyRequestsException"), 429),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind_of(Some("AccessDeniedException"), 400),
            ErrorKind::Invalid
        );
        assert_eq!(kind_of(None, 503), ErrorKind::Unavailable);
        assert_eq!(kind_of(None, 429), ErrorKind::Throttled);
    }
}
