//! The simulator's figures: per policy, a fixed set of keys (the contract
//! scripts read; a test holds them), as JSON and as a table for people.

use serde::Serialize;

use super::model::Model;
use super::platform::Stats;
use crate::cost::CostParts;

/// One policy's figures over the report period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// The policy spec.
    pub name: String,
    /// Real requests.
    pub requests: u64,
    /// Real requests that paid a cold start.
    pub cold_starts: u64,
    /// `cold_starts / requests`.
    pub cold_start_rate: f64,
    /// Sandboxes created by pings.
    pub ping_cold_starts: u64,
    /// Real cold starts while pings held sandboxes of the function.
    pub interference_cold_starts: u64,
    /// Real requests throttled.
    pub throttles: u64,
    /// Pings sent.
    pub warm_pings: u64,
    /// Pings that reached their sandbox but answered after the controller's
    /// timeout (hold, INIT allowance and margin): the controller counted
    /// them failed. Only forewarm waits on its pings' answers. Not a JSON
    /// key (the report's keys are fixed); the table says it.
    #[serde(skip)]
    pub ping_timeouts: u64,
    /// What warming cost: pings (requests, holds, INIT of sandboxes they
    /// created), Provisioned Concurrency, the oracle's INIT, and forewarm's
    /// own controller runs, CloudWatch reads and DynamoDB units: the sum of
    /// `warm_cost_parts`.
    pub warm_cost_usd: f64,
    /// The same bill part by part.
    pub warm_cost_parts: CostParts,
    /// GB-seconds of sandboxes kept idle (including Provisioned Concurrency
    /// not in use).
    pub idle_gb_s: f64,
    /// 99th percentile of latency added to real requests by cold starts, ms.
    pub p99_added_latency_ms: f64,
    /// Functions the policy judged not worth warming at least once in the
    /// report period (`not_worth_it`: the cold starts warming could avoid
    /// worth less than its pings and bookkeeping); 0 for the baselines,
    /// which warm every function.
    pub not_worth_it_functions: u64,
    /// Events processed (not part of the JSON: it measures the run).
    #[serde(skip)]
    pub events: u64,
}

/// A whole simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// Scenario name.
    pub scenario: String,
    /// Functions in the workload.
    pub functions: usize,
    /// Simulated seconds in the report period.
    pub sim_seconds: f64,
    /// Wall-clock seconds the run took (the one machine-dependent figure,
    /// with `events_per_second`).
    pub wall_seconds: f64,
    /// Events processed per wall-clock second, over all policies.
    pub events_per_second: f64,
    /// One entry per policy run.
    pub policies: Vec<PolicyReport>,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

impl PolicyReport {
    /// Figures from a run's totals.
    pub fn from_stats(
        name: String,
        s: &Stats,
        model: &Model,
        controller: CostParts,
    ) -> PolicyReport {
        let p = &model.prices;
        // The platform counts GB-milliseconds.
        let gb_s = |gb_ms: f64| gb_ms / 1_000.0;
        let init = if p.init_billed { 1.0 } else { 0.0 };
        let parts = CostParts {
            pings: s.pings as f64 * p.request_usd + gb_s(s.ping_gb_ms) * p.gb_second_usd,
            init: init * gb_s(s.ping_init_gb_ms + s.oracle_init_gb_ms) * p.gb_second_usd,
            provisioned: gb_s(s.provisioned_gb_ms) * p.provisioned_gb_second_usd,
            ..controller
        }
        .rounded(9);
        PolicyReport {
            name,
            requests: s.requests,
            cold_starts: s.cold_starts,
            cold_start_rate: if s.requests == 0 {
                0.0
            } else {
                round(s.cold_starts as f64 / s.requests as f64, 8)
            },
            ping_cold_starts: s.ping_cold_starts,
            interference_cold_starts: s.interference_cold_starts,
            throttles: s.throttles,
            warm_pings: s.pings,
            ping_timeouts: s.ping_timeouts,
            warm_cost_usd: round(parts.total(), 9),
            warm_cost_parts: parts,
            idle_gb_s: round(gb_s(s.idle_gb_ms + s.provisioned_gb_ms), 3),
            p99_added_latency_ms: p99(&s.cold_latency_ms, s.requests),
            not_worth_it_functions: 0,
            events: s.events,
        }
    }
}

/// The 99th percentile of added latency over all `requests`, where only the
/// cold ones (listed) added any.
fn p99(cold: &[u32], requests: u64) -> f64 {
    if requests == 0 {
        return 0.0;
    }
    let rank = (0.99 * requests as f64).ceil() as u64; // 1-based rank of the p99
    let warm = requests - cold.len() as u64;
    if rank <= warm {
        return 0.0;
    }
    let mut c = cold.to_vec();
    c.sort_unstable();
    c[(rank - warm - 1) as usize] as f64
}

impl SimReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// A table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<38} {:>10} {:>9} {:>8} {:>7} {:>7} {:>9} {:>10} {:>10} {:>8}\n",
            "policy",
            "cold",
            "rate %",
            "ping-cs",
            "interf",
            "thrott",
            "pings",
            "warm $",
            "idle GB-h",
            "p99 ms"
        ));
        for p in &self.policies {
            out.push_str(&format!(
                "{:<38} {:>10} {:>9.4} {:>8} {:>7} {:>7} {:>9} {:>10.4} {:>10.1} {:>8.0}\n",
                truncate(&p.name, 38),
                p.cold_starts,
                100.0 * p.cold_start_rate,
                p.ping_cold_starts,
                p.interference_cold_starts,
                p.throttles,
                p.warm_pings,
                p.warm_cost_usd,
                p.idle_gb_s / 3_600.0,
                p.p99_added_latency_ms
            ));
        }
        for p in self
            .policies
            .iter()
            .filter(|p| p.warm_cost_parts.bookkeeping() > 0.0)
        {
            let c = &p.warm_cost_parts;
            out.push_str(&format!(
                "{}: warm ${:.4} = pings ${:.4} + init ${:.4} + controller runs ${:.4} + CloudWatch ${:.4} + DynamoDB ${:.4}\n",
                p.name, p.warm_cost_usd, c.pings, c.init, c.controller, c.cloudwatch, c.dynamodb
            ));
        }
        for p in self
            .policies
            .iter()
            .filter(|p| p.not_worth_it_functions > 0)
        {
            out.push_str(&format!(
                "{}: {} functions left cold where warming was worth less than it cost (not_worth_it)\n",
                p.name, p.not_worth_it_functions
            ));
        }
        for p in self.policies.iter().filter(|p| p.ping_timeouts > 0) {
            out.push_str(&format!(
                "{}: {} of {} cold pings answered after the controller's timeout (hold + INIT allowance + margin) and counted failed\n",
                p.name, p.ping_timeouts, p.ping_cold_starts
            ));
        }
        out
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_counts_warm_requests_as_zero() {
        assert_eq!(p99(&[500; 5], 1_000), 0.0, "0.5 % cold: p99 is warm");
        assert_eq!(
            p99(
                &[
                    100, 200, 300, 400, 500, 600, 700, 800, 900, 1_000, 1_100, 1_200
                ],
                1_000
            ),
            200.0
        );
        assert_eq!(p99(&[7], 1), 7.0);
        assert_eq!(p99(&[], 0), 0.0);
    }
}
