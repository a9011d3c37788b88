//! `tidegate approvals list|approve|reject`: runs paused at an approval
//! gate, and decisions for them. A decision is a message the workflow
//! worker consumes; it runs the remaining steps (or cancels the run), so
//! this command returns at once unless `--wait` asks to see the outcome.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use schemas::{DecisionKind, RunStatus};

use crate::common::Common;
use crate::workflows::print_run;

/// Bound on each broker call.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub(crate) struct ApprovalsArgs {
    #[command(subcommand)]
    command: ApprovalsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ApprovalsCommand {
    /// Runs waiting for a decision.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Let a paused run go on with the step it stopped before.
    Approve(Decide),
    /// Cancel a paused run.
    Reject(Decide),
}

#[derive(Debug, clap::Args)]
struct Decide {
    #[command(flatten)]
    common: Common,
    /// The run id (the `run_id` of the webhook's answer).
    run: String,
    /// Why; kept in the run record.
    #[arg(long)]
    reason: Option<String>,
    /// Who decides (default: $USER).
    #[arg(long)]
    by: Option<String>,
    /// Wait this long for the run to settle and print it (e.g. 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    wait: Option<Duration>,
}

pub(crate) async fn run(args: ApprovalsArgs) -> anyhow::Result<()> {
    match args.command {
        ApprovalsCommand::List { common } => list(&common).await,
        ApprovalsCommand::Approve(decide) => apply(decide, DecisionKind::Approve).await,
        ApprovalsCommand::Reject(decide) => apply(decide, DecisionKind::Reject).await,
    }
}

async fn list(common: &Common) -> anyhow::Result<()> {
    let jetstream = common.jetstream().await?;
    let pending = workflows::approvals::list(&jetstream, TIMEOUT).await?;
    if common.json {
        for approval in &pending {
            println!("{}", serde_json::to_string(approval)?);
        }
        return Ok(());
    }
    if pending.is_empty() {
        println!("no runs are waiting for an approval");
        return Ok(());
    }
    let mut table = crate::table::Table::new(&["RUN", "WORKFLOW", "STEP", "REQUESTED", "EXPIRES"]);
    for approval in &pending {
        table.row(vec![
            approval.run_id.clone(),
            approval.workflow.clone(),
            approval.step.clone(),
            approval.requested_at.clone(),
            approval.expires_at.clone(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

async fn apply(args: Decide, decision: DecisionKind) -> anyhow::Result<()> {
    let jetstream = args.common.jetstream().await?;
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".to_owned());
    let gate = workflows::approvals::decide(
        &jetstream,
        &args.run,
        decision,
        args.reason.clone(),
        Some(by),
        TIMEOUT,
    )
    .await?;
    let verb = match decision {
        DecisionKind::Approve => "approved",
        DecisionKind::Reject => "rejected",
    };
    if !args.common.json {
        println!(
            "{verb} step {} of run {} ({}); the workflow worker applies it",
            gate.step, args.run, gate.workflow
        );
    }
    let Some(wait) = args.wait else {
        if args.common.json {
            println!(
                "{}",
                serde_json::json!({ "run_id": args.run, "decision": verb, "step": gate.step })
            );
        }
        return Ok(());
    };
    let deadline = Instant::now() + wait;
    loop {
        let run = workflows::approvals::run(&jetstream, &args.run, TIMEOUT)
            .await?
            .with_context(|| format!("run {} has no record", args.run))?;
        let moved = match run.status {
            RunStatus::Running => false,
            // Still at the same gate: the decision is not applied yet.
            RunStatus::AwaitingApproval => run
                .approvals
                .last()
                .is_some_and(|last| last.step_index != gate.step_index),
            _ => true,
        };
        if moved {
            return print_run(&run, args.common.json);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "run {} did not settle within {} (status {})",
                args.run,
                humantime::format_duration(wait),
                run.status.as_str()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
