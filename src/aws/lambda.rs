//! Pings through the Lambda Invoke API, and the limits the caps need.
//!
//! A warm sends all N pings of a function at once as synchronous
//! (`RequestResponse`) invokes of the exact qualifier: synchronous because
//! only then does each ping's reply come back (sandbox id, cold, start time)
//! for the delay tuner and interval learner, and because asynchronous
//! invokes go through a queue that spreads them out and breaks the overlap.
//! Every function's pings are in flight together, bounded across functions
//! by a semaphore; each call has a timeout of its hold plus a margin.
//! Throttles (429) and 5xx are retried with back-off by the SDK's standard
//! retry strategy (configured on the client).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use tokio::sync::Semaphore;

use super::port_error;
use crate::decision::{Limits, PingFailure, PingOutcome, WarmReport};
use crate::ports::{ErrorKind, FunctionRef, PortError, WarmPlan, Warmer};
use crate::protocol::{Ping, parse_reply};

/// Warmer settings (the controller reads them from its environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmerConfig {
    /// Most invokes in flight at once, across all functions. Each costs a
    /// connection and a little memory in the controller.
    pub max_in_flight: usize,
    /// Time allowed beyond a ping's hold before it counts as timed out, ms.
    pub timeout_margin_ms: u64,
}

impl Default for WarmerConfig {
    fn default() -> Self {
        WarmerConfig {
            max_in_flight: 1_000,
            timeout_margin_ms: 5_000,
        }
    }
}

/// The Lambda warmer.
#[derive(Debug, Clone)]
pub struct LambdaWarmer {
    client: Client,
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

impl LambdaWarmer {
    /// A warmer over `client`.
    pub fn new(client: Client, cfg: WarmerConfig) -> Self {
        LambdaWarmer {
            client,
            cfg,
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            limits: Arc::new(Mutex::new(HashMap::new())),
            unreserved: Arc::new(Mutex::new(None)),
        }
    }

    /// Forgets cached limits; the controller calls it at the start of a tick,
    /// so they are read at most once per tick.
    pub fn new_tick(&self) {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.unreserved.lock().unwrap_or_else(|e| e.into_inner()) = None;
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

    /// Sends one warm and waits for every ping.
    pub async fn warm_one(&self, plan: &WarmPlan) -> Result<WarmReport, PortError> {
        let mut set = tokio::task::JoinSet::new();
        let timeout = Duration::from_millis(plan.delay_ms as u64 + self.cfg.timeout_margin_ms);
        for seq in 0..plan.n {
            let client = self.client.clone();
            let sem = self.in_flight.clone();
            let f = plan.function.clone();
            let payload = serde_json::to_vec(&Ping::new(
                plan.run.clone(),
                seq,
                plan.n,
                plan.delay_ms as u64,
            ))
            .map_err(|e| PortError::new(ErrorKind::Invalid, e.to_string()))?;
            set.spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    return Sent::Done(PingOutcome::failed(PingFailure::Other));
                };
                let call = client
                    .invoke()
                    .function_name(&f.name)
                    .set_qualifier(f.qualifier.clone())
                    .payload(Blob::new(payload))
                    .send();
                match tokio::time::timeout(timeout, call).await {
                    Err(_) => Sent::Done(PingOutcome::failed(PingFailure::Timeout)),
                    Ok(Err(e)) => {
                        let pe = port_error(&format!("invoke {f}"), e);
                        match pe.kind {
                            ErrorKind::NotFound | ErrorKind::Invalid => Sent::Missing(pe),
                            ErrorKind::Throttled => Sent::Done(PingOutcome::failed(PingFailure::Throttled)),
                            _ => Sent::Done(PingOutcome::failed(PingFailure::Other)),
                        }
                    }
                    Ok(Ok(out)) => {
                        if out.function_error().is_some() {
                            return Sent::Done(PingOutcome::failed(PingFailure::FunctionError));
                        }
                        let bytes = out.payload().map(|b| b.as_ref()).unwrap_or_default();
                        Sent::Done(match parse_reply(bytes) {
                            // A cold ping reached its sandbox when the init began.
                            Ok(Some(r)) => {
                                let reached = if r.cold { r.started_ms.saturating_sub(r.init_ms) } else { r.started_ms };
                                PingOutcome::answered(r.instance, r.cold, reached)
                            }
                            Ok(None) => PingOutcome::anonymous(),
                            Err(e) => {
                                tracing::warn!(function = %f, error = %e, "ping reply not understood");
                                PingOutcome::failed(PingFailure::BadReply)
                            }
                        })
                    }
                }
            });
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
}

impl Warmer for LambdaWarmer {
    async fn limits(&self, f: &FunctionRef) -> Result<Limits, PortError> {
        if let Some(l) = self.limits.lock().unwrap_or_else(|e| e.into_inner()).get(f) {
            return Ok(*l);
        }
        let conc = self
            .client
            .get_function_concurrency()
            .function_name(&f.name)
            .send()
            .await
            .map_err(|e| port_error(&format!("GetFunctionConcurrency {f}"), e))?;
        let conf = self
            .client
            .get_function_configuration()
            .function_name(&f.name)
            .set_qualifier(f.qualifier.clone())
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
