//! The controller against real-protocol stand-ins on loopback: moto for
//! DynamoDB, CloudWatch and Lambda's control plane, and `cargo lambda watch`
//! running `demo-target` (a real function built with the shim) for Invoke.
#![cfg(all(feature = "aws", feature = "shim", feature = "cli"))]

mod support;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use forewarm::aws::{CloudWatchMetrics, DynamoStore, LambdaWarmer, WarmerConfig};
use forewarm::decision::Reaping;
use forewarm::decision::delay::tune_delay;
use forewarm::decision::policy::{Policy, PolicyDoc, Scalar};
use forewarm::ports::{
    AdminStore, Claimed, ErrorKind, FunctionRef, MetricsSource, PoolPings, WarmPlan,
};
use serde_json::Value;
use support::{LambdaWatch, Moto, Within};

/// One scenario at a time: each starts its own stand-ins and function
/// instances contend for cargo's build lock.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FUNCTION: &str = "demo-target";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn doc(pairs: &[(&str, f64)]) -> PolicyDoc {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Scalar::Num(*v)))
        .collect()
}

/// The stand-ins plus a table, a function and its policy.
struct Stack {
    watch: LambdaWatch,
    moto: Moto,
    sdk: aws_config::SdkConfig,
    table: String,
}

impl Stack {
    async fn start(concurrency: usize, table: &str) -> Stack {
        let watch = LambdaWatch::start(concurrency);
        let moto = Moto::start(Some(&watch.endpoint));
        moto.create_function(FUNCTION, 256, 20);
        let sdk = moto.sdk_config().await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
        store.create_table().await.unwrap();
        support::seed_metrics(&sdk, &[FUNCTION]).await;
        Stack {
            watch,
            moto,
            sdk,
            table: table.to_string(),
        }
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.table)
    }

    /// `forewarm ARGS` as a user runs it, against the stand-ins.
    fn forewarm(&self, args: &[&str]) -> Command {
        let mut c = support::forewarm();
        c.args(args)
            .env("AWS_ENDPOINT_URL", &self.moto.endpoint)
            .env("FOREWARM_TABLE", &self.table)
            .env(
                "FOREWARM_TIMEOUT_MARGIN_MS",
                support::EMULATOR_PING_MARGIN_MS.to_string(),
            )
            // The tick awaits answers no longer than its claim: long
            // enough for the emulator's margin.
            .env(
                "FOREWARM_LEASE_SECONDS",
                (support::EMULATOR_PING_MARGIN_MS / 1_000 + 60).to_string(),
            );
        c
    }

    fn tick(&self) -> Value {
        let out = self.forewarm(&["tick", "--json"]).output_within();
        assert!(
            out.status.success(),
            "tick failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.watch.log_text()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn outcome<'a>(report: &'a Value, function: &str) -> &'a Value {
    report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == function)
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tick_warms_the_forecast_and_saves_state() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(8, "fw-tick").await;
    stack
        .store()
        .put_policy(FUNCTION, &doc(&[("max", 8.0)]))
        .await
        .unwrap();

    let report = stack.tick();
    let f = outcome(&report, FUNCTION);
    let target = f["decision"]["target"].as_u64().unwrap();
    assert!(
        (6..=8).contains(&target),
        "a peak of six, forecast {target}: {report:#}"
    );
    // Three sandboxes are busy with real requests at any moment (180
    // one-second calls a minute): the pings warm the rest of the target.
    let n = f["decision"]["action"]["n"].as_u64().unwrap();
    assert_eq!(n, target - 3, "{report:#}");
    assert_eq!(f["warm"]["requested"], n);
    let distinct = f["warm"]["distinct"].as_u64().unwrap();
    assert!(distinct >= 1 && distinct <= n, "{report:#}");
    assert_eq!(f["saved"], true, "{report:#}");

    // What the tick consumed, as the adapters counted it: a first read has
    // the detail series (the simulator bills the same request the same).
    // DynamoDB's units are what the service reports (`ReturnConsumedCapacity`,
    // which the front door answers by DynamoDB's rules): the scan half a
    // unit, and no read of the state (the scan found none); the claim, the
    // save and the release one write each (every item is under a kilobyte).
    let first_read = forewarm::ports::MetricsRequest {
        function: forewarm::ports::FunctionRef::unqualified(FUNCTION),
        from_minute: 0,
        until_minute: 180,
        detail: true,
    };
    assert_eq!(
        report["usage"]["metrics_requested"],
        first_read.series(),
        "{report:#}"
    );
    assert_eq!(report["usage"]["write_units"], 3.0, "{report:#}");
    assert_eq!(report["usage"]["read_units"], 0.5, "{report:#}");
    let cloudwatch = report["cost"]["cloudwatch"].as_f64().unwrap();
    assert!((cloudwatch - 4.0 * 0.000_01).abs() < 1e-12, "{report:#}");

    let states = stack.store().states(Some(FUNCTION)).await.unwrap();
    let st = states[0].state.as_ref().expect("readable state");
    assert_eq!(states[0].version, 1);
    assert_eq!(st.last_warm.unwrap().requested as u64, n);
    assert!(
        states[0].lease_owner.is_none(),
        "no lease on the state item"
    );
    assert_eq!(
        stack.store().run_item().await.unwrap().claim,
        None,
        "the run's claim released"
    );

    // A first warm's pings come back cold (they made the sandboxes), which
    // is news: nothing is planned after it. A state with a plan saves its
    // spacing and end where the scan reads them, and a save without one
    // removes them; the average real concurrency goes with every save.
    use forewarm::ports::StateStore as _;
    assert_eq!(st.run, None, "a plan after cold replies: {:?}", st.run);
    let store = stack.store();
    let f = forewarm::ports::FunctionRef::unqualified(FUNCTION);
    let mut planned = st.clone();
    let run = forewarm::decision::Run {
        first_ms: planned.next_check_ms,
        every_ms: 240_000,
        until_ms: planned.next_check_ms + 720_000,
        n: 2,
        hold_ms: 300,
        reached: 5,
        busy: 3,
    };
    planned.run = Some(run);
    planned.busy = 2.75;
    let v = store.save(&f, Box::new(planned), 1, "probe").await.unwrap();
    let targets = store.targets().await.unwrap();
    let t = targets
        .iter()
        .find(|t| &*t.function.name == FUNCTION)
        .unwrap();
    assert_eq!(t.next_check_ms, run.first_ms);
    assert_eq!(t.slots, Some(run.slots()));
    assert_eq!(t.real_busy, Some(2.75));
    let mut unplanned = st.clone();
    unplanned.run = None;
    let v = store
        .save(&f, Box::new(unplanned), v, "probe")
        .await
        .unwrap();
    let targets = store.targets().await.unwrap();
    let t = targets
        .iter()
        .find(|t| &*t.function.name == FUNCTION)
        .unwrap();
    assert_eq!(t.slots, None);
    // The look's load hands over the state the scan read (paid for by the
    // scan, so no second read). Saved by someone else since, that copy is
    // refused at its save, never written over the newer state, and the
    // next load reads the item afresh.
    let newer = store
        .save(&f, Box::new(st.clone()), v, "someone else")
        .await
        .unwrap();
    let before = store.usage().read_units;
    let scanned = store.load(&f).await.unwrap();
    assert_eq!(
        store.usage().read_units,
        before,
        "no read for a scanned item"
    );
    assert_eq!(scanned.version, v);
    assert_eq!(scanned.state.as_ref().map(|s| s.run), Some(None));
    let refused = store
        .save(&f, scanned.state.unwrap(), scanned.version, "probe")
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Conflict, "{refused:?}");
    let afresh = store.load(&f).await.unwrap();
    assert_eq!(afresh.version, newer);
    assert_eq!(
        store.usage().read_units,
        before + 1.0,
        "one consistent read"
    );
    let store = stack.store();
    let first = store.claim_run("probe", 1_000, 2_000).await.unwrap();
    assert!(
        first.last_tick_ms.is_some_and(|t| t > 1_000_000),
        "the tick's claim: {first:?}"
    );
    assert_eq!(
        store
            .claim_run("probe", 1_500, 2_000)
            .await
            .unwrap()
            .last_tick_ms,
        Some(1_000)
    );
    // What a run leaves the next one, in its release's write: the pings it
    // sent into the account's pool, per minute.
    let mut pings = PoolPings::default();
    pings.add(100, 7);
    pings.add(101, 3);
    // And what the fleet's warms taught about idle reaping.
    let reaping = Reaping::parse("60000;3.00;5:12.00/0.00/0.00,6:1.00/2.00/0.00").unwrap();
    store.release_run("probe", &pings, &reaping).await.unwrap();
    // A dry run reads what the claim would find, and claims nothing.
    let peeked = store.peek_run().await.unwrap();
    assert_eq!(
        (peeked.last_tick_ms, &peeked.pool_pings, &peeked.reaping),
        (Some(1_500), &pings, &reaping)
    );
    assert_eq!(
        stack.store().run_item().await.unwrap().claim.map(|c| c.0),
        None
    );
    assert_eq!(
        store.claim_run("probe", 1_600, 2_000).await.unwrap(),
        Claimed {
            last_tick_ms: Some(1_500),
            pool_pings: pings,
            reaping: reaping.clone(),
            reaping_unreadable: None,
        }
    );
    store
        .release_run("probe", &PoolPings::default(), &reaping)
        .await
        .unwrap();
    let next = store.claim_run("probe", 1_700, 2_000).await.unwrap();
    assert_eq!(next.pool_pings, PoolPings::default(), "none left: {next:?}");
    assert_eq!(next.reaping, reaping);
    store
        .release_run("probe", &PoolPings::default(), &reaping)
        .await
        .unwrap();
    // Evidence someone garbled is said so and learned afresh; the claim
    // still holds.
    {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        aws_sdk_dynamodb::Client::new(&stack.sdk)
            .update_item()
            .table_name(&stack.table)
            .key("pk", A::S("*".into()))
            .key("sk", A::S("state".into()))
            .update_expression("SET reaping = :r")
            .expression_attribute_values(":r", A::S("5:lots".into()))
            .send()
            .await
            .unwrap();
    }
    let garbled = store.claim_run("probe", 1_800, 2_000).await.unwrap();
    assert_eq!(garbled.reaping, Reaping::default());
    assert!(
        garbled
            .reaping_unreadable
            .as_deref()
            .is_some_and(|why| why.contains("5:lots")),
        "{garbled:?}"
    );
    store
        .release_run("probe", &PoolPings::default(), &Reaping::default())
        .await
        .unwrap();

    // `forewarm status` shows it.
    let out = stack.forewarm(&["status", FUNCTION]).output_within();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(FUNCTION));

    // The item holds the state deflated, inside one write unit; an item an
    // earlier controller wrote as JSON text still reads as the same state.
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let json = serde_json::to_string(st).unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let item = ddb
        .get_item()
        .table_name(&stack.table)
        .key("pk", A::S(FUNCTION.into()))
        .key("sk", A::S("state".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let Some(A::B(blob)) = item.get("state") else {
        panic!("state stored as {:?}", item.get("state"));
    };
    assert!(
        blob.as_ref().len() < 1_024 && blob.as_ref().len() * 3 < json.len() * 2,
        "{} bytes stored for {} of JSON",
        blob.as_ref().len(),
        json.len()
    );
    ddb.update_item()
        .table_name(&stack.table)
        .key("pk", A::S(FUNCTION.into()))
        .key("sk", A::S("state".into()))
        .update_expression("SET #s = :json")
        .expression_attribute_names("#s", "state")
        .expression_attribute_values(":json", A::S(json.clone()))
        .send()
        .await
        .unwrap();
    let states = stack.store().states(Some(FUNCTION)).await.unwrap();
    assert_eq!(states[0].last_error, None);
    assert_eq!(
        serde_json::to_string(states[0].state.as_ref().unwrap()).unwrap(),
        json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_policy_is_reported_and_other_functions_still_warm() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(8, "fw-malformed").await;
    stack
        .store()
        .put_policy(FUNCTION, &doc(&[("max", 6.0)]))
        .await
        .unwrap();
    stack
        .store()
        .put_policy("broken", &doc(&[("min", 10.0), ("max", 5.0)]))
        .await
        .unwrap();

    let report = stack.tick();
    assert!(
        outcome(&report, FUNCTION)["decision"]["action"]["n"]
            .as_u64()
            .unwrap()
            > 0,
        "{report:#}"
    );
    let broken = stack.store().states(Some("broken")).await.unwrap();
    let err = broken[0].last_error.clone().unwrap_or_default();
    assert!(err.contains("max (5) is below min (10)"), "{err}");
    assert!(broken[0].state.is_none(), "nothing but last_error written");

    // `forewarm policy list` flags it too.
    let out = stack.forewarm(&["policy", "list"]).output_within();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("broken") && text.contains("INVALID"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_that_alias_a_function_are_invalid_items_not_second_warms() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(8, "fw-aliases").await;
    let store = stack.store();
    store
        .put_policy(FUNCTION, &doc(&[("max", 6.0)]))
        .await
        .unwrap();
    // Written around the CLI, as the console allows: each would read as
    // demo-target and warm it again.
    for alias in [" demo-target", "demo-target:", "demo-target "] {
        store
            .put_policy(alias, &doc(&[("max", 6.0)]))
            .await
            .unwrap();
    }
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .put_item()
        .table_name(&stack.table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("orders".into()),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("Policy".into()),
        )
        .send()
        .await
        .unwrap();

    let report = stack.tick();
    let warmed: Vec<&Value> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["decision"]["action"]["n"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert_eq!(
        warmed.len(),
        1,
        "warmed once, under its own key: {report:#}"
    );
    assert_eq!(warmed[0]["function"], FUNCTION);
    let alias = store.states(Some("demo-target:")).await.unwrap();
    let err = alias[0].last_error.clone().unwrap_or_default();
    assert!(err.contains("did you mean \"demo-target\""), "{err}");

    let out = stack.forewarm(&["policy", "list"]).output_within();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("INVALID").count(), 4, "{text}");
    assert!(text.contains("the controller ignores this item"), "{text}");

    // And the CLI refuses to write one.
    let out = stack
        .forewarm(&["policy", "put", "good-1:", "max=2"])
        .output_within();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not written") && err.contains("did you mean"),
        "{err}"
    );

    // New defaults say which function policies they make invalid.
    let put = |args: &[&str]| stack.forewarm(args).output_within();
    assert!(put(&["policy", "put", "orders2", "min=5"]).status.success());
    let out = put(&["policy", "put", "*", "max=2"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the policy of orders2 is invalid")
            && err.contains("max (2) is below min (5)"),
        "{err}"
    );
    let out = put(&["policy", "put", "orders3", "=5"]);
    assert!(!out.status.success(), "an empty attribute name is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_ticks_at_once_warm_each_function_once() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(8, "fw-race").await;
    stack
        .store()
        .put_policy(FUNCTION, &doc(&[("max", 6.0)]))
        .await
        .unwrap();
    let a = stack
        .forewarm(&["tick", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = stack
        .forewarm(&["tick", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reports: Vec<Value> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.output_within();
            assert!(out.status.success());
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect();
    let warmed: Vec<u64> = reports
        .iter()
        .map(|r| {
            outcome(r, FUNCTION)["decision"]["action"]["n"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(
        warmed.iter().filter(|&&n| n > 0).count(),
        1,
        "exactly one run warmed it: {reports:#?}"
    );
    assert_eq!(
        stack.store().states(Some(FUNCTION)).await.unwrap()[0].version,
        1,
        "saved once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_delay_tuner_converges_until_n_pings_reach_n_sandboxes() {
    let _serial = SERIAL.lock().await;
    const N: u32 = 4;
    let stack = Stack::start(N as usize, "fw-delay").await;
    let warmer = LambdaWarmer::new(
        aws_sdk_lambda::Client::new(&stack.sdk),
        WarmerConfig {
            timeout_margin_ms: support::EMULATOR_PING_MARGIN_MS,
            ..WarmerConfig::default()
        },
    );
    let policy = Policy {
        delay_ms_min: 50,
        delay_ms_max: 8_000,
        ..Policy::default()
    };
    let mut delay = 50;
    let mut history = Vec::new();
    for round in 0..8 {
        let plan = WarmPlan {
            function: FunctionRef::unqualified(FUNCTION),
            n: N,
            delay_ms: delay,
            run: format!("r{round}").into(),
            at_ms: now_ms(),
            init_allowance_ms: 0,
            answer_by_ms: None,
        };
        let report = warmer.warm_one(&plan).await.unwrap();
        let s = report.summary();
        history.push((delay, s.distinct, s.spread_ms));
        if s.distinct == N {
            break;
        }
        delay = tune_delay(&policy, delay, &s).0;
    }
    let (_, distinct, _) = *history.last().unwrap();
    assert_eq!(
        distinct,
        N,
        "(delay, distinct, spread) per round: {history:?}\n{}",
        stack.watch.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_function_or_table_is_named_in_the_error() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::start(1, "fw-unknown").await;
    let out = stack
        .forewarm(&["warm", "no-such-function", "-n", "2"])
        .output_within();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-function"), "{err}");

    // A missing table stops the tick, at its first write (the run's
    // claim), with a message that names it.
    let out = stack
        .forewarm(&["tick"])
        .env("FOREWARM_TABLE", "no-such-table")
        .output_within();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot claim the run") && err.contains("no-such-table"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_accounts_pool_is_one_metric_a_minute_and_the_functions_series_stay_out() {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let _serial = SERIAL.lock().await;
    let moto = Moto::start(None);
    let sdk = moto.sdk_config().await;
    let cw_client = aws_sdk_cloudwatch::Client::new(&sdk);
    let now_min = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    // The account's series over six minutes, and a function's own series
    // of the same name, which must not count.
    let mut data: Vec<MetricDatum> = (0..6)
        .map(|k| {
            MetricDatum::builder()
                .metric_name("UnreservedConcurrentExecutions")
                .timestamp(DateTime::from_secs(((now_min - 6 + k) * 60) as i64))
                .value(10.0 * (k + 1) as f64)
                .build()
        })
        .collect();
    data.push(
        MetricDatum::builder()
            .metric_name("UnreservedConcurrentExecutions")
            .dimensions(
                Dimension::builder()
                    .name("FunctionName")
                    .value("orders")
                    .build(),
            )
            .timestamp(DateTime::from_secs(((now_min - 3) * 60) as i64))
            .value(500.0)
            .build(),
    );
    cw_client
        .put_metric_data()
        .namespace("AWS/Lambda")
        .set_metric_data(Some(data))
        .send()
        .await
        .unwrap();
    let cw = CloudWatchMetrics::new(cw_client);
    let seen = cw
        .pool_in_use(now_min - 4, now_min - 1)
        .await
        .expect("GetMetricData answers");
    assert_eq!(
        seen,
        [
            (now_min - 4, 30.0),
            (now_min - 3, 40.0),
            (now_min - 2, 50.0)
        ]
    );
    assert_eq!(cw.usage().metrics_requested, 1, "one metric requested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_screen_lists_the_functions_that_ran_lately_in_one_request() {
    let _serial = SERIAL.lock().await;
    let moto = Moto::start(None);
    let sdk = moto.sdk_config().await;
    support::seed_metrics(&sdk, &["ran"]).await;
    let cw = CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&sdk));
    let active = cw
        .recently_active()
        .await
        .expect("ListMetrics answers")
        .expect("CloudWatch can screen");
    assert!(active.contains("ran"), "{active:?}");
    assert!(!active.contains("idle"), "{active:?}");
    assert_eq!(cw.usage().list_requests, 1, "one page");
    assert_eq!(cw.usage().metrics_requested, 0, "no metric read");
    assert_eq!(cw.screen_pages(), 1);
}
