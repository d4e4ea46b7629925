//! Pings through the Lambda Invoke API, and the limits the caps need.
//!
//! A warm sends all N pings of a function at once as synchronous
//! (`RequestResponse`) invokes of the exact qualifier: synchronous because
//! only then does each ping's reply come back (sandbox id, cold, start time)
//! for the delay tuner and interval learner, and because asynchronous
//! invokes go through a queue that spreads them out and breaks the overlap.
//! Every function's pings are in flight together, bounded across functions
//! by a semaphore; each call has a timeout of its hold, a cold sandbox's
//! INIT (Lambda's 10 s limit by default) and a margin.
//!
//! Each ping is prepared by the SDK (endpoint rules and
//! `AWS_ENDPOINT_URL_LAMBDA`, credentials, the SigV4 signature: nothing of
//! that is redone here), which stops just before sending; the signed request
//! then goes out on the lean `Transport`. A ping in flight costs about
//! 26 KiB (most of it hyper's per-connection buffers) instead of the 42 KiB
//! of a whole SDK call: a 1,000-ping warm peaks at 39 MB over plain HTTP and
//! 44 MB over TLS, not 53 and 66 MB, in a 128 MB controller. Throttles
//! (429) and 5xx are retried with jittered exponential back-off, never past
//! the ping's deadline, as many times as the client's retry configuration
//! allows, as the SDK's standard retry strategy would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_lambda::primitives::Blob;
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::http::{Answer, SendError, Transport};
use super::{kind_of, port_error};
use crate::decision::{Limits, PingFailure, PingOutcome, WarmReport};
use crate::ports::{ErrorKind, FunctionRef, PortError, WarmPlan, Warmer};
use crate::protocol::{Ping, parse_reply};

/// First back-off, ms; doubled per attempt, fully jittered. Short: a ping
/// retried after its siblings' holds ended no longer overlaps them, so long
/// waits buy nothing.
const BACKOFF_BASE_MS: u64 = 100;

/// Warmer settings (the controller reads them from its environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmerConfig {
    /// Most invokes in flight at once, across all functions. Each costs a
    /// connection and a little memory in the controller.
    pub max_in_flight: usize,
    /// Time allowed beyond a ping's hold and init for the network, ms.
    pub timeout_margin_ms: u64,
    /// Time allowed for a cold ping's INIT before its hold starts, ms. By
    /// default Lambda's own limit on an on-demand function's Init phase
    /// (10 s): a ping that creates a sandbox is answered only after the init,
    /// and the 7-15 s VPC cold starts this tool exists for would otherwise
    /// all be reported as timeouts and teach the learners failures.
    pub init_allowance_ms: u64,
}

pub use crate::decision::pings::INIT_LIMIT_MS;

impl Default for WarmerConfig {
    fn default() -> Self {
        WarmerConfig {
            max_in_flight: 1_000,
            timeout_margin_ms: crate::decision::pings::TIMEOUT_MARGIN_MS,
            init_allowance_ms: INIT_LIMIT_MS,
        }
    }
}

impl WarmerConfig {
    /// How long a ping holding `hold_ms` may take before it counts as timed
    /// out: its hold, a cold sandbox's INIT and the network's margin.
    pub fn ping_timeout(&self, hold_ms: u64) -> Duration {
        self.ping_timeout_for(hold_ms, 0)
    }

    /// The same for a function whose inits were learned to need
    /// `learned_init_ms` ([`WarmPlan::init_allowance_ms`]): the larger of
    /// that and the configured allowance.
    pub fn ping_timeout_for(&self, hold_ms: u64, learned_init_ms: u64) -> Duration {
        Duration::from_millis(crate::decision::pings::ping_timeout_ms(
            hold_ms,
            self.init_allowance_ms.max(learned_init_ms),
            self.timeout_margin_ms,
        ))
    }
}

/// The Lambda warmer.
#[derive(Debug, Clone)]
pub struct LambdaWarmer {
    client: Client,
    /// Built on the first ping (it reads the system's root certificates):
    /// commands that never ping (`status`, `policy`) skip that.
    transport: Arc<OnceLock<Transport>>,
    /// Attempts per ping: the client's retry configuration's (3 by default,
    /// `AWS_MAX_ATTEMPTS` and profiles honoured; 1 when retries are off).
    attempts: u32,
    cfg: WarmerConfig,
    in_flight: Arc<Semaphore>,
    limits: Arc<Mutex<HashMap<FunctionRef, Limits>>>,
    unreserved: Arc<Mutex<Option<u32>>>,
}

/// One ping's outcome, with whether the function does not exist at all.
enum Sent {
    Done(PingOutcome),
    Missing(PortError),
}

/// What to do with an answer.
enum Verdict {
    Final(Sent),
    /// Worth another try (throttled, 5xx, connection failed); `after` is
    /// the service's `Retry-After`, when it gave one.
    Retry(PingFailure, Option<Duration>),
}

/// Keeps the request the SDK was about to send, and stops it there.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Option<http::Request<Bytes>>>>);

/// The marker error that stops the SDK's call once the request is captured.
#[derive(Debug, thiserror::Error)]
#[error("prepared; forewarm sends it")]
struct Prepared;

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "forewarm::Capture"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let req = context.request();
        let body = req
            .body()
            .bytes()
            .ok_or("the Invoke body is not in memory")?;
        let mut out = http::Request::builder().method(req.method()).uri(req.uri());
        for (k, v) in req.headers() {
            out = out.header(k, v);
        }
        let out = out.body(Bytes::copy_from_slice(body))?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
        Err(Box::new(Prepared))
    }
}

impl LambdaWarmer {
    /// A warmer over `client`.
    pub fn new(client: Client, cfg: WarmerConfig) -> Self {
        let attempts = client
            .config()
            .retry_config()
            .map_or(3, |r| r.max_attempts())
            .max(1);
        LambdaWarmer {
            client,
            transport: Arc::new(OnceLock::new()),
            attempts,
            cfg,
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            limits: Arc::new(Mutex::new(HashMap::new())),
            unreserved: Arc::new(Mutex::new(None)),
        }
    }

    async fn account_unreserved(&self) -> Result<Option<u32>, PortError> {
        if let Some(u) = *self.unreserved.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(Some(u));
        }
        let out = self
            .client
            .get_account_settings()
            .send()
            .await
            .map_err(|e| port_error("GetAccountSettings", e))?;
        let u = out
            .account_limit()
            .and_then(|l| l.unreserved_concurrent_executions())
            .map(|x| x.max(0) as u32);
        *self.unreserved.lock().unwrap_or_else(|e| e.into_inner()) = u;
        Ok(u)
    }

    /// The signed Invoke request for one ping, as the SDK would send it.
    async fn prepare(
        &self,
        f: &FunctionRef,
        payload: Bytes,
    ) -> Result<http::Request<Bytes>, PortError> {
        let capture = Capture::default();
        let result = self
            .client
            .invoke()
            .function_name(f.name.as_ref())
            .set_qualifier(f.qualifier.as_deref().map(str::to_string))
            .payload(Blob::new(payload.to_vec()))
            .customize()
            .interceptor(capture.clone())
            // The stop is not a failure to retry.
            .config_override(
                aws_sdk_lambda::Config::builder().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await;
        let captured = capture.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        match (captured, result) {
            (Some(request), _) => Ok(request),
            (None, Err(e)) => Err(port_error(&format!("invoke {f}"), e)),
            (None, Ok(_)) => Err(PortError::new(
                ErrorKind::Invalid,
                format!("invoke {f}: the SDK client answered without sending (a test double?)"),
            )),
        }
    }

    /// Sends one warm and waits for every ping.
    pub async fn warm_one(&self, plan: &WarmPlan) -> Result<WarmReport, PortError> {
        let mut set = tokio::task::JoinSet::new();
        let timeout = self
            .cfg
            .ping_timeout_for(plan.delay_ms as u64, plan.init_allowance_ms);
        // The tick's time ends at `answer_by_ms`: a ping unanswered by then
        // is a timeout, though its sandbox still comes up.
        let answer_by = plan.answer_by_ms.map(|by| {
            let left = by.saturating_sub(crate::ports::Clock::now_ms(&crate::ports::SystemClock));
            Instant::now() + Duration::from_millis(left)
        });
        let f = Arc::new(plan.function.clone());
        for seq in 0..plan.n {
            let payload = Bytes::from(
                serde_json::to_vec(&Ping::new(&*plan.run, seq, plan.n, plan.delay_ms as u64))
                    .map_err(|e| PortError::new(ErrorKind::Invalid, e.to_string()))?,
            );
            let request = match self.prepare(&f, payload.clone()).await {
                Ok(r) => r,
                // What stops the first ping (no credentials, a malformed
                // name) stops them all: send none.
                Err(e) if seq == 0 => return Err(e),
                Err(e) => {
                    tracing::warn!(function = %f, error = %e, "ping not prepared");
                    set.spawn(async { Sent::Done(PingOutcome::failed(PingFailure::Other)) });
                    continue;
                }
            };
            set.spawn(
                self.clone()
                    .ping(Some(request), payload, timeout, answer_by, f.clone()),
            );
        }
        let mut pings = Vec::with_capacity(plan.n as usize);
        let mut missing = None;
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Sent::Done(p)) => pings.push(p),
                Ok(Sent::Missing(e)) => {
                    pings.push(PingOutcome::failed(PingFailure::Other));
                    missing = Some(e);
                }
                Err(_) => pings.push(PingOutcome::failed(PingFailure::Other)),
            }
        }
        if let Some(e) = missing
            && pings.iter().all(|p| p.failure.is_some())
        {
            return Err(e);
        }
        Ok(WarmReport {
            requested: plan.n,
            delay_ms: plan.delay_ms,
            sent_at_ms: plan.at_ms,
            pings,
        })
    }

    /// Sends one prepared ping, retrying throttles, 5xx and failed
    /// connections until `deadline`. A retry is prepared afresh rather than
    /// kept: a thousand kept copies of a signed request cost more than
    /// signing again now and then.
    ///
    /// Owns everything it needs, taken once (no copies in an enclosing
    /// block): a thousand of these tasks are alive at once.
    async fn ping(
        self,
        mut request: Option<http::Request<Bytes>>,
        payload: Bytes,
        timeout: Duration,
        answer_by: Option<Instant>,
        f: Arc<FunctionRef>,
    ) -> Sent {
        let Ok(_permit) = self.in_flight.clone().acquire_owned().await else {
            return Sent::Done(PingOutcome::failed(PingFailure::Other));
        };
        let deadline = answer_by.map_or(Instant::now() + timeout, |by| {
            by.min(Instant::now() + timeout)
        });
        let mut attempt = 1;
        loop {
            let req = match request.take() {
                Some(r) => r,
                // Boxed: the SDK's call is a 5.5 KiB future, and inline it
                // would make every ping's task that large for a rare retry.
                None => match Box::pin(self.prepare(&f, payload.clone())).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(function = %f, error = %e, "ping not prepared");
                        return Sent::Done(PingOutcome::failed(PingFailure::Other));
                    }
                },
            };
            let verdict = match tokio::time::timeout_at(
                deadline,
                self.transport.get_or_init(Transport::new).send(req),
            )
            .await
            {
                Err(_) => return Sent::Done(PingOutcome::failed(PingFailure::Timeout)),
                Ok(answer) => judge(answer, &f),
            };
            let (failure, after) = match verdict {
                Verdict::Final(sent) => return sent,
                Verdict::Retry(failure, after) => (failure, after),
            };
            let wait = backoff(attempt).max(after.unwrap_or_default());
            if attempt >= self.attempts || Instant::now() + wait >= deadline {
                return Sent::Done(PingOutcome::failed(failure));
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Full jitter over `BACKOFF_BASE_MS × 2^(attempt-1)`.
fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_BASE_MS << (attempt.saturating_sub(1)).min(10);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    Duration::from_millis(Pcg64Mcg::seed_from_u64(seed).random_range(0..=cap))
}

/// Reads an Invoke answer: the shim's reply, a function error, or the
/// service's error (`X-Amzn-ErrorType` and the JSON body's message).
fn judge(answer: Result<Answer, SendError>, f: &FunctionRef) -> Verdict {
    let a = match answer {
        Ok(a) => a,
        Err(SendError::TooLarge) => {
            tracing::warn!(function = %f, "ping reply too large; not a shim's reply");
            return Verdict::Final(Sent::Done(PingOutcome::failed(PingFailure::BadReply)));
        }
        Err(e) => {
            tracing::warn!(function = %f, error = %e, "ping not delivered");
            return Verdict::Retry(PingFailure::Other, None);
        }
    };
    if (200..300).contains(&a.status) {
        if a.headers.contains_key("x-amz-function-error") {
            return Verdict::Final(Sent::Done(PingOutcome::failed(PingFailure::FunctionError)));
        }
        return Verdict::Final(Sent::Done(match parse_reply(&a.body) {
            // A cold ping reached its sandbox when the init began.
            Ok(Some(r)) => {
                let reached = if r.cold {
                    r.started_ms.saturating_sub(r.init_ms)
                } else {
                    r.started_ms
                };
                PingOutcome::answered(r.instance, r.cold, reached)
                    .with_last_real(r.last_real_ms)
                    .with_init(r.cold.then_some(r.init_ms))
            }
            Ok(None) => PingOutcome::anonymous(),
            Err(e) => {
                tracing::warn!(function = %f, error = %e, "ping reply not understood");
                PingOutcome::failed(PingFailure::BadReply)
            }
        }));
    }
    let (code, message) = service_error(&a);
    let after = a
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match kind_of(code.as_deref(), a.status) {
        ErrorKind::Throttled => Verdict::Retry(PingFailure::Throttled, after),
        ErrorKind::Unavailable => {
            tracing::warn!(function = %f, status = a.status, code = ?code, message = %message, "ping failed");
            Verdict::Retry(PingFailure::Other, after)
        }
        kind @ (ErrorKind::NotFound | ErrorKind::Invalid) => {
            Verdict::Final(Sent::Missing(PortError::new(
                kind,
                format!(
                    "invoke {f}: {} (HTTP {}): {message}",
                    code.as_deref().unwrap_or("error"),
                    a.status
                ),
            )))
        }
        ErrorKind::Conflict => Verdict::Final(Sent::Done(PingOutcome::failed(PingFailure::Other))),
    }
}

/// The error code (`X-Amzn-ErrorType`, else the body's `__type`) and
/// message of a service error answer.
fn service_error(a: &Answer) -> (Option<String>, String) {
    let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    let code = a
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| body["__type"].as_str().map(str::to_string))
        .or_else(|| body["code"].as_str().map(str::to_string))
        // "Code:http://internal..." and "com.amazon#Code" both name Code.
        .map(|c| {
            let c = c.split(':').next().unwrap_or_default();
            c.rsplit('#').next().unwrap_or_default().to_string()
        });
    let message = body["message"]
        .as_str()
        .or_else(|| body["Message"].as_str())
        .unwrap_or("no message")
        .to_string();
    (code, message)
}

impl Warmer for LambdaWarmer {
    /// Forgets cached limits, so they are read at most once per tick.
    fn begin_tick(&self) {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.unreserved.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn limits(&self, f: &FunctionRef) -> Result<Limits, PortError> {
        if let Some(l) = self.limits.lock().unwrap_or_else(|e| e.into_inner()).get(f) {
            return Ok(*l);
        }
        let conc = self
            .client
            .get_function_concurrency()
            .function_name(f.name.as_ref())
            .send()
            .await
            .map_err(|e| port_error(&format!("GetFunctionConcurrency {f}"), e))?;
        let conf = self
            .client
            .get_function_configuration()
            .function_name(f.name.as_ref())
            .set_qualifier(f.qualifier.as_deref().map(str::to_string))
            .send()
            .await
            .map_err(|e| port_error(&format!("GetFunctionConfiguration {f}"), e))?;
        let reserved = conc
            .reserved_concurrent_executions()
            .map(|x| x.max(0) as u32);
        let unreserved = if reserved.is_none() {
            self.account_unreserved().await?
        } else {
            None
        };
        let l = Limits {
            reserved,
            unreserved,
            memory_mb: conf.memory_size().map(|m| m.max(0) as u32),
            timeout_ms: conf.timeout().map(|s| s.max(0) as u64 * 1_000),
        };
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(f.clone(), l);
        Ok(l)
    }

    async fn warm(&self, plans: &[WarmPlan]) -> Vec<Result<WarmReport, PortError>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, plan) in plans.iter().cloned().enumerate() {
            let me = self.clone();
            set.spawn(async move { (i, me.warm_one(&plan).await) });
        }
        let mut out: Vec<Option<Result<WarmReport, PortError>>> =
            (0..plans.len()).map(|_| None).collect();
        while let Some(r) = set.join_next().await {
            if let Ok((i, rep)) = r {
                out[i] = Some(rep);
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(PortError::new(ErrorKind::Unavailable, "warm task failed")))
            })
            .collect()
    }
}
