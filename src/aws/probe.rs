//! `forewarm probe`'s requests: N real requests started together, to a URL
//! over HTTP(S) or to a function through a synchronous Invoke.
//!
//! Every request of a round is spawned first and held at one gate; the gate
//! opens once, so they start within the runtime's scheduling of them (the
//! report's start spread says how close that was). URLs go over the pings'
//! `Transport`, by default with a connection of their own each, as the
//! field report's script did. Invokes go through the SDK with
//! `LogType=Tail`, so the platform's `REPORT` line says which paid an init,
//! and with a client context asking the shims to name their sandbox in the
//! log; retries are off, since a retried request is no longer concurrent.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::LogType;
use base64::Engine;
use bytes::Bytes;
use tokio::time::Instant;

use super::http::{Transport, error_chain};
use super::kind_of;
use crate::ports::{ErrorKind, FunctionRef};
use crate::probe::{Failure, Sample, read_tail};
use crate::protocol::probe_client_context;

/// An HTTP request to repeat.
#[derive(Debug, Clone)]
pub(crate) struct HttpRequest {
    /// Where.
    pub uri: http::Uri,
    /// How (POST by default in the CLI).
    pub method: http::Method,
    /// Extra headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// One per probe, behind an `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Target {
    Url {
        request: HttpRequest,
        transport: Transport,
    },
    Function {
        client: aws_sdk_lambda::Client,
        function: FunctionRef,
        payload: Bytes,
        client_context: String,
    },
}

/// Sends a probe's rounds.
#[derive(Debug, Clone)]
pub(crate) struct Prober {
    /// Shared by every request task of a round.
    target: Arc<Target>,
    timeout: Duration,
}

impl Prober {
    /// Requests to a URL; `reuse` lets answered connections be pooled.
    pub(crate) fn url(request: HttpRequest, reuse: bool, timeout: Duration) -> Prober {
        Prober {
            target: Arc::new(Target::Url {
                request,
                transport: Transport::for_probe(reuse),
            }),
            timeout,
        }
    }

    /// Invokes of `function` with `payload`, through the AWS configuration
    /// the environment gives, retries off and `timeout` per call.
    pub(crate) async fn function(
        function: FunctionRef,
        payload: Bytes,
        timeout: Duration,
    ) -> Prober {
        use aws_sdk_lambda::config::retry::RetryConfig;
        use aws_sdk_lambda::config::timeout::TimeoutConfig;
        let t = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let sdk = super::load_config(super::CallTimeouts {
            call_ms: t,
            attempt_ms: t,
        })
        .await;
        let conf = aws_sdk_lambda::config::Builder::from(&sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .operation_attempt_timeout(timeout)
                    .build(),
            )
            .build();
        Prober {
            target: Arc::new(Target::Function {
                client: aws_sdk_lambda::Client::from_conf(conf),
                function,
                payload,
                client_context: base64::engine::general_purpose::STANDARD
                    .encode(probe_client_context()),
            }),
            timeout,
        }
    }

    /// Sends `n` requests together; `done` is called as each one ends (for
    /// a progress bar). The samples are in the order they were started.
    pub(crate) async fn round(&self, n: u32, done: Arc<dyn Fn() + Send + Sync>) -> Vec<Sample> {
        let (gate, opened) = tokio::sync::watch::channel(None::<Instant>);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let me = self.clone();
            let mut opened = opened.clone();
            let done = done.clone();
            set.spawn(async move {
                let t0 = match opened.wait_for(Option::is_some).await {
                    Ok(t) => t.unwrap_or_else(Instant::now),
                    Err(_) => Instant::now(),
                };
                let started = Instant::now();
                let mut s = me.one().await;
                s.started_ms = started.duration_since(t0).as_millis() as u64;
                done();
                (i, s)
            });
        }
        // Every task is spawned; let the runtime park them at the gate.
        tokio::task::yield_now().await;
        let _ = gate.send(Some(Instant::now()));
        let mut out: Vec<(u32, Sample)> = Vec::with_capacity(n as usize);
        while let Some(r) = set.join_next().await {
            match r {
                Ok(x) => out.push(x),
                Err(e) => out.push((
                    u32::MAX,
                    failed(Failure::Closed, 0, format!("request task failed: {e}")),
                )),
            }
        }
        out.sort_by_key(|(i, s)| (s.started_ms, *i));
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// One request alone: the warm reference after a round.
    pub(crate) async fn reference(&self) -> Option<u64> {
        let s = self.one().await;
        s.error.is_none().then_some(s.latency_ms)
    }

    async fn one(&self) -> Sample {
        match &*self.target {
            Target::Url { request, transport } => self.one_url(request, transport).await,
            Target::Function {
                client,
                function,
                payload,
                client_context,
            } => {
                self.one_invoke(client, function, payload, client_context)
                    .await
            }
        }
    }

    /// One HTTP request: its status, and how long it took.
    async fn one_url(&self, request: &HttpRequest, transport: &Transport) -> Sample {
        let start = Instant::now();
        let mut req = http::Request::builder()
            .method(request.method.clone())
            .uri(request.uri.clone());
        if let Some(h) = req.headers_mut() {
            h.extend(request.headers.clone());
        }
        let req = match req.body(request.body.clone()) {
            Ok(r) => r,
            Err(e) => return failed(Failure::Connect, 0, e.to_string()),
        };
        match tokio::time::timeout(self.timeout, transport.send_discarding(req)).await {
            Err(_) => failed(Failure::Timeout, since(start), "no answer in time".into()),
            Ok(Err(e)) => failed(failure_of(&*e), since(start), error_chain(&*e)),
            Ok(Ok(status)) => {
                let error = Failure::of_status(status);
                Sample {
                    started_ms: 0,
                    latency_ms: since(start),
                    status: Some(status),
                    cold: None,
                    sandbox: None,
                    error,
                    detail: error.map(|_| format!("HTTP {status}")),
                }
            }
        }
    }

    /// One Invoke, with the log tail that tells an init from a warm start.
    async fn one_invoke(
        &self,
        client: &aws_sdk_lambda::Client,
        function: &FunctionRef,
        payload: &Bytes,
        client_context: &str,
    ) -> Sample {
        let start = Instant::now();
        let call = client
            .invoke()
            .function_name(function.name.as_ref())
            .set_qualifier(function.qualifier.as_deref().map(str::to_string))
            .log_type(LogType::Tail)
            .client_context(client_context)
            .payload(Blob::new(payload.to_vec()))
            .send();
        // The SDK has the same limit; this one also covers its
        // credential and endpoint resolution.
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return failed(Failure::Timeout, since(start), "no answer in time".into());
            }
            Ok(a) => a,
        };
        let latency_ms = since(start);
        match answer {
            Ok(out) => {
                let tail = out
                    .log_result()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .map(|b| read_tail(&String::from_utf8_lossy(&b)))
                    .unwrap_or_default();
                let function_error = out.function_error().map(str::to_string);
                Sample {
                    started_ms: 0,
                    latency_ms,
                    status: Some(out.status_code().clamp(0, u16::MAX as i32) as u16),
                    cold: tail.cold,
                    sandbox: tail.sandbox,
                    error: function_error.as_ref().map(|_| Failure::FunctionError),
                    detail: function_error.map(|kind| {
                        let body = out.payload().map_or(&[][..], |p| p.as_ref());
                        let body = String::from_utf8_lossy(&body[..body.len().min(200)]);
                        format!("{kind}: {body}")
                    }),
                }
            }
            Err(e) => {
                let (kind, status) = invoke_failure(&e);
                Sample {
                    status,
                    ..failed(
                        kind,
                        latency_ms,
                        format!("{}", aws_sdk_lambda::error::DisplayErrorContext(&e)),
                    )
                }
            }
        }
    }
}

/// Milliseconds since `start`.
fn since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

fn failed(error: Failure, latency_ms: u64, detail: String) -> Sample {
    Sample {
        started_ms: 0,
        latency_ms,
        status: None,
        cold: None,
        sandbox: None,
        error: Some(error),
        detail: Some(detail),
    }
}

/// The kind of a failed Invoke, and its HTTP status when Lambda answered.
fn invoke_failure(e: &SdkError<InvokeError, HttpResponse>) -> (Failure, Option<u16>) {
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let kind = match kind_of(se.err().code(), status) {
                ErrorKind::Throttled => Failure::Throttled,
                ErrorKind::Conflict
                | ErrorKind::NotFound
                | ErrorKind::Invalid
                | ErrorKind::Unavailable => Failure::Service,
            };
            (kind, Some(status))
        }
        SdkError::TimeoutError(_) => (Failure::Timeout, None),
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                (Failure::Timeout, None)
            } else {
                (failure_of(e), None)
            }
        }
        SdkError::ResponseError(_) => (Failure::Closed, None),
        SdkError::ConstructionFailure(_) => (Failure::Service, None),
        _ => (Failure::Service, None),
    }
}

/// The kind of a failed request, from its chain of causes.
fn failure_of(e: &(dyn std::error::Error + 'static)) -> Failure {
    let (mut fd, mut tls, mut timeout, mut connect) = (false, false, false, false);
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            // EMFILE (this process) and ENFILE (the system) on Linux and
            // macOS alike.
            fd |= matches!(io.raw_os_error(), Some(23 | 24));
            timeout |= io.kind() == std::io::ErrorKind::TimedOut;
            tls |= io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        }
        tls |= c.downcast_ref::<rustls::Error>().is_some();
        if let Some(h) = c.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect |= h.is_connect();
        }
        cause = c.source();
    }
    // Some causes only survive as text.
    let text = error_chain(e).to_ascii_lowercase();
    fd |= text.contains("too many open files");
    // rustls' own wording, for when its error arrives as text only.
    tls |= [
        "certificate",
        "tls handshake",
        "corrupt message",
        "fatal alert",
        "peer is incompatible",
        "peer misbehaved",
    ]
    .iter()
    .any(|w| text.contains(w));
    match (fd, tls, timeout, connect) {
        (true, _, _, _) => Failure::FdLimit,
        (false, true, _, _) => Failure::Tls,
        (false, false, true, _) => Failure::Timeout,
        (false, false, false, true) => Failure::Connect,
        (false, false, false, false) => Failure::Closed,
    }
}
