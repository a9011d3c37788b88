//! `tidegate`, the operator CLI. `tidegate up` is dev mode: a local
//! nats-server, the ingress and a ready-to-paste signed request in one command.

#![allow(clippy::print_stdout)] // the CLI's output is its interface

mod banner;
mod process;
mod ready;
mod secrets;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Operate a tidegate webhook pipeline.
#[derive(Debug, Parser)]
#[command(name = "tidegate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dev mode: start nats-server (JetStream, data in a local folder) and
    /// the ingress with the example config; Ctrl-C stops everything.
    Up(up::UpArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with the cause chain; no backtrace, even when
            // RUST_BACKTRACE is set for the children's sake.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
