//! `forewarm probe`: what N concurrent real requests say about warmth, seen
//! from the client.
//!
//! This is the half without I/O: one round's per-request results in, a
//! classified report out. The requests are sent by `aws::probe` (URLs over
//! the pings' HTTP transport, functions through the SDK's Invoke).
//!
//! Cold or warm is decided, per request, by the best evidence there is:
//!
//! * **`init_duration`** (exact): a synchronous Invoke with `LogType=Tail`
//!   returns the end of the invocation's log, whose platform `REPORT` line
//!   carries `Init Duration` (or, with SnapStart, `Restore Duration`) only
//!   when that invocation paid for a new sandbox.
//! * **`threshold`**: the user's `--cold-over`, where nothing exact exists.
//! * **`latency_split`** (an estimate): the largest gap between consecutive
//!   latencies, sorted, when the slower side is at least [`MIN_SPLIT_RATIO`]
//!   times the faster. One request sent alone after the round (the
//!   *reference*) meets a sandbox the round has just left idle, so its
//!   latency is a warm one: it tells an all-cold round (the reference far
//!   below every request) from an all-warm one (the reference among them),
//!   which latencies alone cannot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::PROBE_LINE_PREFIX;

/// The smallest ratio between the fastest cold and the slowest warm latency
/// the split accepts. An init adds at least the runtime's start and the
/// handler's imports to a request (tens of milliseconds for Rust or Go,
/// hundreds for Python or Java, seconds in a VPC), while warm latencies of
/// one function at one moment rarely spread by a factor of two; below it the
/// split would be cutting the warm tail, not finding cold starts.
pub(crate) const MIN_SPLIT_RATIO: f64 = 2.0;

/// Why a request got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum Failure {
    /// No connection: refused, unreachable, or the name did not resolve.
    #[serde(rename = "connect")]
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    #[serde(rename = "tls")]
    Tls,
    /// No answer within `--timeout`.
    #[serde(rename = "timeout")]
    Timeout,
    /// The connection closed before a whole answer arrived.
    #[serde(rename = "closed")]
    Closed,
    /// This process ran out of file descriptors (`ulimit -n`).
    #[serde(rename = "fd_limit")]
    FdLimit,
    /// HTTP 429, or Lambda's `TooManyRequestsException`.
    #[serde(rename = "throttled")]
    Throttled,
    /// Another HTTP 4xx answer.
    #[serde(rename = "http_4xx")]
    Http4xx,
    /// An HTTP 5xx answer.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// The function ran and failed (`X-Amz-Function-Error`).
    #[serde(rename = "function_error")]
    FunctionError,
    /// Lambda refused the Invoke (no such function, access denied, ...).
    #[serde(rename = "service")]
    Service,
}

impl Failure {
    /// The name in reports and in `--json`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Tls => "tls",
            Failure::Timeout => "timeout",
            Failure::Closed => "closed",
            Failure::FdLimit => "fd_limit",
            Failure::Throttled => "throttled",
            Failure::Http4xx => "http_4xx",
            Failure::Http5xx => "http_5xx",
            Failure::FunctionError => "function_error",
            Failure::Service => "service",
        }
    }

    /// The kind of a non-success HTTP status, or none for a success.
    pub(crate) fn of_status(status: u16) -> Option<Failure> {
        match status {
            429 => Some(Failure::Throttled),
            400..=499 => Some(Failure::Http4xx),
            500..=599 => Some(Failure::Http5xx),
            _ => None,
        }
    }
}

/// One request's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sample {
    /// When it was sent, ms after the round's first request.
    pub started_ms: u64,
    /// Until its answer was read in full (or it failed), ms.
    pub latency_ms: u64,
    /// The HTTP status (for an Invoke, the function's status code).
    pub status: Option<u16>,
    /// Whether it paid a cold start; null where that cannot be told.
    pub cold: Option<bool>,
    /// The sandbox that served it, where the answer names one.
    pub sandbox: Option<String>,
    /// Why it failed; null for a success.
    pub error: Option<Failure>,
    /// What went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Sample {
    fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// What an Invoke's log tail says about the invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tail {
    /// From the platform's `REPORT` line: whether it carries an init (or a
    /// SnapStart restore); none when the tail has no `REPORT` line.
    pub cold: Option<bool>,
    /// From the shim's `forewarm-probe sandbox=` line.
    pub sandbox: Option<String>,
}

/// Reads a decoded log tail (the last 4 KB of the invocation's log).
pub(crate) fn read_tail(text: &str) -> Tail {
    let mut tail = Tail::default();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(report) = line.strip_prefix("REPORT ") {
            // Tab-separated fields: `RequestId: ...\tDuration: 1.2 ms\t...`.
            let cold = report.split('\t').any(|field| {
                let name = field.split(':').next().unwrap_or_default().trim();
                name == "Init Duration" || name == "Restore Duration"
            });
            tail.cold = Some(cold);
        } else if let Some(id) = line.split(PROBE_LINE_PREFIX).nth(1) {
            // A runtime may prefix the line (a timestamp, a request id).
            let id = id.trim();
            if !id.is_empty() {
                tail.sandbox = Some(id.to_string());
            }
        }
    }
    tail
}

/// How cold was told from warm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ColdMethod {
    /// The platform's `REPORT` line (exact).
    InitDuration,
    /// The largest gap in the latencies (an estimate).
    LatencySplit,
    /// The user's `--cold-over` (an estimate).
    Threshold,
}

impl ColdMethod {
    /// The name in reports and in `--json`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ColdMethod::InitDuration => "init_duration",
            ColdMethod::LatencySplit => "latency_split",
            ColdMethod::Threshold => "threshold",
        }
    }
}

/// Whether some answer of a round says exactly whether it was cold (a log
/// tail's `REPORT` line): then no estimate, and no reference request, is
/// needed.
pub(crate) fn exact(samples: &[Sample]) -> bool {
    samples.iter().any(|s| s.ok() && s.cold.is_some())
}

/// What the latencies alone say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// Requests slower than `warm_max` (the gap's lower edge) were cold;
    /// the fastest of them took `cold_min`.
    Between {
        /// The slowest warm latency.
        warm_max: u64,
        /// The fastest cold latency.
        cold_min: u64,
    },
    /// One cluster, and the warm reference is in it: all warm.
    AllWarm,
    /// No gap and no reference, or the reference on the slow side.
    Unclear,
}

/// Finds the split between warm and cold latencies; `reference` is the
/// latency of a request known to be warm.
pub(crate) fn latency_split(latencies: &[u64], reference: Option<u64>) -> Split {
    let mut v: Vec<u64> = latencies.iter().copied().chain(reference).collect();
    v.sort_unstable();
    let mut best: Option<(f64, u64, u64)> = None;
    for w in v.windows(2) {
        let ratio = w[1].max(1) as f64 / w[0].max(1) as f64;
        if best.is_none_or(|(r, _, _)| ratio > r) {
            best = Some((ratio, w[0], w[1]));
        }
    }
    match (best, reference) {
        (Some((ratio, _, cold_min)), Some(r)) if ratio >= MIN_SPLIT_RATIO && r >= cold_min => {
            Split::Unclear
        }
        (Some((ratio, warm_max, cold_min)), _) if ratio >= MIN_SPLIT_RATIO => {
            Split::Between { warm_max, cold_min }
        }
        (_, Some(_)) => Split::AllWarm,
        (_, None) => Split::Unclear,
    }
}

/// Latency percentiles (nearest rank), ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// The slowest.
    pub max: u64,
}

impl Percentiles {
    /// Of `latencies`; none when empty.
    pub(crate) fn of(latencies: &[u64]) -> Option<Percentiles> {
        let mut v = latencies.to_vec();
        v.sort_unstable();
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        (!v.is_empty()).then(|| Percentiles {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: v[v.len() - 1],
        })
    }
}

/// One round as sent: the requests, and the lone warm reference after them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Round {
    /// What was probed (a URL, or a function reference).
    pub target: String,
    /// One per request, in the order they were started.
    pub samples: Vec<Sample>,
    /// The reference request's latency, when one was sent and answered.
    pub reference_ms: Option<u64>,
    /// From the first request sent to the last answer, ms.
    pub wall_ms: u64,
}

/// A round, classified and summarized: the `--json` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProbeReport {
    /// What was probed.
    pub target: String,
    /// Requests sent.
    pub requests: usize,
    /// Requests answered successfully.
    pub ok: usize,
    /// Requests that failed.
    pub errors: usize,
    /// Failed requests by kind.
    pub errors_by_kind: BTreeMap<Failure, usize>,
    /// Successful requests that were cold; null when that cannot be told.
    pub cold: Option<usize>,
    /// Successful requests that were warm; null when that cannot be told.
    pub warm: Option<usize>,
    /// Distinct sandboxes among the answers; null unless every answer named one.
    pub distinct_sandboxes: Option<usize>,
    /// How cold was told from warm; null when nothing could be told.
    pub cold_method: Option<ColdMethod>,
    /// For `latency_split` and `threshold`: requests slower than this were cold.
    pub cold_over_ms: Option<u64>,
    /// The lone warm reference request's latency, ms.
    pub reference_ms: Option<u64>,
    /// Latency of the successful requests.
    pub latency_ms: Option<Percentiles>,
    /// Latency of the warm ones.
    pub warm_latency_ms: Option<Percentiles>,
    /// Latency of the cold ones.
    pub cold_latency_ms: Option<Percentiles>,
    /// From the first request sent to the last, ms: how together they started.
    pub start_spread_ms: u64,
    /// From the first request sent to the last answer, ms.
    pub wall_ms: u64,
    /// One per request.
    pub results: Vec<Sample>,
}

impl ProbeReport {
    /// Classifies `round`: exact where the answers' log tails say, else by
    /// `cold_over_ms` when given, else by the latency split.
    pub(crate) fn new(round: Round, cold_over_ms: Option<u64>) -> ProbeReport {
        let Round {
            target,
            mut samples,
            reference_ms,
            wall_ms,
        } = round;
        let exact = exact(&samples);
        let ok_latencies: Vec<u64> = samples
            .iter()
            .filter(|s| s.ok())
            .map(|s| s.latency_ms)
            .collect();
        // `over`: answers slower than it were cold (u64::MAX: none were).
        let (method, over) = if ok_latencies.is_empty() {
            (None, None)
        } else if exact {
            (Some(ColdMethod::InitDuration), None)
        } else if let Some(t) = cold_over_ms {
            (Some(ColdMethod::Threshold), Some(t))
        } else {
            match latency_split(&ok_latencies, reference_ms) {
                Split::Between { warm_max, .. } => (Some(ColdMethod::LatencySplit), Some(warm_max)),
                Split::AllWarm => (Some(ColdMethod::LatencySplit), Some(u64::MAX)),
                Split::Unclear => (None, None),
            }
        };
        if let Some(over) = over {
            for s in samples.iter_mut().filter(|s| s.ok()) {
                s.cold = Some(s.latency_ms > over);
            }
        }
        let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok()).collect();
        let classified = method.is_some();
        let count =
            |cold: bool| classified.then(|| ok.iter().filter(|s| s.cold == Some(cold)).count());
        let latencies_where = |cold: bool| {
            let v: Vec<u64> = ok
                .iter()
                .filter(|s| s.cold == Some(cold))
                .map(|s| s.latency_ms)
                .collect();
            Percentiles::of(&v)
        };
        let named: Vec<&str> = ok.iter().filter_map(|s| s.sandbox.as_deref()).collect();
        let distinct_sandboxes = (!ok.is_empty() && named.len() == ok.len()).then(|| {
            let mut v = named.clone();
            v.sort_unstable();
            v.dedup();
            v.len()
        });
        let mut errors_by_kind = BTreeMap::new();
        for e in samples.iter().filter_map(|s| s.error) {
            *errors_by_kind.entry(e).or_insert(0) += 1;
        }
        let first = samples.iter().map(|s| s.started_ms).min().unwrap_or(0);
        let last = samples.iter().map(|s| s.started_ms).max().unwrap_or(0);
        ProbeReport {
            target,
            requests: samples.len(),
            ok: ok.len(),
            errors: samples.len() - ok.len(),
            errors_by_kind,
            cold: count(true),
            warm: count(false),
            distinct_sandboxes,
            cold_method: method,
            cold_over_ms: over.filter(|&t| t != u64::MAX),
            reference_ms,
            latency_ms: Percentiles::of(&ok_latencies),
            warm_latency_ms: if classified {
                latencies_where(false)
            } else {
                None
            },
            cold_latency_ms: if classified {
                latencies_where(true)
            } else {
                None
            },
            start_spread_ms: last - first,
            wall_ms,
            results: samples,
        }
    }

    /// How the classification was made, in words, for the summary.
    pub(crate) fn method_note(&self) -> String {
        match (self.cold_method, self.cold_over_ms) {
            (Some(ColdMethod::InitDuration), _) => {
                "exact: Init Duration in the platform's REPORT line".into()
            }
            (Some(ColdMethod::Threshold), Some(t)) => {
                format!("estimate: slower than --cold-over {}", ms(t))
            }
            (Some(ColdMethod::LatencySplit), Some(t)) => format!(
                "estimate: slower than {}, the largest gap between latencies{}",
                ms(t),
                self.reference_note()
            ),
            (Some(ColdMethod::LatencySplit), None) => format!(
                "estimate: all in one cluster with the warm reference{}",
                self.reference_note()
            ),
            (Some(ColdMethod::Threshold), None) => "estimate".into(),
            (None, _) if self.ok == 0 => "nothing answered".into(),
            (None, _) => format!(
                "cannot tell: the latencies form one cluster{}; give --cold-over D",
                self.reference_note()
            ),
        }
    }

    fn reference_note(&self) -> String {
        self.reference_ms
            .map_or(String::new(), |r| format!(", reference request {}", ms(r)))
    }
}

/// Where a saved `--json` run is read back (`--compare`): the whole file as
/// one report, or, from `--every`, the last of its lines.
pub(crate) fn read_saved(text: &str) -> Result<ProbeReport, serde_json::Error> {
    serde_json::from_str(text).or_else(|e| {
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map_or(Err(e), serde_json::from_str)
    })
}

/// One bar of the latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bin {
    /// Lower edge, ms (inclusive).
    pub lo_ms: u64,
    /// Upper edge, ms (exclusive, but the last bin holds the maximum).
    pub hi_ms: u64,
    /// Warm answers in it.
    pub warm: usize,
    /// Cold answers in it.
    pub cold: usize,
    /// Answers not classified.
    pub unknown: usize,
}

/// The successful answers' latencies in at most `n` bins: of equal width
/// on a log scale when they span a factor of four or more (cold starts are
/// tens of times slower than warm answers: on a linear scale every warm
/// answer would share the first bar), else of equal width in whole ms.
pub(crate) fn histogram(samples: &[Sample], n: usize) -> Vec<Bin> {
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok()).collect();
    let (Some(lo), Some(hi)) = (
        ok.iter().map(|s| s.latency_ms.max(1)).min(),
        ok.iter().map(|s| s.latency_ms.max(1)).max(),
    ) else {
        return Vec::new();
    };
    // No more bars than answers: three answers in twelve bars are mostly gaps.
    let n = n.min(ok.len()).max(1);
    let mut edges: Vec<u64> = if hi >= 4 * lo {
        let (llo, lhi) = ((lo as f64).ln(), ((hi + 1) as f64).ln());
        (0..=n)
            .map(|i| (llo + (lhi - llo) * i as f64 / n as f64).exp().round() as u64)
            .collect()
    } else {
        let width = (hi - lo + 1).div_ceil(n as u64).max(1);
        (0..=n as u64)
            .map(|i| lo + i * width)
            .take_while(|&e| e <= hi + width)
            .collect()
    };
    edges.dedup();
    if let Some(last) = edges.last_mut() {
        *last = (*last).max(hi + 1);
    }
    let mut bins: Vec<Bin> = edges
        .windows(2)
        .map(|w| Bin {
            lo_ms: w[0],
            hi_ms: w[1],
            warm: 0,
            cold: 0,
            unknown: 0,
        })
        .collect();
    for s in ok {
        let l = s.latency_ms.max(1);
        let Some(b) = bins.iter_mut().rev().find(|b| l >= b.lo_ms) else {
            continue;
        };
        match s.cold {
            Some(true) => b.cold += 1,
            Some(false) => b.warm += 1,
            None => b.unknown += 1,
        }
    }
    bins
}

/// The histogram drawn with block characters, `width` columns for the
/// fullest bar: `█` warm (or not classified), `░` cold.
pub(crate) fn histogram_text(bins: &[Bin], width: usize) -> String {
    let most = bins
        .iter()
        .map(|b| b.warm + b.cold + b.unknown)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut out = String::new();
    for b in bins {
        let total = b.warm + b.cold + b.unknown;
        let cells = |k: usize| (k * width).div_ceil(most);
        let cold = cells(b.cold);
        let rest = cells(total).saturating_sub(cold);
        let note = if b.cold > 0 {
            format!(" ({} cold)", b.cold)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:>8} .. {:<8} {}{} {}{}\n",
            ms(b.lo_ms),
            ms(b.hi_ms),
            "█".repeat(rest),
            "░".repeat(cold),
            total,
            note
        ));
    }
    out
}

/// A latency for people: `85ms`, `1.25s`, `12.3s`.
pub(crate) fn ms(v: u64) -> String {
    match v {
        0..1_000 => format!("{v}ms"),
        1_000..10_000 => format!("{:.2}s", v as f64 / 1e3),
        _ => format!("{:.1}s", v as f64 / 1e3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(latency_ms: u64) -> Sample {
        Sample {
            started_ms: 0,
            latency_ms,
            status: Some(200),
            cold: None,
            sandbox: None,
            error: None,
            detail: None,
        }
    }

    fn failed(e: Failure) -> Sample {
        Sample {
            status: None,
            error: Some(e),
            ..answered(5)
        }
    }

    fn round(samples: Vec<Sample>, reference_ms: Option<u64>) -> Round {
        Round {
            target: "https://example.test/orders".into(),
            samples,
            reference_ms,
            wall_ms: 0,
        }
    }

    #[test]
    fn report_lines_tell_an_init_from_a_warm_invocation() {
        let cold = "START RequestId: 8f5 Version: $LATEST\n\
                    forewarm-probe sandbox=2026/12/02/[$LATEST]abc\n\
                    END RequestId: 8f5\n\
                    REPORT RequestId: 8f5\tDuration: 101.52 ms\tBilled Duration: 102 ms\tMemory Size: 128 MB\tMax Memory Used: 19 MB\tInit Duration: 7412.16 ms\t\n";
        assert_eq!(
            read_tail(cold),
            Tail {
                cold: Some(true),
                sandbox: Some("2026/12/02/[$LATEST]abc".into())
            }
        );
        let warm = "REPORT RequestId: 9a1\tDuration: 100.90 ms\tBilled Duration: 101 ms\tMemory Size: 128 MB\tMax Memory Used: 19 MB\t\n";
        assert_eq!(read_tail(warm).cold, Some(false));
        let snapstart = "REPORT RequestId: 1\tDuration: 5 ms\tRestore Duration: 310.5 ms\tBilled Restore Duration: 311 ms\n";
        assert_eq!(read_tail(snapstart).cold, Some(true));
        // A function's own line that mentions an init is not the platform's.
        assert_eq!(
            read_tail("my Init Duration: 5 ms\n"),
            Tail::default(),
            "no REPORT line: unknown"
        );
        // Python's logging prefixes the line; the id is what follows.
        let py = "[INFO]\t2026-12-02T10:00:00Z\t8f5\tforewarm-probe sandbox=local-ab12\n";
        assert_eq!(read_tail(py).sandbox.as_deref(), Some("local-ab12"));
    }

    #[test]
    fn the_split_finds_the_gap_and_the_reference_tells_all_cold_from_all_warm() {
        let mixed = [110, 95, 7_400, 120, 9_900, 101];
        let gap = Split::Between {
            warm_max: 120,
            cold_min: 7_400,
        };
        assert_eq!(latency_split(&mixed, None), gap);
        assert_eq!(latency_split(&mixed, Some(98)), gap);
        // Every request cold: only the reference is fast.
        assert_eq!(
            latency_split(&[7_400, 9_900, 8_100], Some(96)),
            Split::Between {
                warm_max: 96,
                cold_min: 7_400
            }
        );
        // Every request warm: the reference is one of them.
        assert_eq!(latency_split(&[110, 95, 120], Some(101)), Split::AllWarm);
        // One cluster, no reference: no way to tell.
        assert_eq!(latency_split(&[110, 95, 120], None), Split::Unclear);
        // The warm reference among the slow ones: the gap is something else.
        assert_eq!(
            latency_split(&[20, 25, 400, 420], Some(410)),
            Split::Unclear
        );
        // A warm tail that spreads by less than the ratio is not split.
        assert_eq!(
            latency_split(&[100, 130, 170, 199], Some(100)),
            Split::AllWarm
        );
    }

    #[test]
    fn a_round_is_counted_classified_and_summarized() {
        let mut samples: Vec<Sample> = [100, 120, 7_000, 110, 8_000]
            .into_iter()
            .enumerate()
            .map(|(i, l)| Sample {
                started_ms: i as u64,
                ..answered(l)
            })
            .collect();
        samples.push(failed(Failure::Timeout));
        samples.push(failed(Failure::Http5xx));
        samples.push(failed(Failure::Timeout));
        let r = ProbeReport::new(round(samples, Some(90)), None);
        assert_eq!((r.requests, r.ok, r.errors), (8, 5, 3));
        assert_eq!(
            r.errors_by_kind,
            BTreeMap::from([(Failure::Timeout, 2), (Failure::Http5xx, 1)])
        );
        assert_eq!((r.cold, r.warm), (Some(2), Some(3)));
        assert_eq!(r.cold_method, Some(ColdMethod::LatencySplit));
        assert_eq!(r.cold_over_ms, Some(120), "the slowest warm answer");
        assert_eq!(r.latency_ms.unwrap().max, 8_000);
        assert_eq!(r.warm_latency_ms.unwrap().max, 120);
        assert_eq!(r.cold_latency_ms.unwrap().p50, 7_000);
        assert_eq!(r.distinct_sandboxes, None, "no answer named its sandbox");
        assert_eq!(r.start_spread_ms, 4);
        assert!(r.results[..5].iter().all(|s| s.cold.is_some()));
        assert!(r.results[5..].iter().all(|s| s.cold.is_none()));
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "target",
            "requests",
            "errors",
            "cold",
            "warm",
            "distinct_sandboxes",
            "cold_method",
            "latency_ms",
            "results",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["cold_method"], "latency_split");
        assert_eq!(json["errors_by_kind"]["timeout"], 2);
        assert_eq!(json["results"][5]["error"], "timeout");
        assert_eq!(read_saved(&json.to_string()).unwrap(), r);
    }

    #[test]
    fn exact_answers_win_and_a_threshold_is_strictly_over() {
        let tail = |cold, sandbox: &str| Sample {
            cold: Some(cold),
            sandbox: Some(sandbox.into()),
            ..answered(if cold { 900 } else { 100 })
        };
        let r = ProbeReport::new(
            round(
                vec![tail(true, "a"), tail(false, "b"), tail(false, "a")],
                None,
            ),
            Some(50),
        );
        assert_eq!(r.cold_method, Some(ColdMethod::InitDuration));
        assert_eq!((r.cold, r.warm), (Some(1), Some(2)));
        assert_eq!(r.distinct_sandboxes, Some(2));

        let r = ProbeReport::new(round(vec![answered(300), answered(301)], None), Some(300));
        assert_eq!(r.cold_method, Some(ColdMethod::Threshold));
        assert_eq!(
            (r.cold, r.warm, r.cold_over_ms),
            (Some(1), Some(1), Some(300))
        );
    }

    #[test]
    fn nothing_is_claimed_where_nothing_can_be_told() {
        let r = ProbeReport::new(round(vec![answered(100), answered(110)], None), None);
        assert_eq!((r.cold, r.warm, r.cold_method), (None, None, None));
        assert!(r.method_note().contains("--cold-over"));
        let r = ProbeReport::new(round(vec![failed(Failure::Connect)], None), None);
        assert_eq!((r.ok, r.latency_ms, r.cold_method), (0, None, None));
    }

    #[test]
    fn the_histogram_holds_every_answer_on_a_log_scale() {
        let mut samples: Vec<Sample> = (0..40).map(|i| answered(100 + i)).collect();
        samples.extend((0..10).map(|i| answered(7_000 + 300 * i)));
        samples.push(failed(Failure::Closed));
        let r = ProbeReport::new(round(samples, Some(95)), None);
        let bins = histogram(&r.results, 10);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins.iter().map(|b| b.warm).sum::<usize>(), 40);
        assert_eq!(bins.iter().map(|b| b.cold).sum::<usize>(), 10);
        assert_eq!(bins[0].lo_ms, 100);
        assert!(bins[9].hi_ms > 9_700);
        let text = histogram_text(&bins, 30);
        assert_eq!(text.lines().count(), 10);
        assert!(
            text.contains("(10 cold)") || text.contains("cold)"),
            "{text}"
        );
        assert_eq!(histogram(&[answered(5), answered(5)], 10).len(), 1);
        // A narrow spread gets whole-millisecond bins, not empty slivers.
        let narrow: Vec<Sample> = [36, 37, 37, 38, 40].map(answered).to_vec();
        let bins = histogram(&narrow, 12);
        assert_eq!(bins.len(), 5, "{bins:?}");
        assert_eq!((bins[0].lo_ms, bins[4].hi_ms), (36, 41));
        assert_eq!(bins.iter().map(|b| b.unknown).sum::<usize>(), 5);
        assert!(histogram(&[], 10).is_empty());
    }
}
