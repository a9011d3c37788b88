//! `tidegate up`: dev mode. Starts nats-server, the ingress, then the workers
//! (the forwarder delivering to an in-process dev sink), waits until each is
//! ready, prints how to use them, and on Ctrl-C stops them in reverse order.

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
use tokio_util::sync::CancellationToken;
use verify::{Secret, standard_webhooks};

use crate::banner::Banner;
use crate::process::{self, Child, Label, Output, Shutdown};
use crate::ready::{wait_for_consumer, wait_for_jetstream, wait_for_ready};
use crate::secrets::{self, FORWARD_SIGNING_SECRET, Origin};
use crate::sink;

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
    /// Port of the dev sink the forwarder delivers to (loopback).
    #[arg(long, default_value_t = 9000)]
    sink_port: u16,
    /// The github-sync worker's configuration; skipped when missing.
    #[arg(long, default_value = "deploy/examples/github-sync.toml")]
    github_sync_config: PathBuf,
    /// Start only nats-server and the ingress, no workers.
    #[arg(long)]
    no_workers: bool,
}

const NATS: Label = Label {
    name: "nats",
    colour: "36",
};
const INGRESS: Label = Label {
    name: "ingress",
    colour: "35",
};
const FORWARD: Label = Label {
    name: "forward",
    colour: "33",
};
const GITHUB_SYNC: Label = Label {
    name: "gh-sync",
    colour: "34",
};

/// The forwarder's durable consumer (and worker name) in dev mode.
const FORWARD_NAME: &str = "forward";
/// Workers get their own `shutdown_grace` (5 s in the dev config, 30 s by
/// default) plus a margin before they are killed.
const WORKER_SHUTDOWN: Shutdown = Shutdown {
    signal: Signal::SIGTERM,
    grace: Duration::from_secs(35),
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
    /// `None` with `--no-workers`.
    workers: Option<WorkersPlan>,
}

/// The worker processes and the dev sink they deliver to.
#[derive(Debug)]
struct WorkersPlan {
    forward: PathBuf,
    /// The forwarder's dev config, written at start.
    forward_config: PathBuf,
    sink: SocketAddr,
    /// The decoded `FORWARD_SIGNING_SECRET`, which the sink checks.
    sink_key: Secret,
    /// The binary and the example configuration, when both exist.
    github_sync: Option<(PathBuf, PathBuf)>,
    /// github-sync's dev config (the example with folders under `data`).
    github_sync_config: PathBuf,
    data: PathBuf,
    /// Why a worker is not started.
    skipped: Vec<String>,
}

fn prepare(args: &UpArgs) -> anyhow::Result<Plan> {
    // The project's .tools (deploy/tools/install.sh) next to the working
    // directory or to this binary (target/release/tidegate), then PATH.
    let here = std::env::current_dir().context("reading the working directory")?;
    let checkout = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()));
    let mut roots = vec![here.as_path()];
    roots.extend(checkout.as_deref());
    let nats_server = broker::server::locate(&roots)?.path;
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
        .merge(("nats.url", nats_url.clone()));
    let config = Config::load(&figment, &env)
        .with_context(|| format!("loading {}", config_file.display()))?;
    let workers = if args.no_workers {
        None
    } else {
        Some(prepare_workers(args, &data, &secrets)?)
    };

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
        workers,
    })
}

fn prepare_workers(
    args: &UpArgs,
    data: &Path,
    secrets: &[secrets::DevSecret],
) -> anyhow::Result<WorkersPlan> {
    let forward = next_to_this_program("tidegate-forward")?;
    let sink = SocketAddr::from(([127, 0, 0, 1], args.sink_port));
    check_free(sink, "--sink-port", "")?;
    let sink_key = secrets
        .iter()
        .find(|secret| secret.name == FORWARD_SIGNING_SECRET)
        .and_then(|secret| Secret::new(secret.value.as_str()))
        .and_then(|secret| standard_webhooks::decode_key(&secret))
        .ok_or_else(|| {
            anyhow!("{FORWARD_SIGNING_SECRET} is not a Standard Webhooks secret (whsec_<base64>)")
        })?;
    let mut skipped = Vec::new();
    let github_sync = match (
        next_to_this_program("tidegate-github-sync"),
        args.github_sync_config.is_file(),
    ) {
        (Ok(binary), true) => Some((
            binary,
            std::path::absolute(&args.github_sync_config)
                .with_context(|| format!("resolving {}", args.github_sync_config.display()))?,
        )),
        (Err(_), _) => {
            skipped.push("tidegate-github-sync is not built".to_owned());
            None
        }
        (Ok(_), false) => {
            skipped.push(format!(
                "tidegate-github-sync not started: {} not found",
                args.github_sync_config.display()
            ));
            None
        }
    };
    Ok(WorkersPlan {
        forward,
        forward_config: data.join("forward.toml"),
        sink,
        sink_key,
        github_sync,
        github_sync_config: data.join("github-sync.toml"),
        data: data.to_owned(),
        skipped,
    })
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

/// Starts the dev sink and the forwarder (waiting until it consumes), then
/// github-sync when configured; returns the labels of the workers started.
async fn start_workers(
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

/// The forwarder's dev config: every delivery to the sink, signed.
fn forward_config(nats_url: &str, sink_url: &str) -> String {
    format!(
        r#"# Written by `tidegate up` at every start: tidegate-forward delivers every
# delivery (tidegate.in.>) to the dev sink, signed with {FORWARD_SIGNING_SECRET}.
name = "{FORWARD_NAME}"

[nats]
url = "{nats_url}"

[consumer]
filter_subjects = "tidegate.in.>"
max_deliver = 3
backoff_max = "10s"
shutdown_grace = "5s"

[forward]
timeout = "5s"

[[forward.targets]]
subjects = "tidegate.in.>"
url = "{sink_url}/"
mode = "envelope"
secret = {{ env = "{FORWARD_SIGNING_SECRET}" }}
"#
    )
}

/// The github-sync example made safe for a laptop: its state and target
/// folders move under `<data>/github-sync/`, it serves no metrics port, it
/// stops within the dev grace period, and without the GitHub App's key in
/// the environment (`has_env`) it runs without the App (public
/// repositories only) instead of refusing to start.
fn github_sync_config(
    example: &Path,
    data: &Path,
    nats_url: &str,
    has_env: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(example)
        .with_context(|| format!("reading {}", example.display()))?;
    let mut config: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", example.display()))?;
    let root = data.join("github-sync");
    let string = |path: PathBuf| toml::Value::String(path.to_string_lossy().into_owned());
    let mut nats = toml::Table::new();
    nats.insert("url".to_owned(), nats_url.into());
    config.insert("nats".to_owned(), toml::Value::Table(nats));
    config.remove("listen");
    if let Some(toml::Value::Table(consumer)) = config.get_mut("consumer") {
        consumer.insert("shutdown_grace".to_owned(), "10s".into());
    }
    if let Some(toml::Value::Table(sync)) = config.get_mut("github_sync") {
        sync.insert("state_dir".to_owned(), string(root.join("state")));
        let key_unset = sync
            .get("app")
            .and_then(|app| app.get("private_key"))
            .and_then(|key| key.get("env"))
            .and_then(toml::Value::as_str)
            .is_some_and(|name| !has_env(name));
        if key_unset {
            sync.remove("app");
        }
        if let Some(toml::Value::Array(targets)) = sync.get_mut("targets") {
            for target in targets {
                if let Some(toml::Value::String(path)) = target.get_mut("path") {
                    *path = root
                        .join("targets")
                        .join(path.trim_start_matches('/'))
                        .to_string_lossy()
                        .into_owned();
                }
            }
        }
    }
    let body = toml::to_string(&config)
        .with_context(|| format!("writing {} back as TOML", example.display()))?;
    Ok(format!(
        "# Written by `tidegate up` at every start from {}, with its folders\n\
         # under {}.\n{body}",
        example.display(),
        root.display()
    ))
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

/// The ingress binary built into the same target folder as `tidegate`.
fn next_to_this_program(name: &str) -> anyhow::Result<PathBuf> {
    let this = std::env::current_exe().context("finding the tidegate executable")?;
    let path = this.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} not found next to {}: build them with `cargo build --release -p cli -p ingress -p workers` \
             (or pass --no-workers)",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The configs are checked as TOML here; the integration suite runs
    /// `tidegate up` and so the workers with them.
    #[test]
    fn the_dev_forward_config_points_at_dev_mode() {
        let text = forward_config("nats://127.0.0.1:4333", "http://127.0.0.1:9000");
        let config: toml::Table = text.parse().expect("valid TOML");
        assert_eq!(config["name"].as_str(), Some(FORWARD_NAME));
        assert_eq!(
            config["nats"]["url"].as_str(),
            Some("nats://127.0.0.1:4333")
        );
        let targets = config["forward"]["targets"].as_array().expect("targets");
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0]["url"].as_str(), Some("http://127.0.0.1:9000/"));
    }

    #[test]
    fn the_github_sync_example_moves_into_the_data_folder() {
        let example = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/github-sync.toml"
        ));
        let text = github_sync_config(
            example,
            Path::new("/dev-data"),
            "nats://127.0.0.1:4333",
            |_| true,
        )
        .expect("the example converts");
        let config: toml::Table = text.parse().expect("valid TOML");
        assert_eq!(
            config["nats"]["url"].as_str(),
            Some("nats://127.0.0.1:4333")
        );
        assert!(!config.contains_key("listen"));
        let sync = &config["github_sync"];
        assert_eq!(
            sync["state_dir"].as_str(),
            Some("/dev-data/github-sync/state")
        );
        let targets = sync["targets"].as_array().expect("targets");
        assert!(!targets.is_empty());
        for target in targets {
            let path = target["path"].as_str().expect("a path");
            assert!(path.starts_with("/dev-data/github-sync/targets/"), "{path}");
        }
        assert!(
            sync.get("app").is_some(),
            "the App stays when its key is set"
        );
        let without_key = github_sync_config(example, Path::new("/d"), "nats://x", |_| false)
            .expect("the example converts");
        let config: toml::Table = without_key.parse().expect("valid TOML");
        assert!(
            config["github_sync"].get("app").is_none(),
            "no key in the environment: no App"
        );
    }
}
