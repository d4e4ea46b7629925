//! `forewarm forecast`: the controller's forecasts, made as it makes them in
//! the simulator, scored against the real peaks beside simple baselines.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::scenario::{Loaded, ScenarioArgs, load, run_with_bars};
use crate::decision::policy::{self, Policy, PolicyDoc, Scalar};
use crate::sim::policy::PolicySpec;
use crate::sim::scenario::Scenario;
use crate::sim::{RunConfig, evaluate};

/// `forewarm forecast`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// The scenario, trace and platform.
    #[command(flatten)]
    pub run: ScenarioArgs,
    /// The controller's policy as JSON (the attributes of a policy item), merged over the defaults.
    #[arg(long)]
    pub policy_file: Option<PathBuf>,
    /// Score at these quantiles (each a run of the controller with that `quantile`, e.g.
    /// 0.8,0.9,0.95); default: the policy's.
    #[arg(long, value_delimiter = ',')]
    pub quantile: Vec<f64>,
    /// Print one CSV row per scored window: function,window_start_min,quantile, each forecaster's
    /// forecast, realized_peak.
    #[arg(long)]
    pub csv: bool,
    /// Print the scores as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `forewarm forecast`: the controller in the simulator at each
/// quantile asked for, its forecasts scored against the real peaks beside the
/// baselines.
pub(super) fn forecast(args: ForecastArgs) -> anyhow::Result<()> {
    let Loaded {
        path,
        sc,
        mut cfg,
        trace,
    } = load(&args.run)?;
    let (doc, quantiles) = scored_policy(&args, &sc, &path)?;
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

/// The forewarm policy to score (the file's, else the scenario's first
/// forewarm policy, else the defaults) and the quantiles to score it at
/// (`--quantile`, else the policy's own).
fn scored_policy(
    args: &ForecastArgs,
    sc: &Scenario,
    path: &Path,
) -> anyhow::Result<(PolicyDoc, Vec<f64>)> {
    let doc = match &args.policy_file {
        Some(file) => policy_file(file)?,
        None => sc
            .policy_specs(path)?
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
    Ok((doc, quantiles))
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
        // The same windows for every forecaster, but only those the
        // controller issued a target for: its forecasts apart from the
        // functions it let rest.
        let issued: Vec<String> = r
            .issued
            .iter()
            .map(|n| {
                format!(
                    "{} {:.4} ({:.2} %)",
                    n.name,
                    n.score.pinball,
                    100.0 * n.score.under_share_active
                )
            })
            .collect();
        s.push_str(&format!(
            "  where it issued a target ({} windows, {} with demand), pinball (of demand under): {}\n",
            r.issued_windows,
            r.issued_active_windows,
            issued.join(", "),
        ));
    }
    s
}
