//! `tidegate webhook list|test` (the assistant seed's `/webhook` commands):
//! every workflow a workflow route serves, with its state; and a signed
//! test delivery to one, printing the answer (a sync workflow's results).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ingress::config::Route;
use serde_json::json;

use crate::common::Common;
use crate::send;

#[derive(Debug, clap::Args)]
pub(crate) struct WebhookArgs {
    #[command(subcommand)]
    command: WebhookCommand,
}

#[derive(Debug, clap::Subcommand)]
enum WebhookCommand {
    /// Every workflow with its URL and [enabled]/[disabled].
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Send a signed test POST to a workflow's webhook and print the answer.
    Test {
        #[command(flatten)]
        common: Common,
        /// The workflow's name.
        name: String,
        /// Send this file's bytes as the body instead of a sample.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Base URL of the ingress (default: the configuration's `public_url`).
        #[arg(long)]
        url: Option<String>,
    },
}

pub(crate) async fn run(args: WebhookArgs) -> anyhow::Result<()> {
    match args.command {
        WebhookCommand::List { common } => list(&common),
        WebhookCommand::Test {
            common,
            name,
            file,
            url,
        } => test(common, &name, file, url).await,
    }
}

/// The workflow routes of the configuration, with their folders read.
fn workflow_routes(common: &Common) -> anyhow::Result<Vec<std::sync::Arc<Route>>> {
    let loaded = common.ingress_config_lenient()?;
    let routes: Vec<_> = loaded
        .config
        .routes
        .into_iter()
        .filter(|route| route.workflows.is_some())
        .collect();
    if routes.is_empty() {
        bail!(
            "no route in {} has `workflows = \"<folder>\"`",
            common.config.display()
        );
    }
    Ok(routes)
}

fn list(common: &Common) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for route in workflow_routes(common)? {
        let workflows = route.workflows.as_ref().expect("filtered on workflows");
        let registry = &workflows.registry;
        registry.scan();
        let snapshot = registry.snapshot();
        if let Some(why) = &snapshot.folder_error {
            bail!("route {}: {why}", route.name);
        }
        // A running ingress may still serve a broken file's last good
        // version; this command has never seen one.
        for problem in &snapshot.problems {
            eprintln!(
                "warning: {} is invalid and not listed: {}",
                problem.file.display(),
                problem.error
            );
        }
        let method = route
            .methods
            .first()
            .map_or("POST", |method| method.as_str())
            .to_owned();
        for (name, loaded) in &snapshot.workflows {
            let path = route
                .path
                .replace(&format!("{{{}}}", workflows.param), name);
            rows.push((method.clone(), path, loaded.clone()));
        }
    }
    if common.json {
        let base = common.ingress_config_lenient()?.config.public_url;
        for (method, path, loaded) in &rows {
            let workflow = &loaded.workflow;
            let row = json!({
                "name": workflow.name,
                "method": method,
                "path": path,
                "url": format!("{base}{path}"),
                "enabled": workflow.enabled,
                "mode": workflow.mode.as_str(),
                "description": workflow.description,
                "steps": workflow.steps.len(),
                "file": loaded.file.display().to_string(),
            });
            println!("{row}");
        }
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|(_, path, _)| path.len())
        .max()
        .unwrap_or(0);
    println!("Webhooks:");
    for (method, path, loaded) in &rows {
        let state = if loaded.workflow.enabled {
            "[enabled]"
        } else {
            "[disabled]"
        };
        println!("  {method} {path:<width$}  {state}");
    }
    Ok(())
}

async fn test(
    common: Common,
    name: &str,
    file: Option<PathBuf>,
    url: Option<String>,
) -> anyhow::Result<()> {
    let routes = workflow_routes(&common)?;
    let route = &routes[0];
    let workflows = route.workflows.as_ref().expect("filtered on workflows");
    workflows.registry.scan();
    // The ingress decides (404, 409); the local folder only sets the wait.
    let wait = match workflows.registry.lookup(name) {
        workflows::Lookup::Enabled(loaded) | workflows::Lookup::Disabled(loaded) => {
            loaded.workflow.timeout + Duration::from_secs(10)
        }
        _ => Duration::from_secs(40),
    };
    let mut args = send::for_workflow(common, &route.name, &workflows.param, name, file);
    args_url(&mut args, url);
    println!("Testing webhook: {name}");
    let answer = send::exchange(&args, Some(wait), |_, _, _| {})
        .await
        .with_context(|| format!("testing webhook {name}"))?;
    println!("Response: {}", answer.status);
    if !answer.text.is_empty() {
        println!("{}", answer.text.trim_end());
    }
    if !answer.status.is_success() {
        bail!("the ingress answered {}", answer.status);
    }
    Ok(())
}

fn args_url(args: &mut send::SendArgs, url: Option<String>) {
    if url.is_some() {
        args.url = url;
    }
}
