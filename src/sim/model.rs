//! The platform model: numbers about Lambda, read from `models/*.toml`.
//!
//! The simulator's behaviour is data, not code: each model file gives idle
//! reaping, cold-start latency, scaling limits, fan-out timing and prices,
//! every number with its source in a comment. Three ship with forewarm and are
//! compiled in (`lambda-2021`, the default; `lambda-2019`; `vpc-2018`, the
//! seed's world); `--model FILE` reads any other.

use std::path::Path;

use serde::Deserialize;

/// A platform model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Short name.
    pub name: String,
    /// One line for reports.
    #[serde(default)]
    pub description: String,
    /// Idle sandbox reaping.
    pub reaping: Reaping,
    /// Cold-start latency.
    pub cold_start: ColdStart,
    /// Scaling and concurrency limits.
    pub scaling: Scaling,
    /// Invocation timing.
    pub invoke: Invoke,
    /// How long real requests run.
    #[serde(default)]
    pub durations: Durations,
    /// Prices.
    pub prices: Prices,
}

/// Idle reaping: a sandbox idle since `t` is reaped at `t + TTL`, the TTL drawn
/// uniformly from `ttl_min_s..=ttl_max_s` for each idle period.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reaping {
    /// Shortest idle lifetime, seconds.
    pub ttl_min_s: f64,
    /// Longest idle lifetime, seconds.
    pub ttl_max_s: f64,
}

/// Cold-start latency: log-normal through a median and a 95th percentile.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColdStart {
    /// Median, ms.
    pub median_ms: f64,
    /// 95th percentile, ms (equal to the median for a fixed latency).
    pub p95_ms: f64,
}

/// Scaling limits.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    /// New execution environments per function per 10 s.
    pub new_per_10s: f64,
    /// The account's concurrency, shared by its functions without
    /// reserved concurrency.
    pub account_concurrency: u32,
}

/// How a real request's duration is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Durations {
    /// The shape of each function's durations.
    #[serde(default)]
    pub shape: DurationShape,
}

/// The shape of a function's durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurationShape {
    /// From the trace's percentiles where it has them (log-linear between
    /// them), else exponential with the trace's mean. The default: real
    /// durations are skewed over decades, with tails no exponential has.
    #[default]
    Empirical,
    /// Exponential with the trace's mean, always (the validation cells'
    /// service law).
    Exponential,
}

/// Invocation timing.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoke {
    /// Gap between consecutive pings of one synchronous fan-out, ms.
    pub fanout_gap_ms: f64,
    /// Asynchronous invocation queue delay, lower bound, ms.
    pub async_delay_min_ms: f64,
    /// Asynchronous invocation queue delay, upper bound, ms.
    pub async_delay_max_ms: f64,
    /// The controller Lambda's memory, MB.
    pub controller_memory_mb: f64,
    /// The controller's run time per tick beyond its longest hold, ms.
    pub controller_overhead_ms: f64,
}

pub use crate::cost::Prices;

/// A model file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not readable.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or a field missing or of the wrong type.
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's message (it names the line and the field).
        message: String,
    },
    /// A number out of range.
    #[error("{file}: {field} must be {rule}, not {value}")]
    Range {
        /// The file.
        file: String,
        /// The field, dotted.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
        /// What it was.
        value: f64,
    },
    /// No bundled model of that name, and no such file.
    #[error(
        "unknown model `{0}`: use lambda-2021, lambda-2019, vpc-2018 or a path to a .toml file"
    )]
    Unknown(String),
}

const BUNDLED: &[(&str, &str)] = &[
    ("lambda-2021", include_str!("../../models/lambda-2021.toml")),
    ("lambda-2019", include_str!("../../models/lambda-2019.toml")),
    ("vpc-2018", include_str!("../../models/vpc-2018.toml")),
];

impl Model {
    /// A bundled model by name, or a model file by path.
    pub fn load(name_or_path: &str) -> Result<Model, ModelError> {
        if let Some((_, text)) = BUNDLED.iter().find(|(n, _)| *n == name_or_path) {
            return Model::parse(text, name_or_path);
        }
        let path = Path::new(name_or_path);
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
                file: name_or_path.to_string(),
                source,
            })?;
            return Model::parse(&text, name_or_path);
        }
        Err(ModelError::Unknown(name_or_path.to_string()))
    }

    /// Parses and checks a model's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Model, ModelError> {
        let m: Model = toml::from_str(text).map_err(|e| ModelError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        m.check(file)?;
        Ok(m)
    }

    /// Every number within its rule, checked in the order the file lists
    /// them; the first one outside is the error. One row per number of the
    /// model, so the table is as long as the model is wide.
    fn check(&self, file: &str) -> Result<(), ModelError> {
        let (r, c, i, p) = (&self.reaping, &self.cold_start, &self.invoke, &self.prices);
        let rules = [
            (
                "reaping.ttl_min_s",
                "positive",
                r.ttl_min_s,
                r.ttl_min_s > 0.0,
            ),
            (
                "reaping.ttl_max_s",
                "at least ttl_min_s",
                r.ttl_max_s,
                r.ttl_max_s >= r.ttl_min_s,
            ),
            (
                "cold_start.median_ms",
                "non-negative",
                c.median_ms,
                c.median_ms >= 0.0,
            ),
            (
                "cold_start.p95_ms",
                "at least median_ms",
                c.p95_ms,
                c.p95_ms >= c.median_ms,
            ),
            (
                "scaling.new_per_10s",
                "positive",
                self.scaling.new_per_10s,
                self.scaling.new_per_10s > 0.0,
            ),
            (
                "invoke.fanout_gap_ms",
                "non-negative",
                i.fanout_gap_ms,
                i.fanout_gap_ms >= 0.0,
            ),
            (
                "invoke.async_delay_min_ms",
                "non-negative",
                i.async_delay_min_ms,
                i.async_delay_min_ms >= 0.0,
            ),
            (
                "invoke.async_delay_max_ms",
                "at least async_delay_min_ms",
                i.async_delay_max_ms,
                i.async_delay_max_ms >= i.async_delay_min_ms,
            ),
            (
                "invoke.controller_memory_mb",
                "positive",
                i.controller_memory_mb,
                i.controller_memory_mb > 0.0,
            ),
            (
                "invoke.controller_overhead_ms",
                "non-negative",
                i.controller_overhead_ms,
                i.controller_overhead_ms >= 0.0,
            ),
        ];
        let prices = [
            ("prices.request_usd", p.request_usd),
            ("prices.gb_second_usd", p.gb_second_usd),
            (
                "prices.provisioned_gb_second_usd",
                p.provisioned_gb_second_usd,
            ),
            ("prices.metric_request_usd", p.metric_request_usd),
            ("prices.api_request_usd", p.api_request_usd),
            ("prices.dynamodb_write_unit_usd", p.dynamodb_write_unit_usd),
            ("prices.dynamodb_read_unit_usd", p.dynamodb_read_unit_usd),
        ]
        .map(|(field, v)| (field, "non-negative", v, v >= 0.0));
        for (field, rule, value, ok) in rules.into_iter().chain(prices) {
            if !(ok && value.is_finite()) {
                return Err(ModelError::Range {
                    file: file.to_string(),
                    field,
                    rule,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Overrides the reaping TTL (`--ttl 10m` or `--ttl 5m..7m`).
    pub fn with_ttl(mut self, min_s: f64, max_s: f64) -> Model {
        self.reaping = Reaping {
            ttl_min_s: min_s,
            ttl_max_s: max_s.max(min_s),
        };
        self
    }

    /// Log-normal parameters (mu, sigma) of cold-start latency in ms.
    pub fn cold_start_lognormal(&self) -> (f64, f64) {
        let c = self.cold_start;
        let median = c.median_ms.max(1e-3);
        let sigma = ((c.p95_ms.max(median) / median).ln() / 1.644_853_626_951_472_2).max(0.0);
        (median.ln(), sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_models_load_and_check() {
        for name in ["lambda-2021", "lambda-2019", "vpc-2018"] {
            let m = Model::load(name).unwrap();
            assert_eq!(m.name, name);
        }
        let vpc = Model::load("vpc-2018").unwrap();
        let (mu, sigma) = vpc.cold_start_lognormal();
        assert!((mu.exp() - 8_300.0).abs() < 1.0);
        assert!((mu + 1.644_853_6 * sigma).exp() - 15_000.0 < 1.0);
    }

    #[test]
    fn the_controllers_list_prices_are_the_default_models() {
        // Two copies of one fact: the controller cannot read a model file at
        // run time, so the copy it compiles in is held to the sourced one.
        assert_eq!(Model::load("lambda-2021").unwrap().prices, Prices::LIST);
    }

    #[test]
    fn bad_models_are_named_with_file_and_field() {
        let base = include_str!("../../models/lambda-2021.toml");
        let neg = base.replace("ttl_min_s = 300", "ttl_min_s = -5");
        let e = Model::parse(&neg, "m.toml").unwrap_err().to_string();
        assert_eq!(e, "m.toml: reaping.ttl_min_s must be positive, not -5");
        let missing = base.replace("median_ms = 250\n", "");
        let e = Model::parse(&missing, "m.toml").unwrap_err().to_string();
        assert!(e.contains("m.toml") && e.contains("median_ms"), "{e}");
        assert!(
            Model::load("lambda-1999")
                .unwrap_err()
                .to_string()
                .contains("unknown model")
        );
    }
}
