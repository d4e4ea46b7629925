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

/// Memory taken for a function whose configuration was not read: Lambda's
/// default, 128 MB.
pub const DEFAULT_MEMORY_MB: f64 = 128.0;

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

/// CloudWatch's rules for the screen, as the simulator charges them: a
/// `ListMetrics` page lists at most 500 metrics, and each page is one
/// request billed.
pub mod cloudwatch {
    /// Metrics a `ListMetrics` page lists at most.
    pub const METRICS_PER_PAGE: u64 = 500;

    /// Requests a listing of `metrics` metrics takes: one page per
    /// [`METRICS_PER_PAGE`], and one even when nothing is listed.
    pub fn list_pages(metrics: u64) -> u64 {
        metrics.div_ceil(METRICS_PER_PAGE).max(1)
    }
}

/// DynamoDB's billing rules, as the simulator charges them and the
/// stand-ins' front door (`tests/support/moto_cbor.py`) reports them: an
/// item's size is its attribute names' and values' bytes, a number about
/// one byte per two significant digits plus one; a write costs one unit per
/// KB of the larger of the item before and after; a consistent read one per
/// 4 KB (an item that is not there still costs one); a scan half a unit
/// per 4 KB of what it reads.
pub mod dynamodb {
    /// Bytes of a number given as its decimal text: leading and trailing
    /// zeros do not count, one byte per two significant digits, plus one.
    pub fn number_bytes(text: &str) -> u64 {
        let digits: String = text
            .trim()
            .trim_start_matches(['-', '+'])
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let significant = digits.trim_matches('0').len().max(1) as u64;
        significant.div_ceil(2) + 1
    }

    /// Bytes of a whole number ([`number_bytes`] without writing it out:
    /// the simulator sizes every save).
    pub fn integer_bytes(mut n: u64) -> u64 {
        while n != 0 && n.is_multiple_of(10) {
            n /= 10;
        }
        let significant = n.checked_ilog10().map_or(1, |d| u64::from(d) + 1);
        significant.div_ceil(2) + 1
    }

    /// Bytes of a string attribute named `name` holding `value`.
    pub fn text_bytes(name: &str, value: &str) -> u64 {
        (name.len() + value.len()) as u64
    }

    /// A function's state item, as both state stores lay it out.
    #[derive(Debug, Clone, Copy)]
    pub struct StateItem<'a> {
        /// Its key: the function (`pk`).
        pub function: &'a str,
        /// The stored (deflated) state's length.
        pub stored_len: usize,
        /// The version the save writes.
        pub version: u64,
        /// When the function's next look is due.
        pub next_check_ms: u64,
        /// The saving run's mark.
        pub saved_by: u32,
        /// Its average real concurrency, as the number's text.
        pub real_busy: &'a str,
        /// A planned run's spacing and end.
        pub slots: Option<(u64, u64)>,
        /// Its last error.
        pub last_error: Option<&'a str>,
    }

    impl StateItem<'_> {
        /// Its billed size.
        pub fn bytes(&self) -> u64 {
            let num = |name: &str, n: u64| name.len() as u64 + integer_bytes(n);
            text_bytes("pk", self.function)
                + text_bytes("sk", "state")
                + "state".len() as u64
                + self.stored_len as u64
                + num("version", self.version)
                + num("next_check_ms", self.next_check_ms)
                + num("saved_by", u64::from(self.saved_by))
                + "real_busy".len() as u64
                + number_bytes(self.real_busy)
                + self.slots.map_or(0, |(every, until)| {
                    num("run_every_ms", every) + num("run_until_ms", until)
                })
                + self.last_error.map_or(0, |e| text_bytes("last_error", e))
        }
    }

    /// The account's state item (key `*`), which holds the run's claim,
    /// the last tick's time, the pings the last runs sent to functions
    /// sharing the account's pool and the account's reaping evidence (their
    /// stored texts, empty: none); `owner` is `None` once the claim is
    /// released.
    pub fn run_item_bytes(
        owner: Option<(&str, u64)>,
        last_tick_ms: u64,
        pool_pings: &str,
        reaping: &str,
    ) -> u64 {
        let text = |name: &str, t: &str| if t.is_empty() { 0 } else { text_bytes(name, t) };
        text_bytes("pk", "*")
            + text_bytes("sk", "state")
            + "last_tick_ms".len() as u64
            + integer_bytes(last_tick_ms)
            + text("pool_pings", pool_pings)
            + text("reaping", reaping)
            + owner.map_or(0, |(o, until)| {
                text_bytes("lease_owner", o) + "lease_until".len() as u64 + integer_bytes(until)
            })
    }

    /// Write units of one write to an item of `before` bytes leaving
    /// `after` (0: no item).
    pub fn write_units(before: u64, after: u64) -> f64 {
        before.max(after).max(1).div_ceil(1_024) as f64
    }

    /// Read units of a consistent GetItem of an item of `bytes` (0: none).
    pub fn consistent_read_units(bytes: u64) -> f64 {
        bytes.max(1).div_ceil(4_096) as f64
    }

    /// Read units of an eventually consistent Scan over items of `bytes` in
    /// all, page by page (a page reads at most 1 MB).
    pub fn scan_units(bytes: u64) -> f64 {
        let pages = bytes.div_ceil(1 << 20).max(1);
        let per_page = bytes.div_ceil(pages);
        pages as f64 * per_page.max(1).div_ceil(4_096) as f64 * 0.5
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

    #[test]
    fn numbers_are_sized_by_their_significant_digits() {
        use dynamodb::number_bytes;
        // One byte per two significant digits, plus one.
        assert_eq!(number_bytes("7"), 2);
        assert_eq!(number_bytes("1764892800000"), 5, "trailing zeros trimmed");
        assert_eq!(number_bytes("1764892812345"), 8);
        assert_eq!(number_bytes("2.75"), 3);
        assert_eq!(number_bytes("0.125"), 3, "the leading zero trimmed");
        assert_eq!(number_bytes("0"), 2);
        for n in [0, 7, 10, 1_764_892_800_000, 1_764_892_812_345, u64::MAX] {
            assert_eq!(
                dynamodb::integer_bytes(n),
                number_bytes(&n.to_string()),
                "{n}"
            );
        }
    }

    #[test]
    fn units_round_up_per_kilobyte_written_and_four_read() {
        use dynamodb::*;
        assert_eq!(write_units(0, 1_024), 1.0);
        assert_eq!(
            write_units(1_025, 10),
            2.0,
            "the larger of before and after"
        );
        assert_eq!(write_units(0, 0), 1.0);
        assert_eq!(consistent_read_units(0), 1.0, "a missing item costs one");
        assert_eq!(consistent_read_units(4_097), 2.0);
        assert_eq!(scan_units(0), 0.5);
        assert_eq!(scan_units(8_192), 1.0);
        assert_eq!(scan_units(3 << 20), 3.0 * 256.0 * 0.5, "three full pages");
    }
}
