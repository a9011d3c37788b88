//! `tidegate`, the operator CLI: routes, signed test sends, stored deliveries,
//! replays, dead letters and status; `tidegate up` is dev mode (nats-server,
//! the ingress and the workers in one command).

#![allow(clippy::print_stdout)] // the CLI's output is its interface

mod approvals;
mod banner;
mod common;
mod deliveries;
mod dlq;
mod pretty_json;
mod process;
mod ready;
mod replay;
mod routes;
mod scan;
mod secrets;
mod send;
mod sink;
mod status;
mod streams;
mod table;
mod targets;
mod up;
mod webhook;
mod workflows;

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
    /// Every route with its full URL, methods, verifier, mode and state.
    Routes(routes::RoutesArgs),
    /// Send a sample delivery (or a file) to a route, signed as its
    /// provider would sign it; prints the answer.
    Send(send::SendArgs),
    /// List stored deliveries, or show one with its job results.
    Deliveries(deliveries::DeliveriesArgs),
    /// Streams, worker consumers (lag, pending, redeliveries), dead letters
    /// and live workers.
    Status(status::StatusArgs),
    /// Publish stored deliveries again (by id, subject, time or sequence
    /// range), resumable, with a rate limit and a dry run.
    Replay(replay::ReplayArgs),
    /// Dead letters: list, show, redrive, purge.
    Dlq(dlq::DlqArgs),
    /// Create or update the deliveries stream and the payload bucket, as the
    /// ingress does at start-up (it never recreates them while running).
    Streams(streams::StreamsArgs),
    /// Live connector sync targets (KV): list, add, remove; the github-sync
    /// worker applies changes without a restart.
    Targets(targets::TargetsArgs),
    /// Workflow webhooks (assistant seed): list them, send a signed test.
    Webhook(webhook::WebhookArgs),
    /// Workflow runs paused at an approval gate: list, approve, reject.
    Approvals(approvals::ApprovalsArgs),
    /// Workflow runs and files: `runs show <run>`, `check`.
    Workflows(workflows::WorkflowsArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
        Command::Routes(args) => routes::run(args),
        Command::Send(args) => send::run(args).await,
        Command::Deliveries(args) => deliveries::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Streams(args) => streams::run(args).await,
        Command::Targets(args) => targets::run(args).await,
        Command::Webhook(args) => webhook::run(args).await,
        Command::Approvals(args) => approvals::run(args).await,
        Command::Workflows(args) => workflows::run(args).await,
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
