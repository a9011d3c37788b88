//! `tidegate up`'s workers: the dev sink and the forwarder, github-sync
//! from its example, then the workers with a config in deploy/dev/
//! (exec, inbox, workflow); each is started, then awaited until it consumes.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::Signal;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::dev_config::{dev_worker_config, forward_config, github_sync_config};
use super::plan::{Plan, WorkersPlan};
use super::{Signals, Stop, guard};
use crate::process::{self, Child, Label, Output, Shutdown};
use crate::ready::wait_for_consumer;
use crate::secrets::FORWARD_SIGNING_SECRET;
use crate::sink;

pub(super) const FORWARD: Label = Label {
    name: "forward",
    colour: "33",
};
const GITHUB_SYNC: Label = Label {
    name: "gh-sync",
    colour: "34",
};

/// The forwarder's durable consumer (and worker name) in dev mode.
pub(super) const FORWARD_NAME: &str = "forward";
/// Workers get their own `shutdown_grace` (5 s in the dev configs, 30 s by
/// default) plus a margin before they are killed.
const WORKER_SHUTDOWN: Shutdown = Shutdown {
    signal: Signal::SIGTERM,
    grace: Duration::from_secs(35),
};

/// A worker started from its config in deploy/dev/.
#[derive(Debug, Clone, Copy)]
pub(super) struct DevWorker {
    pub(super) label: Label,
    /// The binary, next to `tidegate`.
    pub(super) binary: &'static str,
    /// Its file in the dev configs folder; the written copy has the same name.
    pub(super) config: &'static str,
    /// Its durable consumer (the config's `name`), awaited after the start.
    pub(super) consumer: &'static str,
}

/// Started in this order, after the forwarder and github-sync.
pub(super) const DEV_WORKERS: [DevWorker; 3] = [
    DevWorker {
        label: Label {
            name: "exec",
            colour: "32",
        },
        binary: "tidegate-exec",
        config: "exec.toml",
        consumer: "exec",
    },
    DevWorker {
        label: Label {
            name: "inbox",
            colour: "93",
        },
        binary: "tidegate-inbox",
        config: "inbox.toml",
        consumer: "inbox",
    },
    DevWorker {
        label: Label {
            // Seven characters at most: the log prefixes stay aligned.
            name: "wflow",
            colour: "96",
        },
        binary: "tidegate-workflow",
        config: "workflow.toml",
        consumer: "workflow",
    },
];

/// Starts the dev sink and the forwarder (waiting until it consumes),
/// github-sync when configured, then the deploy/dev workers (each awaited
/// until it consumes); returns the labels of the workers started.
pub(super) async fn start_workers(
    plan: &Plan,
    workers: &WorkersPlan,
    output: Output,
    children: &mut Vec<Child>,
    signals: &mut Signals,
    stopping: &CancellationToken,
) -> Result<Vec<&'static str>, Stop> {
    for note in &workers.skipped {
        output.note(note);
    }
    let listener = tokio::net::TcpListener::bind(workers.sink)
        .await
        .with_context(|| format!("binding the dev sink on {}; pass --sink-port", workers.sink))
        .map_err(Stop::Failed)?;
    output.note(&format!(
        "dev sink listening on http://{} (checks {FORWARD_SIGNING_SECRET} signatures)",
        workers.sink
    ));
    tokio::spawn(sink::serve(listener, workers.sink_key.clone(), output));

    let config = forward_config(&plan.nats_url, &format!("http://{}", workers.sink));
    std::fs::write(&workers.forward_config, config)
        .with_context(|| format!("writing {}", workers.forward_config.display()))
        .map_err(Stop::Failed)?;
    output.note(&format!(
        "starting {} --config {}",
        workers.forward.display(),
        workers.forward_config.display()
    ));
    let mut command = worker_command(plan, &workers.forward, &workers.forward_config, output);
    command.envs(
        plan.secrets
            .iter()
            .filter(|secret| secret.name == FORWARD_SIGNING_SECRET)
            .map(|secret| (secret.name, secret.value.as_str())),
    );
    children.push(process::spawn(output, FORWARD, WORKER_SHUTDOWN, command).map_err(Stop::Failed)?);
    guard(
        wait_for_consumer(&plan.nats_url, FORWARD_NAME),
        children,
        signals,
    )
    .await?;
    let mut started = vec![FORWARD.name];

    if let Some((binary, example)) = &workers.github_sync {
        let text = github_sync_config(example, &workers.data, &plan.nats_url, |name| {
            std::env::var_os(name).is_some()
        })
        .map_err(Stop::Failed)?;
        std::fs::write(&workers.github_sync_config, text)
            .with_context(|| format!("writing {}", workers.github_sync_config.display()))
            .map_err(Stop::Failed)?;
        output.note(&format!(
            "starting {} --config {} (from {}, folders under {})",
            binary.display(),
            workers.github_sync_config.display(),
            example.display(),
            workers.data.join("github-sync").display()
        ));
        let command = worker_command(plan, binary, &workers.github_sync_config, output);
        let child = process::spawn(output, GITHUB_SYNC, WORKER_SHUTDOWN, command)
            .map_err(Stop::Failed)?
            .optional();
        // github-sync needs credentials dev mode cannot make up: when it
        // stops, say so and keep the rest running.
        let exited = child.on_exit();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::select! {
                exit = exited => output.note(&format!(
                    "{} exited ({exit}); its output is above; the rest keeps running",
                    GITHUB_SYNC.name
                )),
                () = stopping.cancelled() => {}
            }
        });
        children.push(child);
        started.push(GITHUB_SYNC.name);
    }

    for (worker, binary, source) in &workers.dev {
        let written = workers.data.join(worker.config);
        let text =
            dev_worker_config(source, &workers.data, &plan.nats_url).map_err(Stop::Failed)?;
        std::fs::write(&written, text)
            .with_context(|| format!("writing {}", written.display()))
            .map_err(Stop::Failed)?;
        output.note(&format!(
            "starting {} --config {} (from {})",
            binary.display(),
            written.display(),
            source.display()
        ));
        let command = worker_command(plan, binary, &written, output);
        children.push(
            process::spawn(output, worker.label, WORKER_SHUTDOWN, command).map_err(Stop::Failed)?,
        );
        guard(
            wait_for_consumer(&plan.nats_url, worker.consumer),
            children,
            signals,
        )
        .await?;
        started.push(worker.label.name);
    }
    Ok(started)
}

/// A worker with `config`, pointed at dev mode's nats-server.
fn worker_command(plan: &Plan, binary: &Path, config: &Path, output: Output) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("--config")
        .arg(config)
        .env_remove("TIDEGATE_CONFIG")
        .env("TIDEGATE_NATS_URL", &plan.nats_url);
    if !output.colour() {
        command.env("NO_COLOR", "1");
    }
    command
}
