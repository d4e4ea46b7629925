//! `forewarm simulate`: the main job, as a user runs it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use super::scenario::{Loaded, ScenarioArgs, load, run_with_bars};
use crate::sim::policy::PolicySpec;
use crate::sim::scenario::{self, Scenario};
use crate::sim::{PolicyRun, RunConfig, SimReport};

/// `forewarm simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The scenario, trace and platform.
    #[command(flatten)]
    pub run: ScenarioArgs,
    /// A policy to compare (replaces the scenario's list): none, fixed:n=N,every=5m,delay=300ms,
    /// lambda-warmer:n=N,every=5m, provisioned:n=N, provisioned:auto, forewarm[:k=v,...], oracle.
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Also run each parametric baseline at every n of the scenario's sweep (its cost/cold-start frontier).
    #[arg(long)]
    pub sweep: bool,
    /// Show the N busiest functions' cold-start rates under each policy.
    #[arg(long, default_value_t = 0)]
    pub top: usize,
    /// Print the report as JSON (one object per policy, with fixed keys).
    #[arg(long)]
    pub json: bool,
    /// Write per-minute CSV timelines and SVG plots here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The function whose timeline --out plots (its id); default: the busiest.
    #[arg(long)]
    pub function: Option<String>,
}

/// Runs `forewarm simulate`.
pub(super) fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
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

/// The readable report: the table, then where forewarm stands.
fn human(
    sc: &Scenario,
    cfg: &RunConfig,
    trace: &crate::sim::trace::Trace,
    r: &SimReport,
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

fn standing(r: &SimReport) -> String {
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
    trace: &crate::sim::trace::Trace,
    r: &SimReport,
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
    trace: &crate::sim::trace::Trace,
    r: &SimReport,
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
            super::plot::function_timeline(
                &dir.join("function-timeline.svg"),
                &trace.functions[i].id,
                run,
            )?;
        }
    }
    super::plot::cost_vs_cold(&dir.join("cost-vs-cold-starts.svg"), r)?;
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
}
