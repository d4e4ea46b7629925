//! Metrics from CloudWatch `GetMetricData`, batched.
//!
//! Per function and qualifier, five one-minute series: `AWS/Lambda`
//! `ConcurrentExecutions` (Maximum), `Invocations` (Sum), `Duration`
//! (Average), `Throttles` (Sum), and the shims' `Forewarm/ColdStart` (Sum).
//! One call carries up to 500 queries (and at most 100,800 datapoints), so
//! functions are packed into as few calls as those limits allow, never one
//! call per function; `NextToken` pages are followed. A minute without any
//! datapoint is left out: Lambda emits nothing when nothing ran, and the
//! core counts such minutes (below the observation's end) as idle.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StatusCode};

use super::port_error;
use crate::decision::MinuteMetrics;
use crate::ports::{ErrorKind, FunctionRef, MetricsRequest, MetricsSource, PortError};

/// Queries per `GetMetricData` call (the API's limit).
pub const MAX_QUERIES: usize = 500;
/// Datapoints per call (the API's limit).
pub const MAX_DATAPOINTS: usize = 100_800;

/// The series read per function: namespace, metric, statistic.
const SERIES: [(&str, &str, &str); 5] = [
    ("AWS/Lambda", "ConcurrentExecutions", "Maximum"),
    ("AWS/Lambda", "Invocations", "Sum"),
    ("AWS/Lambda", "Duration", "Average"),
    ("AWS/Lambda", "Throttles", "Sum"),
    ("Forewarm", "ColdStart", "Sum"),
];

/// The CloudWatch metrics source.
#[derive(Debug)]
pub struct CloudWatchMetrics {
    client: Client,
    calls: AtomicU64,
}

impl Clone for CloudWatchMetrics {
    fn clone(&self) -> Self {
        CloudWatchMetrics {
            client: self.client.clone(),
            calls: AtomicU64::new(0),
        }
    }
}

/// The bare function name CloudWatch dimensions use (an ARN's last part).
pub fn function_name(f: &FunctionRef) -> &str {
    match f.name.strip_prefix("arn:") {
        Some(_) => f.name.rsplit(':').next().unwrap_or(&f.name),
        None => &f.name,
    }
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn query(id: String, f: &FunctionRef, series: usize) -> MetricDataQuery {
    let (namespace, metric, stat) = SERIES[series];
    let name = function_name(f);
    let mut m = Metric::builder()
        .namespace(namespace)
        .metric_name(metric)
        .dimensions(dimension("FunctionName", name));
    // Lambda publishes per-qualifier series with a `Resource` dimension; the
    // shims' cold starts only carry the function name.
    if let (Some(q), "AWS/Lambda") = (&f.qualifier, namespace) {
        m = m.dimensions(dimension("Resource", &format!("{name}:{q}")));
    }
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(m.build())
                .period(60)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

impl CloudWatchMetrics {
    /// A source over `client`.
    pub fn new(client: Client) -> Self {
        CloudWatchMetrics {
            client,
            calls: AtomicU64::new(0),
        }
    }

    /// `GetMetricData` calls made so far (one per page).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Functions per call: 500 queries, and no more datapoints than allowed
    /// for the longest span asked.
    pub fn functions_per_call(span_minutes: u64) -> usize {
        let by_points = MAX_DATAPOINTS / (span_minutes.max(1) as usize * SERIES.len());
        (MAX_QUERIES / SERIES.len()).min(by_points).max(1)
    }

    async fn fetch(
        &self,
        batch: &[MetricsRequest],
        first: usize,
    ) -> Result<HashMap<String, Vec<(u64, f64)>>, PortError> {
        let from = batch.iter().map(|r| r.from_minute).min().unwrap_or(0);
        let until = batch.iter().map(|r| r.until_minute).max().unwrap_or(0);
        let queries: Vec<MetricDataQuery> = batch
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                (0..SERIES.len()).map(move |k| query(format!("f{}s{k}", first + i), &r.function, k))
            })
            .collect();
        let mut out: HashMap<String, Vec<(u64, f64)>> = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let resp = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(DateTime::from_secs((from * 60) as i64))
                .end_time(DateTime::from_secs((until * 60) as i64))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    port_error(&format!("GetMetricData for {} functions", batch.len()), e)
                })?;
            for r in resp.metric_data_results() {
                let Some(id) = r.id() else { continue };
                if matches!(
                    r.status_code(),
                    Some(StatusCode::Forbidden | StatusCode::InternalError)
                ) {
                    return Err(PortError::new(
                        ErrorKind::Unavailable,
                        format!("GetMetricData: query {id} returned {:?}", r.status_code()),
                    ));
                }
                let points = out.entry(id.to_string()).or_default();
                for (t, v) in r.timestamps().iter().zip(r.values()) {
                    points.push(((t.secs().max(0) as u64) / 60, *v));
                }
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }
}

impl MetricsSource for CloudWatchMetrics {
    async fn observe(
        &self,
        requests: &[MetricsRequest],
    ) -> Result<Vec<Result<Vec<MinuteMetrics>, PortError>>, PortError> {
        let span = requests
            .iter()
            .map(|r| r.until_minute.saturating_sub(r.from_minute))
            .max()
            .unwrap_or(1);
        let per_call = Self::functions_per_call(span);
        let mut results = Vec::with_capacity(requests.len());
        for (c, batch) in requests.chunks(per_call).enumerate() {
            let first = c * per_call;
            let points = self.fetch(batch, first).await?;
            for (i, r) in batch.iter().enumerate() {
                let mut minutes: BTreeMap<u64, MinuteMetrics> = BTreeMap::new();
                for k in 0..SERIES.len() {
                    for &(minute, v) in points
                        .get(&format!("f{}s{k}", first + i))
                        .into_iter()
                        .flatten()
                    {
                        if minute < r.from_minute || minute >= r.until_minute {
                            continue;
                        }
                        let m = minutes.entry(minute).or_insert(MinuteMetrics {
                            minute,
                            ..MinuteMetrics::default()
                        });
                        let slot = match k {
                            0 => &mut m.concurrency_max,
                            1 => &mut m.invocations,
                            2 => &mut m.duration_avg_ms,
                            3 => &mut m.throttles,
                            _ => &mut m.cold_starts,
                        };
                        *slot = Some(v);
                    }
                }
                results.push(Ok(minutes.into_values().collect()));
            }
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_both_limits() {
        assert_eq!(
            CloudWatchMetrics::functions_per_call(15),
            100,
            "500 queries"
        );
        assert_eq!(
            CloudWatchMetrics::functions_per_call(180),
            100,
            "90,000 points"
        );
        assert_eq!(
            CloudWatchMetrics::functions_per_call(1_440),
            14,
            "backfilling a day"
        );
    }

    #[test]
    fn arns_become_bare_names() {
        let arn = FunctionRef::parse("arn:aws:lambda:us-east-1:123456789012:function:orders:live");
        assert_eq!(function_name(&arn), "orders");
        assert_eq!(arn.qualifier.as_deref(), Some("live"));
        assert_eq!(function_name(&FunctionRef::parse("orders:live")), "orders");
    }
}
