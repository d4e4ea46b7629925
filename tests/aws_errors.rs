//! Error paths the local stand-ins cannot produce, through SDK-level mocks
//! (aws-smithy-mocks): throttling storms, 5xx, replies a shim would never
//! send. And a black-hole endpoint for timeouts.
#![cfg(feature = "aws")]

use std::future::Future;

use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
use aws_sdk_lambda::operation::invoke::{InvokeError, InvokeOutput};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::error::{ResourceNotFoundException, TooManyRequestsException};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use forewarm::aws::{CloudWatchMetrics, DynamoStore, LambdaWarmer, WarmerConfig};
use forewarm::decision::{FunctionState, PingFailure, Policy};
use forewarm::ports::{
    ErrorKind, FunctionRef, MetricsRequest, MetricsSource, StateStore, WarmPlan,
};

fn plan(n: u32) -> WarmPlan {
    WarmPlan {
        function: FunctionRef::unqualified("orders"),
        n,
        delay_ms: 100,
        run: "t".into(),
        at_ms: 1,
    }
}

fn block<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_throttling_storm_marks_every_ping_throttled() {
    let rule = mock!(aws_sdk_lambda::Client::invoke).then_error(|| {
        InvokeError::TooManyRequestsException(TooManyRequestsException::builder().build())
    });
    let client = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, &[&rule]);
    let report =
        block(LambdaWarmer::new(client, WarmerConfig::default()).warm_one(&plan(5))).unwrap();
    assert_eq!(report.pings.len(), 5);
    assert!(
        report
            .pings
            .iter()
            .all(|p| p.failure == Some(PingFailure::Throttled))
    );
    assert_eq!(report.summary().failed, 5);
}

#[test]
fn function_errors_and_foreign_replies_are_told_apart() {
    let rule = mock!(aws_sdk_lambda::Client::invoke)
        .sequence()
        .output(|| {
            InvokeOutput::builder()
                .function_error("Unhandled")
                .payload(Blob::new("{}"))
                .build()
        })
        .output(|| {
            InvokeOutput::builder()
                .payload(Blob::new("<html>not json</html>"))
                .build()
        })
        .output(|| InvokeOutput::builder().payload(Blob::new("null")).build())
        .build();
    let client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, &[&rule]);
    let warmer = LambdaWarmer::new(
        client,
        WarmerConfig {
            max_in_flight: 1,
            ..WarmerConfig::default()
        },
    );
    let report = block(warmer.warm_one(&plan(3))).unwrap();
    let mut failures: Vec<Option<PingFailure>> = report.pings.iter().map(|p| p.failure).collect();
    failures.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(
        failures,
        [
            None,
            Some(PingFailure::BadReply),
            Some(PingFailure::FunctionError)
        ]
    );
    assert_eq!(
        report.summary().anonymous,
        1,
        "null counts as warmed without identity"
    );
}

#[test]
fn an_unknown_function_fails_the_whole_warm_with_not_found() {
    let rule = mock!(aws_sdk_lambda::Client::invoke).then_error(|| {
        InvokeError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
    });
    let client = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, &[&rule]);
    let err =
        block(LambdaWarmer::new(client, WarmerConfig::default()).warm_one(&plan(3))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("orders"), "{}", err.message);
}

#[test]
fn a_ping_that_never_returns_times_out() {
    // A black hole: accepts connections, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(4) {
            held.push(s);
        }
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("t", "t", None, None, "static"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    let warmer = LambdaWarmer::new(
        aws_sdk_lambda::Client::from_conf(conf),
        WarmerConfig {
            max_in_flight: 10,
            timeout_margin_ms: 300,
        },
    );
    let started = std::time::Instant::now();
    let report = block(warmer.warm_one(&plan(2))).unwrap();
    assert!(
        report
            .pings
            .iter()
            .all(|p| p.failure == Some(PingFailure::Timeout)),
        "{report:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "bounded by hold + margin"
    );
}

#[test]
fn cloudwatch_5xx_is_unavailable_and_names_the_call() {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .http_status(503, None)
        .build();
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&rule], |c| c
        .retry_config(aws_sdk_cloudwatch::config::retry::RetryConfig::disabled()));
    let req = MetricsRequest {
        function: FunctionRef::unqualified("orders"),
        from_minute: 10,
        until_minute: 20,
    };
    let err = block(CloudWatchMetrics::new(client).observe(&[req])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("GetMetricData"), "{}", err.message);
}

#[test]
fn get_metric_data_calls_grow_with_functions_over_500_queries() {
    // Each call is answered empty; what counts is how many calls 1,000
    // functions take: 5,000 queries, 500 per call.
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .then_output(|| GetMetricDataOutput::builder().build());
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&rule]);
    let metrics = CloudWatchMetrics::new(client);
    let reqs: Vec<MetricsRequest> = (0..1_000)
        .map(|i| MetricsRequest {
            function: FunctionRef::unqualified(format!("f{i}")),
            from_minute: 100,
            until_minute: 115,
        })
        .collect();
    let out = block(metrics.observe(&reqs)).unwrap();
    assert_eq!(out.len(), 1_000);
    assert_eq!(metrics.calls(), 10);
    assert_eq!(rule.num_calls(), 10);
}

#[test]
fn a_throttled_save_writes_nothing_and_says_so() {
    let rule = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&rule], |c| c
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
    let store = DynamoStore::new(client, "t");
    let state = FunctionState::new(&Policy::default());
    let err = block(store.save(&FunctionRef::unqualified("orders"), "run", state, 3)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled);
    assert!(err.message.contains("orders"), "{}", err.message);
}
