//! `forewarm trace`: work with traces.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

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

/// Runs `forewarm trace synth`.
pub(super) fn synth(args: SynthArgs) -> anyhow::Result<()> {
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
