//! `tidegate up`'s plan: every path, port, secret and config resolved and
//! checked before a process starts.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use ingress::config::Config;
use verify::{Secret, standard_webhooks};

use super::UpArgs;
use super::workers::{DEV_WORKERS, DevWorker};
use crate::secrets::{self, FORWARD_SIGNING_SECRET};

/// Everything resolved and checked before a process starts.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) nats_server: PathBuf,
    pub(super) nats_config: PathBuf,
    pub(super) ingress: PathBuf,
    pub(super) config_file: PathBuf,
    pub(super) config: Config,
    pub(super) data: PathBuf,
    pub(super) secrets_file: PathBuf,
    pub(super) secrets: Vec<secrets::DevSecret>,
    pub(super) nats_port: u16,
    pub(super) monitor_port: u16,
    pub(super) listen: SocketAddr,
    pub(super) nats_url: String,
    pub(super) monitor_url: String,
    /// `None` with `--no-workers`.
    pub(super) workers: Option<WorkersPlan>,
}

/// The worker processes and the dev sink they deliver to.
#[derive(Debug)]
pub(super) struct WorkersPlan {
    pub(super) forward: PathBuf,
    /// The forwarder's dev config, written at start.
    pub(super) forward_config: PathBuf,
    pub(super) sink: SocketAddr,
    /// The decoded `FORWARD_SIGNING_SECRET`, which the sink checks.
    pub(super) sink_key: Secret,
    /// The binary and the example configuration, when both exist.
    pub(super) github_sync: Option<(PathBuf, PathBuf)>,
    /// github-sync's dev config (the example with folders under `data`).
    pub(super) github_sync_config: PathBuf,
    pub(super) data: PathBuf,
    /// The deploy/dev workers that are built: the binary and the dev config.
    pub(super) dev: Vec<(DevWorker, PathBuf, PathBuf)>,
    /// Why a worker is not started.
    pub(super) skipped: Vec<String>,
}

pub(super) fn prepare(args: &UpArgs) -> anyhow::Result<Plan> {
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
    let mut dev = Vec::new();
    for worker in DEV_WORKERS {
        let config = args.dev_configs.join(worker.config);
        match next_to_this_program(worker.binary) {
            Err(_) => skipped.push(format!("{} is not built", worker.binary)),
            Ok(binary) => dev.push((worker, binary, existing_file(&config, "--dev-configs")?)),
        }
    }
    Ok(WorkersPlan {
        forward,
        forward_config: data.join("forward.toml"),
        sink,
        sink_key,
        github_sync,
        github_sync_config: data.join("github-sync.toml"),
        data: data.to_owned(),
        dev,
        skipped,
    })
}

/// The ingress binary built into the same target folder as `tidegate`.
fn next_to_this_program(name: &str) -> anyhow::Result<PathBuf> {
    let this = std::env::current_exe().context("finding the tidegate executable")?;
    let path = this.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} not found next to {}: build them with `cargo build --release -p cli -p ingress -p workers -p workflow-worker` \
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
