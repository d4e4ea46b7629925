//! Metrics from CloudWatch `GetMetricData`, batched.
//!
//! Per function and qualifier, one-minute series: always `AWS/Lambda`
//! `ConcurrentExecutions` (Maximum), which carries the forecast (Lambda
//! emits it for every function, version and alias); on a detail read (one in
//! several, see `decision::DETAIL_EVERY_MINUTES`) also `Invocations` (Sum),
//! `Duration` (Average) and the shims' `Forewarm/ColdStart` (Sum), from
//! which the core learns what share of a peak is busy on average. `GetMetricData` bills per metric requested, so
//! a read asks for nothing a decision does not use (no `Throttles`).
//! One call carries up to 500 queries (and at most 100,800 datapoints), so
//! functions are packed into as few calls as those limits allow, never one
//! call per function; `NextToken` pages are followed, and each page counts
//! its queries again in [`MetricsSource::usage`]. A minute without any
//! datapoint is left out: Lambda emits nothing when nothing ran, and the
//! core counts such minutes (below the observation's end) as idle.
//!
//! Functions that ran nothing lately need no read at all: `ListMetrics`
//! with `RecentlyActive=PT3H` lists, at one request per 500 metrics, every
//! function with an `Invocations` datapoint in the last three hours (the
//! tick screens with it when that costs less than the reads it spares).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricStat, RecentlyActive, StatusCode,
};

use super::port_error;
use crate::decision::MinuteMetrics;
use crate::ports::{ErrorKind, FunctionRef, MetricsRequest, MetricsSource, PortError, Usage};

/// Queries per `GetMetricData` call (the API's limit).
pub(crate) const MAX_QUERIES: usize = 500;
/// Datapoints per call (the API's limit).
pub(crate) const MAX_DATAPOINTS: usize = 100_800;

/// The series read per function: namespace, metric, statistic. The first
/// on every read, all of them on a detail read: as many as
/// [`MetricsRequest::series`], which is what the simulator bills.
const SERIES: [(&str, &str, &str); 4] = [
    ("AWS/Lambda", "ConcurrentExecutions", "Maximum"),
    ("AWS/Lambda", "Invocations", "Sum"),
    ("AWS/Lambda", "Duration", "Average"),
    ("Forewarm", "ColdStart", "Sum"),
];
/// Series a request asks for: the first [`MetricsRequest::series`] of
/// [`SERIES`].
fn series(r: &MetricsRequest) -> usize {
    (r.series() as usize).min(SERIES.len())
}

/// The CloudWatch metrics source.
#[derive(Debug)]
pub struct CloudWatchMetrics {
    client: Client,
    calls: AtomicU64,
    metrics_requested: AtomicU64,
    /// `ListMetrics` requests made so far.
    list_requests: AtomicU64,
    /// Pages the last screen took.
    screen_pages: AtomicU64,
}

impl Clone for CloudWatchMetrics {
    fn clone(&self) -> Self {
        CloudWatchMetrics::new(self.client.clone())
    }
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn query(id: String, f: &FunctionRef, series: usize) -> MetricDataQuery {
    let (namespace, metric, stat) = SERIES[series];
    let name = f.bare_name();
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
            metrics_requested: AtomicU64::new(0),
            list_requests: AtomicU64::new(0),
            screen_pages: AtomicU64::new(0),
        }
    }

    /// `GetMetricData` calls made so far (one per page).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Splits `requests` into consecutive batches, each as large as one
    /// call allows: at most 500 queries, and no more datapoints than allowed
    /// for the longest span in the batch.
    pub fn batches(requests: &[MetricsRequest]) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let (mut start, mut queries, mut longest) = (0, 0, 0);
        for (i, r) in requests.iter().enumerate() {
            let q = series(r);
            let span = r.until_minute.saturating_sub(r.from_minute).max(1) as usize;
            let fits =
                queries + q <= MAX_QUERIES && (queries + q) * longest.max(span) <= MAX_DATAPOINTS;
            if !fits && i > start {
                out.push(start..i);
                (start, queries, longest) = (i, 0, 0);
            }
            queries += q;
            longest = longest.max(span);
        }
        if start < requests.len() {
            out.push(start..requests.len());
        }
        out
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
                (0..series(r)).map(move |k| query(format!("f{}s{k}", first + i), &r.function, k))
            })
            .collect();
        let what = format!("GetMetricData for {} functions", batch.len());
        self.get_metric_data(queries, from, until, &what).await
    }

    /// Every page of one `GetMetricData` request over minutes
    /// `from..until`: each query's points by id, `(minute, value)`, each
    /// page billed per query. A query answered Forbidden or InternalError
    /// fails the request.
    async fn get_metric_data(
        &self,
        queries: Vec<MetricDataQuery>,
        from: u64,
        until: u64,
        what: &str,
    ) -> Result<HashMap<String, Vec<(u64, f64)>>, PortError> {
        let mut out: HashMap<String, Vec<(u64, f64)>> = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.metrics_requested
                .fetch_add(queries.len() as u64, Ordering::Relaxed);
            let resp = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(DateTime::from_secs((from * 60) as i64))
                .end_time(DateTime::from_secs((until * 60) as i64))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| port_error(what, e))?;
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
    fn usage(&self) -> Usage {
        Usage {
            metrics_requested: self.metrics_requested.load(Ordering::Relaxed),
            list_requests: self.list_requests.load(Ordering::Relaxed),
            ..Default::default()
        }
    }

    fn screen_pages(&self) -> u64 {
        self.screen_pages.load(Ordering::Relaxed)
    }

    /// Every page of `ListMetrics` for `AWS/Lambda` `Invocations` with
    /// `RecentlyActive=PT3H`; the `FunctionName` of each metric listed (a
    /// function's alias and version series carry it too).
    async fn recently_active(&self) -> Result<Option<BTreeSet<String>>, PortError> {
        let mut names = BTreeSet::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            self.list_requests.fetch_add(1, Ordering::Relaxed);
            pages += 1;
            let resp = self
                .client
                .list_metrics()
                .namespace("AWS/Lambda")
                .metric_name("Invocations")
                .recently_active(RecentlyActive::Pt3H)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| port_error("ListMetrics (recently active)", e))?;
            for m in resp.metrics() {
                if let Some(v) = m
                    .dimensions()
                    .iter()
                    .find(|d| d.name() == Some("FunctionName"))
                    .and_then(|d| d.value())
                {
                    names.insert(v.to_string());
                }
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        self.screen_pages.store(pages, Ordering::Relaxed);
        Ok(Some(names))
    }

    /// One query: `AWS/Lambda` `UnreservedConcurrentExecutions`, Maximum
    /// per minute, without a dimension (the account's series).
    async fn pool_in_use(
        &self,
        from_minute: u64,
        until_minute: u64,
    ) -> Result<Vec<(u64, f64)>, PortError> {
        let q = MetricDataQuery::builder()
            .id("pool")
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace("AWS/Lambda")
                            .metric_name("UnreservedConcurrentExecutions")
                            .build(),
                    )
                    .period(60)
                    .stat("Maximum")
                    .build(),
            )
            .return_data(true)
            .build();
        let what = "GetMetricData for the account's pool";
        let points = self
            .get_metric_data(vec![q], from_minute, until_minute, what)
            .await?;
        let mut out: Vec<(u64, f64)> = points
            .into_values()
            .flatten()
            .filter(|(m, v)| (from_minute..until_minute).contains(m) && v.is_finite())
            .collect();
        out.sort_by_key(|&(m, _)| m);
        Ok(out)
    }

    async fn observe(
        &self,
        requests: &[MetricsRequest],
    ) -> Result<Vec<Result<Vec<MinuteMetrics>, PortError>>, PortError> {
        let mut results = Vec::with_capacity(requests.len());
        for range in Self::batches(requests) {
            let first = range.start;
            let batch = &requests[range];
            let points = self.fetch(batch, first).await?;
            for (i, r) in batch.iter().enumerate() {
                let mut minutes: BTreeMap<u64, MinuteMetrics> = BTreeMap::new();
                for k in 0..series(r) {
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

    fn reqs(n: usize, span: u64, detail: bool) -> Vec<MetricsRequest> {
        (0..n)
            .map(|i| MetricsRequest {
                function: FunctionRef::unqualified(format!("f{i}")),
                from_minute: 1_000,
                until_minute: 1_000 + span,
                detail,
            })
            .collect()
    }

    #[test]
    fn batches_respect_both_limits() {
        let sizes = |r: &[MetricsRequest]| -> Vec<usize> {
            CloudWatchMetrics::batches(r)
                .iter()
                .map(|b| b.len())
                .collect()
        };
        assert_eq!(sizes(&reqs(600, 15, false)), [500, 100], "500 queries");
        assert_eq!(sizes(&reqs(300, 15, true)), [125, 125, 50], "500 queries");
        assert_eq!(sizes(&reqs(200, 180, true)), [125, 75], "90,000 points");
        assert_eq!(sizes(&reqs(40, 1_440, true))[0], 17, "backfilling a day");
        let mut mixed = reqs(3, 15, false);
        mixed.extend(reqs(1, 1_440, true));
        assert_eq!(sizes(&mixed), [4], "a long span among short ones");
        assert!(sizes(&[]).is_empty());
    }

    #[test]
    fn each_request_reads_the_series_it_is_billed_for() {
        for detail in [false, true] {
            let r = MetricsRequest {
                function: FunctionRef::unqualified("f"),
                from_minute: 0,
                until_minute: 15,
                detail,
            };
            assert_eq!(series(&r) as u64, r.series());
        }
    }

    #[test]
    fn arns_become_bare_names() {
        let arn = FunctionRef::parse("arn:aws:lambda:us-east-1:123456789012:function:orders:live");
        assert_eq!(arn.bare_name(), "orders");
        assert_eq!(arn.qualifier.as_deref(), Some("live"));
        assert_eq!(FunctionRef::parse("orders:live").bare_name(), "orders");
    }
}
