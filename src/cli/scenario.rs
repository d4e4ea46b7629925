//! What `simulate` and `forecast` replay: the scenario, its traces and the
//! platform model, with the command line's overrides, and the run behind
//! progress bars.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;

use super::parse::parse_duration;
use crate::sim::scenario::{self, Scenario};
use crate::sim::{PolicyRun, RunConfig, SimReport};

/// What to replay and on which platform: shared by `simulate` and `forecast`.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// A scenario file; default: the bundled simulations/default.toml.
    pub scenario: Option<PathBuf>,
    /// Azure Functions 2019 invocations CSV (replaces the scenario's traces; several are consecutive
    /// days), or Azure 2021 per-invocation CSVs (told apart by their header).
    #[arg(long = "trace")]
    pub traces: Vec<PathBuf>,
    /// Play the trace N times; the report covers the plays after the first.
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Platform model: lambda-2021, lambda-2019, vpc-2018, or a model file.
    #[arg(long)]
    pub model: Option<String>,
    /// Override idle reaping: a fixed TTL (10m) or a range (5m..7m).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Seed of every random draw.
    #[arg(long)]
    pub seed: Option<u64>,
}

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
pub(super) struct Loaded {
    pub(super) path: PathBuf,
    pub(super) sc: Scenario,
    pub(super) cfg: RunConfig,
    pub(super) trace: crate::sim::trace::Trace,
}

pub(super) fn load(args: &ScenarioArgs) -> anyhow::Result<Loaded> {
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
    let trace = crate::sim::trace::read_any(&traces)?.repeated(repeat);
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

/// Runs the configured policies with a progress bar each on a terminal.
pub(super) fn run_with_bars(
    cfg: &RunConfig,
    trace: &crate::sim::trace::Trace,
) -> (SimReport, Vec<PolicyRun>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_ranges_parse() {
        assert_eq!(parse_ttl("10m").unwrap(), (600.0, 600.0));
        assert_eq!(parse_ttl("5m..7m").unwrap(), (300.0, 420.0));
        assert!(parse_ttl("7m..5m").is_err());
        assert!(parse_ttl("soon").is_err());
    }
}
