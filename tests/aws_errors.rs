//! Error paths `cargo lambda watch` and moto cannot produce. Pings: a
//! scripted Invoke endpoint on loopback (tests/support/invoke.rs) that
//! throttles, fails with 5xx, answers errors as Lambda does, or never
//! answers. DynamoDB and CloudWatch: SDK-level mocks (aws-smithy-mocks), and a
//! black hole for the client-side call timeouts.
#![cfg(feature = "aws")]

#[path = "support/invoke.rs"]
mod invoke;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;

use invoke::{InvokeStub, Reply};

use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
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
        init_allowance_ms: 0,
        answer_by_ms: None,
    }
}

/// A warmer with the SDK's standard retries, pinging `stub`.
fn warmer(stub: &InvokeStub) -> LambdaWarmer {
    LambdaWarmer::new(invoke::client(&stub.endpoint), WarmerConfig::default())
}

fn block<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_throttling_storm_is_retried_then_marks_every_ping_throttled() {
    let stub =
        InvokeStub::start(|_| Reply::error(429, "TooManyRequestsException", "Rate exceeded"));
    let warmer = warmer(&stub);
    let report = block(warmer.warm_one(&plan(5))).unwrap();
    assert_eq!(report.pings.len(), 5);
    assert!(
        report
            .pings
            .iter()
            .all(|p| p.failure == Some(PingFailure::Throttled))
    );
    assert_eq!(report.summary().failed, 5);
    assert_eq!(
        stub.requests(),
        15,
        "3 attempts per ping, the SDK's standard"
    );
}

#[test]
fn a_5xx_is_retried_and_the_retry_reaches_the_sandbox() {
    let failed_once = Mutex::new(HashSet::new());
    let stub = InvokeStub::start(move |req| {
        let seq = req.body["forewarm"]["seq"].as_u64().unwrap();
        if failed_once.lock().unwrap().insert(seq) {
            Reply::error(500, "ServiceException", "internal error")
        } else {
            Reply::shim(&req.body, &format!("sandbox-{seq}"))
        }
    });
    let warmer = warmer(&stub);
    let report = block(warmer.warm_one(&plan(4))).unwrap();
    let s = report.summary();
    assert_eq!((s.ok, s.distinct, s.failed), (4, 4, 0), "{report:?}");
    assert_eq!(stub.requests(), 8);
}

#[test]
fn with_retries_off_a_5xx_is_one_failed_ping() {
    let stub = InvokeStub::start(|_| Reply::error(503, "ServiceException", "unavailable"));
    let warmer = LambdaWarmer::new(
        invoke::client_without_retries(&stub.endpoint),
        WarmerConfig::default(),
    );
    let report = block(warmer.warm_one(&plan(2))).unwrap();
    assert_eq!(report.summary().failed, 2);
    assert_eq!(
        stub.requests(),
        2,
        "RetryConfig::disabled() means one attempt"
    );
}

#[test]
fn function_errors_and_foreign_replies_are_told_apart() {
    let stub = InvokeStub::start(|req| match req.body["forewarm"]["seq"].as_u64() {
        Some(0) => Reply::ok(r#"{"errorMessage":"boom","errorType":"Error"}"#)
            .header("X-Amz-Function-Error", "Unhandled"),
        Some(1) => Reply::ok("<html>not json</html>"),
        _ => Reply::ok("null"),
    });
    let warmer = warmer(&stub);
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
    assert_eq!(stub.requests(), 3, "answers are not retried");
}

#[test]
fn an_unknown_function_fails_the_whole_warm_with_not_found() {
    let stub = InvokeStub::start(|_| {
        Reply::error(
            404,
            "ResourceNotFoundException",
            "Function not found: arn:aws:lambda:us-east-1:123456789012:function:orders",
        )
    });
    let warmer = warmer(&stub);
    let err = block(warmer.warm_one(&plan(3))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("invoke orders"), "{}", err.message);
    assert!(
        err.message.contains("ResourceNotFoundException"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("Function not found"),
        "{}",
        err.message
    );
    assert_eq!(stub.requests(), 3, "not retried");
}

#[test]
fn a_reply_too_large_for_a_shim_is_not_read_to_the_end() {
    let stub = InvokeStub::start(|_| Reply::ok(format!("\"{}\"", "x".repeat(1 << 20))));
    let warmer = warmer(&stub);
    let report = block(warmer.warm_one(&plan(2))).unwrap();
    assert!(
        report
            .pings
            .iter()
            .all(|p| p.failure == Some(PingFailure::BadReply)),
        "{report:?}"
    );
}

#[test]
fn pings_are_signed_invokes_of_the_exact_qualifier_with_one_seq_each() {
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let stub = InvokeStub::start(move |req| {
        log.lock().unwrap().push(req.clone());
        Reply::shim(&req.body, &format!("s{}", req.index))
    });
    let warmer = warmer(&stub);
    let plan = WarmPlan {
        function: FunctionRef::parse("orders:live"),
        ..plan(3)
    };
    let report = block(warmer.warm_one(&plan)).unwrap();
    assert_eq!(report.summary().distinct, 3);
    let seen = seen.lock().unwrap();
    let mut seqs: Vec<u64> = seen
        .iter()
        .map(|r| r.body["forewarm"]["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [0, 1, 2]);
    for r in seen.iter() {
        assert_eq!(
            r.request_line,
            "POST /2015-03-31/functions/orders/invocations?Qualifier=live HTTP/1.1"
        );
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        assert!(
            header("authorization").starts_with("AWS4-HMAC-SHA256 Credential=test/"),
            "{:?}",
            r.headers
        );
        assert!(header("authorization").contains("/us-east-1/lambda/aws4_request"));
        assert!(!header("x-amz-date").is_empty());
        assert_eq!(r.body["forewarm"]["run"], "t");
        assert_eq!(r.body["forewarm"]["of"], 3);
        assert_eq!(r.body["warmer"], true);
    }
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
            init_allowance_ms: 0,
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
        "bounded by hold + INIT allowance + margin"
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
        detail: true,
    };
    let err = block(CloudWatchMetrics::new(client).observe(&[req])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("GetMetricData"), "{}", err.message);
}

#[test]
fn get_metric_data_calls_grow_with_functions_over_500_queries() {
    // Each call is answered empty; what counts is how many calls 1,000
    // functions take: 1,000 queries (a routine read is the concurrency
    // series alone), 500 per call, and that each query is counted as a
    // metric requested.
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .then_output(|| GetMetricDataOutput::builder().build());
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&rule]);
    let metrics = CloudWatchMetrics::new(client);
    let reqs: Vec<MetricsRequest> = (0..1_000)
        .map(|i| MetricsRequest {
            function: FunctionRef::unqualified(format!("f{i}")),
            from_minute: 100,
            until_minute: 115,
            detail: false,
        })
        .collect();
    let out = block(metrics.observe(&reqs)).unwrap();
    assert_eq!(out.len(), 1_000);
    assert_eq!(metrics.calls(), 2);
    assert_eq!(rule.num_calls(), 2);
    assert_eq!(metrics.usage().metrics_requested, 1_000);
}

#[test]
fn a_throttled_save_writes_nothing_and_says_so() {
    let rule = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        // As the SDK parses it from DynamoDB's answer: the code in the
        // error's metadata.
        UpdateItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .meta(
                    aws_sdk_dynamodb::error::ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .message("slow down")
                        .build(),
                )
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&rule], |c| c
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
    let store = DynamoStore::new(client, "t");
    let state = FunctionState::new(&Policy::default());
    let err = block(store.save(
        &FunctionRef::unqualified("orders"),
        Box::new(state),
        3,
        "run-1",
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled);
    assert!(err.message.contains("orders"), "{}", err.message);
}

#[test]
fn a_second_warm_reuses_the_first_warms_connections() {
    let stub = InvokeStub::start(|req| Reply::shim(&req.body, &format!("c{}", req.connection)));
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let warmer = warmer(&stub);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..2 {
        let report = rt.block_on(warmer.warm_one(&plan(4))).unwrap();
        seen.lock().unwrap().push(report.summary().distinct);
        // Ticks are a minute apart; hyper hands a connection back to the
        // pool a moment after its answer is read.
        rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(50)).await });
    }
    assert_eq!(*seen.lock().unwrap(), [4, 4]);
    assert_eq!(stub.requests(), 8);
    assert_eq!(
        stub.connections(),
        4,
        "four pings in flight need four connections, once"
    );
}

#[test]
fn a_refused_connection_is_retried_then_reported_failed() {
    // A port nothing listens on.
    let endpoint = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let warmer = LambdaWarmer::new(invoke::client(&endpoint), WarmerConfig::default());
    let report = block(warmer.warm_one(&plan(2))).unwrap();
    assert!(
        report
            .pings
            .iter()
            .all(|p| p.failure == Some(PingFailure::Other)),
        "{report:?}"
    );
}

#[test]
fn a_stalled_table_fails_the_tick_within_its_call_timeout() {
    // DynamoDB as a black hole: every connection accepted, nothing answered.
    // Without client-side timeouts the first call (the run's claim) waits
    // as long as the SDK's retries last (a minute here), past the controller
    // Lambda's timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(16) {
            held.push(s);
        }
        std::thread::sleep(std::time::Duration::from_secs(60));
    });
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_forewarm"))
        .args(["tick", "--table", "stalled"])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("FOREWARM_CALL_TIMEOUT_MS", "2000")
        .env("FOREWARM_ATTEMPT_TIMEOUT_MS", "600")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot claim the run"), "{err}");
    // The call gives up at 2 s; the rest is the process starting and
    // stopping (generous for a loaded 2-core machine).
    assert!(took < std::time::Duration::from_secs(20), "{took:?}: {err}");
}

#[test]
fn a_cold_ping_whose_init_is_slow_is_answered_not_timed_out() {
    // A sandbox created by the ping answers only after its INIT: 1.5 s
    // here (a VPC function's take 7-15 s), far beyond the hold and margin.
    let stub = InvokeStub::start(|req| {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 1_500;
        Reply::ok(format!(
            r#"{{"forewarm":{{"v":1,"instance":"cold-{}","cold":true,"init_ms":1500,"started_ms":{started},"served":0,"last_real_ms":null}}}}"#,
            req.index
        ))
        .after(std::time::Duration::from_millis(1_600))
    });
    let with = |init_allowance_ms, learned_ms| {
        let warmer = LambdaWarmer::new(
            invoke::client_without_retries(&stub.endpoint),
            WarmerConfig {
                max_in_flight: 10,
                timeout_margin_ms: 300,
                init_allowance_ms,
            },
        );
        let plan = WarmPlan {
            init_allowance_ms: learned_ms,
            answer_by_ms: None,
            ..plan(2)
        };
        block(warmer.warm_one(&plan)).unwrap()
    };
    let answered = with(3_000, 0);
    assert!(
        answered
            .pings
            .iter()
            .all(|p| p.failure.is_none() && p.cold == Some(true) && p.init_ms == Some(1_500)),
        "{answered:?}"
    );
    // No configured allowance, but the function's history asks for 3 s:
    // the warmer waits for it.
    let learned = with(0, 3_000);
    assert!(
        learned.pings.iter().all(|p| p.failure.is_none()),
        "{learned:?}"
    );
    let before = with(0, 0);
    assert!(
        before
            .pings
            .iter()
            .all(|p| p.failure == Some(PingFailure::Timeout)),
        "hold + margin alone: {before:?}"
    );
}
