//! `tidegate workflows runs show <run>` and `tidegate workflows check`: a
//! run's record (status, each step's result), and the workflow files of
//! the configuration's workflow routes validated as the ingress and the
//! worker load them.

use std::time::Duration;

use anyhow::{Context as _, bail};
use schemas::WorkflowRun;

use crate::common::Common;

#[derive(Debug, clap::Args)]
pub(crate) struct WorkflowsArgs {
    #[command(subcommand)]
    command: WorkflowsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum WorkflowsCommand {
    /// Workflow runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Validate every workflow file of the workflow routes; exits 1 on a
    /// problem.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Subcommand)]
enum RunsCommand {
    /// A run's status and each step's result.
    Show {
        #[command(flatten)]
        common: Common,
        /// The run id (the `run_id` of the webhook's answer).
        run: String,
    },
}

pub(crate) async fn run(args: WorkflowsArgs) -> anyhow::Result<()> {
    match args.command {
        WorkflowsCommand::Runs {
            command: RunsCommand::Show { common, run },
        } => {
            let jetstream = common.jetstream().await?;
            let record = workflows::approvals::run(&jetstream, &run, Duration::from_secs(5))
                .await?
                .with_context(|| format!("no workflow run {run}"))?;
            print_run(&record, common.json)
        }
        WorkflowsCommand::Check { common } => check(&common),
    }
}

fn check(common: &Common) -> anyhow::Result<()> {
    let loaded = common.ingress_config_lenient()?;
    let mut problems = 0;
    let mut found = 0;
    for route in &loaded.config.routes {
        let Some(workflows) = &route.workflows else {
            continue;
        };
        workflows.registry.scan();
        let snapshot = workflows.registry.snapshot();
        if let Some(why) = &snapshot.folder_error {
            bail!("route {}: {why}", route.name);
        }
        for (name, workflow) in &snapshot.workflows {
            found += 1;
            println!("ok  {name}  {}", workflow.file.display());
        }
        for problem in &snapshot.problems {
            problems += 1;
            println!("bad {}: {}", problem.file.display(), problem.error);
        }
    }
    if problems > 0 {
        bail!("{problems} workflow file(s) are invalid ({found} valid)");
    }
    Ok(())
}

/// A run as a table of steps (or its record as JSON).
pub(crate) fn print_run(run: &WorkflowRun, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(run)?);
        return Ok(());
    }
    println!("run:      {}", run.run_id);
    println!("workflow: {}", run.workflow);
    println!("status:   {}", run.status.as_str());
    println!("started:  {}", run.created_at);
    if let Some(finished) = &run.finished_at {
        println!("finished: {finished}");
    }
    if let Some(error) = &run.error {
        println!("error:    {error}");
    }
    if let Some(gate) = run.approvals.last() {
        let decision = gate.decision.map_or("pending".to_owned(), |decision| {
            format!("{decision:?}").to_lowercase()
        });
        println!(
            "approval: step {} {decision} (expires {})",
            gate.step, gate.expires_at
        );
    }
    println!("steps:");
    for step in &run.steps {
        let mut line = format!("  {}: {} ({})", step.name, step.status.as_str(), step.tool);
        if let Some(code) = step.exit_code {
            line.push_str(&format!(", exit {code}"));
        }
        if let Some(status) = step.http_status {
            line.push_str(&format!(", HTTP {status}"));
        }
        if let Some(error) = &step.error {
            line.push_str(&format!(": {error}"));
        }
        println!("{line}");
        if let Some(output) = step.output.as_deref().filter(|output| !output.is_empty()) {
            for text in output.lines().take(20) {
                println!("      {text}");
            }
        }
    }
    Ok(())
}
