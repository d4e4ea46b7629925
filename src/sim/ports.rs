//! The `forewarm` policy in the simulator: the real [`run_tick`] behind
//! simulated ports.
//!
//! * the **store** keeps each function's `FunctionState` in memory under
//!   the in-memory store's rules (versioned saves marked with their run,
//!   the run's claim, `last_error` alone: `ports::memory`'s `ItemRules` and
//!   `ClaimRules`), handing states over rather than round-tripping their
//!   JSON (the in-memory store's tests and the determinism test exercise
//!   that), and bills every call's DynamoDB units by the item sizes it
//!   would have;
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

use super::fleet::Fleet;
use super::model::Model;
use super::platform::PingResult;
use crate::cost::CostParts;
use crate::cost::dynamodb::{
    consistent_read_units, run_item_bytes, scan_units, text_bytes, write_units,
};
use crate::decision::pings::{INIT_LIMIT_MS, TIMEOUT_MARGIN_MS, ping_timeout_ms};
use crate::decision::policy::{Parsed, Policy};
use crate::decision::{
    FunctionState, InstanceId, Limits, MinuteMetrics, PingFailure, PingOutcome, Reaping, WarmReport,
};
use crate::ports::memory::{ClaimRules, ItemRules};
use crate::ports::{
    Claimed, ErrorKind, FunctionRef, MetricsRequest, MetricsSource, PoolPings, PortError,
    StateStore, Stored, Target, Usage, WarmPlan, Warmer,
};
use crate::tick::{TickConfig, block_on_ready, run_tick};

/// Bytes of a policy item as the simulator's fleet has them (`pk`, `sk`,
/// `mode`).
fn policy_item_bytes(function: &str) -> u64 {
    text_bytes("pk", function) + text_bytes("sk", "policy") + text_bytes("mode", "warm")
}

/// Counts the bytes a value serializes to, without keeping them.
#[derive(Default)]
struct ByteCount(u64);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_bytes(state: &FunctionState) -> u64 {
    let mut c = ByteCount::default();
    match serde_json::to_writer(&mut c, state) {
        Ok(()) => c.0,
        Err(_) => 0,
    }
}

/// The bytes the state takes in its item (deflated JSON, as the DynamoDB
/// store writes it).
fn stored_bytes(state: &FunctionState) -> u64 {
    crate::ports::stored::encode(state).map_or(0, |b| b.len() as u64)
}

#[derive(Debug, Default)]
struct Slot {
    state: Option<Box<FunctionState>>,
    /// The item's other attributes, under the in-memory store's rules.
    rules: ItemRules,
    /// The state item's billed size (0 while there is none).
    bytes: u64,
    /// Saves so far: the state's JSON is measured on one save in
    /// [`MEASURE_EVERY`], and how well it deflates on one in
    /// [`DEFLATE_EVERY`].
    saves: u32,
    /// Its JSON's length when last measured.
    json: u64,
    /// Its stored (deflated) length over its JSON's when last measured.
    deflated: f64,
    /// The target in force for each window, as the saved states carried
    /// it ([`NO_FORECAST`] where none was issued); empty unless recording.
    forecasts: Vec<u32>,
    /// Whether this tick's scan read the item and no load has taken it
    /// yet: the load is then free, as the DynamoDB adapter's is.
    scanned: bool,
}

/// A window for which the controller issued no forecast.
pub(crate) const NO_FORECAST: u32 = u32::MAX;

/// Serializing every saved state only to learn its size would triple the
/// simulator's run time; an item's size drifts by a few entries between
/// saves, so one save in this many is measured and the others are billed
/// at that size.
const MEASURE_EVERY: u32 = 8;

/// Deflating costs five times more than serializing, and how well a state
/// deflates drifts slower still than its size: one measured save in this
/// many also deflates it (both happen at the first save). Measuring every
/// eighth save instead moved the bundled day's DynamoDB bill by under 1 %.
const DEFLATE_EVERY: u32 = 32;

/// The controller state of every simulated function.
#[derive(Debug)]
struct SimStore {
    names: Vec<FunctionRef>,
    policy: Parsed,
    slots: Mutex<Vec<Slot>>,
    now_ms: std::sync::atomic::AtomicU64,
    /// The run's claim, under the in-memory store's rules.
    claim: Mutex<ClaimRules>,
    /// The policy items' bytes, all together (the scan reads them too).
    policy_bytes: u64,
    usage: Mutex<Usage>,
}

impl SimStore {
    fn charge(&self, read_units: f64, write_units: f64) {
        let mut u = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        u.read_units += read_units;
        u.write_units += write_units;
    }
}

fn index(f: &FunctionRef) -> Result<usize, PortError> {
    f.name
        .parse()
        .map_err(|_| PortError::new(ErrorKind::NotFound, format!("no simulated function {f}")))
}

/// The account's item as it stands, the claim held or not.
fn held_item_bytes(claim: &ClaimRules) -> u64 {
    let held = claim.run.as_ref().map(|(o, until)| (o.as_str(), *until));
    let t = claim.last_tick_ms.unwrap_or(0);
    run_item_bytes(held, t, &claim.pool_pings.text(), &claim.reaping.text())
}

impl StateStore for SimStore {
    fn targets(&self) -> impl Future<Output = Result<Vec<Target>, PortError>> + Send {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for s in slots.iter_mut() {
            s.scanned = true;
        }
        let run_item = {
            let claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
            claim.last_tick_ms.map_or(0, |t| {
                run_item_bytes(None, t, &claim.pool_pings.text(), &claim.reaping.text())
            })
        };
        let bytes: u64 = slots.iter().map(|s| s.bytes).sum::<u64>() + self.policy_bytes + run_item;
        self.charge(scan_units(bytes), 0.0);
        // Every function, resting or not, as the table's scan lists them:
        // the tick leaves the resting ones alone but counts their real
        // traffic in the account's pool.
        ready(Ok(self
            .names
            .iter()
            .zip(slots.iter())
            .map(|(f, s)| Target {
                function: f.clone(),
                policy: Ok(self.policy.clone()),
                next_check_ms: s.rules.next_check_ms,
                slots: s.rules.slots,
                real_busy: s.rules.real_busy,
            })
            .collect()))
    }

    fn claim_run(
        &self,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> impl Future<Output = Result<Claimed, PortError>> + Send {
        // Billed as the conditional write it is on the small account item.
        let mut claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
        let pings = claim.pool_pings.text();
        let reaping = claim.reaping.text();
        let before = claim
            .last_tick_ms
            .map_or(0, |t| run_item_bytes(None, t, &pings, &reaping));
        self.charge(
            0.0,
            write_units(
                before,
                run_item_bytes(Some((owner, until_ms)), now_ms, &pings, &reaping),
            ),
        );
        ready(claim.claim(owner, now_ms, until_ms))
    }

    fn peek_run(&self) -> impl Future<Output = Result<Claimed, PortError>> + Send {
        let claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
        self.charge(consistent_read_units(held_item_bytes(&claim)), 0.0);
        ready(Ok(claim.peek()))
    }

    fn release_run(
        &self,
        owner: &str,
        pool_pings: &PoolPings,
        reaping: &Reaping,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let mut claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
        let t = claim.last_tick_ms.unwrap_or(0);
        self.charge(
            0.0,
            write_units(
                held_item_bytes(&claim),
                run_item_bytes(None, t, &pool_pings.text(), &reaping.text()),
            ),
        );
        claim.release(owner, pool_pings, reaping);
        ready(Ok(()))
    }

    fn load(&self, f: &FunctionRef) -> impl Future<Output = Result<Stored, PortError>> + Send {
        let r = index(f).map(|i| {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = &mut slots[i];
            if !std::mem::take(&mut slot.scanned) {
                self.charge(consistent_read_units(slot.bytes), 0.0);
            }
            // Handed over, not copied: the tick saves it back. Except during
            // a run: a planned warm sent as planned is not saved, and the
            // stored state must stay as it was.
            let state = match &slot.state {
                Some(st) if st.run.is_some() => Some(st.clone()),
                _ => slot.state.take(),
            };
            Stored {
                state,
                version: slot.rules.version,
                unreadable: None,
            }
        });
        ready(r)
    }

    fn save(
        &self,
        f: &FunctionRef,
        state: Box<FunctionState>,
        version: u64,
        run: &str,
    ) -> impl Future<Output = Result<u64, PortError>> + Send {
        let r = index(f).and_then(|i| {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = &mut slots[i];
            let saved = slot.rules.save(f, &state, version, run)?;
            if slot.saves.is_multiple_of(MEASURE_EVERY) {
                slot.json = json_bytes(&state);
            }
            if slot.saves.is_multiple_of(DEFLATE_EVERY) {
                slot.deflated = stored_bytes(&state) as f64 / slot.json.max(1) as f64;
            }
            slot.saves = slot.saves.wrapping_add(1);
            // A window keeps the forecast in force when it began (later
            // looks do not replace it), so the last one saved is that one.
            for p in &state.forecaster.predicted {
                if let Some(t) = slot.forecasts.get_mut(p.0 as usize) {
                    *t = p.2;
                }
            }
            let stored = (slot.json as f64 * slot.deflated).ceil() as usize;
            let after = slot.rules.item_bytes(&f.name, stored);
            self.charge(0.0, write_units(slot.bytes, after));
            slot.bytes = after;
            slot.state = Some(state);
            Ok(saved)
        });
        ready(r)
    }

    fn last_save(
        &self,
        f: &FunctionRef,
        run: &str,
    ) -> impl Future<Output = Result<(u64, bool), PortError>> + Send {
        let r = index(f).map(|i| {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots[i].rules.last_save(run)
        });
        ready(r)
    }

    fn record_error(
        &self,
        f: &FunctionRef,
        error: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        let r = index(f).map(|i| {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots[i].rules.record_error(error);
            let before = slots[i].bytes;
            // With no item yet, the write makes one: its key and the error.
            let key = if before == 0 {
                text_bytes("pk", &f.name) + text_bytes("sk", "state")
            } else {
                0
            };
            slots[i].bytes = before + key + text_bytes("last_error", error);
            self.charge(0.0, write_units(before, slots[i].bytes));
        });
        ready(r)
    }

    fn usage(&self) -> Usage {
        *self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The simulated platform as CloudWatch and Lambda see it, during one tick.
struct World<'a> {
    fleet: Mutex<&'a mut Fleet>,
    gap_ms: u64,
    /// The controller's allowance for a cold ping's INIT, ms.
    init_allowance_ms: u64,
    /// The tick's time.
    now_ms: u64,
    metric_requests: Mutex<u64>,
    /// `ListMetrics` pages, one per 500 recently active functions.
    list_requests: Mutex<u64>,
    /// The longest the tick waited for a ping's answer, ms.
    longest_hold_ms: Mutex<u64>,
}

impl MetricsSource for World<'_> {
    fn usage(&self) -> Usage {
        Usage {
            metrics_requested: *self
                .metric_requests
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            list_requests: *self.list_requests.lock().unwrap_or_else(|e| e.into_inner()),
            ..Usage::default()
        }
    }

    fn screen_pages(&self) -> u64 {
        // The simulated account is the fleet, one `Invocations` series per
        // function.
        let fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
        crate::cost::cloudwatch::list_pages(fleet.fns.len() as u64)
    }

    /// Functions with an invocation, real or ping, in the last three hours
    /// (the simulator knows exactly; CloudWatch's listing is approximate in
    /// the other direction only, listing some that ran nothing, and a
    /// reappearing metric may show late, which the screen's margin allows).
    fn recently_active(
        &self,
    ) -> impl Future<Output = Result<Option<std::collections::BTreeSet<String>>, PortError>> + Send
    {
        let fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
        let since = (self.now_ms / 60_000).saturating_sub(crate::decision::SCREEN_SEES_MINUTES);
        let active: std::collections::BTreeSet<String> = fleet
            .fns
            .iter()
            .enumerate()
            .filter(|(_, f)| f.last_invoked_minute.is_some_and(|m| m >= since))
            .map(|(i, _)| i.to_string())
            .collect();
        *self.list_requests.lock().unwrap_or_else(|e| e.into_inner()) +=
            (active.len() as u64).div_ceil(500).max(1);
        ready(Ok(Some(active)))
    }

    /// The fleet's pool as the account's series reports it (one metric
    /// requested, as CloudWatch bills it).
    fn pool_in_use(
        &self,
        from_minute: u64,
        until_minute: u64,
    ) -> impl Future<Output = Result<Vec<(u64, f64)>, PortError>> + Send {
        let mut fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
        *self
            .metric_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += 1;
        let minutes = fleet.pool_in_use(from_minute, until_minute);
        ready(Ok(minutes
            .into_iter()
            .map(|(m, n)| (m, n as f64))
            .collect()))
    }

    fn observe(
        &self,
        requests: &[MetricsRequest],
    ) -> impl Future<Output = Result<Vec<Result<Vec<MinuteMetrics>, PortError>>, PortError>> + Send
    {
        let mut fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
        *self
            .metric_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner()) +=
            requests.iter().map(MetricsRequest::series).sum::<u64>();
        let out = requests
            .iter()
            .map(|r| {
                index(&r.function).map(|i| {
                    let mut minutes = fleet.metrics(i, r.from_minute, r.until_minute);
                    if !r.detail {
                        for m in minutes.iter_mut() {
                            // Only the concurrency series is read.
                            m.invocations = None;
                            m.duration_avg_ms = None;
                            m.cold_starts = None;
                        }
                    }
                    minutes
                })
            })
            .collect();
        ready(Ok(out))
    }
}

impl Warmer for World<'_> {
    fn limits(&self, f: &FunctionRef) -> impl Future<Output = Result<Limits, PortError>> + Send {
        let fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
        // As `GetFunctionConcurrency` and `GetAccountSettings` say it: the
        // function's reservation if it has one, and the account's
        // unreserved pool, which the simulated platform shares out as
        // Lambda does.
        let r = index(f).map(|i| Limits {
            reserved: (!fleet.fns[i].shares_pool()).then(|| fleet.fns[i].limit()),
            unreserved: Some(fleet.unreserved()),
            memory_mb: Some(fleet.fns[i].memory_mb()),
            // The traces do not say the functions' configured timeouts.
            timeout_ms: None,
        });
        ready(r)
    }

    fn warm(
        &self,
        plans: &[WarmPlan],
    ) -> impl Future<Output = Vec<Result<WarmReport, PortError>>> + Send {
        let mut fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
        let mut longest = self
            .longest_hold_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let targets: Vec<Result<usize, PortError>> =
            plans.iter().map(|p| index(&p.function)).collect();
        // Every ping of the tick in time order across functions (they share
        // the account's pool): `(at, plan, k)`.
        let mut order: Vec<(u64, usize, usize)> = Vec::new();
        for (j, (p, i)) in plans.iter().zip(&targets).enumerate() {
            if i.is_ok() {
                order.extend((0..p.n as usize).map(|k| (p.at_ms + k as u64 * self.gap_ms, j, k)));
            }
        }
        order.sort_unstable();
        let mut outcomes: Vec<Vec<Option<PingOutcome>>> =
            plans.iter().map(|p| vec![None; p.n as usize]).collect();
        for (at, j, k) in order {
            let Ok(i) = targets[j] else { continue };
            let hold = plans[j].delay_ms as u64;
            let allowance = self.init_allowance_ms.max(plans[j].init_allowance_ms);
            let timeout = ping_timeout_ms(hold, allowance, TIMEOUT_MARGIN_MS);
            let reply = fleet.ping(i, at, hold);
            // The controller runs (and is billed) until its slowest ping
            // answers or times out: a cold ping's INIT counts.
            let waited = match reply {
                PingResult::Reached { init_ms, .. } => (init_ms + hold).min(timeout),
                PingResult::Throttled => 0,
            };
            *longest = (*longest).max(waited);
            outcomes[j][k] = Some(match reply {
                // The sandbox exists and is warm, but the controller stopped
                // waiting before the answer came, as the Lambda warmer does.
                PingResult::Reached { init_ms, .. } if init_ms + hold > timeout => {
                    fleet.fns[i].note_ping_timeout(at);
                    PingOutcome::failed(PingFailure::Timeout)
                }
                PingResult::Reached {
                    id,
                    cold,
                    last_real_ms,
                    init_ms,
                } => PingOutcome::answered(InstanceId::of_bytes(&id.to_le_bytes()), cold, at)
                    .with_last_real(last_real_ms)
                    .with_init(cold.then_some(init_ms)),
                PingResult::Throttled => PingOutcome::failed(PingFailure::Throttled),
            });
        }
        let out = plans
            .iter()
            .zip(targets)
            .zip(outcomes)
            .map(|((p, i), pings)| {
                i.map(|_| WarmReport {
                    requested: p.n,
                    delay_ms: p.delay_ms,
                    sent_at_ms: p.at_ms,
                    pings: pings.into_iter().flatten().collect(),
                })
            })
            .collect();
        ready(out)
    }
}

/// The forewarm controller running over the simulated fleet.
#[derive(Debug)]
pub(crate) struct SimController {
    store: SimStore,
    cfg: TickConfig,
    /// Per tick: its time, its longest wait on a ping and what it consumed.
    ticks: Vec<(u64, u64, Usage)>,
    gap_ms: u64,
    init_allowance_ms: u64,
    targets: Vec<u32>,
    /// Per function, the last tick that judged it not worth warming.
    not_worth_at: Vec<Option<u64>>,
}

impl SimController {
    /// A controller for `functions` functions, all under one policy (as
    /// [`PolicySpec::forewarm`](super::policy::PolicySpec::forewarm)
    /// validated it).
    pub(crate) fn new(functions: usize, policy: Policy, model: &Model) -> SimController {
        let policy = Parsed {
            policy,
            warnings: vec![],
        };
        SimController {
            store: SimStore {
                names: (0..functions)
                    .map(|i| FunctionRef::unqualified(i.to_string()))
                    .collect(),
                policy,
                slots: Mutex::new((0..functions).map(|_| Slot::default()).collect()),
                now_ms: std::sync::atomic::AtomicU64::new(0),
                claim: Mutex::new(ClaimRules::default()),
                policy_bytes: (0..functions)
                    .map(|i| policy_item_bytes(&i.to_string()))
                    .sum(),
                usage: Mutex::new(Usage::default()),
            },
            cfg: TickConfig::new("sim"),
            ticks: Vec::new(),
            targets: vec![0; functions],
            not_worth_at: vec![None; functions],
            init_allowance_ms: INIT_LIMIT_MS,
            gap_ms: model.invoke.fanout_gap_ms.round() as u64,
        }
    }

    /// Gives cold pings `ms` for their INIT before they count as timed out
    /// (`FOREWARM_INIT_ALLOWANCE_MS` of the real controller; default
    /// Lambda's 10 s Init limit).
    pub(crate) fn with_init_allowance_ms(mut self, ms: u64) -> SimController {
        self.init_allowance_ms = ms;
        self
    }

    /// Minutes the controller waits for a minute's metrics to be final.
    pub(crate) fn metrics_lag_minutes(&self) -> u64 {
        self.cfg.metrics_lag_minutes
    }

    /// Keeps, from now on, the target in force for each of the first
    /// `windows` windows of every function (for [`SimController::forecasts`]).
    pub(crate) fn record_forecasts(&mut self, windows: usize) {
        let slots = self
            .store
            .slots
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        for s in slots.iter_mut() {
            s.forecasts = vec![NO_FORECAST; windows];
        }
    }

    /// Per function, the target in force for each window recorded, or
    /// [`NO_FORECAST`]; taken out, so a second call returns empty lists.
    pub(crate) fn forecasts(&mut self) -> Vec<Vec<u32>> {
        let slots = self
            .store
            .slots
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        slots
            .iter_mut()
            .map(|s| std::mem::take(&mut s.forecasts))
            .collect()
    }

    /// One controller tick at `t`; returns each function's warm target.
    pub(crate) fn tick(&mut self, fleet: &mut Fleet, t: u64) -> Vec<u32> {
        self.store
            .now_ms
            .store(t, std::sync::atomic::Ordering::Relaxed);
        let world = World {
            gap_ms: self.gap_ms,
            init_allowance_ms: self.init_allowance_ms,
            now_ms: t,
            fleet: Mutex::new(fleet),
            metric_requests: Mutex::new(0),
            list_requests: Mutex::new(0),
            longest_hold_ms: Mutex::new(0),
        };
        let report = block_on_ready(run_tick(
            &self.store,
            &world,
            &world,
            &crate::ports::FixedClock(t),
            &self.cfg,
            t,
        ));
        let hold = world
            .longest_hold_ms
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        self.ticks.push((t, hold, report.usage));
        for f in &report.functions {
            if let (Ok(i), Some(d)) = (f.function.name.parse::<usize>(), f.decision) {
                self.targets[i] = d.target;
                if d.reason == crate::decision::Reason::NotWorthIt {
                    self.not_worth_at[i] = Some(t);
                }
            }
        }
        self.targets.clone()
    }

    /// Functions judged not worth warming at least once since
    /// `report_from_ms`.
    pub(crate) fn not_worth_it(&self, report_from_ms: u64) -> u64 {
        self.not_worth_at
            .iter()
            .filter(|t| t.is_some_and(|t| t >= report_from_ms))
            .count() as u64
    }

    /// What the controller itself cost over the report period, by part: one
    /// invocation per tick (its memory for its longest wait on a ping, hold
    /// and any INIT, plus overhead),
    /// and the CloudWatch and DynamoDB usage its ports counted.
    pub(crate) fn cost_parts(&self, model: &Model, report_from_ms: u64) -> CostParts {
        let p = &model.prices;
        let mut parts = CostParts::default();
        for (_, hold, usage) in self.ticks.iter().filter(|(t, ..)| *t >= report_from_ms) {
            let run_ms = *hold as f64 + model.invoke.controller_overhead_ms;
            parts.controller += p.pings_usd(1, model.invoke.controller_memory_mb, run_ms);
            let (cw, ddb) = p.usage_usd(usage);
            parts.cloudwatch += cw;
            parts.dynamodb += ddb;
        }
        parts
    }
}
