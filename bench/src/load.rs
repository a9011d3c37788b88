//! The HTTP load generator: N keep-alive HTTP/1.1 connections, each sending
//! signed GitHub push deliveries one after another until the deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::payload::{EVENT, HOOK_ID};

/// Longest wait for one answer; above the ingress's 5 s publish timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What to send, where, and for how long.
#[derive(Debug)]
pub(crate) struct LoadConfig {
    pub(crate) address: SocketAddr,
    pub(crate) path: String,
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
    pub(crate) body: Bytes,
    /// `X-Hub-Signature-256` for `body`: the body is the same every time,
    /// so is its signature (each request still gets its own delivery id).
    pub(crate) signature: String,
}

/// Counts and latencies over the whole run.
#[derive(Debug, Default)]
pub(crate) struct LoadResult {
    /// From the first request to the last answer.
    pub(crate) elapsed: Duration,
    pub(crate) accepted: u64,
    pub non_2xx: u64,
    /// Connection failures and timeouts (no status at all).
    pub(crate) errors: u64,
    /// Latency of every answered request, in microseconds, sorted.
    pub(crate) latencies_us: Vec<u32>,
}

impl LoadResult {
    /// Nearest-rank percentile of the answered requests' latency.
    pub(crate) fn percentile(&self, percent: f64) -> Duration {
        let count = self.latencies_us.len();
        if count == 0 {
            return Duration::ZERO;
        }
        let rank = ((percent / 100.0) * count as f64).ceil() as usize;
        let micros = self.latencies_us[rank.clamp(1, count) - 1];
        Duration::from_micros(u64::from(micros))
    }

    pub(crate) fn max(&self) -> Duration {
        let micros = self.latencies_us.last().copied().unwrap_or(0);
        Duration::from_micros(u64::from(micros))
    }
}

/// Runs every connection until `duration` has passed and each has had its
/// last answer.
pub(crate) async fn run(config: LoadConfig) -> LoadResult {
    let config = Arc::new(config);
    let started = Instant::now();
    let deadline = started + config.duration;
    let tasks: Vec<_> = (0..config.connections)
        .map(|_| tokio::spawn(connection(config.clone(), deadline)))
        .collect();
    let mut total = LoadResult::default();
    for task in tasks {
        // A panicked task has nothing to report; the others still count.
        let Ok(result) = task.await else {
            total.errors += 1;
            continue;
        };
        total.accepted += result.accepted;
        total.non_2xx += result.non_2xx;
        total.errors += result.errors;
        total.latencies_us.extend(result.latencies_us);
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    total
}

/// One connection's loop: connect, send until the deadline, reconnect after
/// an error.
async fn connection(config: Arc<LoadConfig>, deadline: Instant) -> LoadResult {
    let mut result = LoadResult::default();
    while Instant::now() < deadline {
        let Ok(mut sender) = connect(config.address).await else {
            result.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while Instant::now() < deadline {
            let started = Instant::now();
            match send_delivery(&mut sender, &config).await {
                Ok(status) => {
                    let micros = started.elapsed().as_micros();
                    result
                        .latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    if (200..300).contains(&status) {
                        result.accepted += 1;
                    } else {
                        result.non_2xx += 1;
                    }
                }
                Err(_) => {
                    result.errors += 1;
                    break;
                }
            }
        }
    }
    result
}

async fn connect<B>(address: SocketAddr) -> anyhow::Result<SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(address))
        .await
        .context("connect timed out")??;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    // Drives the socket; ends when the sender is dropped.
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one delivery and reads the whole answer; returns its status.
async fn send_delivery(
    sender: &mut SendRequest<Full<Bytes>>,
    config: &LoadConfig,
) -> anyhow::Result<u16> {
    let delivery_id = uuid::Uuid::now_v7().to_string();
    let request = Request::post(config.path.as_str())
        .header(HOST, config.address.to_string())
        .header(USER_AGENT, "GitHub-Hookshot/7a2c5e1")
        .header(ACCEPT, "*/*")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, config.body.len())
        .header("X-GitHub-Delivery", delivery_id)
        .header("X-GitHub-Event", EVENT)
        .header("X-GitHub-Hook-ID", HOOK_ID)
        .header("X-GitHub-Hook-Installation-Target-ID", "6811672")
        .header("X-GitHub-Hook-Installation-Target-Type", "organization")
        .header("X-Hub-Signature-256", config.signature.as_str())
        .body(Full::new(config.body.clone()))?;
    let exchange = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        anyhow::Ok(status)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .context("request timed out")?
}

/// Status of a `GET path` on a fresh connection (readiness checks).
pub(crate) async fn get_status(address: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut sender = connect::<Empty<Bytes>>(address).await?;
    let request = Request::get(path)
        .header(HOST, address.to_string())
        .body(Empty::new())?;
    let exchange = async {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        anyhow::Ok(status)
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .context("readiness check timed out")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let result = LoadResult {
            latencies_us: (1..=100).collect(),
            ..LoadResult::default()
        };
        let check = |percent: f64, micros: u64| {
            assert_eq!(result.percentile(percent), Duration::from_micros(micros));
        };
        check(50.0, 50);
        check(99.0, 99);
        check(100.0, 100);
        check(0.0, 1);
        assert_eq!(result.max(), Duration::from_micros(100));
    }
}
