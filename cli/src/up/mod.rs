//! `tidegate up`: dev mode. Starts nats-server, the ingress, then the workers
//! (the forwarder delivering to an in-process dev sink, github-sync, exec,
//! inbox, workflow), waits until each is ready, prints how to use them, and
//! on Ctrl-C stops them in reverse order.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use nix::sys::signal::Signal;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::banner::Banner;
use crate::process::{self, Child, Label, Output, Shutdown};
use crate::ready::{wait_for_jetstream, wait_for_ready};
use crate::secrets::Origin;

use plan::{Plan, prepare};
use workers::start_workers;

mod dev_config;
mod plan;
mod workers;

/// Options of `tidegate up`; relative paths resolve against the working
/// directory (the repository root when started by `deploy/dev/up.sh`).
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Ingress configuration (routes, stream settings).
    #[arg(long, default_value = "deploy/examples/tidegate.toml")]
    pub(super) config: PathBuf,
    /// Folder for the JetStream store and the generated dev secrets.
    #[arg(long, default_value = ".tidegate")]
    pub(super) data: PathBuf,
    /// nats-server client port (loopback).
    #[arg(long, default_value_t = 4222)]
    pub(super) nats_port: u16,
    /// nats-server HTTP monitoring port (loopback).
    #[arg(long, default_value_t = 8222)]
    pub(super) monitor_port: u16,
    /// Address the ingress listens on; overrides `listen` in the config.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(super) listen: SocketAddr,
    /// nats-server configuration.
    #[arg(long, default_value = "deploy/nats/nats-server.conf")]
    pub(super) nats_config: PathBuf,
    /// Port of the dev sink the forwarder delivers to (loopback).
    #[arg(long, default_value_t = 9000)]
    pub(super) sink_port: u16,
    /// The github-sync worker's configuration; skipped when missing.
    #[arg(long, default_value = "deploy/examples/github-sync.toml")]
    pub(super) github_sync_config: PathBuf,
    /// Folder of the dev configs of exec, inbox and workflow (`{data}` in
    /// them becomes `--data`).
    #[arg(long, default_value = "deploy/dev")]
    pub(super) dev_configs: PathBuf,
    /// Start only nats-server and the ingress, no workers.
    #[arg(long)]
    pub(super) no_workers: bool,
}

const NATS: Label = Label {
    name: "nats",
    colour: "36",
};
const INGRESS: Label = Label {
    name: "ingress",
    colour: "35",
};

/// SIGINT, as Debian's unit stops it: nats-server exits 0 on SIGINT (lame
/// duck on SIGTERM takes longer). It flushes its store and exits within a
/// second or two.
const NATS_SHUTDOWN: Shutdown = Shutdown {
    signal: Signal::SIGINT,
    grace: Duration::from_secs(10),
};
/// Added to the ingress's own `http.shutdown_grace` before it is killed.
const INGRESS_STOP_MARGIN: Duration = Duration::from_secs(5);

pub(crate) async fn run(args: UpArgs) -> anyhow::Result<()> {
    let output = Output::detect();
    let plan = prepare(&args)?;
    output.note(&secrets_note(&plan));
    let mut signals = Signals::install().context("installing signal handlers")?;
    let mut children = Vec::new();
    let stopping = CancellationToken::new();
    let Err(stop) = start_and_wait(&plan, output, &mut children, &mut signals, &stopping).await;
    stopping.cancel();
    match &stop {
        Stop::Requested(signal) => output.note(&format!("{signal}: stopping")),
        Stop::Failed(error) => output.note(&format!("{error:#}: stopping")),
    }
    stop_all(&children, output, &mut signals).await;
    match stop {
        Stop::Requested(signal) => {
            output.note(&format!("{signal}: everything stopped"));
            Ok(())
        }
        Stop::Failed(error) => Err(error),
    }
}

/// Starts nats-server, then the ingress, and returns only to stop: on a
/// signal, when a child exits, or when a step fails.
async fn start_and_wait(
    plan: &Plan,
    output: Output,
    children: &mut Vec<Child>,
    signals: &mut Signals,
    stopping: &CancellationToken,
) -> Result<Infallible, Stop> {
    let store = plan.data.join("nats");
    output.note(&format!(
        "starting {} -c {} -sd {} -p {} -m {}",
        plan.nats_server.display(),
        plan.nats_config.display(),
        store.display(),
        plan.nats_port,
        plan.monitor_port
    ));
    let mut command = Command::new(&plan.nats_server);
    command
        .arg("-c")
        .arg(&plan.nats_config)
        .arg("-sd")
        .arg(&store)
        .args(["-p", &plan.nats_port.to_string()])
        .args(["-m", &plan.monitor_port.to_string()]);
    children.push(process::spawn(output, NATS, NATS_SHUTDOWN, command).map_err(Stop::Failed)?);
    guard(wait_for_jetstream(&plan.nats_url), children, signals).await?;

    output.note(&format!(
        "starting {} --config {}",
        plan.ingress.display(),
        plan.config_file.display()
    ));
    let mut command = Command::new(&plan.ingress);
    command
        .arg("--config")
        .arg(&plan.config_file)
        .env_remove("TIDEGATE_CONFIG")
        .env("TIDEGATE_LISTEN", plan.listen.to_string())
        .env("TIDEGATE_NATS_URL", &plan.nats_url)
        .envs(
            plan.secrets
                .iter()
                .map(|secret| (secret.name, secret.value.as_str())),
        );
    if !output.colour() {
        command.env("NO_COLOR", "1");
    }
    let shutdown = Shutdown {
        signal: Signal::SIGTERM,
        grace: plan.config.http.shutdown_grace + INGRESS_STOP_MARGIN,
    };
    children.push(process::spawn(output, INGRESS, shutdown, command).map_err(Stop::Failed)?);
    guard(wait_for_ready(plan.listen), children, signals).await?;

    let mut workers = Vec::new();
    if let Some(plan_workers) = &plan.workers {
        workers = start_workers(plan, plan_workers, output, children, signals, stopping).await?;
    }
    let sink_url = plan
        .workers
        .as_ref()
        .map(|workers| format!("http://{}", workers.sink));
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tidegate"));
    let banner = Banner {
        config: &plan.config,
        listen: plan.listen,
        nats_url: &plan.nats_url,
        monitor_url: &plan.monitor_url,
        data: &plan.data,
        secrets_file: &plan.secrets_file,
        nats_cli: process::find_program("nats").is_some(),
        sink: sink_url.as_deref(),
        workers: &workers,
        program: &program,
    };
    output.block(&banner.render());
    guard(std::future::pending(), children, signals).await
}

/// Why `up` stops.
#[derive(Debug)]
enum Stop {
    /// A signal: stop everything and exit 0.
    Requested(&'static str),
    /// A child exited on its own or a step failed: stop the rest, exit 1.
    Failed(anyhow::Error),
}

/// Runs `step` unless a signal arrives or a child exits first.
async fn guard<T>(
    step: impl Future<Output = anyhow::Result<T>>,
    children: &[Child],
    signals: &mut Signals,
) -> Result<T, Stop> {
    // Optional children (github-sync) may exit without stopping the rest.
    let first_exit = futures::future::select_all(
        children
            .iter()
            .filter(|child| child.required)
            .map(|child| Box::pin(async move { (child.label.name, child.exited().await) })),
    );
    tokio::select! {
        result = step => result.map_err(Stop::Failed),
        signal = signals.recv() => Err(Stop::Requested(signal)),
        ((name, exit), _, _) = first_exit => {
            Err(Stop::Failed(anyhow!("{name} exited unexpectedly ({exit}); its output is above")))
        }
    }
}

/// Asks each child to stop, the last started first (the ingress drains
/// while nats-server is still there to take its publishes), then kills it
/// after its grace period or on a second Ctrl-C.
async fn stop_all(children: &[Child], output: Output, signals: &mut Signals) {
    for child in children.iter().rev() {
        let name = child.label.name;
        let Shutdown { signal, grace } = child.shutdown;
        if !child.has_exited() {
            output.note(&format!("stopping {name} ({signal})"));
            child.signal(signal);
        }
        let exit = tokio::select! {
            exit = child.exited() => exit,
            () = tokio::time::sleep(grace) => {
                output.note(&format!("{name} did not stop within {grace:?}: killing it"));
                child.signal(Signal::SIGKILL);
                child.exited().await
            }
            signal = signals.recv() => {
                output.note(&format!("{signal} again: killing {name}"));
                child.signal(Signal::SIGKILL);
                child.exited().await
            }
        };
        output.note(&format!("{name} stopped ({exit})"));
    }
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP (terminal closed) all mean stop.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

fn secrets_note(plan: &Plan) -> String {
    let described = plan
        .secrets
        .iter()
        .map(|secret| {
            let origin = match secret.origin {
                Origin::Environment => "from the environment",
                Origin::File => "reused",
                Origin::Generated => "generated",
            };
            format!("{} ({origin})", secret.name)
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "dev secrets: {described}; stored in {}",
        plan.secrets_file.display()
    )
}
