//! The `forewarm` command line: argument types and dispatch.
//!
//! The binary (`src/bin/forewarm.rs`) only parses and calls [`run`]; each
//! subcommand is a thin layer over the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

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
    /// Score the controller's forecasts, as it makes them in the simulator, against the real peaks and simple baselines.
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

/// Parses a duration such as `300ms`, `5m` or `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like 300ms, 5m or 1h ({e})"))
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(args) => crate::cli_sim::simulate(args),
        Command::Forecast(args) => crate::cli_sim::forecast(args),
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
