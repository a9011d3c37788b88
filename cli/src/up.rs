//! `tidegate up`: dev mode. Starts nats-server, then the ingress, waits until
//! each is ready, prints how to use them, and on Ctrl-C stops them in order.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use ingress::config::Config;
use nix::sys::signal::Signal;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

use crate::banner::Banner;
use crate::process::{self, Child, Label, Output, Shutdown};
use crate::ready::{wait_for_jetstream, wait_for_ready};
use crate::secrets::{self, Origin};

/// Options of `tidegate up`; relative paths resolve against the working
/// directory (the repository root when started by `deploy/dev/up.sh`).
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Ingress configuration (routes, stream settings).
    #[arg(long, default_value = "deploy/examples/tidegate.toml")]
    config: PathBuf,
    /// Folder for the JetStream store and the generated dev secrets.
    #[arg(long, default_value = ".tidegate")]
    data: PathBuf,
    /// nats-server client port (loopback).
    #[arg(long, default_value_t = 4222)]
    nats_port: u16,
    /// nats-server HTTP monitoring port (loopback).
    #[arg(long, default_value_t = 8222)]
    monitor_port: u16,
    /// Address the ingress listens on; overrides `listen` in the config.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// nats-server configuration.
    #[arg(long, default_value = "deploy/nats/nats-server.conf")]
    nats_config: PathBuf,
}

const NATS: Label = Label {
    name: "nats",
    colour: "36",
};
const INGRESS: Label = Label {
    name: "ingress",
    colour: "35",
};

/// SIGINT, as Debian's unit stops it: nats-server 2.9 exits 0 on SIGINT but
/// 1 on SIGTERM. It flushes its store and exits within a second or two.
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
    let Err(stop) = start_and_wait(&plan, output, &mut children, &mut signals).await;
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

/// Everything resolved and checked before a process starts.
#[derive(Debug)]
struct Plan {
    nats_server: PathBuf,
    nats_config: PathBuf,
    ingress: PathBuf,
    config_file: PathBuf,
    config: Config,
    data: PathBuf,
    secrets_file: PathBuf,
    secrets: Vec<secrets::DevSecret>,
    nats_port: u16,
    monitor_port: u16,
    listen: SocketAddr,
    nats_url: String,
    monitor_url: String,
}

fn prepare(args: &UpArgs) -> anyhow::Result<Plan> {
    let nats_server = process::find_program("nats-server").ok_or_else(|| {
        anyhow!(
            "nats-server is not installed (not on PATH, nor in /usr/sbin): install it with \
             `sudo apt-get install nats-server`, or run deploy/dev/up.sh, which does"
        )
    })?;
    let ingress = next_to_this_program("tidegate-ingress")?;
    let config_file = existing_file(&args.config, "--config")?;
    let nats_config = existing_file(&args.nats_config, "--nats-config")?;
    let data = std::path::absolute(&args.data)
        .with_context(|| format!("resolving {}", args.data.display()))?;
    create_data_folder(&data)?;

    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    check_free(
        loopback(args.nats_port),
        "--nats-port",
        " (a system nats-server? `sudo systemctl disable --now nats-server`)",
    )?;
    check_free(loopback(args.monitor_port), "--monitor-port", "")?;
    check_free(args.listen, "--listen", "")?;

    let mut env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    let secrets_file = data.join("dev-secrets.env");
    let secrets = secrets::resolve(&secrets_file, &env)?;
    for secret in &secrets {
        env.insert(secret.name.to_owned(), secret.value.clone());
    }
    let nats_url = format!("nats://{}", loopback(args.nats_port));
    // The same layers the ingress will read: the file, `TIDEGATE_*`, then
    // the two values `up` passes to it.
    let figment = Config::figment(Some(&config_file))
        .merge(("listen", args.listen.to_string()))
        .merge(("nats_url", nats_url.clone()));
    let config = Config::load(&figment, &env)
        .with_context(|| format!("loading {}", config_file.display()))?;

    Ok(Plan {
        nats_server,
        nats_config,
        ingress,
        config_file,
        config,
        data,
        secrets_file,
        secrets,
        nats_port: args.nats_port,
        monitor_port: args.monitor_port,
        listen: args.listen,
        nats_url,
        monitor_url: format!("http://{}", loopback(args.monitor_port)),
    })
}

/// Starts nats-server, then the ingress, and returns only to stop: on a
/// signal, when a child exits, or when a step fails.
async fn start_and_wait(
    plan: &Plan,
    output: Output,
    children: &mut Vec<Child>,
    signals: &mut Signals,
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

    let banner = Banner {
        config: &plan.config,
        listen: plan.listen,
        nats_url: &plan.nats_url,
        monitor_url: &plan.monitor_url,
        data: &plan.data,
        secrets_file: &plan.secrets_file,
        nats_cli: process::find_program("nats").is_some(),
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
    let first_exit = futures::future::select_all(
        children
            .iter()
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

/// The ingress binary built into the same target folder as `tidegate`.
fn next_to_this_program(name: &str) -> anyhow::Result<PathBuf> {
    let this = std::env::current_exe().context("finding the tidegate executable")?;
    let path = this.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} not found next to {}: build both with `cargo build --release -p cli -p ingress`",
            path.display(),
            this.display()
        );
    }
    Ok(path)
}

fn existing_file(path: &Path, flag: &str) -> anyhow::Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "{} not found: run from the repository root, or pass {flag}",
            path.display()
        );
    }
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// Creates `<data>/nats` and a `.gitignore` that keeps the whole folder
/// (store and secrets) out of version control.
fn create_data_folder(data: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data.join("nats"))
        .with_context(|| format!("creating {}", data.join("nats").display()))?;
    let ignore = data.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(
            &ignore,
            "# created by `tidegate up`: dev data, never committed\n*\n",
        )
        .with_context(|| format!("writing {}", ignore.display()))?;
    }
    Ok(())
}

/// Fails early, naming the flag to change, when something already listens.
fn check_free(address: SocketAddr, flag: &str, hint: &str) -> anyhow::Result<()> {
    TcpListener::bind(address)
        .map(drop)
        .with_context(|| format!("cannot listen on {address}{hint}; free it or pass {flag}"))
}
