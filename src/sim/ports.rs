//! The `forewarm` policy in the simulator: the real [`run_tick`] behind
//! simulated ports.
//!
//! * the **store** keeps each function's `FunctionState` in memory with the
//!   same version and lease rules as DynamoDB (states move in and out; the
//!   JSON round trip is exercised by the in-memory store's tests and the
//!   determinism test);
//! * **metrics** are what CloudWatch would report for the simulated
//!   platform: per-minute maximum concurrency, invocations and average
//!   duration *including the pings*, so the own-traffic correction is tested
//!   for real;
//! * the **warmer** sends each plan's pings into the platform one fan-out gap
//!   apart and reports what each reached, as the Lambda adapter does.
//!
//! Ports answer with ready futures; the tick is polled by
//! [`block_on_ready`], so the simulator needs no async runtime.

use std::future::{Future, ready};
use std::sync::Mutex;

use super::model::Model;
use super::platform::{FnSim, PingResult};
use crate::decision::policy::{Parsed, Policy, PolicyDoc};
use crate::decision::{
    FunctionState, InstanceId, Limits, MinuteMetrics, PingFailure, PingOutcome, WarmReport,
};
use crate::ports::{
    ErrorKind, FunctionRef, MetricsRequest, MetricsSource, PortError, StateStore, Stored, Target,
    WarmPlan, Warmer,
};
use crate::tick::{TickConfig, block_on_ready, run_tick};

/// CloudWatch metrics the AWS adapter requests per function: concurrency,
/// invocations, duration, throttles and the shims' cold starts.
pub const METRICS_PER_FUNCTION: u64 = 5;
/// Write units of one look at a function: the lease (a small conditional
/// update, 1 unit) and the state save (an item of 2-3 KB, 3 units).
pub const WRITE_UNITS_PER_LOOK: u64 = 4;
/// Read units of one tick's Scan, per function: a policy item and a state
/// item, about 3 KB, at half a unit per 4 KB (eventually consistent).
pub const READ_UNITS_PER_FUNCTION_SCAN: f64 = 0.5;

#[derive(Debug, Default)]
struct Slot {
    state: Option<Box<FunctionState>>,
    version: u64,
    lease_until_ms: u64,
    next_check_ms: u64,
}

/// The controller state of every simulated function.
#[derive(Debug)]
struct SimStore {
    names: Vec<FunctionRef>,
    policy: Parsed,
    slots: Mutex<Vec<Slot>>,
    now_ms: std::sync::atomic::AtomicU64,
}

fn index(f: &FunctionRef) -> Result<usize, PortError> {
    f.name
        .parse()
        .map_err(|_| PortError::new(ErrorKind::NotFound, format!("no simulated function {f}")))
}

impl StateStore for SimStore {
    fn targets(&self) -> impl Future<Output = Result<Vec<Target>, PortError>> + Send {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.now_ms.load(std::sync::atomic::Ordering::Relaxed);
        // Resting functions are left out here rather than by the tick, which
        // would skip them anyway: it saves building a target for each.
        ready(Ok(self
            .names
            .iter()
            .zip(slots.iter())
            .filter(|(_, s)| s.next_check_ms <= now)
            .map(|(f, s)| Target {
                function: f.clone(),
                policy: Ok(self.policy.clone()),
                next_check_ms: s.next_check_ms,
            })
            .collect()))
    }

    fn load(&self, f: &FunctionRef) -> impl Future<Output = Result<Stored, PortError>> + Send {
        let r = index(f).map(|i| {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            Stored {
                state: slots[i].state.clone(),
                version: slots[i].version,
                unreadable: None,
            }
        });
        ready(r)
    }

    fn lease(
        &self,
        f: &FunctionRef,
        _owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> impl Future<Output = Result<Stored, PortError>> + Send {
        let r = index(f).and_then(|i| {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = &mut slots[i];
            if slot.lease_until_ms > now_ms {
                return Err(PortError::new(
                    ErrorKind::Conflict,
                    format!("{f} is leased"),
                ));
            }
            slot.lease_until_ms = until_ms;
            Ok(Stored {
                state: slot.state.take(),
                version: slot.version,
                unreadable: None,
            })
        });
        ready(r)
    }

    fn save(
        &self,
        f: &FunctionRef,
        _owner: &str,
        state: Box<FunctionState>,
        version: u64,
    ) -> impl Future<Output = Result<u64, PortError>> + Send {
        let r = index(f).and_then(|i| {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = &mut slots[i];
            if slot.version != version {
                return Err(PortError::new(ErrorKind::Conflict, format!("{f} changed")));
            }
            slot.next_check_ms = state.next_check_ms;
            slot.state = Some(state);
            slot.version += 1;
            slot.lease_until_ms = 0;
            Ok(slot.version)
        });
        ready(r)
    }

    fn record_error(
        &self,
        f: &FunctionRef,
        _owner: &str,
        error: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let r = index(f).map(|i| {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = slots[i].state.as_mut() {
                s.last_error = Some(error.to_string());
            }
            slots[i].lease_until_ms = 0;
        });
        ready(r)
    }
}

/// The simulated platform as CloudWatch and Lambda see it, during one tick.
struct World<'a> {
    fns: Mutex<&'a mut Vec<FnSim>>,
    limit: u32,
    gap_ms: u64,
    metric_requests: Mutex<u64>,
    longest_hold_ms: Mutex<u64>,
}

impl MetricsSource for World<'_> {
    fn observe(
        &self,
        requests: &[MetricsRequest],
    ) -> impl Future<Output = Result<Vec<Result<Vec<MinuteMetrics>, PortError>>, PortError>> + Send
    {
        let mut fns = self.fns.lock().unwrap_or_else(|e| e.into_inner());
        *self
            .metric_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += requests.len() as u64 * METRICS_PER_FUNCTION;
        let out = requests
            .iter()
            .map(|r| index(&r.function).map(|i| fns[i].metrics(r.from_minute, r.until_minute)))
            .collect();
        ready(Ok(out))
    }
}

impl Warmer for World<'_> {
    fn limits(&self, f: &FunctionRef) -> impl Future<Output = Result<Limits, PortError>> + Send {
        let fns = self.fns.lock().unwrap_or_else(|e| e.into_inner());
        // The simulated platform gives every function the whole account
        // limit for itself (it does not share one pool across functions), so
        // it is reported as what it behaves like: each function's own
        // reservation. Reporting a shared unreserved pool would make the
        // tick share out room that the simulated platform never takes away.
        let r = index(f).map(|i| Limits {
            reserved: Some(self.limit),
            unreserved: None,
            memory_mb: Some(fns[i].memory_mb()),
        });
        ready(r)
    }

    fn warm(
        &self,
        plans: &[WarmPlan],
    ) -> impl Future<Output = Vec<Result<WarmReport, PortError>>> + Send {
        let mut fns = self.fns.lock().unwrap_or_else(|e| e.into_inner());
        let mut longest = self
            .longest_hold_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let out = plans
            .iter()
            .map(|p| {
                let i = index(&p.function)?;
                *longest = (*longest).max(p.delay_ms as u64);
                let pings = (0..p.n as u64)
                    .map(|k| {
                        let at = p.at_ms + k * self.gap_ms;
                        match fns[i].ping(at, p.delay_ms as u64) {
                            PingResult::Reached {
                                id,
                                cold,
                                last_real_ms,
                            } => PingOutcome::answered(
                                InstanceId::of_bytes(&id.to_le_bytes()),
                                cold,
                                at,
                            )
                            .with_last_real(last_real_ms),
                            PingResult::Throttled => PingOutcome::failed(PingFailure::Throttled),
                        }
                    })
                    .collect();
                Ok(WarmReport {
                    requested: p.n,
                    delay_ms: p.delay_ms,
                    sent_at_ms: p.at_ms,
                    pings,
                })
            })
            .collect();
        ready(out)
    }
}

/// The forewarm controller running over the simulated fleet.
#[derive(Debug)]
pub struct Controller {
    store: SimStore,
    cfg: TickConfig,
    ticks: Vec<(u64, u64)>,
    metric_requests: Vec<(u64, u64)>,
    limit: u32,
    gap_ms: u64,
    targets: Vec<u32>,
    looks: Vec<(u64, u64)>,
}

impl Controller {
    /// A controller for `functions` functions, all under one policy.
    pub fn new(functions: usize, doc: PolicyDoc, model: &Model) -> Controller {
        let policy = Policy::from_doc(&doc).unwrap_or_else(|_| Parsed {
            policy: Policy::default(),
            warnings: vec![],
        });
        Controller {
            store: SimStore {
                names: (0..functions)
                    .map(|i| FunctionRef::unqualified(i.to_string()))
                    .collect(),
                policy,
                slots: Mutex::new((0..functions).map(|_| Slot::default()).collect()),
                now_ms: std::sync::atomic::AtomicU64::new(0),
            },
            cfg: TickConfig::new("sim"),
            ticks: Vec::new(),
            metric_requests: Vec::new(),
            limit: model.scaling.account_concurrency,
            targets: vec![0; functions],
            looks: Vec::new(),
            gap_ms: model.invoke.fanout_gap_ms.round() as u64,
        }
    }

    /// One controller tick at `t`; returns each function's warm target.
    pub fn tick(&mut self, fns: &mut Vec<FnSim>, t: u64) -> Vec<u32> {
        self.store
            .now_ms
            .store(t, std::sync::atomic::Ordering::Relaxed);
        let world = World {
            limit: self.limit,
            gap_ms: self.gap_ms,
            fns: Mutex::new(fns),
            metric_requests: Mutex::new(0),
            longest_hold_ms: Mutex::new(0),
        };
        let report = block_on_ready(run_tick(&self.store, &world, &world, &self.cfg, t));
        self.looks.push((t, report.functions.len() as u64));
        let hold = world
            .longest_hold_ms
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let metrics = world
            .metric_requests
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        self.ticks.push((t, hold));
        self.metric_requests.push((t, metrics));
        for f in &report.functions {
            if let (Ok(i), Some(d)) = (f.function.name.parse::<usize>(), f.decision) {
                self.targets[i] = d.target;
            }
        }
        self.targets.clone()
    }

    /// What the controller itself cost over the report period: one
    /// invocation per tick (its memory for the longest hold plus overhead),
    /// the CloudWatch metrics it requested, and its DynamoDB reads and writes.
    pub fn cost_usd(&self, model: &Model, report_from_ms: u64) -> f64 {
        let p = &model.prices;
        let gb = model.invoke.controller_memory_mb / 1024.0;
        let ticks: f64 = self
            .ticks
            .iter()
            .filter(|(t, _)| *t >= report_from_ms)
            .map(|(_, hold)| {
                p.request_usd
                    + gb * (*hold as f64 + model.invoke.controller_overhead_ms) / 1_000.0
                        * p.gb_second_usd
            })
            .sum();
        let metrics: u64 = self
            .metric_requests
            .iter()
            .filter(|(t, _)| *t >= report_from_ms)
            .map(|(_, n)| n)
            .sum();
        let looks: u64 = self
            .looks
            .iter()
            .filter(|(t, _)| *t >= report_from_ms)
            .map(|(_, n)| n)
            .sum();
        let scans = self
            .looks
            .iter()
            .filter(|(t, _)| *t >= report_from_ms)
            .count() as f64;
        let dynamodb = looks as f64 * WRITE_UNITS_PER_LOOK as f64 * p.dynamodb_write_unit_usd
            + scans
                * self.store.names.len() as f64
                * READ_UNITS_PER_FUNCTION_SCAN
                * p.dynamodb_read_unit_usd;
        ticks + metrics as f64 * p.metric_request_usd + dynamodb
    }
}
