//! The `forewarm` command line. Parsing and dispatch live in `forewarm::cli`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    forewarm::cli::run(forewarm::cli::Cli::parse())
}
