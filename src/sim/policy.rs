//! Warming policies the simulator compares, parsed from `--policy SPEC`.
//!
//! * `none`: no warming.
//! * `fixed:n=N,every=5m,delay=300ms`: the seed's warmer: N concurrent pings
//!   every period, each sleeping a fixed time.
//! * `lambda-warmer:n=N,every=5m`: self fan-out: one ping reaches the
//!   function, which invokes itself N−2 times asynchronously and once
//!   synchronously; the fan-out pings sleep 75 ms.
//! * `provisioned:n=N`: N sandboxes of Provisioned Concurrency all the time;
//!   `provisioned:auto`: an hourly schedule set from the same hour of the day
//!   before (what a scheduled-scaling user would configure from history).
//! * `forewarm` or `forewarm:quantile=0.9,...`: the real controller (any
//!   policy attribute may be given).
//! * `oracle`: perfect foresight: every cold start is prepared just in time.

use std::fmt;

use rand::Rng;
use rand_pcg::Pcg64Mcg;

use super::evaluate::Record;
use super::fleet::Fleet;
use super::model::Model;
use super::ports::SimController;
use super::stream_seed;
use crate::cost::CostParts;
use crate::decision::policy::{Policy, PolicyDoc, Scalar};
use crate::protocol::LAMBDA_WARMER_DELAY_MS;

/// A parsed policy spec.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// No warming.
    None,
    /// The seed's fixed warmer.
    Fixed {
        /// Pings per warm.
        n: u32,
        /// Period, ms.
        every_ms: u64,
        /// Hold, ms.
        delay_ms: u64,
    },
    /// lambda-warmer's self fan-out.
    LambdaWarmer {
        /// Pings per warm.
        n: u32,
        /// Period, ms.
        every_ms: u64,
    },
    /// Static Provisioned Concurrency.
    Provisioned {
        /// Sandboxes, or `None` for the hourly schedule from history.
        n: Option<u32>,
    },
    /// The forewarm controller with these policy attributes.
    Forewarm {
        /// Attributes over the defaults.
        doc: PolicyDoc,
        /// The same, merged and validated.
        policy: Policy,
    },
    /// Perfect foresight.
    Oracle,
}

impl PolicySpec {
    /// Parses `name[:k=v,k=v]`.
    pub fn parse(spec: &str) -> Result<PolicySpec, String> {
        let spec = spec.trim();
        if spec == "provisioned:auto" {
            return Ok(PolicySpec::Provisioned { n: None });
        }
        let p = Params::split(spec)?;
        match p.name {
            "none" => {
                p.allow(&[])?;
                Ok(PolicySpec::None)
            }
            "oracle" => {
                p.allow(&[])?;
                Ok(PolicySpec::Oracle)
            }
            "fixed" => {
                p.allow(&["n", "every", "delay"])?;
                Ok(PolicySpec::Fixed {
                    n: p.count("n", 1)?,
                    every_ms: p.every_ms()?,
                    delay_ms: p.duration("delay", 300)?,
                })
            }
            "lambda-warmer" => {
                p.allow(&["n", "every"])?;
                Ok(PolicySpec::LambdaWarmer {
                    n: p.count("n", 1)?,
                    every_ms: p.every_ms()?,
                })
            }
            "provisioned" => {
                p.allow(&["n"])?;
                match p.get("n") {
                    None | Some("auto") => Ok(PolicySpec::Provisioned { n: None }),
                    Some(_) => Ok(PolicySpec::Provisioned {
                        n: Some(p.count("n", 0)?),
                    }),
                }
            }
            "forewarm" => {
                let mut doc = PolicyDoc::new();
                for (k, v) in &p.kv {
                    doc.insert(k.to_string(), Scalar::from_text(v));
                }
                PolicySpec::forewarm(doc).map_err(|e| format!("policy `{spec}`: {e}"))
            }
            other => Err(format!(
                "unknown policy `{other}`: use none, fixed, lambda-warmer, provisioned, forewarm or oracle"
            )),
        }
    }

    /// The forewarm controller with these attributes over the defaults,
    /// validated; a warning (an unknown attribute) is an error here.
    pub fn forewarm(doc: PolicyDoc) -> Result<PolicySpec, String> {
        let parsed = Policy::from_doc(&doc).map_err(|e| e.to_string())?;
        if let Some(w) = parsed.warnings.first() {
            return Err(w.to_string());
        }
        Ok(PolicySpec::Forewarm {
            doc,
            policy: parsed.policy,
        })
    }

    /// Whether the policy's single parameter `n` can be swept.
    pub fn with_n(&self, n: u32) -> Option<PolicySpec> {
        match self {
            PolicySpec::Fixed {
                every_ms, delay_ms, ..
            } => Some(PolicySpec::Fixed {
                n,
                every_ms: *every_ms,
                delay_ms: *delay_ms,
            }),
            PolicySpec::LambdaWarmer { every_ms, .. } => Some(PolicySpec::LambdaWarmer {
                n,
                every_ms: *every_ms,
            }),
            PolicySpec::Provisioned { .. } => Some(PolicySpec::Provisioned { n: Some(n) }),
            _ => None,
        }
    }
}

/// A policy spec's name and its `key=value` parameters, with the parsers
/// each parameter's errors name it through.
struct Params<'a> {
    name: &'a str,
    kv: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    fn split(spec: &'a str) -> Result<Params<'a>, String> {
        let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
        let mut kv = Vec::new();
        for part in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                format!("policy `{spec}`: parameter `{part}` must look like key=value")
            })?;
            kv.push((k.trim(), v.trim()));
        }
        Ok(Params { name, kv })
    }

    /// Refuses a parameter the policy does not take.
    fn allow(&self, known: &[&str]) -> Result<(), String> {
        for (k, _) in &self.kv {
            if !known.contains(k) {
                return Err(format!(
                    "policy `{}` has no parameter `{k}` (it takes: {})",
                    self.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        Ok(())
    }

    fn get(&self, k: &str) -> Option<&'a str> {
        self.kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
    }

    fn count(&self, k: &str, default: u32) -> Result<u32, String> {
        self.get(k).map_or(Ok(default), |v| {
            v.parse::<u32>().map_err(|_| {
                format!(
                    "policy `{}`: {k} must be a whole number, not `{v}`",
                    self.name
                )
            })
        })
    }

    fn duration(&self, k: &str, default: u64) -> Result<u64, String> {
        self.get(k).map_or(Ok(default), |v| {
            humantime_ms(v).ok_or_else(|| {
                format!(
                    "policy `{}`: {k} must be a duration like 300ms or 5m, not `{v}`",
                    self.name
                )
            })
        })
    }

    /// `every`, 5 minutes unless given: the schedules run on whole minutes.
    fn every_ms(&self) -> Result<u64, String> {
        let every_ms = self.duration("every", 300_000)?;
        if every_ms < 60_000 {
            return Err(format!("policy `{}`: every must be at least 1m", self.name));
        }
        Ok(every_ms)
    }
}

/// A duration in milliseconds, in the grammar of every duration forewarm
/// reads (`300ms`, `5m`, `1h30m`: humantime's).
fn humantime_ms(s: &str) -> Option<u64> {
    humantime::parse_duration(s.trim())
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dur = |ms: u64| {
            if ms.is_multiple_of(60_000) {
                format!("{}m", ms / 60_000)
            } else if ms.is_multiple_of(1_000) {
                format!("{}s", ms / 1_000)
            } else {
                format!("{ms}ms")
            }
        };
        match self {
            PolicySpec::None => f.write_str("none"),
            PolicySpec::Oracle => f.write_str("oracle"),
            PolicySpec::Fixed {
                n,
                every_ms,
                delay_ms,
            } => {
                write!(
                    f,
                    "fixed:n={n},every={},delay={}",
                    dur(*every_ms),
                    dur(*delay_ms)
                )
            }
            PolicySpec::LambdaWarmer { n, every_ms } => {
                write!(f, "lambda-warmer:n={n},every={}", dur(*every_ms))
            }
            PolicySpec::Provisioned { n: Some(n) } => write!(f, "provisioned:n={n}"),
            PolicySpec::Provisioned { n: None } => f.write_str("provisioned:auto"),
            PolicySpec::Forewarm { doc, .. } if doc.is_empty() => f.write_str("forewarm"),
            PolicySpec::Forewarm { doc, .. } => {
                let parts: Vec<String> = doc
                    .iter()
                    .map(|(k, v)| match v {
                        Scalar::Str(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
                write!(f, "forewarm:{}", parts.join(","))
            }
        }
    }
}

/// What a simulated policy does to the fleet, minute by minute: the one
/// thing in which the policies differ (the engine, [`super::run_policy`],
/// plays the same workload on the same platform under each).
pub(crate) trait Warming {
    /// Acts at the start of minute `m` (at `t0`). Returns the controller's
    /// target for function `timeline` (0 where there is none).
    fn at_minute(&mut self, fleet: &mut Fleet, m: usize, t0: u64, timeline: Option<usize>) -> u32;

    /// After the minute has run.
    fn after_minute(&mut self, _fleet: &mut Fleet, _m: usize) {}

    /// The controller's own bill over the report period (none for a
    /// baseline).
    fn cost_parts(&self, _model: &Model, _report_from_ms: u64) -> CostParts {
        CostParts::default()
    }

    /// Functions judged not worth warming in the report period (none for a
    /// baseline).
    fn not_worth_it(&self, _report_from_ms: u64) -> u64 {
        0
    }

    /// What the controller forecast for each window and what came, when it
    /// was asked to keep them.
    fn forecasts(&mut self, _fleet: &mut Fleet, _report_from_ms: u64) -> Option<Record> {
        None
    }
}

/// What a policy needs to set itself up for a run.
pub(crate) struct Setting<'a> {
    pub(crate) model: &'a Model,
    pub(crate) functions: usize,
    pub(crate) minutes: usize,
    pub(crate) seed: u64,
    /// Keep the controller's forecasts (`forewarm forecast`).
    pub(crate) record: bool,
    pub(crate) init_allowance_ms: u64,
}

impl PolicySpec {
    /// This policy's behaviour for a run.
    pub(crate) fn warming(&self, s: &Setting<'_>) -> Box<dyn Warming> {
        let gap_ms = s.model.invoke.fanout_gap_ms.round() as u64;
        match self {
            PolicySpec::None | PolicySpec::Oracle => Box::new(NoWarming),
            PolicySpec::Fixed {
                n,
                every_ms,
                delay_ms,
            } => Box::new(FixedWarming {
                n: *n,
                every_ms: *every_ms,
                delay_ms: *delay_ms,
                gap_ms,
            }),
            PolicySpec::LambdaWarmer { n, every_ms } => Box::new(LambdaWarmerFanout {
                n: *n,
                every_ms: *every_ms,
                gap_ms,
                async_delay_ms: (
                    s.model.invoke.async_delay_min_ms,
                    s.model.invoke.async_delay_max_ms,
                ),
                // Its own draws have their own stream, so the workload is
                // the same under every policy.
                rng: (0..s.functions)
                    .map(|i| Pcg64Mcg::new(stream_seed(s.seed, i as u64, 3) as u128 | 1))
                    .collect(),
            }),
            PolicySpec::Provisioned { n: Some(n) } => Box::new(ProvisionedFixed { n: *n }),
            PolicySpec::Provisioned { n: None } => Box::new(ProvisionedByHour {
                peaks: vec![[0; 24]; s.functions],
            }),
            PolicySpec::Forewarm { policy, .. } => {
                let mut controller = SimController::new(s.functions, policy.clone(), s.model)
                    .with_init_allowance_ms(s.init_allowance_ms);
                if s.record {
                    controller.record_forecasts(
                        s.minutes
                            .div_ceil(crate::decision::policy::WINDOW_MINUTES as usize),
                    );
                }
                Box::new(ForewarmWarming {
                    controller,
                    record: s.record,
                })
            }
        }
    }
}

/// `none` and `oracle` (the oracle's foresight is the platform's).
struct NoWarming;

impl Warming for NoWarming {
    fn at_minute(&mut self, _: &mut Fleet, _: usize, _: u64, _: Option<usize>) -> u32 {
        0
    }
}

/// `fixed`: n pings to every function every period, `gap_ms` apart.
struct FixedWarming {
    n: u32,
    every_ms: u64,
    delay_ms: u64,
    gap_ms: u64,
}

impl Warming for FixedWarming {
    fn at_minute(&mut self, fleet: &mut Fleet, _: usize, t0: u64, _: Option<usize>) -> u32 {
        if t0.is_multiple_of(self.every_ms) {
            // In time order across the fleet: the k-th ping of every
            // function before the next one of any.
            for k in 0..self.n as u64 {
                for i in 0..fleet.fns.len() {
                    fleet.ping(i, t0 + k * self.gap_ms, self.delay_ms);
                }
            }
        }
        0
    }
}

/// `lambda-warmer`: each function's self fan-out every period.
struct LambdaWarmerFanout {
    n: u32,
    every_ms: u64,
    gap_ms: u64,
    /// Lambda's async queue delay, (min, max) ms.
    async_delay_ms: (f64, f64),
    rng: Vec<Pcg64Mcg>,
}

impl Warming for LambdaWarmerFanout {
    fn at_minute(&mut self, fleet: &mut Fleet, _: usize, t0: u64, _: Option<usize>) -> u32 {
        if t0.is_multiple_of(self.every_ms) {
            let mut pings: Vec<(u64, u32, u64)> = Vec::new();
            for i in 0..self.rng.len() {
                self.fanout(&mut pings, i, t0);
            }
            pings.sort_unstable();
            for (at, i, hold) in pings {
                fleet.ping(i as usize, at, hold);
            }
        }
        0
    }
}

impl LambdaWarmerFanout {
    /// One ping reaches function `i`, which then invokes itself `n - 2`
    /// times asynchronously (through Lambda's queue, so they arrive spread
    /// over the async delay) and once synchronously, and waits for the
    /// synchronous one; the fan-out pings sleep 75 ms. Adds the pings to
    /// `out` as `(at, function, hold)`.
    fn fanout(&mut self, out: &mut Vec<(u64, u32, u64)>, i: usize, t0: u64) {
        let n = self.n;
        if n == 0 {
            return;
        }
        let hold = LAMBDA_WARMER_DELAY_MS;
        // The first invocation stays busy while it fans out and awaits the
        // sync one: about one hop plus the sync ping's sleep.
        let first_hold = if n > 1 { self.gap_ms + hold } else { 0 };
        out.push((t0, i as u32, first_hold));
        if n == 1 {
            return;
        }
        let (lo, hi) = self.async_delay_ms;
        let rng = &mut self.rng[i];
        let mut fan: Vec<u64> = (0..n - 2)
            .map(|_| t0 + (lo + (hi - lo) * rng.random::<f64>()).round() as u64)
            .collect();
        fan.push(t0 + self.gap_ms);
        out.extend(fan.into_iter().map(|at| (at, i as u32, hold)));
    }
}

/// `provisioned:n=N`: N sandboxes of Provisioned Concurrency from the start.
struct ProvisionedFixed {
    n: u32,
}

impl Warming for ProvisionedFixed {
    fn at_minute(&mut self, fleet: &mut Fleet, m: usize, t0: u64, _: Option<usize>) -> u32 {
        if m == 0 {
            for i in 0..fleet.fns.len() {
                fleet.set_provisioned(i, t0, self.n);
            }
        }
        0
    }
}

/// `provisioned:auto`: each hour set to the same hour's peak the day before.
struct ProvisionedByHour {
    peaks: Vec<[u32; 24]>,
}

impl Warming for ProvisionedByHour {
    fn at_minute(&mut self, fleet: &mut Fleet, m: usize, t0: u64, _: Option<usize>) -> u32 {
        if m.is_multiple_of(60) {
            let hour = (m / 60) % 24;
            for (i, peaks) in self.peaks.iter_mut().enumerate() {
                let f = &mut fleet.fns[i];
                if m > 0 {
                    peaks[(hour + 23) % 24] = f.hour_peak;
                }
                f.hour_peak = 0;
                fleet.set_provisioned(i, t0, peaks[hour]);
            }
        }
        0
    }
}

/// `forewarm`: the real controller's tick over the simulated ports.
struct ForewarmWarming {
    controller: SimController,
    record: bool,
}

impl Warming for ForewarmWarming {
    fn at_minute(&mut self, fleet: &mut Fleet, _: usize, t0: u64, timeline: Option<usize>) -> u32 {
        let targets = self.controller.tick(fleet, t0);
        timeline.map_or(0, |i| targets.get(i).copied().unwrap_or(0))
    }

    fn after_minute(&mut self, fleet: &mut Fleet, m: usize) {
        // Recorded minutes older than any read reaches are dropped, hourly,
        // to bound the run's memory.
        if m.is_multiple_of(60) {
            for f in fleet.fns.iter_mut() {
                f.forget_before(
                    (m as u64).saturating_sub(crate::decision::MAX_BACKFILL_MINUTES + 60),
                );
            }
        }
    }

    fn cost_parts(&self, model: &Model, report_from_ms: u64) -> CostParts {
        self.controller.cost_parts(model, report_from_ms)
    }

    fn not_worth_it(&self, report_from_ms: u64) -> u64 {
        self.controller.not_worth_it(report_from_ms)
    }

    fn forecasts(&mut self, fleet: &mut Fleet, report_from_ms: u64) -> Option<Record> {
        if !self.record {
            return None;
        }
        Some(Record {
            targets: self.controller.forecasts(),
            real_peaks: fleet
                .fns
                .iter_mut()
                .map(|f| std::mem::take(&mut f.real_peaks))
                .collect(),
            report_from_minute: (report_from_ms / 60_000) as usize,
            lag_minutes: self.controller.metrics_lag_minutes() as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in [
            "none",
            "oracle",
            "fixed:n=3,every=5m,delay=300ms",
            "lambda-warmer:n=5,every=15m",
            "provisioned:n=2",
            "provisioned:auto",
            "forewarm",
            "forewarm:quantile=0.9",
        ] {
            assert_eq!(PolicySpec::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            PolicySpec::parse("fixed").unwrap().to_string(),
            "fixed:n=1,every=5m,delay=300ms"
        );
        // The grammar of `--ttl` and every other duration read.
        assert_eq!(
            PolicySpec::parse("fixed:n=2,every=1h30m,delay=1s")
                .unwrap()
                .to_string(),
            "fixed:n=2,every=90m,delay=1s"
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = |s| PolicySpec::parse(s).unwrap_err();
        assert!(e("warmest").contains("unknown policy `warmest`"));
        assert!(e("fixed:m=3").contains("no parameter `m`"));
        assert!(e("fixed:n=three").contains("n must be a whole number"));
        assert!(e("fixed:every=soon").contains("every must be a duration"));
        assert!(e("fixed:n").contains("key=value"));
        assert!(e("forewarm:quantile=2").contains("quantile (2)"));
        assert!(e("forewarm:qantile=0.9").contains("unknown attribute"));
    }
}
