//! Readiness probes for dev mode: nats-server answers JetStream requests,
//! the ingress answers `/readyz` with 200, a worker has its consumer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use schemas::streams::DELIVERIES_STREAM;

const NATS_READY_TIMEOUT: Duration = Duration::from_secs(20);
const INGRESS_READY_TIMEOUT: Duration = Duration::from_secs(30);
const WORKER_READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// JetStream's account-info subject: a server answers it once JetStream is
/// up. Asked directly, with no client set-up beyond a plain connection.
const JETSTREAM_INFO: &str = "$JS.API.INFO";

/// Connects and asks JetStream for the account, until it answers.
pub(crate) async fn wait_for_jetstream(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + NATS_READY_TIMEOUT;
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(1))
                .connect(url)
                .await?;
            let reply = client.request(JETSTREAM_INFO, Bytes::new()).await?;
            let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
            match reply.get("error") {
                None => anyhow::Ok(()),
                Some(error) => Err(anyhow!("JetStream answered {error}")),
            }
        })
        .await
        .unwrap_or_else(|_| Err(anyhow!("no answer within 2s")));
        match attempt {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(error).context(format!(
                    "nats-server at {url} did not answer JetStream requests within {NATS_READY_TIMEOUT:?}"
                ));
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Polls the ingress's `/readyz` until it answers 200 (connected to NATS
/// and the deliveries stream exists).
pub(crate) async fn wait_for_ready(listen: SocketAddr) -> anyhow::Result<()> {
    let url = format!("http://{listen}/readyz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .context("building the HTTP client")?;
    let deadline = Instant::now() + INGRESS_READY_TIMEOUT;
    loop {
        let last = match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => format!("status {}", response.status()),
            Err(error) => error.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("{url} not ready within {INGRESS_READY_TIMEOUT:?} (last: {last})");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls until the worker `name` has created its durable consumer on the
/// deliveries stream, i.e. it is consuming.
pub(crate) async fn wait_for_consumer(url: &str, name: &str) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let subject = format!("$JS.API.CONSUMER.INFO.{DELIVERIES_STREAM}.{name}");
    let deadline = Instant::now() + WORKER_READY_TIMEOUT;
    loop {
        let reply = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(subject.clone(), Bytes::new()),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|reply| serde_json::from_slice::<serde_json::Value>(&reply.payload).ok());
        if reply.is_some_and(|reply| reply.get("error").is_none()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("worker {name} did not create its consumer within {WORKER_READY_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
