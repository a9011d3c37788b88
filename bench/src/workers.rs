//! The forwarder's throughput: K release `tidegate-forward` processes POST
//! to an in-process sink that answers 204 and counts requests. First from a
//! prefilled stream (consume rate), then behind the ingress under HTTP load
//! (end to end, with the backlog left at the end).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::TcpListener;

use crate::processes::{Ingress, NatsServer, Spawned, cpu_seconds, free_port, sibling_binary};
use crate::{cpu_per_unit, verdict};

/// How long a forwarder may take to answer `/healthz`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for the sink to see every prefilled delivery.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the sink's count is polled.
const POLL_EVERY: Duration = Duration::from_millis(10);
/// The issue's target: one replica keeps up with half the accept rate.
const TARGET_SHARE: f64 = 0.50;

/// What the workers mode runs.
#[derive(Debug)]
pub(crate) struct WorkersConfig {
    pub(crate) prefill: u64,
    pub(crate) prefill_window: usize,
    pub(crate) replicas: Vec<u16>,
    pub(crate) concurrency: u32,
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
    pub(crate) route_path: String,
    pub(crate) secret: String,
}

/// Consume rate from a prefilled stream, then end to end, for each K.
pub(crate) async fn run(config: &WorkersConfig, push: &Bytes) -> anyhow::Result<()> {
    let mut passed = true;
    if config.prefill > 0 {
        for &replicas in &config.replicas {
            passed &= consume(config, push, replicas).await?;
        }
    }
    let mut end_to_end = Vec::new();
    for &replicas in &config.replicas {
        end_to_end.push((replicas, through_ingress(config, push, replicas).await?));
    }
    if let Some((_, one)) = end_to_end.iter().find(|(replicas, _)| *replicas == 1) {
        let share = one.received_rate / one.accepted_rate;
        println!(
            "\ntarget: one replica receives {:.0}/s of {:.0}/s accepted = {share:.2} (target ≥ {TARGET_SHARE:.2}: {})",
            one.received_rate,
            one.accepted_rate,
            verdict(share >= TARGET_SHARE)
        );
    }
    anyhow::ensure!(passed, "the sink did not receive every prefilled delivery");
    Ok(())
}

/// K forwarders drain `prefill` deliveries stored before they start.
async fn consume(config: &WorkersConfig, push: &[u8], replicas: u16) -> anyhow::Result<bool> {
    let nats = NatsServer::start().await?;
    crate::raw::ensure_stream(&nats.url).await?;
    let count = config.prefill;
    let prefilled = crate::replay::prefill(&nats.url, count, push, config.prefill_window).await?;
    println!(
        "\nworkers, consume, K = {replicas}: prefilled {count} envelopes of {} bytes in {:.1} s",
        prefilled.envelope_bytes,
        prefilled.elapsed.as_secs_f64()
    );
    let sink = Sink::start().await?;
    let nats_before = cpu_seconds(Some(nats.process.pid()))?;
    let started = Instant::now();
    let forwarders = start_forwarders(&nats.url, &sink, replicas, config.concurrency)?;
    let outcome = async {
        for forwarder in &forwarders {
            forwarder.wait_ready().await?;
        }
        let deadline = started + DRAIN_TIMEOUT;
        while sink.received() < count {
            if Instant::now() > deadline {
                bail!(
                    "the sink saw {} of {count} deliveries within {DRAIN_TIMEOUT:?}",
                    sink.received()
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(error) = outcome {
        return Err(error.context(forwarders[0].log_tail()));
    }
    let wall = started.elapsed();
    let nats_cpu = cpu_seconds(Some(nats.process.pid()))? - nats_before;
    let forward_cpu = forwarders_cpu(&forwarders)?;
    let first = sink.first_at().unwrap_or(started);
    let busy = first.elapsed().as_secs_f64();
    println!(
        "  {count} received in {:.2} s from spawn: {:.0}/s ({:.0}/s from the first request, {busy:.2} s)",
        wall.as_secs_f64(),
        count as f64 / wall.as_secs_f64(),
        count as f64 / busy
    );
    println!(
        "  CPU per delivery: tidegate-forward (sum of {replicas}) {}; nats-server {}",
        cpu_per_unit(Some(forward_cpu), count, wall.as_secs_f64()),
        cpu_per_unit(Some(nats_cpu), count, wall.as_secs_f64()),
    );
    // Redeliveries would show as more requests than deliveries.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = sink.received();
    let exact = received == count;
    println!(
        "  sink requests {received}, prefilled {count}: {}",
        verdict(exact)
    );
    Ok(exact)
}

/// One end-to-end run's rates.
#[derive(Debug)]
struct EndToEnd {
    accepted_rate: f64,
    received_rate: f64,
}

/// The load generator against the ingress while K forwarders feed the sink.
async fn through_ingress(
    config: &WorkersConfig,
    push: &Bytes,
    replicas: u16,
) -> anyhow::Result<EndToEnd> {
    let nats = NatsServer::start().await?;
    let ingress = Ingress::start(&nats.url, &config.route_path, &config.secret).await?;
    let sink = Sink::start().await?;
    let forwarders = start_forwarders(&nats.url, &sink, replicas, config.concurrency)?;
    for forwarder in &forwarders {
        forwarder.wait_ready().await?;
    }
    let load = crate::load::LoadConfig {
        address: ingress.address,
        path: config.route_path.clone(),
        connections: config.connections,
        duration: config.duration,
        body: push.clone(),
        signature: crate::payload::github_signature(&config.secret, push),
    };
    println!(
        "\nworkers, end to end, K = {replicas}: {} connections for {} s against the ingress",
        config.connections,
        config.duration.as_secs()
    );
    let pids = [ingress.process.pid(), nats.process.pid()];
    let received_before = sink.received();
    let cpu_before = (
        cpu_seconds(Some(pids[0]))?,
        cpu_seconds(Some(pids[1]))?,
        forwarders_cpu(&forwarders)?,
        cpu_seconds(None)?,
        crate::processes::machine_busy_seconds()?,
    );
    let result = crate::load::run(load).await;
    let received = sink.received() - received_before;
    let cpu = (
        cpu_seconds(Some(pids[0]))? - cpu_before.0,
        cpu_seconds(Some(pids[1]))? - cpu_before.1,
        forwarders_cpu(&forwarders)? - cpu_before.2,
        cpu_seconds(None)? - cpu_before.3,
        crate::processes::machine_busy_seconds()? - cpu_before.4,
    );
    let seconds = result.elapsed.as_secs_f64();
    let accepted_rate = result.accepted as f64 / seconds;
    let received_rate = received as f64 / seconds;
    println!(
        "  ingress: {} accepted, {} non-2xx, {} errors in {seconds:.1} s: {accepted_rate:.0} accepted/s",
        result.accepted, result.non_2xx, result.errors
    );
    println!(
        "  sink: {received} received over the same window: {received_rate:.0}/s ({:.2} of accepted); backlog at the end {}",
        received_rate / accepted_rate,
        result.accepted.saturating_sub(received)
    );
    println!(
        "  CPU (cores): ingress {:.2}, nats-server {:.2}, tidegate-forward ×{replicas} {:.2}, load generator + sink {:.2}; machine {:.2} of {}",
        cpu.0 / seconds,
        cpu.1 / seconds,
        cpu.2 / seconds,
        cpu.3 / seconds,
        cpu.4 / seconds,
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    Ok(EndToEnd {
        accepted_rate,
        received_rate,
    })
}

/// The forwarders' CPU seconds since they started, summed.
fn forwarders_cpu(forwarders: &[Forwarder]) -> anyhow::Result<f64> {
    forwarders
        .iter()
        .map(|forwarder| cpu_seconds(Some(forwarder.process.pid())))
        .sum()
}

/// An HTTP/1.1 server on loopback that answers every request 204 and counts
/// it; it stops when dropped.
struct Sink {
    address: SocketAddr,
    received: Arc<AtomicU64>,
    first: Arc<OnceLock<Instant>>,
    server: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start() -> anyhow::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the sink")?;
        let address = listener.local_addr()?;
        let received = Arc::new(AtomicU64::new(0));
        let first = Arc::new(OnceLock::new());
        let (counter, first_seen) = (received.clone(), first.clone());
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream.set_nodelay(true));
                let (counter, first_seen) = (counter.clone(), first_seen.clone());
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (counter, first_seen) = (counter.clone(), first_seen.clone());
                    async move {
                        // Read the whole body, as a real receiver would.
                        drop(request.into_body().collect().await);
                        first_seen.get_or_init(Instant::now);
                        counter.fetch_add(1, Ordering::Relaxed);
                        let mut response = Response::new(Empty::<Bytes>::new());
                        *response.status_mut() = hyper::StatusCode::NO_CONTENT;
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Ok(Sink {
            address,
            received,
            first,
            server,
        })
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    fn first_at(&self) -> Option<Instant> {
        self.first.get().copied()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One release `tidegate-forward`, killed on drop.
struct Forwarder {
    process: Spawned,
    health: SocketAddr,
    dir: TempDir,
}

/// K forwarders sharing the durable consumer `forward`.
fn start_forwarders(
    nats_url: &str,
    sink: &Sink,
    replicas: u16,
    concurrency: u32,
) -> anyhow::Result<Vec<Forwarder>> {
    let binary = sibling_binary("tidegate-forward")?;
    (0..replicas)
        .map(|_| {
            let dir = tempfile::tempdir().context("creating the forwarder config dir")?;
            let health = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let config = dir.path().join("forward.toml");
            std::fs::write(
                &config,
                forward_config(nats_url, health, sink.address, concurrency),
            )
            .context("writing the forwarder config")?;
            let log = std::fs::File::create(dir.path().join("forward.log"))
                .context("creating the forwarder log")?;
            let child = Command::new(&binary)
                .arg("--config")
                .arg(&config)
                // The default level; each finished job logs one line.
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            Ok(Forwarder {
                process: Spawned::new(child),
                health,
                dir,
            })
        })
        .collect()
}

impl Forwarder {
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if crate::load::get_status(self.health, "/healthz").await.ok() == Some(200) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "tidegate-forward /healthz did not answer 200 within {READY_TIMEOUT:?}\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("forward.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("forwarder log (last lines):\n{tail}")
    }
}

/// The forwarder's config: every delivery to the sink, as envelope JSON.
fn forward_config(
    nats_url: &str,
    health: SocketAddr,
    sink: SocketAddr,
    concurrency: u32,
) -> String {
    format!(
        r#"
nats_url = "{nats_url}"
name = "forward"
listen = "{health}"

[consumer]
filter_subject = "tidegate.in.>"
concurrency = {concurrency}
start = "all"

[[forward.targets]]
subjects = "tidegate.in.>"
url = "http://{sink}/sink"
"#
    )
}
