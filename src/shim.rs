//! The handler shim for target functions written with `lambda_runtime`.
//!
//! Wrap the handler once, around `service_fn`:
//!
//! ```no_run
//! use lambda_runtime::{service_fn, Error, LambdaEvent};
//! use serde_json::{json, Value};
//!
//! async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
//!     Ok(json!({"echo": event.payload}))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     lambda_runtime::run(forewarm::shim::warm(service_fn(handler))).await
//! }
//! ```
//!
//! The wrapper sits at the `LambdaEvent` level because that is the last place
//! that can answer an invocation without calling the user's code:
//! `lambda_runtime`'s own layers only see raw bytes on the way out. It takes the
//! event as raw JSON text, asks [`crate::protocol::classify`] whether the
//! top-level object carries a ping marker, and then either
//!
//! * holds the sandbox for the requested delay (clamped to
//!   [`MAX_DELAY_MS`](crate::protocol::MAX_DELAY_MS) and to the invocation's
//!   remaining time) and answers with the sandbox's identity, never calling the
//!   handler; or
//! * deserializes the user's event type from the *original bytes* and calls the
//!   handler, so a real event reaches it exactly as it would without the shim.
//!
//! HTTP functions wrap `lambda_http::Adapter::from(service)` the same way, since
//! the adapter is itself a `Service<LambdaEvent<LambdaRequest>>`. Streaming
//! responses are not supported: the reply to a ping is always buffered JSON.
//!
//! A real event sent by `forewarm probe` carries a client-context key
//! ([`PROBE_CONTEXT_KEY`](crate::protocol::PROBE_CONTEXT_KEY)); for it the
//! shim prints one line naming the sandbox, which the probe reads back from
//! the Invoke's log tail. The event itself reaches the handler unchanged.
//!
//! A real event that is the first event its sandbox serves paid the init, so the
//! shim prints one Embedded Metric Format line for `Forewarm/ColdStart`. A
//! sandbox first touched by a ping never reports a cold start: warming spared
//! its first real request the init.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, Service};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::protocol::{self, Event, Reply, SandboxReport};

/// Wraps a handler so that pings are answered by the shim.
pub fn warm<S, E>(inner: S) -> Warm<S, E>
where
    S: Service<LambdaEvent<E>>,
{
    Warm {
        inner,
        sandbox: Arc::new(Sandbox::from_env()),
        event: PhantomData,
    }
}

/// A handler wrapped by [`warm`].
pub struct Warm<S, E> {
    inner: S,
    sandbox: Arc<Sandbox>,
    /// The handler's event type, which the shim deserializes real events into.
    event: PhantomData<fn(E)>,
}

impl<S, E> Warm<S, E> {
    /// The id this sandbox reports in ping replies.
    pub fn instance(&self) -> &str {
        &self.sandbox.instance
    }
}

/// The answer of a wrapped handler: the shim's reply to a ping, or the user's
/// response, serialized as the user's type alone.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Response<R> {
    /// The reply to a ping.
    Ping(Reply),
    /// The handler's own response.
    Event(R),
}

/// What one sandbox knows about itself. One per process: Lambda runs one
/// sandbox per process, and `lambda_runtime` serves one event at a time.
struct Sandbox {
    instance: String,
    function_name: String,
    init_ms: u64,
    touched: AtomicBool,
    served: AtomicU64,
    /// 0 means "never": epoch 0 is not a time a real event arrives.
    last_real_ms: AtomicU64,
}

impl Sandbox {
    fn from_env() -> Self {
        let now = now_ms();
        Sandbox {
            instance: std::env::var("AWS_LAMBDA_LOG_STREAM_NAME")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(made_up_instance_id),
            function_name: std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
            init_ms: process_start_ms().map_or(0, |start| now.saturating_sub(start)),
            touched: AtomicBool::new(false),
            served: AtomicU64::new(0),
            last_real_ms: AtomicU64::new(0),
        }
    }

    /// The line naming this sandbox in the log, when `forewarm probe` asked
    /// for it (a client-context key, never the event): the Invoke's log tail
    /// then says which sandbox served the probe's request.
    fn probe_line(&self, context: &lambda_runtime::Context) -> Option<String> {
        context
            .client_context
            .as_ref()
            .is_some_and(|c| c.custom.contains_key(protocol::PROBE_CONTEXT_KEY))
            .then(|| protocol::probe_line(&self.instance))
    }

    fn report(&self, cold: bool, started_ms: u64) -> Reply {
        let last = self.last_real_ms.load(Ordering::Relaxed);
        Reply {
            forewarm: SandboxReport {
                v: protocol::PROTOCOL_VERSION,
                instance: self.instance.clone(),
                cold,
                init_ms: self.init_ms,
                started_ms,
                served: self.served.load(Ordering::Relaxed),
                last_real_ms: (last != 0).then_some(last),
            },
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, E, R> Service<LambdaEvent<Box<RawValue>>> for Warm<S, E>
where
    S: Service<LambdaEvent<E>, Response = R>,
    S::Error: Into<Diagnostic>,
    S::Future: Send + 'static,
    E: DeserializeOwned,
    R: Serialize + Send + 'static,
{
    type Response = Response<R>;
    type Error = Diagnostic;
    type Future = BoxFuture<Result<Response<R>, Diagnostic>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, event: LambdaEvent<Box<RawValue>>) -> Self::Future {
        let started_ms = now_ms();
        let first = !self.sandbox.touched.swap(true, Ordering::Relaxed);
        let LambdaEvent { payload, context } = event;
        match protocol::classify(payload.get()) {
            Event::Ping(ping) => {
                if let Some(warning) = &ping.warning {
                    tracing::warn!(warning = %warning, marker = ?ping.marker, "odd ping");
                }
                let remaining = (context.deadline as i64).saturating_sub(started_ms as i64);
                let hold = protocol::effective_delay_ms(ping.delay_ms, Some(remaining));
                let reply = self.sandbox.report(first, started_ms);
                tracing::info!(
                    instance = %self.sandbox.instance,
                    cold = first,
                    requested_ms = ping.delay_ms,
                    hold_ms = hold,
                    "ping"
                );
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    Ok(Response::Ping(reply))
                })
            }
            Event::Real => {
                if let Some(line) = self.sandbox.probe_line(&context) {
                    println!("{line}");
                }
                if first {
                    println!(
                        "{}",
                        protocol::cold_start_emf(&self.sandbox.function_name, started_ms)
                    );
                }
                self.sandbox.served.fetch_add(1, Ordering::Relaxed);
                self.sandbox
                    .last_real_ms
                    .store(started_ms, Ordering::Relaxed);
                match serde_json::from_str::<E>(payload.get()) {
                    Ok(e) => {
                        let fut = self.inner.call(LambdaEvent::new(e, context));
                        Box::pin(async move { fut.await.map(Response::Event).map_err(Into::into) })
                    }
                    Err(err) => {
                        let diagnostic = Diagnostic {
                            error_type: "forewarm::InvalidEvent".into(),
                            error_message: format!(
                                "event does not match the handler's type: {err}"
                            ),
                        };
                        Box::pin(async move { Err(diagnostic) })
                    }
                }
            }
        }
    }
}

fn now_ms() -> u64 {
    crate::ports::Clock::now_ms(&crate::ports::SystemClock)
}

/// An id for sandboxes with no log stream name (local emulators, tests):
/// random per process, from the standard library's per-process hash keys.
fn made_up_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("local-{:016x}", h.finish())
}

/// When this process started, epoch milliseconds, from Linux's `/proc`
/// (Lambda's only platform). `starttime` is in clock ticks since boot; the
/// tick (USER_HZ) is 100 Hz in the kernel's user ABI on x86-64 and arm64.
fn process_start_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces and parentheses: fields restart
    // after the last ')'. starttime is field 22, the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime * 1000 + ticks * 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::{Context as LambdaContext, service_fn};
    use serde_json::{Value, json};
    use std::sync::atomic::AtomicUsize;

    fn event(v: Value, deadline_ms: u64) -> LambdaEvent<Box<RawValue>> {
        let mut ctx = LambdaContext::default();
        ctx.deadline = deadline_ms;
        LambdaEvent::new(RawValue::from_string(v.to_string()).unwrap(), ctx)
    }

    /// A shim around a handler that counts its calls and echoes its event.
    #[allow(clippy::type_complexity)] // a closure's service type has no name
    fn counting() -> (
        Arc<AtomicUsize>,
        Warm<
            impl Service<
                LambdaEvent<Value>,
                Response = Value,
                Error = lambda_runtime::Error,
                Future = impl Future<Output = Result<Value, lambda_runtime::Error>> + Send + 'static,
            >,
            Value,
        >,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let svc = service_fn(move |e: LambdaEvent<Value>| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok::<_, lambda_runtime::Error>(json!({"handled": e.payload}))
            }
        });
        (calls, warm(svc))
    }

    fn ping_reply(r: Response<Value>) -> SandboxReport {
        match r {
            Response::Ping(reply) => reply.forewarm,
            Response::Event(v) => panic!("expected a ping reply, got {v}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_never_reaches_the_handler_and_holds_for_its_delay() {
        let (calls, mut shim) = counting();
        let t0 = tokio::time::Instant::now();
        let r = shim
            .call(event(json!({"warmer": true, "delay": 0.4}), 0))
            .await
            .unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(400));
        let report = ping_reply(r);
        assert!(report.cold, "first event of the sandbox is cold");
        assert_eq!(report.served, 0);
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        let again = ping_reply(
            shim.call(event(json!({"warmer": true, "delay": 0}), 0))
                .await
                .unwrap(),
        );
        assert!(!again.cold);
        assert_eq!(again.instance, report.instance);
    }

    #[tokio::test(start_paused = true)]
    async fn the_hold_is_clamped_to_the_remaining_time() {
        let (_, mut shim) = counting();
        let deadline = now_ms() + 1_000;
        let t0 = tokio::time::Instant::now();
        shim.call(event(json!({"warmer": true, "delay": 9}), deadline))
            .await
            .unwrap();
        assert!(t0.elapsed() <= Duration::from_millis(1_000 - protocol::DEADLINE_SAFETY_MS));
        let t1 = tokio::time::Instant::now();
        shim.call(event(json!({"warmer": true, "delay": 1e9}), 0))
            .await
            .unwrap();
        assert_eq!(t1.elapsed(), Duration::from_millis(protocol::MAX_DELAY_MS));
    }

    #[tokio::test]
    async fn real_events_pass_through_unchanged_and_are_counted() {
        let (calls, mut shim) = counting();
        let body = json!({"body": "{\"warmer\": true}", "n": [1, 2.5, "x"], "z": null});
        match shim.call(event(body.clone(), 0)).await.unwrap() {
            Response::Event(v) => assert_eq!(v, json!({"handled": body})),
            Response::Ping(_) => panic!("a nested marker is not a ping"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let report = ping_reply(
            shim.call(event(json!({"warmer": true, "delay": 0}), 0))
                .await
                .unwrap(),
        );
        assert!(!report.cold, "the sandbox already served a real event");
        assert_eq!(report.served, 1);
        assert!(report.last_real_ms.is_some());
    }

    #[tokio::test]
    async fn a_probed_event_reaches_the_handler_and_the_log_names_the_sandbox() {
        let (calls, mut shim) = counting();
        let mut e = event(json!({"order": 7}), 0);
        e.context.client_context = Some(
            serde_json::from_str(&protocol::probe_client_context()).expect("a client context"),
        );
        assert_eq!(
            shim.sandbox.probe_line(&e.context),
            Some(format!("forewarm-probe sandbox={}", shim.instance()))
        );
        match shim.call(e).await.unwrap() {
            Response::Event(v) => assert_eq!(v, json!({"handled": {"order": 7}})),
            Response::Ping(_) => panic!("a probe's event is a real event"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let plain = event(json!({"order": 8}), 0);
        assert_eq!(
            shim.sandbox.probe_line(&plain.context),
            None,
            "only when asked"
        );
    }

    #[tokio::test]
    async fn non_object_events_reach_the_handler() {
        let (calls, mut shim) = counting();
        for v in [json!([true]), json!("warmer"), json!(7), json!(null)] {
            assert!(matches!(
                shim.call(event(v, 0)).await.unwrap(),
                Response::Event(_)
            ));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_event_of_the_wrong_shape_is_a_clear_error() {
        #[derive(serde::Deserialize)]
        struct Order {
            #[allow(dead_code)]
            id: u64,
        }
        let mut shim = warm(service_fn(|_: LambdaEvent<Order>| async {
            Ok::<_, lambda_runtime::Error>(json!("ok"))
        }));
        let err = shim
            .call(event(json!({"id": "not a number"}), 0))
            .await
            .unwrap_err();
        assert_eq!(err.error_type, "forewarm::InvalidEvent");
        assert!(err.error_message.contains("id"), "{}", err.error_message);
    }

    #[test]
    fn a_sandbox_has_an_instance_id_even_without_a_log_stream() {
        assert!(made_up_instance_id().starts_with("local-"));
        assert_ne!(made_up_instance_id(), made_up_instance_id());
        let start = process_start_ms().expect("linux /proc");
        assert!(start <= now_ms());
    }
}
