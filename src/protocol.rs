//! The wire format between the controller and target functions (the
//! README's "The wire format" says it for people writing a shim).
//!
//! A **ping** is an ordinary Lambda invocation whose payload carries a
//! top-level marker. The controller sends
//!
//! ```json
//! {"warmer": true, "delay": 0.35, "forewarm": {"v": 1, "run": "<tick id>", "seq": 17, "of": 120}}
//! ```
//!
//! and a forewarm shim answers with a [`Reply`] naming the sandbox. The
//! classifier here is shared by the Rust shim and mirrored by the Python
//! decorator; it also recognizes the markers of the tools users migrate from
//! (the seed's decorator and lambda-warmer `{"warmer": true, ...}`,
//! serverless-plugin-warmup `{"source": "serverless-plugin-warmup"}`), so a
//! schedule that already exists keeps working during a migration.
//!
//! Only a *top-level* marker makes a ping. An API Gateway or SQS event whose
//! `body` happens to contain `{"warmer": true}` is a real event: the classifier
//! never looks below the first level, and never parses anything but a JSON
//! object.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// Protocol version carried in pings and replies (`v`).
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest hold a shim accepts, in milliseconds.
///
/// Ten seconds is far above any overlap the controller needs (its own
/// `delay_ms_max` defaults to 3 s) and keeps a mistaken ping from pinning a
/// sandbox, and the function's concurrency, for long.
pub const MAX_DELAY_MS: u64 = 10_000;

/// Time a shim keeps in hand before the invocation's deadline, so the reply is
/// sent before Lambda times the invocation out.
pub const DEADLINE_SAFETY_MS: u64 = 100;

/// Hold used when a `{"warmer": true}` ping names no delay: the seed's
/// decorator slept `event.get('delay', 0.3)` seconds.
pub const SEED_DEFAULT_DELAY_MS: u64 = 300;

/// Hold used for lambda-warmer's fan-out pings: its documented default
/// `delay: 75` (ms).
pub const LAMBDA_WARMER_DELAY_MS: u64 = 75;

/// Hold used for serverless-plugin-warmup pings, which carry no delay: its
/// README suggests the handler sleep 25 ms so concurrent pings overlap.
pub const PLUGIN_WARMUP_DELAY_MS: u64 = 25;

/// The forewarm-specific part of a ping: which tick sent it, and its place in
/// the fan-out. Shims echo nothing of it; it is there for logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingMeta {
    /// Protocol version.
    pub v: u32,
    /// The controller tick that sent the ping.
    pub run: String,
    /// Index of this ping within the fan-out, from 0.
    pub seq: u32,
    /// Size of the fan-out.
    pub of: u32,
}

/// A ping as the controller sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    /// The marker; always `true`.
    pub warmer: bool,
    /// Hold time in **seconds** (the seed's unit), fractional.
    pub delay: f64,
    /// forewarm's own fields.
    pub forewarm: PingMeta,
}

impl Ping {
    /// A ping asking the target to hold its sandbox for `delay_ms`.
    pub fn new(run: impl Into<String>, seq: u32, of: u32, delay_ms: u64) -> Self {
        Ping {
            warmer: true,
            delay: delay_ms as f64 / 1000.0,
            forewarm: PingMeta {
                v: PROTOCOL_VERSION,
                run: run.into(),
                seq,
                of,
            },
        }
    }
}

/// What a shim reports about the sandbox that answered a ping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxReport {
    /// Protocol version.
    pub v: u32,
    /// Stable for the sandbox's life: the log stream name, else an id made at init.
    pub instance: String,
    /// True when this ping was the first event the sandbox served.
    pub cold: bool,
    /// How long the sandbox's init took, in milliseconds (0 when unknown).
    pub init_ms: u64,
    /// When the shim started handling this ping, epoch milliseconds.
    pub started_ms: u64,
    /// Real (non-ping) events this sandbox has served.
    pub served: u64,
    /// When the sandbox last served a real event, epoch milliseconds.
    pub last_real_ms: Option<u64>,
}

/// The reply body: `{"forewarm": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The sandbox's report.
    pub forewarm: SandboxReport,
}

/// Which tool's marker made an event a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Marker {
    /// forewarm's own ping (`warmer` plus a `forewarm` object).
    Forewarm,
    /// The seed's decorator form, `{"warmer": true, "delay": <seconds>}`.
    Seed,
    /// lambda-warmer's fan-out ping (`__WARMER_INVOCATION__` present).
    LambdaWarmer,
    /// serverless-plugin-warmup's `{"source": "serverless-plugin-warmup"}`.
    PluginWarmup,
}

/// A recognized ping, before the shim clamps its hold to the invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct PingRequest {
    /// Whose marker it carried.
    pub marker: Marker,
    /// The hold asked for, already limited to `0..=MAX_DELAY_MS`.
    pub delay_ms: u64,
    /// forewarm's metadata, when the ping came from forewarm.
    pub meta: Option<PingMeta>,
    /// Something odd about the ping that a shim should log (a bad delay).
    pub warning: Option<String>,
}

/// The classifier's verdict on one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A warming ping: never reaches the user's handler.
    Ping(PingRequest),
    /// Anything else: handed to the user's handler untouched.
    Real,
}

/// Only the top-level keys the classifier needs. Every other key is skipped
/// without building a value, so large real events cost one shallow scan.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    warmer: Option<Value>,
    #[serde(default)]
    source: Option<Value>,
    #[serde(default)]
    delay: Option<Value>,
    #[serde(default)]
    forewarm: Option<Value>,
    #[serde(default, rename = "__WARMER_INVOCATION__")]
    lambda_warmer_invocation: Option<Value>,
}

/// Classifies the raw JSON text of an event.
///
/// Never fails: text that is not a JSON object (an array, a string, a number,
/// invalid JSON) is a real event, left for the user's handler to judge.
pub fn classify(raw: &str) -> Event {
    // serde's derived struct visitor also accepts a JSON array (fields by
    // position), so `[true]` would look like `{"warmer": true}`: insist on an
    // object before probing.
    if !raw.trim_start().starts_with('{') {
        return Event::Real;
    }
    // Each top-level member is read as raw text first, and only the markers
    // are parsed: a number too large for an f64 anywhere (a 401-digit
    // `delay`) must not make the whole event unreadable, and a key given
    // twice counts as its last value, as every Lambda runtime's JSON parser
    // (and so the Python decorator) reads it.
    let Ok(fields) = serde_json::from_str::<HashMap<String, &RawValue>>(raw) else {
        return Event::Real;
    };
    let get = |k: &str| fields.get(k).map(|r| lenient(r.get()));
    classify_probe(Probe {
        warmer: get("warmer"),
        source: get("source"),
        delay: get("delay").filter(|d| !d.is_null()),
        forewarm: get("forewarm"),
        lambda_warmer_invocation: get("__WARMER_INVOCATION__"),
    })
}

/// A member's value; a number beyond f64's range becomes the largest finite
/// number of its sign (so a huge `delay` is clamped, not an error), and
/// anything else unreadable becomes `null`.
fn lenient(text: &str) -> Value {
    serde_json::from_str::<Value>(text).unwrap_or_else(|_| match text.trim().parse::<f64>() {
        Ok(x) if x.is_infinite() => Value::from(f64::MAX.copysign(x)),
        _ => Value::Null,
    })
}

/// Classifies an already-parsed event (the Python decorator's view, and handy
/// in tests). Same rules as [`classify`].
pub fn classify_value(event: &Value) -> Event {
    let Some(obj) = event.as_object() else {
        return Event::Real;
    };
    classify_probe(Probe {
        warmer: obj.get("warmer").cloned(),
        source: obj.get("source").cloned(),
        // serde reads `"delay": null` as absent; so does this path.
        delay: obj.get("delay").filter(|d| !d.is_null()).cloned(),
        forewarm: obj.get("forewarm").cloned(),
        lambda_warmer_invocation: obj.get("__WARMER_INVOCATION__").cloned(),
    })
}

fn classify_probe(p: Probe) -> Event {
    let marker = if p.warmer == Some(Value::Bool(true)) {
        if p.forewarm.as_ref().is_some_and(Value::is_object) {
            Marker::Forewarm
        } else if p.lambda_warmer_invocation.is_some() {
            Marker::LambdaWarmer
        } else {
            Marker::Seed
        }
    } else if p.source.as_ref().and_then(Value::as_str) == Some("serverless-plugin-warmup") {
        Marker::PluginWarmup
    } else {
        return Event::Real;
    };

    let default_ms = match marker {
        Marker::Forewarm | Marker::Seed => SEED_DEFAULT_DELAY_MS,
        Marker::LambdaWarmer => LAMBDA_WARMER_DELAY_MS,
        Marker::PluginWarmup => PLUGIN_WARMUP_DELAY_MS,
    };
    let (delay_ms, warning) = parse_delay(p.delay.as_ref(), default_ms);
    let meta = p
        .forewarm
        .and_then(|m| serde_json::from_value::<PingMeta>(m).ok());
    Event::Ping(PingRequest {
        marker,
        delay_ms,
        meta,
        warning,
    })
}

/// Reads `delay` (seconds, as the seed's decorator did) into milliseconds.
///
/// Missing (or `null`) means the marker's default. Negative or non-numeric values become 0
/// and huge ones [`MAX_DELAY_MS`], each with a warning for the log: a bad ping
/// must never crash a target function.
fn parse_delay(delay: Option<&Value>, default_ms: u64) -> (u64, Option<String>) {
    let Some(v) = delay else {
        return (default_ms, None);
    };
    match v.as_f64() {
        Some(s) if s < 0.0 => (0, Some(format!("negative delay {s} s treated as 0"))),
        Some(s) => {
            let ms = s * 1000.0;
            if ms > MAX_DELAY_MS as f64 {
                (
                    MAX_DELAY_MS,
                    Some(format!("delay {s} s clamped to {MAX_DELAY_MS} ms")),
                )
            } else {
                (ms.round() as u64, None)
            }
        }
        None => (0, Some(format!("non-numeric delay {v} treated as 0"))),
    }
}

/// The farthest a real invocation's deadline can be, ms: Lambda's longest
/// timeout, 15 minutes.
pub const MAX_INVOCATION_MS: i64 = 15 * 60_000;

/// The hold a shim actually applies: the request, limited by the time left
/// before the invocation's deadline (minus [`DEADLINE_SAFETY_MS`]), and by
/// [`MAX_DELAY_MS`].
///
/// `remaining_ms` is the deadline less the event's start (negative when
/// past), `None` when no deadline is known. A known deadline with no time
/// left means no hold: an invocation that outlasts its deadline is killed,
/// and its sandbox with it. A remaining time beyond [`MAX_INVOCATION_MS`]
/// either way is no Lambda deadline but an emulator's placeholder (`cargo
/// lambda watch` sends one), and counts as unknown; treating it as "no time
/// left" would make every local ping a no-op. One rule for both shims: the
/// shared vectors' `holds`.
pub fn effective_delay_ms(requested_ms: u64, remaining_ms: Option<i64>) -> u64 {
    let cap = match remaining_ms {
        Some(r) if r.abs() <= MAX_INVOCATION_MS => {
            (r.max(0) as u64).saturating_sub(DEADLINE_SAFETY_MS)
        }
        _ => MAX_DELAY_MS,
    };
    requested_ms.min(cap).min(MAX_DELAY_MS)
}

/// Parses a target's answer to a ping.
///
/// `Ok(Some(report))` for a forewarm shim's reply, `Ok(None)` for a `null` or
/// empty answer (the seed's decorator returns nothing: warmed, but without
/// identity), and an error for anything else, such as a function that ran its
/// real handler on the ping.
pub fn parse_reply(payload: &[u8]) -> Result<Option<SandboxReport>, ReplyError> {
    let text = std::str::from_utf8(payload).map_err(|_| ReplyError::NotUtf8)?;
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(None);
    }
    match serde_json::from_str::<Reply>(trimmed) {
        Ok(r) => Ok(Some(r.forewarm)),
        Err(e) => Err(ReplyError::Unrecognized {
            detail: e.to_string(),
            excerpt: trimmed.chars().take(120).collect(),
        }),
    }
}

/// Why a ping's reply could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplyError {
    /// The payload was not text.
    #[error("reply is not UTF-8 text")]
    NotUtf8,
    /// The payload was neither `null` nor a forewarm reply.
    #[error("reply is not a forewarm reply ({detail}): {excerpt}")]
    Unrecognized {
        /// The parser's complaint.
        detail: String,
        /// The start of the payload, for the log.
        excerpt: String,
    },
}

/// One CloudWatch Embedded Metric Format line reporting a real cold start.
///
/// Written to stdout by the shims, never sent through an API call: CloudWatch
/// Logs turns it into `Forewarm/ColdStart` with dimension `FunctionName`.
pub fn cold_start_emf(function_name: &str, timestamp_ms: u64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Forewarm",
                "Dimensions": [["FunctionName"]],
                "Metrics": [{"Name": "ColdStart", "Unit": "Count"}]
            }]
        },
        "FunctionName": function_name,
        "ColdStart": 1
    })
    .to_string()
}

/// The `custom` key of an Invoke's client context that `forewarm probe` sets
/// on its real events. The event reaches the handler untouched; a shim that
/// sees the key also prints [`probe_line`] to the function's log, so the
/// Invoke's log tail (`LogType=Tail`) names the sandbox that served it.
pub const PROBE_CONTEXT_KEY: &str = "forewarm-probe";

/// What starts the log line of [`probe_line`].
pub const PROBE_LINE_PREFIX: &str = "forewarm-probe sandbox=";

/// The log line a shim prints for a probed event: `forewarm-probe sandbox=<id>`.
pub fn probe_line(instance: &str) -> String {
    format!("{PROBE_LINE_PREFIX}{instance}")
}

/// The client context `forewarm probe` sends (JSON; the Invoke API wants it
/// base64-encoded).
pub fn probe_client_context() -> String {
    serde_json::json!({"custom": {PROBE_CONTEXT_KEY: "1"}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ping(v: Value) -> PingRequest {
        match classify(&v.to_string()) {
            Event::Ping(p) => p,
            Event::Real => panic!("expected a ping: {v}"),
        }
    }

    fn is_real(v: &Value) -> bool {
        classify(&v.to_string()) == Event::Real && classify_value(v) == Event::Real
    }

    #[test]
    fn forewarm_ping_is_recognized_with_its_delay_in_seconds() {
        let p = ping(serde_json::to_value(Ping::new("tick-1", 3, 8, 350)).unwrap());
        assert_eq!(p.marker, Marker::Forewarm);
        assert_eq!(p.delay_ms, 350);
        assert_eq!(p.meta.unwrap().of, 8);
        assert_eq!(p.warning, None);
    }

    #[test]
    fn seed_and_peer_markers_are_pings() {
        assert_eq!(ping(json!({"warmer": true, "delay": 0.5})).delay_ms, 500);
        let seed = ping(json!({"warmer": true, "concurrency": 3}));
        assert_eq!((seed.marker, seed.delay_ms), (Marker::Seed, 300));
        let lw =
            ping(json!({"warmer": true, "__WARMER_INVOCATION__": 2, "__WARMER_CONCURRENCY__": 4}));
        assert_eq!((lw.marker, lw.delay_ms), (Marker::LambdaWarmer, 75));
        let spw = ping(json!({"source": "serverless-plugin-warmup"}));
        assert_eq!((spw.marker, spw.delay_ms), (Marker::PluginWarmup, 25));
    }

    #[test]
    fn markers_below_the_top_level_are_real_events() {
        let apigw = json!({"httpMethod": "POST", "body": "{\"warmer\": true}"});
        let nested = json!({"detail": {"warmer": true}, "source": "aws.events"});
        let sqs = json!({"Records": [{"body": "{\"warmer\":true}", "eventSource": "aws:sqs"}]});
        assert!(is_real(&apigw) && is_real(&nested) && is_real(&sqs));
    }

    #[test]
    fn near_misses_are_real_events() {
        for v in [
            json!({"warmer": "true"}),
            json!({"warmer": false}),
            json!({"warmer": 1}),
            json!({"source": "serverless-plugin-warmup-x"}),
            json!([true]),
            json!("warmer"),
            json!(null),
        ] {
            assert!(is_real(&v), "{v}");
        }
        assert_eq!(classify("not json {"), Event::Real);
        assert_eq!(classify("{\"warmer\": true"), Event::Real);
    }

    #[test]
    fn bad_delays_are_clamped_or_zeroed_with_a_warning() {
        let neg = ping(json!({"warmer": true, "delay": -3}));
        assert_eq!(neg.delay_ms, 0);
        assert!(neg.warning.unwrap().contains("negative"));
        let huge = ping(json!({"warmer": true, "delay": 1e300}));
        assert_eq!(huge.delay_ms, MAX_DELAY_MS);
        assert!(huge.warning.is_some());
        for bad in [json!("abc"), json!("0.5"), json!({"s": 1}), json!([1])] {
            let p = ping(json!({"warmer": true, "delay": bad}));
            assert_eq!(p.delay_ms, 0);
            assert!(p.warning.unwrap().contains("non-numeric"));
        }
    }

    #[test]
    fn holds_agree_with_the_shared_vectors() {
        // The same file drives the Python decorator's tests; a context that
        // raises is Python's alone.
        let doc: Value =
            serde_json::from_str(include_str!("../tests/fixtures/protocol_vectors.json")).unwrap();
        for v in doc["holds"].as_array().unwrap() {
            if v["remaining_ms"] == "raises" {
                continue;
            }
            let got = effective_delay_ms(
                v["requested_ms"].as_u64().unwrap(),
                v["remaining_ms"].as_i64(),
            );
            assert_eq!(got, v["hold_ms"].as_u64().unwrap(), "{}", v["name"]);
        }
    }

    #[test]
    fn replies_parse_and_null_means_warmed_without_identity() {
        let r = Reply {
            forewarm: SandboxReport {
                v: 1,
                instance: "2026/11/26/[1]abc".into(),
                cold: true,
                init_ms: 812,
                started_ms: 1_764_150_000_123,
                served: 42,
                last_real_ms: Some(1_764_149_990_000),
            },
        };
        let bytes = serde_json::to_vec(&r).unwrap();
        assert_eq!(parse_reply(&bytes).unwrap(), Some(r.forewarm));
        assert_eq!(parse_reply(b"null").unwrap(), None);
        assert_eq!(parse_reply(b"").unwrap(), None);
        assert!(matches!(
            parse_reply(b"{\"statusCode\":200}"),
            Err(ReplyError::Unrecognized { .. })
        ));
        assert_eq!(parse_reply(&[0xff, 0xfe]), Err(ReplyError::NotUtf8));
    }

    #[test]
    fn emf_line_names_namespace_dimension_and_metric() {
        let v: Value = serde_json::from_str(&cold_start_emf("orders", 1000)).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Forewarm");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "FunctionName"
        );
        assert_eq!(v["FunctionName"], "orders");
        assert_eq!(v["ColdStart"], 1);
    }

    #[test]
    fn classifier_agrees_with_the_shared_vectors() {
        // The same file drives the Python decorator's tests.
        let doc: Value =
            serde_json::from_str(include_str!("../tests/fixtures/protocol_vectors.json")).unwrap();
        for v in doc["vectors"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            // Vectors no JSON value can hold (duplicate keys, numbers beyond
            // f64) come as raw text, classified from the text alone.
            let got = match v["raw"].as_str() {
                Some(raw) => classify(raw),
                None => {
                    let got = classify(&v["event"].to_string());
                    assert_eq!(classify_value(&v["event"]), got, "{name}");
                    got
                }
            };
            match (v["kind"].as_str().unwrap(), got) {
                ("real", Event::Real) => {}
                ("ping", Event::Ping(p)) => {
                    let marker = serde_json::to_value(p.marker).unwrap();
                    assert_eq!(marker, v["marker"], "{name}");
                    assert_eq!(p.delay_ms, v["delay_ms"].as_u64().unwrap(), "{name}");
                    assert_eq!(p.warning.is_some(), v["warn"].as_bool().unwrap(), "{name}");
                }
                (kind, got) => panic!("{name}: expected {kind}, got {got:?}"),
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z_]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z_]{1,10}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn has_top_level_marker(v: &Value) -> bool {
        v.get("warmer") == Some(&Value::Bool(true))
            || v.get("source").and_then(Value::as_str) == Some("serverless-plugin-warmup")
    }

    proptest! {
        #[test]
        fn json_without_a_top_level_marker_is_never_a_ping(v in arb_json()) {
            prop_assume!(!has_top_level_marker(&v));
            prop_assert!(is_real(&v));
            // Wrapping any event, even a ping, one level down keeps it real.
            let wrapped = json!({"body": v.clone(), "detail": v});
            prop_assert!(is_real(&wrapped));
        }

        #[test]
        fn any_event_with_the_marker_is_a_ping(v in arb_json()) {
            let mut obj = v.as_object().cloned().unwrap_or_default();
            obj.insert("warmer".into(), Value::Bool(true));
            let v = Value::Object(obj);
            prop_assert!(matches!(classify(&v.to_string()), Event::Ping(_)));
            prop_assert!(matches!(classify_value(&v), Event::Ping(_)));
        }

        #[test]
        fn ping_and_reply_round_trip(seq in 0u32..10_000, of in 1u32..10_000, ms in 0u64..=MAX_DELAY_MS,
                                     cold: bool, served: u64, last in proptest::option::of(any::<u64>())) {
            let p = Ping::new("run", seq, of, ms);
            let back: Ping = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            prop_assert_eq!(&back, &p);
            let got = ping(serde_json::to_value(&p).unwrap());
            prop_assert_eq!(got.delay_ms, ms);
            prop_assert_eq!(got.meta, Some(p.forewarm));
            let r = Reply { forewarm: SandboxReport { v: 1, instance: format!("i-{seq}"), cold,
                init_ms: ms, started_ms: ms * 7, served, last_real_ms: last } };
            prop_assert_eq!(parse_reply(&serde_json::to_vec(&r).unwrap()).unwrap(), Some(r.forewarm));
        }
    }
}
