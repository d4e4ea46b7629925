//! The `forewarm` command line: argument types and dispatch.
//!
//! The binary (`src/bin/forewarm.rs`) only parses and calls [`run`]; each
//! subcommand is a thin layer over the library.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::decision::policy::{self, Policy};

/// forewarm: keep Lambda functions warm in proportion to the traffic they are about to get.
#[derive(Debug, Parser)]
#[command(name = "forewarm", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay traces against a model of Lambda and compare warming policies.
    Simulate(SimulateArgs),
    /// Replay a trace through the forecaster alone: what would have been warmed, window by window.
    Forecast(ForecastArgs),
    /// Work with traces.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Run one controller cycle from this machine (the same code as the Lambda).
    #[cfg(feature = "aws")]
    Tick(crate::cli_aws::TickArgs),
    /// Warm a function once, now (before a launch, right after a deploy).
    #[cfg(feature = "aws")]
    Warm(crate::cli_aws::WarmArgs),
    /// Read, write, check and list policy items.
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Policy(crate::cli_aws::PolicyCommand),
    /// The controller's view of each function: last decisions, forecast, delay, survival, last error.
    #[cfg(feature = "aws")]
    Status(crate::cli_aws::StatusArgs),
    /// Fire N concurrent real requests at a URL or a function and tell cold answers from warm.
    #[cfg(feature = "aws")]
    Probe(crate::cli_probe::ProbeArgs),
}

/// `forewarm trace ...`.
#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Write a synthetic trace with the published shape of production workloads (Azure 2019 layout).
    Synth(SynthArgs),
}

/// `forewarm trace synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of functions.
    #[arg(long, default_value_t = 1_000)]
    pub functions: usize,
    /// Number of days.
    #[arg(long, default_value_t = 7)]
    pub days: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory to write invocations.csv, durations.csv and memory.csv into.
    #[arg(long)]
    pub out: PathBuf,
}

/// `forewarm simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A scenario file; default: the bundled simulations/default.toml.
    pub scenario: Option<PathBuf>,
    /// Azure Functions 2019 invocations CSV (replaces the scenario's traces; several are consecutive
    /// days), or Azure 2021 per-invocation CSVs (told apart by their header).
    #[arg(long = "trace")]
    pub traces: Vec<PathBuf>,
    /// Play the trace N times; the report covers the plays after the first.
    #[arg(long)]
    pub repeat: Option<usize>,
    /// A policy to compare (replaces the scenario's list): none, fixed:n=N,every=5m,delay=300ms,
    /// lambda-warmer:n=N,every=5m, provisioned:n=N, provisioned:auto, forewarm[:k=v,...], oracle.
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Also run each parametric baseline at every n of the scenario's sweep (its cost/cold-start frontier).
    #[arg(long)]
    pub sweep: bool,
    /// Platform model: lambda-2021, lambda-2019, vpc-2018, or a model file.
    #[arg(long)]
    pub model: Option<String>,
    /// Override idle reaping: a fixed TTL (10m) or a range (5m..7m).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Show the N busiest functions' cold-start rates under each policy.
    #[arg(long, default_value_t = 0)]
    pub top: usize,
    /// Seed of every random draw.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON (the keys of DESIGN §5).
    #[arg(long)]
    pub json: bool,
    /// Write per-minute CSV timelines and SVG plots here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The function whose timeline --out plots (its id); default: the busiest.
    #[arg(long)]
    pub function: Option<String>,
}

/// `forewarm forecast`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// Azure Functions 2019 invocations CSV; several are consecutive days.
    #[arg(long = "trace", required = true)]
    pub traces: Vec<PathBuf>,
    /// Window length (e.g. 5m, 10m, 1h).
    #[arg(long, default_value = "5m", value_parser = parse_minutes)]
    pub window: u32,
    /// A policy as JSON (the attributes of a policy item), merged over the defaults.
    #[arg(long)]
    pub policy_file: Option<PathBuf>,
    /// Play the trace this many times back to back (history for the seasonal buckets).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Print one CSV row per function and window: function,window_start_min,forecast,realized_peak.
    #[arg(long)]
    pub csv: bool,
    /// Print the score as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses a duration such as `5m` into whole minutes (at least one).
pub fn parse_minutes(s: &str) -> Result<u32, String> {
    let d = parse_duration(s)?;
    if d.as_secs() % 60 != 0 || d.as_secs() == 0 {
        return Err(format!("`{s}` is not a whole number of minutes"));
    }
    u32::try_from(d.as_secs() / 60).map_err(|_| format!("`{s}` is too long"))
}

/// Parses a duration such as `300ms`, `5m` or `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like 300ms, 5m or 1h ({e})"))
}

/// Reads a policy file (JSON attributes) and merges it over the defaults.
pub fn load_policy(path: Option<&PathBuf>) -> anyhow::Result<Policy> {
    let Some(path) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    let doc =
        policy::doc_from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let parsed = Policy::from_doc(&doc).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for w in parsed.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok(parsed.policy)
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(args) => crate::cli_sim::simulate(args),
        Command::Forecast(args) => forecast(args),
        Command::Trace(TraceCommand::Synth(args)) => synth(args),
        #[cfg(feature = "aws")]
        Command::Tick(a) => crate::cli_aws::tick(a),
        #[cfg(feature = "aws")]
        Command::Warm(a) => crate::cli_aws::warm(a),
        #[cfg(feature = "aws")]
        Command::Policy(c) => crate::cli_aws::policy(c),
        #[cfg(feature = "aws")]
        Command::Status(a) => crate::cli_aws::status(a),
        #[cfg(feature = "aws")]
        Command::Probe(a) => crate::cli_probe::probe(a),
    }
}

fn synth(args: SynthArgs) -> anyhow::Result<()> {
    if args.functions == 0 || args.days == 0 {
        bail!("--functions and --days must be at least 1");
    }
    let trace = crate::sim::synth::generate(args.functions, args.days, args.seed);
    crate::sim::synth::write_azure2019(&trace, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let s = crate::sim::synth::shape(&trace);
    println!(
        "wrote {} functions x {} days ({} invocations) to {}\n\
         shape: {:.1} % of functions at most hourly, {:.1} % at most once a minute, busiest 10 % make {:.1} % of calls,\n\
         {:.1} % periodic and {:.1} % bursty (gap CV), daily swing max/min {:.2}",
        args.functions,
        args.days,
        trace.invocations(),
        args.out.display(),
        100.0 * s.at_most_hourly,
        100.0 * s.at_most_per_minute,
        100.0 * s.top_decile_share,
        100.0 * s.periodic,
        100.0 * s.bursty,
        s.diurnal_ratio
    );
    Ok(())
}

fn forecast(args: ForecastArgs) -> anyhow::Result<()> {
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let policy = load_policy(args.policy_file.as_ref())?;
    let trace = crate::trace::read_any(&args.traces)?.repeated(args.repeat);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.csv {
        writeln!(out, "function,window_start_min,forecast,realized_peak")?;
    }
    let mut failed = None;
    let score = crate::evaluate::replay(&trace, &policy, args.window, |f, r| {
        if args.csv
            && failed.is_none()
            && let Err(e) = writeln!(
                out,
                "{},{},{},{}",
                f.id, r.window_start_min, r.forecast, r.realized_peak
            )
        {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(e.into());
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&score)?)?;
    } else {
        let summary = format!(
            "functions {}, windows {} ({} scored after an hour of history, {} with demand)\n\
             quantile {}: forecast below the realized peak in {:.2} % of scored windows ({:.2} % of those with demand)\n\
             over-provisioning: {:.2} sandboxes per over-provisioned window, {:.3} per window; {} warmed for {} needed\n",
            score.functions,
            score.windows,
            score.scored_windows,
            score.active_windows,
            policy.quantile,
            100.0 * score.under_share,
            100.0 * score.under_share_active,
            score.mean_over,
            score.mean_excess,
            score.forecast_sum,
            score.realized_sum,
        );
        // With --csv the rows own stdout; the summary goes to stderr.
        if args.csv {
            eprint!("{summary}");
        } else {
            write!(out, "{summary}")?;
        }
    }
    out.flush()?;
    Ok(())
}
