//! The processes under test: a fresh `nats-server` and the release
//! `tidegate-ingress`, each killed on drop, and their CPU time from `/proc`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tempfile::TempDir;

/// How long a spawned process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A child process that is killed and reaped when dropped, so that no
/// server outlives the bench, on success or on error.
#[derive(Debug)]
pub(crate) struct Spawned {
    child: Child,
}

impl Spawned {
    pub(crate) fn new(child: Child) -> Spawned {
        Spawned { child }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited (bad config, port taken).
    pub(crate) fn check_running(&mut self, name: &str) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("{name} exited early with {status}"),
            None => Ok(()),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

/// A `nats-server -js` on a free loopback port with a temporary store.
#[derive(Debug)]
pub(crate) struct NatsServer {
    pub(crate) url: String,
    pub(crate) process: Spawned,
    _store: TempDir,
}

impl NatsServer {
    /// One server with the default sync interval.
    pub(crate) async fn start() -> anyhow::Result<NatsServer> {
        let mut nodes = NatsServer::start_nodes(1, false).await?;
        Ok(nodes.remove(0))
    }

    /// `count` servers (a cluster when more than one, routes on loopback),
    /// each with its own store; `sync_always` sets `sync_interval: always`
    /// (an fsync per write) instead of the server's default (every 2 min).
    pub(crate) async fn start_nodes(
        count: usize,
        sync_always: bool,
    ) -> anyhow::Result<Vec<NatsServer>> {
        let binary = nats_server_binary()?;
        let client_ports = (0..count)
            .map(|_| free_port())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let route_ports = (0..count)
            .map(|_| free_port())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let routes: Vec<String> = route_ports
            .iter()
            .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
            .collect();
        let mut nodes = Vec::with_capacity(count);
        for (index, (client, route)) in client_ports.iter().zip(&route_ports).enumerate() {
            let store = tempfile::tempdir().context("creating the nats-server store dir")?;
            let sync = if sync_always {
                "sync_interval: always"
            } else {
                ""
            };
            let cluster = if count > 1 {
                format!(
                    "cluster {{ name: bench, listen: \"127.0.0.1:{route}\", routes: [{}] }}",
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            let config = format!(
                "server_name: bench-{index}\nlisten: \"127.0.0.1:{client}\"\n\
                 jetstream {{ store_dir: \"{}\", {sync} }}\n{cluster}\n",
                store.path().join("js").display()
            );
            let file = store.path().join("nats.conf");
            std::fs::write(&file, config).context("writing the nats-server config")?;
            let child = Command::new(&binary)
                .arg("-c")
                .arg(&file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            nodes.push(NatsServer {
                url: format!("nats://127.0.0.1:{client}"),
                process: Spawned { child },
                _store: store,
            });
        }
        let started = Instant::now();
        for node in &mut nodes {
            loop {
                node.process.check_running("nats-server")?;
                if jetstream_answers(&node.url).await {
                    break;
                }
                if started.elapsed() > READY_TIMEOUT {
                    bail!(
                        "nats-server at {} did not answer JetStream requests within {READY_TIMEOUT:?}",
                        node.url
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(nodes)
    }
}

/// JetStream is up once its API answers. `query_account` cannot parse the
/// answer of nats-server 2.9, so the raw API request is used.
async fn jetstream_answers(url: &str) -> bool {
    let Ok(client) = async_nats::connect(url).await else {
        return false;
    };
    let request = client.request("$JS.API.INFO", bytes::Bytes::new());
    match tokio::time::timeout(Duration::from_secs(2), request).await {
        Ok(Ok(reply)) => {
            let text = String::from_utf8_lossy(&reply.payload);
            text.contains("account_info_response") && !text.contains("\"error\"")
        }
        _ => false,
    }
}

/// The release `tidegate-ingress` with one GitHub route, pointed at `nats_url`.
#[derive(Debug)]
pub(crate) struct Ingress {
    pub(crate) address: SocketAddr,
    pub(crate) process: Spawned,
    dir: TempDir,
}

impl Ingress {
    pub(crate) async fn start(
        nats_url: &str,
        route_path: &str,
        secret: &str,
    ) -> anyhow::Result<Ingress> {
        let binary = sibling_binary("tidegate-ingress")?;
        let dir = tempfile::tempdir().context("creating the ingress config dir")?;
        let config = dir.path().join("tidegate.toml");
        std::fs::write(&config, ingress_config(route_path))
            .context("writing the ingress config")?;
        let log = std::fs::File::create(dir.path().join("ingress.log"))
            .context("creating the ingress log")?;
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .env("TIDEGATE_NATS_URL", nats_url)
            .env("TIDEGATE_LISTEN", address.to_string())
            .env("GITHUB_WEBHOOK_SECRET", secret)
            // The production default; per-delivery events are `debug`.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut ingress = Ingress {
            address,
            process: Spawned { child },
            dir,
        };
        ingress.wait_ready().await?;
        Ok(ingress)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Err(error) = self.process.check_running("tidegate-ingress") {
                return Err(error.context(self.log_tail()));
            }
            if crate::load::get_status(self.address, "/readyz").await.ok() == Some(200) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "tidegate-ingress /readyz did not answer 200 within {READY_TIMEOUT:?}\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines the ingress logged, to explain a failed start.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("ingress.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("ingress log (last lines):\n{tail}")
    }
}

/// The example config's `github` route, with its secret from the
/// environment; listen address and NATS URL come from `TIDEGATE_*`.
fn ingress_config(route_path: &str) -> String {
    format!(
        r#"
[[routes]]
name = "github"
path = "{route_path}"
methods = ["POST"]
subject = "github.{{event}}"
normalize = "github"
delivery_id = "github"
events = ["push", "installation", "installation_repositories", "repository"]
body_limit = "25MiB"
content_types = ["application/json", "application/x-www-form-urlencoded"]
[routes.verifier]
kind = "github"
secrets = [{{ env = "GITHUB_WEBHOOK_SECRET" }}]
invalid_status = 401
"#
    )
}

/// The nats-server to benchmark, found as dev mode and the tests find it:
/// `TIDEGATE_NATS_SERVER`, the project's `.tools/bin` (from the working
/// directory or above the `target/` this binary sits in), then `PATH` —
/// never one older than the supported minimum.
pub(crate) fn nats_server_binary() -> anyhow::Result<PathBuf> {
    let mut roots = vec![std::env::current_dir().context("reading the working directory")?];
    if let Ok(me) = std::env::current_exe()
        && let Some(root) = me.ancestors().nth(3)
    {
        roots.push(root.to_path_buf());
    }
    let roots: Vec<&Path> = roots.iter().map(PathBuf::as_path).collect();
    Ok(broker::server::locate(&roots)?.path)
}

/// A binary built next to this one (same `target/<profile>` directory).
pub(crate) fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating the bench executable")?;
    let path = me.parent().unwrap_or(Path::new(".")).join(name);
    if !path.is_file() {
        bail!(
            "{} not found; build it first with `cargo build --release --bins`",
            path.display()
        );
    }
    Ok(path)
}

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding an ephemeral port")?;
    Ok(listener.local_addr()?.port())
}

/// User plus system CPU time of a process (all its threads), in seconds.
pub(crate) fn cpu_seconds(pid: Option<u32>) -> anyhow::Result<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name may contain spaces; the fields after it do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15; the list starts at field 3.
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .with_context(|| format!("parsing field {} of {path}", index + 3))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(total as f64 / clock_ticks_per_second() as f64)
}

/// CPU time of the whole machine spent outside the idle loop, in seconds
/// (summed over all cores), from the first line of `/proc/stat`.
pub(crate) fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(index, _)| *index != 3 && *index != 4)
        .map(|(_, value)| value)
        .sum();
    Ok(busy as f64 / clock_ticks_per_second() as f64)
}

/// `USER_HZ`, the unit of `/proc/<pid>/stat` times (100 on Linux in practice).
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU seconds of several processes, read together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    pub(crate) ingress: Option<f64>,
    pub(crate) nats: Option<f64>,
    pub(crate) bench: f64,
    /// Every process on the machine, this one and the kernel included.
    pub(crate) machine: f64,
}

impl CpuSample {
    pub(crate) fn take(ingress: Option<u32>, nats: Option<u32>) -> anyhow::Result<CpuSample> {
        Ok(CpuSample {
            ingress: ingress.map(|pid| cpu_seconds(Some(pid))).transpose()?,
            nats: nats.map(|pid| cpu_seconds(Some(pid))).transpose()?,
            bench: cpu_seconds(None)?,
            machine: machine_busy_seconds()?,
        })
    }

    /// CPU seconds used by each process between `self` and `later`.
    pub(crate) fn until(&self, later: &CpuSample) -> CpuSample {
        let delta = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
        CpuSample {
            ingress: delta(self.ingress, later.ingress),
            nats: delta(self.nats, later.nats),
            bench: later.bench - self.bench,
            machine: later.machine - self.machine,
        }
    }
}

/// What the report says about the machine.
#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu_model: String,
    pub(crate) nats_version: String,
    pub(crate) kernel: String,
}

impl Machine {
    pub(crate) fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map_or_else(
                || "unknown".to_owned(),
                |(_, model)| model.trim().to_owned(),
            );
        let command_output = |program: &str, arg: &str| {
            Command::new(program)
                .arg(arg)
                .output()
                .ok()
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
                .filter(|text| !text.is_empty())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            nats_version: nats_server_binary().map_or_else(
                |error| error.to_string(),
                |path| command_output(&path.to_string_lossy(), "--version"),
            ),
            kernel: command_output("uname", "-r"),
        }
    }
}
