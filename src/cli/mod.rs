//! The `forewarm` command line: the commands and their dispatch.
//!
//! The binary (`src/bin/forewarm.rs`) only parses and calls [`run`]. Each
//! command's file owns its arguments and its body, a thin layer over the
//! library: `simulate`, `forecast` (both replay a `scenario`), `trace`,
//! and over AWS `aws` (`tick`, `warm`, and what the AWS commands share),
//! `policy`, `status` and `probe`.
//! `parse` holds the parsers several commands share; `plot` draws the
//! SVGs of `simulate --out` and `probe --out`.

use clap::{Parser, Subcommand};

#[cfg(feature = "aws")]
mod aws;
mod forecast;
pub(crate) mod parse;
mod plot;
#[cfg(feature = "aws")]
mod policy;
#[cfg(feature = "aws")]
mod probe;
pub(crate) mod scenario;
mod simulate;
#[cfg(feature = "aws")]
mod status;
mod trace;

pub use forecast::ForecastArgs;
pub use scenario::ScenarioArgs;
pub use simulate::SimulateArgs;
pub use trace::{SynthArgs, TraceCommand};

/// forewarm: keep Lambda functions warm in proportion to the traffic they are about to get.
#[derive(Debug, Parser)]
#[command(name = "forewarm", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Replay traces against a model of Lambda and compare warming policies.
    Simulate(SimulateArgs),
    /// Score the controller's forecasts, as it makes them in the simulator, against the real peaks and simple baselines.
    Forecast(ForecastArgs),
    /// Work with traces.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Run one controller cycle from this machine (the same code as the Lambda).
    #[cfg(feature = "aws")]
    Tick(aws::TickArgs),
    /// Warm a function once, now (before a launch, right after a deploy).
    #[cfg(feature = "aws")]
    Warm(aws::WarmArgs),
    /// Read, write, check and list policy items.
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The controller's view of each function: last decisions, forecast, delay, survival, last error.
    #[cfg(feature = "aws")]
    Status(status::StatusArgs),
    /// Fire N concurrent real requests at a URL or a function and tell cold answers from warm.
    #[cfg(feature = "aws")]
    Probe(probe::ProbeArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(args) => simulate::simulate(args),
        Command::Forecast(args) => forecast::forecast(args),
        Command::Trace(TraceCommand::Synth(args)) => trace::synth(args),
        #[cfg(feature = "aws")]
        Command::Tick(a) => aws::tick(a),
        #[cfg(feature = "aws")]
        Command::Warm(a) => aws::warm(a),
        #[cfg(feature = "aws")]
        Command::Policy(c) => policy::policy(c),
        #[cfg(feature = "aws")]
        Command::Status(a) => status::status(a),
        #[cfg(feature = "aws")]
        Command::Probe(a) => probe::probe(a),
    }
}
