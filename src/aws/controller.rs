//! The controller: one tick over real AWS, shared by the controller Lambda
//! (`src/bin/controller.rs`) and `forewarm tick`.
//!
//! Configuration comes from the environment, each variable with its default:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FOREWARM_TABLE` | `forewarm` | the DynamoDB table of policies and state |
//! | `FOREWARM_MAX_IN_FLIGHT` | 1000 | invokes in flight at once, across functions |
//! | `FOREWARM_METRICS_EVERY_MINUTES` | 15 | minutes of new data per metrics read |
//! | `FOREWARM_LEASE_SECONDS` | 50 | how long a run owns a function (below the schedule's minute) |
//! | `FOREWARM_TIMEOUT_MARGIN_MS` | 5000 | time allowed for the network beyond a ping's hold and INIT |
//! | `FOREWARM_INIT_ALLOWANCE_MS` | 10000 | time allowed for a cold ping's INIT (Lambda's Init-phase limit; raise it for longer inits, keep hold + INIT + margin under the controller's 40 s) |
//! | `FOREWARM_CALL_TIMEOUT_MS` | 20000 | longest DynamoDB, CloudWatch or Lambda control-plane call, retries included (a stalled endpoint must not outlast the controller's 40 s) |
//! | `FOREWARM_ATTEMPT_TIMEOUT_MS` | 8000 | longest single attempt of such a call |
//! | `FOREWARM_EMF_PER_FUNCTION` | `false` | per-function decision metrics (custom metrics cost) |

use serde_json::json;

use crate::aws::{AwsPorts, CallTimeouts, WarmerConfig};
use crate::ports::FunctionRef;
use crate::tick::{TickConfig, TickReport, run_tick};

/// The controller's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// DynamoDB table.
    pub table: String,
    /// Warmer settings.
    pub warmer: WarmerConfig,
    /// Minutes of new data per metrics read.
    pub metrics_every_minutes: u64,
    /// Lease length, ms.
    pub lease_ms: u64,
    /// Time limits of every AWS call but the pings.
    pub timeouts: CallTimeouts,
    /// Whether decision metrics carry a `FunctionName` dimension.
    pub emf_per_function: bool,
}

/// A bad configuration value.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: `{value}` is not {expected}")]
pub struct ConfigError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What it should be.
    pub expected: &'static str,
}

impl ControllerConfig {
    /// Reads the environment through `get` (so tests need not touch the
    /// process environment).
    pub fn from_env_with(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<ControllerConfig, ConfigError> {
        let num = |variable: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(variable) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|x| *x > 0)
                    .ok_or(ConfigError {
                        variable,
                        value: v,
                        expected: "a positive whole number",
                    }),
            }
        };
        Ok(ControllerConfig {
            table: get("FOREWARM_TABLE")
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "forewarm".into()),
            warmer: WarmerConfig {
                max_in_flight: num("FOREWARM_MAX_IN_FLIGHT", 1_000)? as usize,
                timeout_margin_ms: num(
                    "FOREWARM_TIMEOUT_MARGIN_MS",
                    crate::decision::pings::TIMEOUT_MARGIN_MS,
                )?,
                init_allowance_ms: num("FOREWARM_INIT_ALLOWANCE_MS", crate::aws::INIT_LIMIT_MS)?,
            },
            metrics_every_minutes: num("FOREWARM_METRICS_EVERY_MINUTES", 15)?,
            lease_ms: num("FOREWARM_LEASE_SECONDS", 50)? * 1_000,
            timeouts: CallTimeouts {
                call_ms: num("FOREWARM_CALL_TIMEOUT_MS", 20_000)?,
                attempt_ms: num("FOREWARM_ATTEMPT_TIMEOUT_MS", 8_000)?,
            },
            emf_per_function: match get("FOREWARM_EMF_PER_FUNCTION").as_deref().map(str::trim) {
                None | Some("") | Some("false") | Some("0") => false,
                Some("true") | Some("1") => true,
                Some(other) => {
                    return Err(ConfigError {
                        variable: "FOREWARM_EMF_PER_FUNCTION",
                        value: other.to_string(),
                        expected: "true or false",
                    });
                }
            },
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<ControllerConfig, ConfigError> {
        ControllerConfig::from_env_with(|k| std::env::var(k).ok())
    }

    /// The tick settings for a run named `owner`.
    pub fn tick(&self, owner: impl Into<String>, dry_run: bool) -> TickConfig {
        TickConfig {
            lease_ms: self.lease_ms,
            metrics_every_minutes: self.metrics_every_minutes,
            dry_run,
            ..TickConfig::new(owner.into())
        }
    }
}

/// The controller's ports over the AWS configuration the environment gives
/// (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL_*`), with `cfg`'s call
/// timeouts: every client built once, for the life of the process.
pub async fn ports(cfg: &ControllerConfig) -> AwsPorts {
    let sdk = super::load_config(cfg.timeouts).await;
    AwsPorts::new(&sdk, cfg.table.clone(), cfg.warmer)
}

/// One tick over AWS at `now_ms`.
pub async fn run(ports: &AwsPorts, cfg: &TickConfig, now_ms: u64) -> TickReport {
    run_tick(
        &ports.store,
        &ports.metrics,
        &ports.warmer,
        &crate::ports::SystemClock,
        cfg,
        now_ms,
    )
    .await
}

/// What `pings` pings holding `delay_ms` each cost on a function of
/// `memory_mb`, at on-demand list prices.
pub fn ping_cost_usd(pings: u32, memory_mb: u32, delay_ms: u32) -> f64 {
    crate::cost::Prices::LIST.pings_usd(
        pings as u64,
        memory_mb as f64,
        pings as f64 * delay_ms as f64,
    )
}

/// One Embedded Metric Format line for the whole tick: one metric,
/// `TickCostUsd` (each custom metric is billed about $0.30 a month, so the
/// parts and the usage they are priced from, and the account's safe idle
/// gap, ride along as properties that CloudWatch Logs Insights can query
/// for free).
pub fn emf_cost_line(report: &TickReport, now_ms: u64) -> String {
    let c = &report.cost;
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Forewarm",
                "Dimensions": [[]],
                "Metrics": [{"Name": "TickCostUsd", "Unit": "None"}]
            }]
        },
        "TickCostUsd": c.total(),
        "CostParts": c,
        "Usage": report.usage,
        "IdleGapS": report.idle_gap_s,
    })
    .to_string()
}

/// One Embedded Metric Format line per function with a decision: what the
/// controller forecast and did, for dashboards and alarms.
///
/// The metrics are aggregated over all functions (no dimension) unless
/// `per_function`: each metric with a `FunctionName` dimension is a custom
/// metric billed monthly (about $0.30 each), so seven per function would cost
/// more than the warming itself for most fleets. The line still carries the
/// function's name as a property, so CloudWatch Logs Insights can break the
/// figures down per function for free.
pub fn emf_lines(
    report: &TickReport,
    now_ms: u64,
    per_function: bool,
    memory_mb: impl Fn(&FunctionRef) -> Option<u32>,
) -> Vec<String> {
    let dimensions = if per_function {
        json!([["FunctionName"]])
    } else {
        json!([[]])
    };
    report
        .functions
        .iter()
        .filter_map(|f| {
            let d = f.decision?;
            let w = f.warm.unwrap_or_default();
            let cost = ping_cost_usd(
                w.requested,
                memory_mb(&f.function).unwrap_or(crate::cost::DEFAULT_MEMORY_MB as u32),
                w.delay_ms,
            );
            Some(
                json!({
                    "_aws": {
                        "Timestamp": now_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": "Forewarm",
                            "Dimensions": dimensions,
                            "Metrics": [
                                {"Name": "Forecast", "Unit": "Count"},
                                {"Name": "Warmed", "Unit": "Count"},
                                {"Name": "Distinct", "Unit": "Count"},
                                {"Name": "ColdPings", "Unit": "Count"},
                                {"Name": "FailedPings", "Unit": "Count"},
                                {"Name": "DelayMs", "Unit": "Milliseconds"},
                                {"Name": "Margin", "Unit": "None"},
                                {"Name": "WarmCostUsd", "Unit": "None"}
                            ]
                        }]
                    },
                    "FunctionName": f.function.to_string(),
                    "Forecast": d.forecast,
                    "Warmed": d.pings(),
                    "Distinct": w.distinct,
                    "ColdPings": w.cold,
                    "FailedPings": w.failed,
                    "Failures": w.failures,
                    "DelayMs": w.delay_ms,
                    "Margin": d.margin,
                    "WarmCostUsd": cost,
                    "Reason": d.reason,
                })
                .to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_tick_line_carries_the_idle_gap_as_a_free_property() {
        let report = TickReport {
            idle_gap_s: Some(360),
            ..TickReport::default()
        };
        let v: serde_json::Value = serde_json::from_str(&emf_cost_line(&report, 5)).unwrap();
        assert_eq!(v["IdleGapS"], 360);
        let metrics = &v["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(metrics.as_array().map(Vec::len), Some(1), "{v}");
    }

    #[test]
    fn decision_metrics_are_aggregated_unless_asked() {
        use crate::decision::{Action, Decision, Reason};
        use crate::tick::FunctionOutcome;
        let d = Decision {
            action: Action::Warm {
                n: 3,
                delay_ms: 200,
            },
            reason: Reason::Due,
            forecast: 2.5,
            raw_target: 3,
            target: 3,
            capped_by: None,
            margin: 0.0,
            next_due_ms: 0,
            next_check_ms: 0,
            worth: None,
        };
        let report = TickReport {
            functions: vec![FunctionOutcome {
                function: crate::ports::FunctionRef::unqualified("orders"),
                decision: Some(d),
                warm: None,
                saved: true,
                note: None,
            }],
            ..TickReport::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&emf_lines(&report, 5, false, |_| None)[0]).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(
            (v["FunctionName"].as_str(), v["Warmed"].as_u64()),
            (Some("orders"), Some(3))
        );
        let v: serde_json::Value =
            serde_json::from_str(&emf_lines(&report, 5, true, |_| None)[0]).unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName"]])
        );
    }

    #[test]
    fn configuration_has_defaults_and_clear_errors() {
        let c = ControllerConfig::from_env_with(|_| None).unwrap();
        assert_eq!(
            (c.table.as_str(), c.metrics_every_minutes, c.lease_ms),
            ("forewarm", 15, 50_000)
        );
        let env: HashMap<&str, &str> =
            [("FOREWARM_TABLE", "t1"), ("FOREWARM_MAX_IN_FLIGHT", "64")].into();
        let c = ControllerConfig::from_env_with(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!((c.table.as_str(), c.warmer.max_in_flight), ("t1", 64));
        let e = ControllerConfig::from_env_with(|k| {
            (k == "FOREWARM_LEASE_SECONDS").then(|| "soon".into())
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "FOREWARM_LEASE_SECONDS: `soon` is not a positive whole number"
        );
    }
}
