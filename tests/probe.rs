//! `forewarm probe` as a user runs it, against stand-ins on loopback: an
//! HTTP endpoint behind a pool of sandboxes that pay an init when new, and a
//! scripted Lambda Invoke endpoint that returns the platform's log tails.
#![cfg(all(feature = "cli", feature = "aws"))]

#[path = "support/invoke.rs"]
mod invoke;
mod support;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use invoke::{InvokeStub, Reply, Seen};
use serde_json::Value;
use support::forewarm;

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("forewarm runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A function behind a pool of sandboxes, as the platform runs one: a
/// request takes an idle sandbox (warm, `work` long) or, when every
/// sandbox is busy, a new one that pays `init` first (cold). It counts its
/// own cold starts: the truth the probe's estimate is checked against.
struct Pool {
    busy_until: Mutex<Vec<Instant>>,
    init: Duration,
    work: Duration,
    cold: AtomicUsize,
}

impl Pool {
    fn new(init_ms: u64, work_ms: u64) -> Arc<Pool> {
        Arc::new(Pool {
            busy_until: Mutex::new(Vec::new()),
            init: Duration::from_millis(init_ms),
            work: Duration::from_millis(work_ms),
            cold: AtomicUsize::new(0),
        })
    }

    fn serve(&self) -> Reply {
        let now = Instant::now();
        let mut slots = self.busy_until.lock().unwrap();
        let hold = match slots.iter_mut().find(|t| **t <= now) {
            Some(slot) => {
                *slot = now + self.work;
                self.work
            }
            None => {
                slots.push(now + self.init + self.work);
                self.cold.fetch_add(1, Ordering::SeqCst);
                self.init + self.work
            }
        };
        Reply::ok(r#"{"ok":true}"#).after(hold)
    }

    fn cold(&self) -> usize {
        self.cold.load(Ordering::SeqCst)
    }
}

fn pool_endpoint(pool: &Arc<Pool>) -> InvokeStub {
    let p = pool.clone();
    InvokeStub::start(move |_| p.serve())
}

#[test]
fn a_fresh_pool_answers_cold_and_the_same_pool_then_answers_warm() {
    let pool = Pool::new(1_500, 250);
    let stub = pool_endpoint(&pool);
    let url = format!("{}/orders", stub.endpoint);
    let probe = |n: &str| {
        let out = run(forewarm().args(["probe", &url, "-n", n, "--json"]));
        assert!(out.status.success(), "{}", stderr(&out));
        json(&out)
    };

    let first = probe("12");
    assert_eq!(pool.cold(), 12, "the stand-in started 12 sandboxes");
    assert_eq!(first["requests"], 12);
    assert_eq!(first["errors"], 0);
    assert_eq!(
        (first["cold"].as_u64(), first["warm"].as_u64()),
        (Some(12), Some(0)),
        "{first}"
    );
    assert_eq!(first["cold_method"], "latency_split");
    assert!(
        first["distinct_sandboxes"].is_null(),
        "a URL's answers do not name sandboxes"
    );
    let reference = first["reference_ms"].as_u64().expect("a warm reference");
    assert!(reference < first["latency_ms"]["p50"].as_u64().unwrap());
    for key in ["p50", "p90", "p99", "max"] {
        assert!(
            first["latency_ms"][key].as_u64().unwrap() >= 1_500,
            "{key}: every one paid the init"
        );
    }
    let results = first["results"].as_array().unwrap();
    assert_eq!(results.len(), 12);
    for r in results {
        for key in [
            "started_ms",
            "latency_ms",
            "status",
            "cold",
            "sandbox",
            "error",
        ] {
            assert!(r.get(key).is_some(), "{key} in {r}");
        }
        assert_eq!(r["cold"], true);
        assert_eq!(r["status"], 200);
    }

    let second = probe("12");
    assert_eq!(pool.cold(), 12, "no new sandbox");
    assert_eq!(
        (second["cold"].as_u64(), second["warm"].as_u64()),
        (Some(0), Some(12)),
        "{second}"
    );

    let third = probe("15");
    assert_eq!(pool.cold(), 15, "three more sandboxes");
    assert_eq!(
        (third["cold"].as_u64(), third["warm"].as_u64()),
        (Some(3), Some(12)),
        "{third}"
    );
    assert!(third["cold_latency_ms"]["p50"].as_u64().unwrap() >= 1_500);
    assert!(third["warm_latency_ms"]["max"].as_u64().unwrap() < 1_500);
}

#[test]
fn failures_are_counted_by_kind_and_only_no_success_fails_the_command() {
    // Of the first 12 arrivals, by arrival order: 2 answer 500, 2 are
    // dropped unanswered, 2 are throttled; the rest (and the reference) succeed.
    let faulty = || {
        InvokeStub::start(|seen: &Seen| match (seen.index < 12, seen.index % 6) {
            (true, 1) => Reply::ok("boom").status(500),
            (true, 2) => Reply::dropped(Duration::from_millis(20)),
            (true, 3) => Reply::ok("slow down").status(429),
            _ => Reply::ok("{}").after(Duration::from_millis(30)),
        })
    };
    let stub = faulty();
    let out = run(forewarm().args(["probe", &stub.endpoint, "-n", "12", "--json"]));
    assert!(out.status.success(), "some succeeded: {}", stderr(&out));
    let r = json(&out);
    assert_eq!(
        (
            r["requests"].as_u64(),
            r["ok"].as_u64(),
            r["errors"].as_u64()
        ),
        (Some(12), Some(6), Some(6))
    );
    assert_eq!(
        r["errors_by_kind"],
        serde_json::json!({"closed": 2, "throttled": 2, "http_5xx": 2}),
        "{r}"
    );
    let statuses: Vec<Value> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["error"] == "http_5xx")
        .map(|s| s["status"].clone())
        .collect();
    assert_eq!(statuses, vec![Value::from(500), Value::from(500)]);

    // Nothing listens there.
    let port = support::free_port();
    let out = run(forewarm().args([
        "probe",
        &format!("http://127.0.0.1:{port}/"),
        "-n",
        "3",
        "--json",
    ]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no request succeeded"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        json(&out)["errors_by_kind"],
        serde_json::json!({"connect": 3})
    );

    // TLS to something that does not speak it: a server that answers every
    // connection with plain text.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_url = format!("https://{}/", plain.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::Write;
        for mut conn in plain.incoming().flatten().take(8) {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let out = run(forewarm().args(["probe", &tls_url, "-n", "2", "--no-reference", "--json"]));
    assert!(!out.status.success());
    assert_eq!(
        json(&out)["errors_by_kind"],
        serde_json::json!({"tls": 2}),
        "{}",
        stderr(&out)
    );

    // Answers slower than --timeout.
    let slow = InvokeStub::start(|_| Reply::ok("{}").after(Duration::from_secs(5)));
    let out = run(forewarm().args([
        "probe",
        &slow.endpoint,
        "-n",
        "2",
        "--timeout",
        "300ms",
        "--json",
    ]));
    assert!(!out.status.success());
    assert_eq!(
        json(&out)["errors_by_kind"],
        serde_json::json!({"timeout": 2})
    );

    // The human summary names the kinds too.
    let stub = faulty();
    let out = run(forewarm().args(["probe", &stub.endpoint, "-n", "12"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("6 failed (closed 2, throttled 2, http_5xx 2)"),
        "{text}"
    );
}

#[test]
fn the_open_file_limit_is_reported_when_hit() {
    let stub = InvokeStub::start(|_| Reply::ok("{}").after(Duration::from_millis(500)));
    // A hard limit the probe cannot raise: soft and hard both 40.
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 40 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_forewarm"))
        .args(["probe", &stub.endpoint, "-n", "100"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr(&out).contains("ulimit -n"),
        "warned up front: {}",
        stderr(&out)
    );
    assert!(text.contains("fd_limit"), "{text}");
    assert!(text.contains("open-file limit (40)"), "{text}");
}

#[test]
fn bad_arguments_are_clear_errors_and_send_nothing() {
    let stub = InvokeStub::start(|_| Reply::ok("{}"));
    let cases: [(&[&str], &str); 9] = [
        (&["-n", "0"], "give 1 to 10000"),
        (&["-n", "-3"], "give 1 to 10000"),
        (&["-n", "1000000"], "give 1 to 10000"),
        (&["-n", "lots"], "not a whole number"),
        (&["--every", "1s"], "--for"),
        (&["--timeout", "0s"], "--timeout must be above zero"),
        (&["--payload", "{}"], "--payload is for function targets"),
        (&["--header", "no-colon"], "Name: value"),
        (&["--cold-over", "soon"], "not a duration"),
    ];
    for (args, expect) in cases {
        let out = run(forewarm().args(["probe", &stub.endpoint]).args(args));
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
    for (target, expect) in [
        ("ftp://example.com/x", "only http:// and https://"),
        ("orders:", "not a function"),
    ] {
        let out = run(forewarm().args(["probe", target]));
        assert!(stderr(&out).contains(expect), "{target}: {}", stderr(&out));
    }
    let out = run(forewarm().args(["probe", "orders", "--payload", r#"{"warmer": true}"#]));
    assert!(stderr(&out).contains("warming ping"), "{}", stderr(&out));
    let out = run(forewarm().args(["probe", "orders", "--data", "x"]));
    assert!(stderr(&out).contains("for URL targets"), "{}", stderr(&out));
    assert_eq!(stub.requests(), 0);
}

/// A log tail as Lambda returns it (base64 of the log's last 4 KB).
fn tail(request: usize, sandbox: &str, init_ms: Option<f64>) -> String {
    let init = init_ms.map_or(String::new(), |ms| format!("Init Duration: {ms:.2} ms\t"));
    let text = format!(
        "START RequestId: r{request} Version: $LATEST\n\
         forewarm-probe sandbox={sandbox}\n\
         END RequestId: r{request}\n\
         REPORT RequestId: r{request}\tDuration: 101.10 ms\tBilled Duration: 102 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\t{init}\n"
    );
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn an_invoke_is_told_cold_exactly_from_its_report_line() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    // Eight invokes: 0, 2, 4 paid an init in sandboxes a, b, c; 1, 3, 5 ran
    // warm in a and b; 6 is throttled; 7 fails in the handler.
    let stub = InvokeStub::start(move |s: &Seen| {
        log.lock().unwrap().push(s.clone());
        let ok = |sandbox: &str, init| {
            Reply::ok(r#"{"handled":true}"#)
                .header("x-amz-log-result", &tail(s.index, sandbox, init))
                .after(Duration::from_millis(200))
        };
        match s.index {
            0 => ok("a", Some(812.5)),
            2 => ok("b", Some(790.0)),
            4 => ok("c", Some(805.25)),
            1 | 5 => ok("a", None),
            3 => ok("b", None),
            6 => Reply::error(429, "TooManyRequestsException", "Rate Exceeded."),
            _ => Reply::ok(r#"{"errorMessage":"bad order"}"#)
                .header("x-amz-function-error", "Unhandled")
                .header("x-amz-log-result", &tail(s.index, "a", None)),
        }
    });
    let out = run(forewarm()
        .env("AWS_ENDPOINT_URL_LAMBDA", &stub.endpoint)
        .args([
            "probe",
            "orders:live",
            "-n",
            "8",
            "--payload",
            r#"{"order": 7}"#,
            "--json",
        ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["cold_method"], "init_duration", "{r}");
    assert_eq!(
        (r["cold"].as_u64(), r["warm"].as_u64()),
        (Some(3), Some(3)),
        "{r}"
    );
    assert_eq!(r["distinct_sandboxes"], 3);
    assert_eq!(
        r["errors_by_kind"],
        serde_json::json!({"throttled": 1, "function_error": 1})
    );
    assert!(
        r["reference_ms"].is_null(),
        "exact answers need no reference"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 8, "no reference, no retry");
    for s in seen.iter() {
        assert!(
            s.request_line.contains("/functions/orders/invocations"),
            "{}",
            s.request_line
        );
        assert!(
            s.request_line.contains("Qualifier=live"),
            "{}",
            s.request_line
        );
        let header = |k: &str| {
            s.headers
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("x-amz-log-type").as_deref(), Some("Tail"));
        let context = base64::engine::general_purpose::STANDARD
            .decode(header("x-amz-client-context").expect("a client context"))
            .unwrap();
        let context: Value = serde_json::from_slice(&context).unwrap();
        assert_eq!(context["custom"]["forewarm-probe"], "1");
        assert_eq!(
            s.body,
            serde_json::json!({"order": 7}),
            "the real event, unchanged"
        );
    }
}

#[test]
fn rounds_are_one_line_each_and_a_saved_run_sets_beside_this_one() {
    let pool = Pool::new(800, 100);
    let stub = pool_endpoint(&pool);
    let dir = std::env::temp_dir().join(format!("forewarm-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("before.json");

    let out = run(forewarm().args(["probe", &stub.endpoint, "-n", "4", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&saved, &out.stdout).unwrap();
    assert_eq!(json(&out)["cold"], 4);

    // Two rounds half a second apart: one JSON line each, and the files.
    let out = run(forewarm()
        .args([
            "probe",
            &stub.endpoint,
            "-n",
            "4",
            "--every",
            "500ms",
            "--for",
            "1s",
            "--json",
            "--out",
        ])
        .arg(&dir));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| l["warm"] == 4 && l["cold"] == 0),
        "{lines:?}"
    );
    let csv = std::fs::read_to_string(dir.join("probe.csv")).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("round,started_ms,latency_ms,status,cold,sandbox,error")
    );
    assert_eq!(csv.lines().count(), 1 + 8);
    let svg = std::fs::read_to_string(dir.join("probe-histogram.svg")).unwrap();
    assert!(svg.contains("<svg"));

    // Before and after, side by side; --fail-on-cold passes on a warm pool.
    let out = run(forewarm()
        .args([
            "probe",
            &stub.endpoint,
            "-n",
            "4",
            "--fail-on-cold",
            "--compare",
        ])
        .arg(&saved));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // The side-by-side table comes last.
    let cold_row = text
        .lines()
        .rev()
        .find(|l| l.starts_with("cold "))
        .expect(&text);
    assert_eq!(
        cold_row.split_whitespace().collect::<Vec<_>>(),
        ["cold", "4", "0"],
        "{text}"
    );
    assert!(text.contains("before") && text.contains("now"), "{text}");

    // ... and fails once a request is cold.
    let out = run(forewarm().args(["probe", &stub.endpoint, "-n", "6", "--fail-on-cold"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("2 of 6 answered requests were cold"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_thousand_requests_from_one_process_overlap() {
    // The stand-in here and the probe in its own process each hold a
    // connection per request.
    let limit = support::raise_fd_limit(4_096);
    // Each request holds its sandbox for 4 s: a sandbox is reused only by a
    // request that started after another had ended.
    let pool = Pool::new(0, 4_000);
    let stub = pool_endpoint(&pool);
    let out = run(forewarm().args([
        "probe",
        &stub.endpoint,
        "-n",
        "1000",
        "--no-reference",
        "--json",
    ]));
    let r = json(&out);
    if limit < 1_100 {
        // A machine whose hard limit is below a thousand connections: the
        // shortfall must be reported as such, not as a network failure.
        assert!(stderr(&out).contains("ulimit -n"), "{}", stderr(&out));
        assert!(r["errors_by_kind"]["fd_limit"].as_u64() > Some(0), "{r}");
        return;
    }
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(r["ok"], 1_000, "{}", r["errors_by_kind"]);
    assert_eq!(
        pool.cold(),
        1_000,
        "every request arrived while all the others were in flight"
    );
    assert!(r["start_spread_ms"].as_u64().unwrap() < 4_000);
}
