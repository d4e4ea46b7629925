//! What warming costs, part by part, and the prices it is counted at.
//!
//! Every cent forewarm spends is one of six parts: the pings (requests and
//! the GB-seconds they hold sandboxes), the INIT billing of sandboxes the
//! pings created, Provisioned Concurrency (the `provisioned` baseline), the
//! controller's own runs, the CloudWatch metrics it requests and the DynamoDB
//! units it consumes. The tick counts the last two as [`Usage`] from the calls
//! its ports actually made; the simulator's ports count them by the same
//! rules the services bill by, so a simulated bill and a real one are made of
//! the same figures.

use serde::{Deserialize, Serialize};

/// Prices, USD. The simulator reads them from its model file (each with its
/// source); the controller uses [`Prices::LIST`].
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Per request.
    pub request_usd: f64,
    /// Per GB-second of on-demand duration.
    pub gb_second_usd: f64,
    /// Per GB-second of Provisioned Concurrency kept ready.
    pub provisioned_gb_second_usd: f64,
    /// Whether the INIT phase of on-demand sandboxes is billed as duration.
    pub init_billed: bool,
    /// Per metric requested from CloudWatch `GetMetricData`.
    pub metric_request_usd: f64,
    /// Per CloudWatch API request other than `GetMetricData` (`ListMetrics`).
    #[serde(default = "list_request_usd")]
    pub api_request_usd: f64,
    /// Per DynamoDB write request unit (1 KB written).
    pub dynamodb_write_unit_usd: f64,
    /// Per DynamoDB read request unit (4 KB read, strongly consistent).
    pub dynamodb_read_unit_usd: f64,
}

fn list_request_usd() -> f64 {
    Prices::LIST.api_request_usd
}

impl Prices {
    /// List prices in us-east-1 (x86, on-demand), as in
    /// `models/lambda-2021.toml`, where each carries its source. CloudWatch
    /// bills `ListMetrics` at $0.01 per 1,000 requests.
    pub const LIST: Prices = Prices {
        request_usd: 0.000_000_2,
        gb_second_usd: 0.000_016_666_7,
        provisioned_gb_second_usd: 0.000_004_166_7,
        init_billed: true,
        metric_request_usd: 0.000_01,
        api_request_usd: 0.000_01,
        dynamodb_write_unit_usd: 0.000_000_625,
        dynamodb_read_unit_usd: 0.000_000_125,
    };

    /// What `pings` pings holding `hold_ms` each cost on a function of
    /// `memory_mb`.
    pub fn pings_usd(&self, pings: u64, memory_mb: f64, hold_ms: f64) -> f64 {
        pings as f64 * self.request_usd + gb_s(memory_mb, hold_ms) * self.gb_second_usd
    }

    /// What the bookkeeping in `usage` costs: (CloudWatch, DynamoDB).
    pub fn usage_usd(&self, usage: &Usage) -> (f64, f64) {
        (
            usage.metrics_requested as f64 * self.metric_request_usd
                + usage.list_requests as f64 * self.api_request_usd,
            usage.write_units * self.dynamodb_write_unit_usd
                + usage.read_units * self.dynamodb_read_unit_usd,
        )
    }
}

/// GB-seconds of `ms` milliseconds at `memory_mb`.
fn gb_s(memory_mb: f64, ms: f64) -> f64 {
    memory_mb / 1_024.0 * ms / 1_000.0
}

/// What one tick's calls to CloudWatch and DynamoDB consumed, in the units
/// they are billed in, counted by the ports from the calls they made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Metrics requested from `GetMetricData` (billed per metric, whatever
    /// the span or the datapoints returned).
    pub metrics_requested: u64,
    /// `ListMetrics` requests (billed per request, up to 500 metrics a page).
    pub list_requests: u64,
    /// DynamoDB read request units.
    pub read_units: f64,
    /// DynamoDB write request units.
    pub write_units: f64,
}

impl Usage {
    /// `self` less `earlier`: what was consumed between two readings of one
    /// port's running count.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            metrics_requested: self
                .metrics_requested
                .saturating_sub(earlier.metrics_requested),
            list_requests: self.list_requests.saturating_sub(earlier.list_requests),
            read_units: (self.read_units - earlier.read_units).max(0.0),
            write_units: (self.write_units - earlier.write_units).max(0.0),
        }
    }

    /// Both together.
    pub fn plus(&self, other: &Usage) -> Usage {
        Usage {
            metrics_requested: self.metrics_requested + other.metrics_requested,
            list_requests: self.list_requests + other.list_requests,
            read_units: self.read_units + other.read_units,
            write_units: self.write_units + other.write_units,
        }
    }
}

/// A warming bill, part by part (USD); the parts sum to the total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CostParts {
    /// Ping requests and the GB-seconds their holds kept sandboxes busy.
    pub pings: f64,
    /// INIT billing of sandboxes that pings (or the oracle) created.
    pub init: f64,
    /// Provisioned Concurrency kept ready.
    pub provisioned: f64,
    /// The controller's own runs.
    pub controller: f64,
    /// CloudWatch requests.
    pub cloudwatch: f64,
    /// DynamoDB read and write units.
    pub dynamodb: f64,
}

impl CostParts {
    /// The whole bill.
    pub fn total(&self) -> f64 {
        self.pings
            + self.init
            + self.provisioned
            + self.controller
            + self.cloudwatch
            + self.dynamodb
    }

    /// What forewarm spends watching rather than warming: the controller,
    /// CloudWatch and DynamoDB.
    pub fn bookkeeping(&self) -> f64 {
        self.controller + self.cloudwatch + self.dynamodb
    }

    /// Every part rounded to `digits` decimals (for reports).
    pub fn rounded(&self, digits: i32) -> CostParts {
        let f = 10f64.powi(digits);
        let r = |x: f64| (x * f).round() / f;
        CostParts {
            pings: r(self.pings),
            init: r(self.init),
            provisioned: r(self.provisioned),
            controller: r(self.controller),
            cloudwatch: r(self.cloudwatch),
            dynamodb: r(self.dynamodb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bookkeeping_bill_is_priced_per_metric_request_and_unit() {
        let u = Usage {
            metrics_requested: 1_000,
            list_requests: 3,
            read_units: 8.0,
            write_units: 2.0,
        };
        let (cw, ddb) = Prices::LIST.usage_usd(&u);
        assert!((cw - (0.01 + 0.000_03)).abs() < 1e-12, "{cw}");
        assert!((ddb - (2.0 * 0.000_000_625 + 8.0 * 0.000_000_125)).abs() < 1e-15);
        let later = u.plus(&u);
        assert_eq!(later.since(&u), u);
    }
}
