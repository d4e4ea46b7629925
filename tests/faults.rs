//! The controller as an operator runs it (`forewarm tick`), against
//! stand-ins that fail: moto behind a front door that injects faults into
//! every service (500s, throttles, latency, connections dropped before or
//! after the request was applied), and an Invoke endpoint whose functions
//! keep pools of sandboxes. And many ticks at once, on DynamoDB stand-ins
//! whose conditional writes are atomic.
#![cfg(all(feature = "aws", feature = "cli"))]

#[path = "support/invoke.rs"]
mod invoke;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use forewarm::aws::controller::ControllerConfig;
use forewarm::aws::{AwsPorts, DynamoStore};
use forewarm::cost::dynamodb::{
    StateItem, consistent_read_units, run_item_bytes, scan_units, write_units,
};
use forewarm::decision::policy::{PolicyDoc, Scalar};
use forewarm::ports::AdminStore;
use invoke::{InvokeStub, Reply, Seen};
use serde_json::Value;
use support::{Moto, Within};

/// One scenario at a time: each starts its own stand-ins.
static SERIAL: Mutex<()> = Mutex::new(());

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A ping as a function's sandbox pool saw it.
#[derive(Debug, Clone)]
struct Ping {
    function: String,
    run: String,
    seq: u64,
}

/// Functions that each keep a pool of sandboxes: a ping takes an idle one
/// (warm) or starts one (cold), holds it for the ping's delay and answers
/// as the shim does. Every ping is logged.
#[derive(Default)]
struct Pools {
    busy_until: Mutex<BTreeMap<String, Vec<Instant>>>,
    log: Mutex<Vec<Ping>>,
}

impl Pools {
    fn serve(&self, seen: &Seen) -> Reply {
        let function = seen
            .request_line
            .split('/')
            .nth(3)
            .unwrap_or("")
            .to_string();
        let body = &seen.body;
        self.log.lock().unwrap().push(Ping {
            function: function.clone(),
            run: body["forewarm"]["run"].as_str().unwrap_or("").to_string(),
            seq: body["forewarm"]["seq"].as_u64().unwrap_or(u64::MAX),
        });
        let hold = Duration::from_secs_f64(body["delay"].as_f64().unwrap_or(0.0));
        let now = Instant::now();
        let mut pools = self.busy_until.lock().unwrap();
        let pool = pools.entry(function.clone()).or_default();
        let (k, cold) = match pool.iter().position(|t| *t <= now) {
            Some(k) => (k, false),
            None => {
                pool.push(now);
                (pool.len() - 1, true)
            }
        };
        pool[k] = now + hold;
        let started = now_ms();
        Reply {
            hold,
            ..Reply::ok(format!(
                r#"{{"forewarm":{{"v":1,"instance":"{function}-{k}","cold":{cold},"init_ms":0,"started_ms":{started},"served":0,"last_real_ms":null}}}}"#
            ))
        }
    }

    fn since(&self, from: usize) -> Vec<Ping> {
        self.log.lock().unwrap()[from..].to_vec()
    }

    fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

/// The stand-ins, a table and `n` functions with policies and history.
struct Stack {
    pools: Arc<Pools>,
    _stub: InvokeStub,
    moto: Moto,
    sdk: aws_config::SdkConfig,
    table: String,
    functions: Vec<String>,
    rt: tokio::runtime::Runtime,
}

/// How long a tick's claim lasts here, s: short, so that a tick that
/// overstays it shows.
const LEASE_S: u64 = 30;

impl Stack {
    fn start(table: &str, names: Vec<String>) -> Stack {
        let pools = Arc::new(Pools::default());
        let p = pools.clone();
        let stub = InvokeStub::start(move |seen| p.serve(seen));
        let moto = Moto::start(Some(&stub.endpoint));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        moto.create_functions(&refs, 256, 20);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let sdk = rt.block_on(moto.sdk_config());
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
        rt.block_on(async {
            store.create_table().await.unwrap();
            support::seed_metrics(&sdk, &refs).await;
            let max: PolicyDoc = [("max".to_string(), Scalar::Num(6.0))].into();
            for f in &refs {
                store.put_policy(f, &max).await.unwrap();
            }
        });
        Stack {
            pools,
            _stub: stub,
            moto,
            sdk,
            table: table.to_string(),
            functions: names,
            rt,
        }
    }

    /// The controller's ports as the controller Lambda keeps them for its
    /// sandbox's life, over the front door: the production call timeouts,
    /// and the SDK's standard three attempts with a short backoff (the
    /// SDK's own pacing is not under test, and its one-second base would
    /// make twenty ticks at 30 % faults take minutes).
    fn controller(&self) -> (AwsPorts, ControllerConfig) {
        let env: BTreeMap<&str, String> = [
            ("FOREWARM_TABLE", self.table.clone()),
            ("FOREWARM_LEASE_SECONDS", LEASE_S.to_string()),
        ]
        .into();
        let cfg = ControllerConfig::from_env_with(|k| env.get(k).cloned()).unwrap();
        let sdk = self.rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                    "test", "test", None, None, "static",
                ))
                .endpoint_url(&self.moto.endpoint)
                .retry_config(
                    aws_config::retry::RetryConfig::standard()
                        .with_initial_backoff(Duration::from_millis(20)),
                )
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .operation_timeout(Duration::from_millis(cfg.timeouts.call_ms))
                        .operation_attempt_timeout(Duration::from_millis(cfg.timeouts.attempt_ms))
                        .build(),
                )
                .load(),
        );
        (AwsPorts::new(&sdk, cfg.table.clone(), cfg.warmer), cfg)
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.table)
    }

    /// `forewarm tick --json`, as a user runs it against the stand-ins.
    fn tick(&self) -> Command {
        let mut c = support::forewarm();
        c.args(["tick", "--json"])
            .env("AWS_ENDPOINT_URL", &self.moto.endpoint)
            .env("FOREWARM_TABLE", &self.table)
            .env("FOREWARM_LEASE_SECONDS", LEASE_S.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Every function's state item: version, when its next warm is due,
    /// whether a state is stored (read with faults off).
    fn states(&self) -> BTreeMap<String, (u64, u64, bool)> {
        let items = self.rt.block_on(self.store().states(None)).unwrap();
        items
            .into_iter()
            .map(|i| {
                let due = i.state.as_ref().map_or(0, |s| s.next_due_ms);
                (i.function, (i.version, due, i.state.is_some()))
            })
            .collect()
    }

    /// Asks for a look at every function at the next tick (their items'
    /// `next_check_ms` set to 0), so that every tick reads and saves them.
    fn look_at_all(&self) {
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        self.rt.block_on(async {
            for f in &self.functions {
                ddb.update_item()
                    .table_name(&self.table)
                    .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(f.clone()))
                    .key(
                        "sk",
                        aws_sdk_dynamodb::types::AttributeValue::S("state".into()),
                    )
                    .update_expression("SET next_check_ms = :z")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(
                        ":z",
                        aws_sdk_dynamodb::types::AttributeValue::N("0".into()),
                    )
                    .send()
                    .await
                    .ok();
            }
        });
    }
}

impl Stack {
    /// Adds functions that ran nothing: a policy each, and nothing in
    /// CloudWatch.
    fn add_idle(&mut self, names: &[&str]) {
        self.moto.create_functions(names, 256, 20);
        let store = self.store();
        self.rt.block_on(async {
            let max: PolicyDoc = [("max".to_string(), Scalar::Num(6.0))].into();
            for f in names {
                store.put_policy(f, &max).await.unwrap();
            }
        });
        self.functions.extend(names.iter().map(|n| n.to_string()));
    }

    /// Moves every function's read watermark `minutes` back and asks for a
    /// look at the next tick, as if its last read were that long ago (what
    /// the tick reads then is due by the read cadence, without waiting for
    /// it); returns the states as saved.
    fn rewind_reads(&self, minutes: u64) -> BTreeMap<String, forewarm::decision::FunctionState> {
        use forewarm::ports::{FunctionRef, StateStore as _};
        let store = self.store();
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            for f in &self.functions {
                let r = FunctionRef::unqualified(f.as_str());
                let stored = store.load(&r).await.unwrap();
                let mut st = stored.state.expect("a state from the first tick");
                st.watermark_minute = st.watermark_minute.map(|w| w - minutes);
                st.next_check_ms = 0;
                store
                    .save(&r, st.clone(), stored.version, "test")
                    .await
                    .unwrap();
                out.insert(f.clone(), *st);
            }
            out
        })
    }
}

fn report(out: &Output) -> Option<Value> {
    serde_json::from_slice(&out.stdout).ok()
}

fn outcome<'a>(report: &'a Value, function: &str) -> Option<&'a Value> {
    report["functions"]
        .as_array()?
        .iter()
        .find(|f| f["function"] == function)
}

/// Distinct pings (a retry of a ping repeats its `seq`) per function and run.
fn distinct(pings: &[Ping]) -> BTreeMap<(String, String), BTreeSet<u64>> {
    let mut by: BTreeMap<(String, String), BTreeSet<u64>> = BTreeMap::new();
    for p in pings {
        by.entry((p.function.clone(), p.run.clone()))
            .or_default()
            .insert(p.seq);
    }
    by
}

#[test]
fn under_faults_no_state_is_lost_no_function_is_warmed_twice_and_ticks_keep_their_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let names: Vec<String> = (0..20).map(|i| format!("fn-{i:02}")).collect();
    let stack = Stack::start("fw-faults", names);
    let (mut warmed_ticks, mut saves) = (0, 0);
    let mut states = stack.states();
    let (ports, cfg) = stack.controller();
    for round in 0..20u64 {
        let logged = stack.pools.len();
        stack.moto.faults(0.3, round);
        let started_ms = now_ms();
        let t0 = Instant::now();
        let tick = cfg.tick(format!("run-{round}"), false);
        let report = stack
            .rt
            .block_on(forewarm::aws::controller::run(&ports, &tick, started_ms));
        let took = t0.elapsed();
        let injected = stack.moto.faults(0.0, 0);
        let after = stack.states();
        let context = format!("tick {round} (injected {injected}): {report:#?}");

        // Within its time: the claim's length, plus the release after it
        // (one call, within the call timeout).
        assert!(
            took <= Duration::from_millis(LEASE_S * 1_000 + cfg.timeouts.call_ms),
            "took {took:?}: {context}"
        );
        // No state lost or gone backwards; a reported save is one save.
        for (f, &(version, _, had)) in &states {
            let &(now_version, _, has) = after.get(f).unwrap_or(&(0, 0, false));
            assert!(now_version >= version, "{f} went back: {context}");
            assert!(!had || has, "{f} lost its state: {context}");
        }
        let rep = report
            .error
            .is_none()
            .then(|| serde_json::to_value(&report).unwrap());
        for f in &stack.functions {
            let before = states.get(f).copied().unwrap_or((0, 0, false));
            let now = after.get(f).copied().unwrap_or((0, 0, false));
            let o = rep.as_ref().and_then(|r| outcome(r, f));
            let saved = o.is_some_and(|o| o["saved"] == true);
            let note = o.and_then(|o| o["note"].as_str()).unwrap_or("");
            if saved {
                assert_eq!(now.0, before.0 + 1, "{f} reported saved: {context}");
            } else if !note.contains("not certain") && rep.is_some() {
                assert_eq!(
                    now.0, before.0,
                    "{f} reported not saved ({note}): {context}"
                );
            }
        }
        // Pings: never more than decided, from one run, and a warm said to
        // be due only where the stored state said its warm was due.
        let pings = stack.pools.since(logged);
        let by = distinct(&pings);
        let runs: BTreeSet<&String> = by.keys().map(|(_, r)| r).collect();
        assert!(runs.len() <= 1, "one run per tick: {runs:?}: {context}");
        for ((f, _), seqs) in &by {
            let decided = rep
                .as_ref()
                .and_then(|r| outcome(r, f))
                .and_then(|o| o["decision"]["action"]["n"].as_u64())
                .unwrap_or(0);
            assert!(
                seqs.len() as u64 <= decided,
                "{f}: {} pings for a decision of {decided}: {context}",
                seqs.len()
            );
            assert!(
                seqs.iter().all(|&s| s < decided),
                "{f}: seqs {seqs:?}: {context}"
            );
            let reason = rep
                .as_ref()
                .and_then(|r| outcome(r, f))
                .map_or(Value::Null, |o| o["decision"]["reason"].clone());
            let (_, next_due, _) = states.get(f).copied().unwrap_or((0, 0, false));
            assert!(
                reason != "due" || next_due <= started_ms + took.as_millis() as u64,
                "{f} warmed as due before its warm was due ({next_due}, tick at {started_ms}): {context}"
            );
        }
        if !by.is_empty() {
            warmed_ticks += 1;
        }
        saves += rep.as_ref().map_or(0, |r| {
            r["functions"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|o| o["saved"] == true).count())
        });
        states = after;
        stack.look_at_all();
    }
    assert!(warmed_ticks >= 1, "some tick warmed something");
    assert!(saves >= 100, "the ticks saved states ({saves} saves)");

    // With the faults gone, the next tick and `forewarm status` work.
    let out = stack.tick().output_within();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = support::forewarm()
        .args(["status"])
        .env("AWS_ENDPOINT_URL", &stack.moto.endpoint)
        .env("FOREWARM_TABLE", &stack.table)
        .output_within();
    assert!(status.status.success());
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        stack.functions.iter().all(|f| text.contains(f.as_str())),
        "{text}"
    );
}

#[test]
fn six_ticks_at_once_warm_each_function_once_round_after_round() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const ROUNDS: usize = 5;
    const TICKS: usize = 6;
    let names: Vec<String> = (0..ROUNDS)
        .flat_map(|r| (0..4).map(move |i| format!("r{r}-fn-{i}")))
        .collect();
    let stack = Stack::start("fw-race6", names);
    // Each round's functions get their policies at its start; the others'
    // are removed from the table's view by `mode=off` until then.
    let off: PolicyDoc = [("mode".to_string(), Scalar::Str("off".into()))].into();
    let on: PolicyDoc = [("max".to_string(), Scalar::Num(6.0))].into();
    let store = stack.store();
    stack.rt.block_on(async {
        for f in &stack.functions {
            store.put_policy(f, &off).await.unwrap();
        }
    });
    for round in 0..ROUNDS {
        let mine: Vec<&String> = stack
            .functions
            .iter()
            .filter(|f| f.starts_with(&format!("r{round}-")))
            .collect();
        stack.rt.block_on(async {
            for f in &mine {
                store.put_policy(f, &on).await.unwrap();
            }
        });
        let logged = stack.pools.len();
        let children: Vec<_> = (0..TICKS).map(|_| stack.tick().spawn().unwrap()).collect();
        let outs: Vec<Output> = children.into_iter().map(|c| c.output_within()).collect();
        let context: String = outs
            .iter()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        for o in &outs {
            assert!(
                o.status.success(),
                "{}\n{context}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let by = distinct(&stack.pools.since(logged));
        let states = stack.states();
        for f in &mine {
            let runs: Vec<&String> = by.keys().filter(|(g, _)| g == *f).map(|(_, r)| r).collect();
            assert_eq!(
                runs.len(),
                1,
                "round {round}: {f} warmed by {runs:?}\n{context}"
            );
            assert_eq!(
                states.get(*f).map(|s| s.0),
                Some(1),
                "round {round}: {f} saved once\n{context}"
            );
        }
        let warming = outs
            .iter()
            .filter_map(report)
            .filter(|r| {
                mine.iter().any(|f| {
                    outcome(r, f).is_some_and(|o| o["decision"]["action"]["n"].as_u64() > Some(0))
                })
            })
            .count();
        assert_eq!(
            warming, 1,
            "round {round}: one run did the round\n{context}"
        );
    }
}

#[test]
fn versions_and_claims_no_run_wrote_are_repaired_and_said() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let names: Vec<String> = (0..5).map(|i| format!("fn-{i:02}")).collect();
    let stack = Stack::start("fw-untrusted", names);
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    // As a person with console access could leave them: versions a save
    // can never match, and a claim that would stop every tick for ever.
    let versions = [
        ("fn-00", A::N("-5".into())),
        ("fn-01", A::N("100000000000000000000".into())),
        ("fn-02", A::S("abc".into())),
        ("fn-03", A::N("9007199254740993".into())),
    ];
    stack.rt.block_on(async {
        for (f, v) in &versions {
            ddb.put_item()
                .table_name(&stack.table)
                .item("pk", A::S(f.to_string()))
                .item("sk", A::S("state".into()))
                .item("version", v.clone())
                .send()
                .await
                .unwrap();
        }
        ddb.put_item()
            .table_name(&stack.table)
            .item("pk", A::S("*".into()))
            .item("sk", A::S("state".into()))
            .item("lease_owner", A::S("ghost".into()))
            .item("lease_until", A::N("1e30".into()))
            .send()
            .await
            .unwrap();
    });
    let status = || {
        let out = support::forewarm()
            .args(["status"])
            .env("AWS_ENDPOINT_URL", &stack.moto.endpoint)
            .env("FOREWARM_TABLE", &stack.table)
            .output_within();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = status();
    assert!(before.contains("not a run's"), "{before}");
    assert_eq!(
        before.matches("is not a whole number").count(),
        4,
        "{before}"
    );

    let out = stack.tick().output_within();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep = report(&out).unwrap();
    assert!(rep["skipped"].is_null(), "the claim is taken over: {rep:#}");
    let items = stack.rt.block_on(stack.store().states(None)).unwrap();
    for (f, _) in &versions {
        let item = items.iter().find(|i| i.function == *f).unwrap();
        assert_eq!(item.version, 1, "{f} saves again: {item:?}");
        let err = item.last_error.clone().unwrap_or_default();
        assert!(
            err.contains("version") && err.contains("started afresh"),
            "{f}: {err}"
        );
    }
    let healthy = items.iter().find(|i| i.function == "fn-04").unwrap();
    assert_eq!((healthy.version, healthy.last_error.clone()), (1, None));
}

/// A state item as the simulator sizes it, from the attributes the table
/// holds (an attribute the simulator does not know of is left out, so it
/// shows as a difference).
fn simulated_state_bytes(item: &HashMap<String, AttributeValue>) -> u64 {
    let text = |k: &str| match item.get(k) {
        Some(AttributeValue::N(n) | AttributeValue::S(n)) => Some(n.as_str()),
        _ => None,
    };
    let num = |k: &str| text(k).and_then(|n| n.parse::<u64>().ok());
    StateItem {
        function: text("pk").unwrap(),
        stored_len: match item.get("state") {
            Some(AttributeValue::B(b)) => b.as_ref().len(),
            other => panic!("state is {other:?}"),
        },
        version: num("version").unwrap(),
        next_check_ms: num("next_check_ms").unwrap(),
        saved_by: num("saved_by").unwrap() as u32,
        real_busy: text("real_busy").unwrap(),
        slots: num("run_every_ms").zip(num("run_until_ms")),
        last_error: text("last_error"),
    }
    .bytes()
}

#[test]
fn a_tick_consumes_what_the_services_bill_and_the_simulator_charges_the_same() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let names: Vec<String> = (0..6).map(|i| format!("fn-{i:02}")).collect();
    let mut stack = Stack::start("fw-units", names);
    stack.add_idle(&["idle-0", "idle-1"]);
    let fleet = stack.functions.len();
    // The controller's defaults: its metrics lag and read cadence.
    let defaults = forewarm::tick::TickConfig::new("test");
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    // A first tick (no states yet), a second that looks at every function
    // again, and a third an hour and a half of reads later, which screens
    // the two that ran nothing and reads the others.
    for round in 0..3 {
        let rewound = match round {
            0 => None,
            1 => {
                stack.look_at_all();
                None
            }
            _ => Some(stack.rewind_reads(90)),
        };
        let until_minute = now_ms() / 60_000 - defaults.metrics_lag_minutes;
        stack.moto.usage(true);
        let out = stack.tick().output_within();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = report(&out).unwrap();
        let billed = stack.moto.usage(false);
        let context = format!("round {round}: {billed:#}\n{report:#}");
        let counted = &report["usage"];

        // What the adapters counted is what the services billed.
        for k in ["metrics_requested", "list_requests"] {
            assert_eq!(counted[k], billed[k], "{k}: {context}");
        }
        for k in ["read_units", "write_units"] {
            let (c, b) = (counted[k].as_f64().unwrap(), billed[k].as_f64().unwrap());
            assert!(
                (c - b).abs() < 1e-9,
                "{k}: counted {c}, billed {b}: {context}"
            );
        }
        // On a first look every function reads its metrics, the detail
        // series too; the second reads only where the cadence says.
        let looks = report["functions"].as_array().unwrap().len();
        assert_eq!(looks, fleet, "{context}");
        if round == 0 {
            assert_eq!(
                counted["metrics_requested"],
                looks as u64 * forewarm::ports::MetricsRequest::series_of(true),
                "the simulator bills a first read the same: {context}"
            );
            assert_eq!(counted["list_requests"], 0, "nothing to screen: {context}");
        }
        // After the rewind every function's read is due: the two idle ones
        // are left out by one screen (billed as the simulator bills a
        // screen of this account), and each of the others requests the
        // series its read plan names.
        if let Some(states) = &rewound {
            let mut series = 0;
            for (f, st) in states {
                let plan = forewarm::decision::read_plan(
                    st,
                    until_minute,
                    defaults.metrics_every_minutes,
                    defaults.first_history_minutes,
                )
                .unwrap_or_else(|| panic!("{f}: a read due after the rewind: {context}"));
                if f.starts_with("fn-") {
                    series += forewarm::ports::MetricsRequest::series_of(plan.detail);
                }
            }
            assert_eq!(
                counted["metrics_requested"], series,
                "only the functions that ran: {context}"
            );
            assert_eq!(
                counted["list_requests"],
                forewarm::cost::cloudwatch::list_pages(fleet as u64),
                "one screen: {context}"
            );
        }

        // The simulator's rules charge each of those calls the same units.
        let calls = billed["calls"].as_array().unwrap();
        let (mut scans, mut gets, mut writes) = (0, 0, 0);
        for c in calls {
            let op = c["op"].as_str().unwrap();
            let (sim, billed) = match op {
                "Scan" => {
                    scans += 1;
                    (scan_units(c["bytes"].as_u64().unwrap()), &c["read_units"])
                }
                "GetItem" => {
                    gets += 1;
                    let bytes = c["bytes"].as_u64().unwrap();
                    (consistent_read_units(bytes), &c["read_units"])
                }
                "UpdateItem" | "PutItem" => {
                    writes += 1;
                    let before = c["bytes"][0].as_u64().unwrap();
                    let after = c["bytes"][1].as_u64().unwrap();
                    (write_units(before, after), &c["write_units"])
                }
                other => panic!("a call the simulator does not charge: {other}: {context}"),
            };
            assert_eq!(Some(sim), billed.as_f64(), "{c}: {context}");
        }
        // One scan, whose items the looks take (no read of their own), and
        // the claim, a save per function and the release.
        assert_eq!(scans, 1, "{context}");
        assert_eq!(gets, 0, "{context}");
        assert_eq!(writes, looks + 2, "{context}");

        // And sizes each item written as DynamoDB does.
        let written: HashMap<String, u64> = calls
            .iter()
            .filter(|c| c["op"] == "UpdateItem")
            .map(|c| {
                (
                    c["key"]["pk"]["S"].as_str().unwrap().to_string(),
                    c["bytes"][1].as_u64().unwrap(),
                )
            })
            .collect();
        let items = stack
            .rt
            .block_on(ddb.scan().table_name(&stack.table).send())
            .unwrap();
        let mut sized = 0;
        for item in items.items() {
            if item.get("sk") != Some(&AttributeValue::S("state".into())) {
                continue;
            }
            let pk = item["pk"].as_s().unwrap();
            let sim = if pk == "*" {
                let last = item["last_tick_ms"].as_n().unwrap().parse().unwrap();
                let text = |k: &str| item.get(k).map_or("", |p| p.as_s().unwrap());
                run_item_bytes(None, last, text("pool_pings"), text("reaping"))
            } else {
                simulated_state_bytes(item)
            };
            let attrs: BTreeSet<&String> = item.keys().collect();
            assert_eq!(Some(&sim), written.get(pk), "{pk}: {attrs:?}: {context}");
            sized += 1;
        }
        assert_eq!(sized, looks + 1, "{context}");
    }
}
