//! `forewarm probe`: fire N concurrent real requests and tell cold from warm.
//!
//! Arguments, rounds (`--every`/`--for`), output (summary, terminal
//! histogram, `--json`, `--out`, `--compare`) and the exit code; the
//! requests are sent by [`crate::aws::probe`] and classified by
//! [`crate::probe`].

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::parse::parse_duration;
use crate::aws::probe::{HttpRequest, Prober};
use crate::ports::FunctionRef;
use crate::probe::{self, Failure, Percentiles, ProbeReport, Round, ms};

/// The most requests one probe sends at once. Lambda's default account
/// concurrency is 1,000 and raised quotas reach the low tens of thousands;
/// past this one process runs out of ports and patience, not the function.
const MAX_REQUESTS: u32 = 10_000;

/// File descriptors kept beyond one per request: stdio, the runtime, DNS,
/// the SDK's credential and endpoint lookups.
const SPARE_FDS: u64 = 64;

/// `forewarm probe`.
#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// An http(s) URL (API Gateway, a function URL, a load balancer), or a
    /// function: `name`, `name:qualifier` or its ARN (invoked with `LogType=Tail`).
    pub target: String,
    /// Requests started together (1 to 10,000).
    #[arg(short = 'n', long = "requests", default_value = "10", value_parser = parse_requests, allow_negative_numbers = true)]
    pub n: u32,
    /// HTTP method (URL targets).
    #[arg(long, default_value = "POST")]
    pub method: String,
    /// Request body (URL targets).
    #[arg(long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// Request body from a file (URL targets).
    #[arg(long)]
    pub data_file: Option<PathBuf>,
    /// A header `Name: value` (URL targets; repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Let requests share pooled connections (default: each opens its own).
    #[arg(long)]
    pub reuse_connections: bool,
    /// The event, as JSON (function targets; default `{}`): a real event, passed to the handler.
    #[arg(long, conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// The event from a file (function targets).
    #[arg(long)]
    pub payload_file: Option<PathBuf>,
    /// Longest wait for one answer (above a VPC cold start).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Count answers slower than this as cold (where no REPORT line says).
    #[arg(long, value_parser = parse_duration)]
    pub cold_over: Option<Duration>,
    /// Send no warm reference request after each round (it is a real request too).
    #[arg(long)]
    pub no_reference: bool,
    /// Repeat the probe this often (with --for).
    #[arg(long, value_parser = parse_duration, requires = "for_")]
    pub every: Option<Duration>,
    /// For this long (with --every).
    #[arg(long = "for", value_parser = parse_duration, requires = "every")]
    pub for_: Option<Duration>,
    /// A saved --json run to set beside this one (before/after).
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Exit non-zero when any request was cold (a deploy pipeline's check).
    #[arg(long)]
    pub fail_on_cold: bool,
    /// Print the report as JSON (one line per round with --every).
    #[arg(long)]
    pub json: bool,
    /// Write probe.csv (one row per request) and probe-histogram.svg here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_requests(s: &str) -> Result<u32, String> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if !(1..=MAX_REQUESTS as i64).contains(&n) {
        return Err(format!(
            "{n} requests: give 1 to {MAX_REQUESTS} (one process cannot hold more connections usefully)"
        ));
    }
    Ok(n as u32)
}

enum Kind {
    Url(HttpRequest),
    Function(FunctionRef, bytes::Bytes),
}

fn target(args: &ProbeArgs) -> anyhow::Result<Kind> {
    let t = args.target.trim();
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        if args.payload.is_some() || args.payload_file.is_some() {
            bail!("--payload is for function targets; a URL takes --data");
        }
        let uri: http::Uri = t.parse().with_context(|| format!("`{t}` is not a URL"))?;
        if uri.host().is_none_or(str::is_empty) {
            bail!("`{t}` names no host");
        }
        let method = http::Method::from_bytes(args.method.trim().to_ascii_uppercase().as_bytes())
            .with_context(|| format!("`{}` is not an HTTP method", args.method))?;
        let body = match (&args.data, &args.data_file) {
            (Some(d), _) => d.clone().into_bytes(),
            (None, Some(p)) => {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?
            }
            (None, None) => Vec::new(),
        };
        let mut headers = http::HeaderMap::new();
        for h in &args.headers {
            let (k, v) = h
                .split_once(':')
                .with_context(|| format!("header `{h}` must look like `Name: value`"))?;
            let k = http::HeaderName::from_bytes(k.trim().as_bytes())
                .with_context(|| format!("`{}` is not a header name", k.trim()))?;
            let v = http::HeaderValue::from_str(v.trim())
                .with_context(|| format!("the value of header {k} is not valid"))?;
            headers.append(k, v);
        }
        if !body.is_empty() && !headers.contains_key(http::header::CONTENT_TYPE) {
            let json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
            let ct = if json {
                "application/json"
            } else {
                "application/octet-stream"
            };
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(ct),
            );
        }
        return Ok(Kind::Url(HttpRequest {
            uri,
            method,
            headers,
            body: body.into(),
        }));
    }
    if t.contains("://") {
        bail!("`{t}`: only http:// and https:// URLs, or a function name or ARN");
    }
    if args.data.is_some()
        || args.data_file.is_some()
        || !args.headers.is_empty()
        || args.reuse_connections
    {
        bail!(
            "--data, --header and --reuse-connections are for URL targets; a function takes --payload"
        );
    }
    FunctionRef::check_key(t).map_err(|e| anyhow::anyhow!("not a function: {e}"))?;
    let payload = match (&args.payload, &args.payload_file) {
        (Some(p), _) => p.clone().into_bytes(),
        (None, Some(p)) => {
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        (None, None) => b"{}".to_vec(),
    };
    serde_json::from_slice::<serde_json::Value>(&payload)
        .context("the payload must be JSON (Lambda accepts nothing else)")?;
    if matches!(
        crate::protocol::classify(&String::from_utf8_lossy(&payload)),
        crate::protocol::Event::Ping(_)
    ) {
        bail!(
            "the payload is a warming ping; probe sends real events (the shim would not run the handler)"
        );
    }
    Ok(Kind::Function(FunctionRef::parse(t), payload.into()))
}

/// Raises this process's open-file limit to fit `n` connections; returns
/// the limit in force.
fn fit_fd_limit(n: u32) -> Option<u64> {
    let need = n as u64 + SPARE_FDS;
    match rlimit::increase_nofile_limit(need) {
        Ok(l) => Some(l),
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft),
    }
}

/// Runs `forewarm probe`.
pub(super) fn probe(args: ProbeArgs) -> anyhow::Result<()> {
    if args.timeout.is_zero() {
        bail!("--timeout must be above zero");
    }
    let rounds = rounds(&args)?;
    let compare = match &args.compare {
        Some(p) => Some(read_saved_run(p)?),
        None => None,
    };
    let kind = target(&args)?;
    let fd_limit = fit_fd_limit(args.n);
    if let Some(l) = fd_limit
        && l < args.n as u64 + SPARE_FDS
    {
        eprintln!(
            "warning: this process may open {l} files (ulimit -n); {} concurrent requests need about {}: some will fail with fd_limit",
            args.n,
            args.n as u64 + SPARE_FDS
        );
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let reports = run_rounds(&args, kind, rounds, &mut out)?;
    let Some(last) = reports.last() else {
        bail!("no round ran");
    };
    if rounds == 1 {
        if args.json {
            writeln!(out, "{}", with_compared(last, compare.as_ref())?)?;
        } else {
            write!(out, "{}", summary(last, fd_limit))?;
        }
    } else if !args.json {
        write!(out, "{}", rounds_total(&reports))?;
    }
    if let (Some(c), Some(path), false) = (&compare, &args.compare, args.json) {
        write!(
            out,
            "\n{}",
            side_by_side(c, &path.display().to_string(), last)
        )?;
    }
    if let Some(dir) = &args.out {
        write_out(dir, &reports)?;
        if !args.json {
            writeln!(
                out,
                "wrote probe.csv and probe-histogram.svg to {}",
                dir.display()
            )?;
        }
    }
    out.flush()?;
    verdict(&reports, args.fail_on_cold)
}

/// How many rounds `--every` and `--for` ask for (one without them).
fn rounds(args: &ProbeArgs) -> anyhow::Result<usize> {
    Ok(match (args.every, args.for_) {
        (Some(every), Some(total)) => {
            if every.is_zero() || total.is_zero() {
                bail!("--every and --for must be above zero");
            }
            (total.as_millis().div_ceil(every.as_millis())).max(1) as usize
        }
        _ => 1,
    })
}

/// The run `--compare` names.
fn read_saved_run(p: &Path) -> anyhow::Result<ProbeReport> {
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    probe::read_saved(&text)
        .with_context(|| format!("{} is not a saved `forewarm probe --json` run", p.display()))
}

/// Sends the rounds, `--every` apart, printing a line per round when there
/// are several.
fn run_rounds(
    args: &ProbeArgs,
    kind: Kind,
    rounds: usize,
    out: &mut impl Write,
) -> anyhow::Result<Vec<ProbeReport>> {
    let cold_over_ms = args.cold_over.map(|d| d.as_millis() as u64);
    let target_name = args.target.trim().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut reports: Vec<ProbeReport> = Vec::with_capacity(rounds);
    runtime.block_on(async {
        let prober = match kind {
            Kind::Url(req) => Prober::url(req, args.reuse_connections, args.timeout),
            Kind::Function(f, payload) => Prober::function(f, payload, args.timeout).await,
        };
        let began = tokio::time::Instant::now();
        if rounds > 1 && !args.json {
            writeln!(out, "{}", round_header())?;
        }
        for i in 0..rounds {
            if let Some(every) = args.every {
                tokio::time::sleep_until(began + every * i as u32).await;
            }
            let bar = progress_bar(args.n);
            let done: Arc<dyn Fn() + Send + Sync> = match &bar {
                Some(b) => {
                    let b = b.clone();
                    Arc::new(move || b.inc(1))
                }
                None => Arc::new(|| {}),
            };
            let t0 = std::time::Instant::now();
            let samples = prober.round(args.n, done).await;
            let wall_ms = t0.elapsed().as_millis() as u64;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let reference_ms =
                if probe::exact(&samples) || cold_over_ms.is_some() || args.no_reference {
                    None
                } else {
                    prober.reference().await
                };
            let report = ProbeReport::new(
                Round {
                    target: target_name.clone(),
                    samples,
                    reference_ms,
                    wall_ms,
                },
                cold_over_ms,
            );
            if rounds > 1 {
                if args.json {
                    writeln!(out, "{}", serde_json::to_string(&report)?)?;
                } else {
                    writeln!(out, "{}", round_line(&report))?;
                }
                out.flush()?;
            }
            reports.push(report);
        }
        anyhow::Ok(())
    })?;
    Ok(reports)
}

/// One round's report as pretty JSON, with the compared run beside it
/// (without its per-request results).
fn with_compared(last: &ProbeReport, compare: Option<&ProbeReport>) -> anyhow::Result<String> {
    let mut v = serde_json::to_value(last)?;
    if let (Some(c), Some(obj)) = (compare, v.as_object_mut()) {
        let mut c = serde_json::to_value(c)?;
        if let Some(co) = c.as_object_mut() {
            co.remove("results");
        }
        obj.insert("compared_with".into(), c);
    }
    Ok(serde_json::to_string_pretty(&v)?)
}

/// The exit status: failure when nothing answered, or when `--fail-on-cold`
/// finds a cold answer or cannot tell.
fn verdict(reports: &[ProbeReport], fail_on_cold: bool) -> anyhow::Result<()> {
    let ok: usize = reports.iter().map(|r| r.ok).sum();
    let sent: usize = reports.iter().map(|r| r.requests).sum();
    if ok == 0 {
        bail!("no request succeeded ({sent} sent)");
    }
    if fail_on_cold {
        if reports.iter().any(|r| r.ok > 0 && r.cold.is_none()) {
            bail!("--fail-on-cold: cannot tell cold from warm here; give --cold-over D");
        }
        let cold: usize = reports.iter().filter_map(|r| r.cold).sum();
        if cold > 0 {
            bail!("--fail-on-cold: {cold} of {ok} answered requests were cold");
        }
    }
    Ok(())
}

fn progress_bar(n: u32) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let style =
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:40}] {pos}/{len} answered")
            .ok()?;
    let b = indicatif::ProgressBar::new(n as u64);
    b.set_style(style);
    Some(b)
}

fn kinds(r: &ProbeReport) -> String {
    r.errors_by_kind
        .iter()
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt(v: Option<usize>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

fn pct_row(label: &str, p: Option<Percentiles>) -> String {
    match p {
        Some(p) => format!(
            "{label:<8}{:>9}{:>9}{:>9}{:>9}\n",
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.max)
        ),
        None => format!("{label:<8}{:>9}\n", "-"),
    }
}

/// The summary a person reads at a glance.
fn summary(r: &ProbeReport, fd_limit: Option<u64>) -> String {
    let mut s = format!(
        "probe {}: {} requests started within {}, {} answered, {} failed{} in {}\n",
        r.target,
        r.requests,
        ms(r.start_spread_ms),
        r.ok,
        r.errors,
        if r.errors > 0 {
            format!(" ({})", kinds(r))
        } else {
            String::new()
        },
        ms(r.wall_ms)
    );
    s.push_str(&format!(
        "cold {}, warm {} ({})\n",
        opt(r.cold),
        opt(r.warm),
        r.method_note()
    ));
    s.push_str(&match r.distinct_sandboxes {
        Some(d) => format!("distinct sandboxes {d}\n"),
        None => "distinct sandboxes unknown (the answers do not name them)\n".into(),
    });
    if r.ok > 0 {
        s.push_str(&format!(
            "\n{:<8}{:>9}{:>9}{:>9}{:>9}\n",
            "latency", "p50", "p90", "p99", "max"
        ));
        s.push_str(&pct_row("all", r.latency_ms));
        if r.cold_method.is_some() {
            s.push_str(&pct_row("warm", r.warm_latency_ms));
            s.push_str(&pct_row("cold", r.cold_latency_ms));
        }
        s.push('\n');
        s.push_str(&probe::histogram_text(
            &probe::histogram(&r.results, 12),
            40,
        ));
        if r.cold_method.is_some() {
            s.push_str("(█ warm, ░ cold)\n");
        }
    }
    if let Some(n) = r.errors_by_kind.get(&Failure::FdLimit) {
        s.push_str(&format!(
            "\n{n} requests hit this process's open-file limit{}: raise it (ulimit -n {}) and probe again\n",
            fd_limit.map_or(String::new(), |l| format!(" ({l})")),
            (r.requests as u64 + SPARE_FDS).next_power_of_two()
        ));
    }
    if let Some(e) = r.results.iter().find_map(|x| x.detail.as_deref())
        && r.errors > 0
    {
        s.push_str(&format!("first error: {e}\n"));
    }
    s
}

fn round_header() -> String {
    format!(
        "{:<10} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "at", "sent", "ok", "failed", "cold", "warm", "p50", "p99", "max", "spread"
    )
}

/// One round's line under `--every`.
fn round_line(r: &ProbeReport) -> String {
    let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let at = at.get(11..19).unwrap_or(&at).to_string();
    let p = |f: fn(&Percentiles) -> u64| r.latency_ms.as_ref().map_or("-".into(), |p| ms(f(p)));
    format!(
        "{at:<10} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}",
        r.requests,
        r.ok,
        r.errors,
        opt(r.cold),
        opt(r.warm),
        p(|p| p.p50),
        p(|p| p.p99),
        p(|p| p.max),
        ms(r.start_spread_ms)
    )
}

fn rounds_total(reports: &[ProbeReport]) -> String {
    let cold_rounds = reports.iter().filter(|r| r.cold.unwrap_or(0) > 0).count();
    let unknown = reports
        .iter()
        .filter(|r| r.ok > 0 && r.cold.is_none())
        .count();
    let cold: usize = reports.iter().filter_map(|r| r.cold).sum();
    let ok: usize = reports.iter().map(|r| r.ok).sum();
    format!(
        "{} rounds: {cold} of {ok} answered requests cold, in {cold_rounds} rounds{}\n",
        reports.len(),
        if unknown > 0 {
            format!(" ({unknown} rounds could not be told; give --cold-over D)")
        } else {
            String::new()
        }
    )
}

/// A saved run beside this one.
fn side_by_side(before: &ProbeReport, name: &str, now: &ProbeReport) -> String {
    let pct = |r: &ProbeReport, f: fn(&Percentiles) -> u64| {
        r.latency_ms.as_ref().map_or("-".into(), |p| ms(f(p)))
    };
    let rows: [(&str, String, String); 9] = [
        (
            "requests",
            before.requests.to_string(),
            now.requests.to_string(),
        ),
        ("failed", before.errors.to_string(), now.errors.to_string()),
        ("cold", opt(before.cold), opt(now.cold)),
        ("warm", opt(before.warm), opt(now.warm)),
        (
            "method",
            method_name(before).into(),
            method_name(now).into(),
        ),
        ("p50", pct(before, |p| p.p50), pct(now, |p| p.p50)),
        ("p90", pct(before, |p| p.p90), pct(now, |p| p.p90)),
        ("p99", pct(before, |p| p.p99), pct(now, |p| p.p99)),
        ("max", pct(before, |p| p.max), pct(now, |p| p.max)),
    ];
    let mut s = format!("{:<10} {:>16} {:>16}\n", "", "before", "now");
    for (k, a, b) in rows {
        s.push_str(&format!("{k:<10} {a:>16} {b:>16}\n"));
    }
    s.push_str(&format!("(before: {name}, {})\n", before.target));
    s
}

fn method_name(r: &ProbeReport) -> &'static str {
    r.cold_method.map_or("-", probe::ColdMethod::name)
}

fn write_out(dir: &Path, reports: &[ProbeReport]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("probe.csv");
    let mut w = csv::Writer::from_path(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    w.write_record([
        "round",
        "started_ms",
        "latency_ms",
        "status",
        "cold",
        "sandbox",
        "error",
    ])?;
    for (i, r) in reports.iter().enumerate() {
        for s in &r.results {
            w.write_record([
                i.to_string(),
                s.started_ms.to_string(),
                s.latency_ms.to_string(),
                s.status.map_or(String::new(), |v| v.to_string()),
                s.cold.map_or(String::new(), |v| v.to_string()),
                s.sandbox.clone().unwrap_or_default(),
                s.error.map_or(String::new(), |e| e.name().to_string()),
            ])?;
        }
    }
    w.flush()?;
    let all: Vec<probe::Sample> = reports.iter().flat_map(|r| r.results.clone()).collect();
    let title = match reports {
        [one] => format!("{}: {} requests", one.target, one.requests),
        many => format!(
            "{}: {} rounds",
            many.first().map_or("", |r| r.target.as_str()),
            many.len()
        ),
    };
    super::plot::probe_histogram(
        &dir.join("probe-histogram.svg"),
        &title,
        &probe::histogram(&all, 20),
    )
}
