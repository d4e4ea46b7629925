//! `forewarm simulate`: the main job, as a user runs it.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::{ForecastArgs, ScenarioArgs, SimulateArgs, parse_duration};
use crate::decision::policy::{self, Policy, PolicyDoc, Scalar};
use crate::sim::policy::PolicySpec;
use crate::sim::scenario::{self, Scenario};
use crate::sim::{PolicyRun, Report, RunConfig, evaluate};

/// The bundled default scenario: `simulations/default.toml` under the current
/// directory, else in the source tree the binary was built from.
fn default_scenario() -> PathBuf {
    let here = PathBuf::from("simulations/default.toml");
    if here.exists() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("simulations/default.toml")
    }
}

fn parse_ttl(s: &str) -> anyhow::Result<(f64, f64)> {
    let (lo, hi) = s.split_once("..").unwrap_or((s, s));
    let secs = |x: &str| {
        parse_duration(x)
            .map(|d| d.as_secs_f64())
            .map_err(anyhow::Error::msg)
    };
    let (lo, hi) = (secs(lo)?, secs(hi)?);
    if lo <= 0.0 || hi < lo {
        bail!("--ttl `{s}`: need a positive TTL, or a range low..high with low <= high");
    }
    Ok((lo, hi))
}

/// A scenario loaded with the command line's overrides: everything a run
/// needs but its policies.
struct Loaded {
    path: PathBuf,
    sc: Scenario,
    cfg: RunConfig,
    trace: crate::trace::Trace,
}

fn load(args: &ScenarioArgs) -> anyhow::Result<Loaded> {
    let path = args.scenario.clone().unwrap_or_else(default_scenario);
    let sc = Scenario::load(&path)?;
    let traces = if args.traces.is_empty() {
        sc.traces.clone()
    } else {
        args.traces.clone()
    };
    if traces.is_empty() {
        bail!(
            "{}: no trace (add `traces = [...]` or pass --trace)",
            path.display()
        );
    }
    let repeat = args.repeat.unwrap_or(sc.repeat);
    if repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let ttl = args.ttl.as_deref().map(parse_ttl).transpose()?;
    let model = scenario::model_for(args.model.as_deref().unwrap_or(&sc.model), ttl)?;
    let trace = crate::trace::read_any(&traces)?.repeated(repeat);
    let cfg = RunConfig {
        scenario: sc.name.clone(),
        model,
        seed: args.seed.unwrap_or(sc.seed),
        repeat,
        policies: Vec::new(),
        timeline_function: None,
        reaping_change: None,
        record_forecasts: false,
        init_allowance_ms: crate::decision::pings::INIT_LIMIT_MS,
    };
    Ok(Loaded {
        path,
        sc,
        cfg,
        trace,
    })
}

/// Runs `forewarm simulate`.
pub fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let Loaded {
        path,
        sc,
        mut cfg,
        trace,
    } = load(&args.run)?;
    let mut policies = if args.policies.is_empty() {
        sc.policy_specs(&path)?
    } else {
        args.policies
            .iter()
            .map(|p| PolicySpec::parse(p).map_err(anyhow::Error::msg))
            .collect::<Result<_, _>>()?
    };
    if policies.is_empty() {
        bail!(
            "{}: no policies to compare (add `policies = [...]` or pass --policy)",
            path.display()
        );
    }
    if args.sweep {
        let ns = if sc.sweep.is_empty() {
            vec![1, 2, 3, 5, 8]
        } else {
            sc.sweep.clone()
        };
        policies = scenario::with_sweep(&policies, &ns);
    }
    let timeline_function = match &args.function {
        Some(id) => Some(
            trace
                .functions
                .iter()
                .position(|f| &f.id == id || f.id.starts_with(id.as_str()))
                .with_context(|| format!("--function {id}: no such function in the trace"))?,
        ),
        None => (0..trace.functions.len())
            .max_by_key(|&i| (trace.functions[i].invocations(), std::cmp::Reverse(i))),
    };
    cfg.policies = policies;
    cfg.timeline_function = args.out.as_ref().and(timeline_function);

    let (report, runs) = run_with_bars(&cfg, &trace);

    if let Some(dir) = &args.out {
        write_outputs(dir, &cfg, &trace, &report, &runs)?;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        write!(
            out,
            "{}",
            human(&sc, &cfg, &trace, &report, &runs, args.top)
        )?;
        if let Some(dir) = &args.out {
            writeln!(out, "\nwrote timelines and plots to {}", dir.display())?;
        }
    }
    Ok(())
}

/// Runs `forewarm forecast`: the controller in the simulator at each
/// quantile asked for, its forecasts scored against the real peaks beside the
/// baselines.
pub fn forecast(args: ForecastArgs) -> anyhow::Result<()> {
    let Loaded {
        path,
        sc,
        mut cfg,
        trace,
    } = load(&args.run)?;
    let doc = match &args.policy_file {
        Some(file) => policy_file(file)?,
        None => sc
            .policy_specs(&path)?
            .into_iter()
            .find_map(|p| match p {
                PolicySpec::Forewarm { doc, .. } => Some(doc),
                _ => None,
            })
            .unwrap_or_default(),
    };
    let quantiles = if args.quantile.is_empty() {
        vec![
            Policy::from_doc(&doc)
                .map_err(anyhow::Error::msg)?
                .policy
                .quantile,
        ]
    } else {
        args.quantile.clone()
    };
    cfg.policies = quantiles
        .iter()
        .map(|&q| {
            let mut doc = doc.clone();
            doc.insert("quantile".into(), Scalar::Num(q));
            PolicySpec::forewarm(doc).map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<_>>()?;
    cfg.record_forecasts = true;
    let (_, mut runs) = run_with_bars(&cfg, &trace);

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.csv {
        writeln!(
            out,
            "function,window_start_min,quantile,{},realized_peak",
            evaluate::FORECASTERS.join(",")
        )?;
    }
    let mut reports = Vec::new();
    let mut failed = None;
    for (run, &q) in runs.iter_mut().zip(&quantiles) {
        let record = run.forecasts.take().unwrap_or_default();
        reports.push(evaluate::score(&record, q, |r| {
            if !args.csv || failed.is_some() {
                return;
            }
            let [a, b, c, d] = r.forecasts;
            let id = &trace.functions[r.function].id;
            let line = writeln!(
                out,
                "{id},{},{q},{a},{b},{c},{d},{}",
                r.window_start_min, r.realized_peak
            );
            if let Err(e) = line {
                failed = Some(e);
            }
        }));
    }
    if let Some(e) = failed {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(e.into());
    }
    if args.json {
        let v = serde_json::json!({
            "scenario": cfg.scenario,
            "model": cfg.model.name,
            "seed": cfg.seed,
            "reports": reports,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let text = forecast_table(&sc, &cfg, &reports);
        // With --csv the rows own stdout; the summary goes to stderr.
        if args.csv {
            eprint!("{text}");
        } else {
            write!(out, "{text}")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn policy_file(file: &Path) -> anyhow::Result<PolicyDoc> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read policy file {}", file.display()))?;
    let doc =
        policy::doc_from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let parsed = Policy::from_doc(&doc).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for w in parsed.warnings {
        eprintln!("warning: {}: {w}", file.display());
    }
    Ok(doc)
}

fn forecast_table(sc: &Scenario, cfg: &RunConfig, reports: &[evaluate::ForecastReport]) -> String {
    let mut s = format!(
        "scenario   {} ({})\nmodel      {}; seed {}\n",
        cfg.scenario, sc.description, cfg.model.name, cfg.seed
    );
    for r in reports {
        s.push_str(&format!(
            "\nquantile {}: {} windows of {} min scored over {} functions ({} with demand; \
             the controller issued a forecast for {}), after each function's first hour\n\
             truth: the peak of real requests (pings not counted); baselines know every minute \
             up to {} min before the window\n",
            r.quantile,
            r.scored_windows,
            r.window_minutes,
            r.functions,
            r.active_windows,
            r.issued_windows,
            r.lag_minutes,
        ));
        s.push_str(&format!(
            "  {:<16} {:>9} {:>9} {:>12} {:>10} {:>10} {:>11}\n",
            "forecaster", "pinball", "under %", "of demand %", "short/win", "over/win", "sandboxes"
        ));
        for n in &r.forecasters {
            let x = &n.score;
            s.push_str(&format!(
                "  {:<16} {:>9.4} {:>9.2} {:>12.2} {:>10.4} {:>10.4} {:>11}\n",
                n.name,
                x.pinball,
                100.0 * x.under_share,
                100.0 * x.under_share_active,
                x.short_per_window,
                x.over_per_window,
                x.forecast_sum,
            ));
        }
        if let (Some(own), Some(best)) = (
            r.forecasters.first(),
            r.forecasters[1..]
                .iter()
                .min_by(|a, b| a.score.pinball.total_cmp(&b.score.pinball)),
        ) {
            s.push_str(&format!(
                "  forewarm's loss is {:.2}x the best baseline's ({}); {} sandboxes for {} real\n",
                if best.score.pinball > 0.0 {
                    own.score.pinball / best.score.pinball
                } else {
                    f64::NAN
                },
                best.name,
                own.score.forecast_sum,
                r.realized_sum,
            ));
        }
    }
    s
}

/// Runs the configured policies with a progress bar each on a terminal.
fn run_with_bars(cfg: &RunConfig, trace: &crate::trace::Trace) -> (Report, Vec<PolicyRun>) {
    let bars = progress_bars(cfg, trace.minutes);
    let out = scenario::run(cfg, trace, &|policy, minute| {
        if let Some((_, bars)) = &bars {
            bars[policy].set_position(minute as u64);
        }
    });
    if let Some((multi, bars)) = bars {
        for b in bars {
            b.finish_and_clear();
        }
        let _ = multi.clear();
    }
    out
}

type Bars = (indicatif::MultiProgress, Vec<indicatif::ProgressBar>);

fn progress_bars(cfg: &RunConfig, minutes: usize) -> Option<Bars> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let multi = indicatif::MultiProgress::new();
    let style =
        indicatif::ProgressStyle::with_template("{prefix:>36} [{bar:30}] {percent:>3}%").ok()?;
    let bars = cfg
        .policies
        .iter()
        .map(|p| {
            let b = multi.add(indicatif::ProgressBar::new(minutes as u64));
            b.set_style(style.clone());
            b.set_prefix(p.to_string());
            b
        })
        .collect();
    Some((multi, bars))
}

/// The readable report: the table, then where forewarm stands.
fn human(
    sc: &Scenario,
    cfg: &RunConfig,
    trace: &crate::trace::Trace,
    r: &Report,
    runs: &[PolicyRun],
    top: usize,
) -> String {
    let mut s = String::new();
    s.push_str(&format!("scenario   {} ({})\n", r.scenario, sc.description));
    s.push_str(&format!(
        "model      {} ({}); seed {}\n",
        cfg.model.name, cfg.model.description, cfg.seed
    ));
    let report_days = r.sim_seconds / 86_400.0;
    s.push_str(&format!(
        "workload   {} functions, {} invocations over {:.1} days{}\n",
        r.functions,
        trace.invocations(),
        trace.minutes as f64 / 1_440.0,
        if cfg.repeat > 1 {
            format!(
                " ({} plays; the report covers the last {}, {:.1} days)",
                cfg.repeat,
                cfg.repeat - 1,
                report_days
            )
        } else {
            String::new()
        }
    ));
    s.push_str(&format!(
        "run        {:.2} s wall, {:.1} M events/s over {} policies\n\n",
        r.wall_seconds,
        r.events_per_second / 1e6,
        r.policies.len()
    ));
    s.push_str(&r.table());
    s.push_str(&standing(r));
    if top > 0 {
        s.push_str(&top_functions(trace, r, runs, top));
    }
    s
}

/// Cold-start rate of a family of swept policies at a given cost, by linear
/// interpolation on its frontier (sorted by cost).
fn at_cost(points: &[(f64, f64)], cost: f64) -> Option<f64> {
    let mut p = points.to_vec();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = p.first()?;
    if cost <= first.0 {
        return (cost == first.0).then_some(first.1);
    }
    for w in p.windows(2) {
        let ((c0, r0), (c1, r1)) = (w[0], w[1]);
        if cost >= c0 && cost <= c1 {
            return Some(if c1 == c0 {
                r0.min(r1)
            } else {
                r0 + (r1 - r0) * (cost - c0) / (c1 - c0)
            });
        }
    }
    None
}

fn standing(r: &Report) -> String {
    let mut s = String::from("\n");
    let Some(fw) = r.policies.iter().find(|p| p.name.starts_with("forewarm")) else {
        return s;
    };
    let none = r.policies.iter().find(|p| p.name == "none");
    let oracle = r.policies.iter().find(|p| p.name == "oracle");
    s.push_str(&format!(
        "forewarm: {:.4} % of requests cold for ${:.4} of warming",
        100.0 * fw.cold_start_rate,
        fw.warm_cost_usd
    ));
    if let Some(n) = none
        && n.cold_starts > 0
    {
        s.push_str(&format!(
            " ({:.1} % fewer cold starts than no warming)",
            100.0 * (1.0 - fw.cold_starts as f64 / n.cold_starts as f64)
        ));
    }
    s.push('\n');
    for family in ["fixed", "lambda-warmer", "provisioned:n"] {
        let pts: Vec<(f64, f64)> = r
            .policies
            .iter()
            .filter(|p| p.name.starts_with(family))
            .map(|p| (p.warm_cost_usd, p.cold_start_rate))
            .collect();
        match (pts.len(), at_cost(&pts, fw.warm_cost_usd)) {
            (0, _) => {}
            (_, Some(rate)) => s.push_str(&format!(
                "  {family:<14} at equal cost (${:.4}): {:.4} % cold (interpolated on its sweep)\n",
                fw.warm_cost_usd,
                100.0 * rate
            )),
            (_, None) if pts.iter().all(|p| p.0 > fw.warm_cost_usd) => {
                let cheapest = pts
                    .iter()
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .copied()
                    .unwrap_or_default();
                s.push_str(&format!(
                    "  {family:<14} costs more at every n: its cheapest point is {:.4} % cold for ${:.4}\n",
                    100.0 * cheapest.1,
                    cheapest.0
                ));
            }
            (_, None) => {
                let best = pts
                    .iter()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .copied()
                    .unwrap_or_default();
                s.push_str(&format!(
                    "  {family:<14} its sweep does not reach ${:.4}; its best point: {:.4} % cold for ${:.4}{}\n",
                    fw.warm_cost_usd,
                    100.0 * best.1,
                    best.0,
                    if pts.len() == 1 { " (run with --sweep for its frontier)" } else { "" }
                ))
            }
        }
    }
    if let Some(o) = oracle {
        s.push_str(&format!(
            "  oracle         (perfect foresight, the lower bound): {:.4} % cold for ${:.4}\n",
            100.0 * o.cold_start_rate,
            o.warm_cost_usd
        ));
    }
    s
}

fn top_functions(
    trace: &crate::trace::Trace,
    r: &Report,
    runs: &[PolicyRun],
    top: usize,
) -> String {
    let mut idx: Vec<usize> = (0..trace.functions.len()).collect();
    idx.sort_by_key(|&i| (std::cmp::Reverse(trace.functions[i].invocations()), i));
    let mut s = format!(
        "\nbusiest {top} functions: cold-start % per policy\n{:<14}",
        "function"
    );
    for p in &r.policies {
        s.push_str(&format!(
            " {:>12}",
            p.name.chars().take(12).collect::<String>()
        ));
    }
    s.push('\n');
    for &i in idx.iter().take(top) {
        s.push_str(&format!(
            "{:<14}",
            trace.functions[i].id.chars().take(12).collect::<String>()
        ));
        for run in runs {
            let (c, n) = run.per_function[i];
            s.push_str(&format!(
                " {:>12.3}",
                if n == 0 {
                    0.0
                } else {
                    100.0 * c as f64 / n as f64
                }
            ));
        }
        s.push('\n');
    }
    s
}

fn write_outputs(
    dir: &Path,
    cfg: &RunConfig,
    trace: &crate::trace::Trace,
    r: &Report,
    runs: &[PolicyRun],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("report.json"), r.to_json())?;
    let mut fleet = String::from("policy,minute,requests,cold_starts,pings\n");
    for run in runs {
        for m in 0..run.fleet.requests.len() {
            fleet.push_str(&format!(
                "{},{m},{},{},{}\n",
                run.report.name,
                run.fleet.requests[m],
                run.fleet.cold_starts[m],
                run.fleet.pings[m]
            ));
        }
    }
    std::fs::write(dir.join("fleet-timeline.csv"), fleet)?;
    if let Some(i) = cfg.timeline_function {
        let mut f = String::from("policy,minute,requests,cold_starts,pings,warm_pool,target\n");
        for run in runs {
            for p in &run.timeline {
                f.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    run.report.name,
                    p.minute,
                    p.requests,
                    p.cold_starts,
                    p.pings,
                    p.warm_pool,
                    p.target
                ));
            }
        }
        std::fs::write(dir.join("function-timeline.csv"), f)?;
        let fw = runs
            .iter()
            .find(|r| r.report.name.starts_with("forewarm"))
            .or(runs.first());
        if let Some(run) = fw {
            crate::plot::function_timeline(
                &dir.join("function-timeline.svg"),
                &trace.functions[i].id,
                run,
            )?;
        }
    }
    crate::plot::cost_vs_cold(&dir.join("cost-vs-cold-starts.svg"), r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_on_a_frontier() {
        let pts = [(1.0, 0.10), (3.0, 0.02), (2.0, 0.05)];
        assert_eq!(at_cost(&pts, 2.5), Some(0.035));
        assert_eq!(at_cost(&pts, 0.5), None);
        assert_eq!(at_cost(&pts, 4.0), None);
        assert_eq!(at_cost(&pts, 1.0), Some(0.10));
    }

    #[test]
    fn ttl_ranges_parse() {
        assert_eq!(parse_ttl("10m").unwrap(), (600.0, 600.0));
        assert_eq!(parse_ttl("5m..7m").unwrap(), (300.0, 420.0));
        assert!(parse_ttl("7m..5m").is_err());
        assert!(parse_ttl("soon").is_err());
    }
}
