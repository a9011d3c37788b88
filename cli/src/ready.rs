//! Readiness probes for dev mode: nats-server answers JetStream requests, and
//! the ingress answers `/readyz` with 200.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;

const NATS_READY_TIMEOUT: Duration = Duration::from_secs(20);
const INGRESS_READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// JetStream's account-info subject. Asked directly rather than through
/// `query_account()`: async-nats 0.51 cannot parse nats-server 2.9's answer
/// (it lacks `reserved_memory` and `reserved_storage`).
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
