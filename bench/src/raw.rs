//! The broker's ceiling: envelope-sized messages published straight to the
//! deliveries stream with thousands of PubAcks in flight, no HTTP at all.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use schemas::streams::DELIVERIES_STREAM;

/// Subject of every raw message: the one the ingress renders for a push.
pub(crate) const SUBJECT: &str = "tidegate.in.github.push";

/// Longest wait for one PubAck.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct RawConfig {
    pub(crate) nats_url: String,
    pub(crate) duration: Duration,
    /// PubAcks awaited at once.
    pub(crate) window: usize,
    pub(crate) payload: Bytes,
}

#[derive(Debug)]
pub(crate) struct RawResult {
    /// From the first publish to the last PubAck.
    pub(crate) elapsed: Duration,
    pub(crate) acked: u64,
    pub(crate) errors: u64,
}

/// Makes sure the deliveries stream exists with the ingress's settings
/// (the example config's limits), as the ingress would at start-up.
pub(crate) async fn ensure_stream(nats_url: &str) -> anyhow::Result<()> {
    let connection = connect(nats_url).await?;
    let placement =
        broker::JetStreamSettings::default().placement(&connection.client.server_info());
    let settings = broker::StreamSettings::default();
    broker::ensure::ensure_stream(
        &connection.jetstream,
        broker::catalog::deliveries(&settings),
        placement,
    )
    .await?;
    Ok(())
}

/// A connection through the broker crate (version check included).
pub(crate) async fn connect(nats_url: &str) -> anyhow::Result<broker::Connection> {
    let settings = broker::NatsSettings::for_url(nats_url, "tidegate-bench")
        .map_err(|why| anyhow::anyhow!("{why}"))?;
    broker::Connection::open(&settings)
        .await
        .with_context(|| format!("connecting to {nats_url}"))
}

/// Messages and bytes in the deliveries stream (zero if it does not exist).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamState {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
}

impl StreamState {
    pub(crate) async fn read(nats_url: &str) -> anyhow::Result<StreamState> {
        let client = crate::raw::connect(nats_url).await?.client;
        let Ok(mut stream) = jetstream::new(client).get_stream(DELIVERIES_STREAM).await else {
            return Ok(StreamState::default());
        };
        let info = stream.info().await.context("reading the stream info")?;
        Ok(StreamState {
            messages: info.state.messages,
            bytes: info.state.bytes,
        })
    }

    /// What was added since `earlier`.
    pub(crate) fn since(&self, earlier: &StreamState) -> StreamState {
        StreamState {
            messages: self.messages.saturating_sub(earlier.messages),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }

    /// Average stored size (payload, headers and subject) per message.
    pub(crate) fn bytes_per_message(&self) -> u64 {
        self.bytes.checked_div(self.messages).unwrap_or(0)
    }
}

/// Publishes for `duration`, keeping up to `window` PubAcks outstanding,
/// then waits for the last of them.
pub(crate) async fn run(config: &RawConfig) -> anyhow::Result<RawResult> {
    let client = crate::raw::connect(&config.nats_url).await?.client;
    let jetstream = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .ack_timeout(ACK_TIMEOUT)
        .max_ack_inflight(config.window)
        .build(client);
    let mut in_flight: FuturesUnordered<<PublishAckFuture as IntoFuture>::IntoFuture> =
        FuturesUnordered::new();
    let mut result = RawResult {
        elapsed: Duration::ZERO,
        acked: 0,
        errors: 0,
    };
    let window = config.window.max(1);
    let started = Instant::now();
    let deadline = started + config.duration;
    while Instant::now() < deadline {
        while in_flight.len() >= window {
            match in_flight.next().await {
                Some(ack) => result.count(ack.is_ok()),
                None => break,
            }
        }
        let message = PublishMessage::build()
            .payload(config.payload.clone())
            .headers(headers());
        match jetstream.send_publish(SUBJECT, message).await {
            Ok(ack) => in_flight.push(ack.into_future()),
            Err(_) => result.count(false),
        }
    }
    while let Some(ack) = in_flight.next().await {
        result.count(ack.is_ok());
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

impl RawResult {
    fn count(&mut self, acked: bool) {
        if acked {
            self.acked += 1;
        } else {
            self.errors += 1;
        }
    }
}

/// The headers the ingress sets, with a unique `Nats-Msg-Id` so that the
/// broker does its de-duplication work for every message.
fn headers() -> HeaderMap {
    let delivery_id = format!("{}_{}", crate::payload::HOOK_ID, uuid::Uuid::now_v7());
    crate::payload::envelope_headers(&delivery_id, SUBJECT)
}
