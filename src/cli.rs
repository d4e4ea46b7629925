//! The `forewarm` command line: argument types and dispatch.
//!
//! The binary (`src/bin/forewarm.rs`) only parses and calls [`run`]; each
//! subcommand is a thin layer over the library.

use clap::{Parser, Subcommand};

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
    Simulate,
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate => {
            println!("forewarm simulate: the simulator is not built yet");
            Ok(())
        }
    }
}
