//! The ingress's side of the broker: the connection (from the `broker`
//! crate), the deliveries stream and payload bucket ensured once at
//! start-up, and readiness — "a publish to the deliveries stream gets a
//! PubAck now" — kept current by real publishes and a probe.
//!
//! A stream that disappears while the ingress runs is not recreated: an
//! operator deleted it, or the broker lost its store, and either way
//! someone must know. Deliveries answer 503, `/readyz` says why, an ERROR
//! is logged every minute and `tidegate_ingress_stream_missing_total`
//! counts it; `tidegate streams ensure` (or a restart) brings it back.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::object_store::ObjectStore;
use broker::catalog;
use broker::ensure::{ensure_object_store, ensure_stream};
use broker::{Connection, JetStreamSettings, NatsSettings, Placement, StreamSettings};
use schemas::streams::DELIVERIES_STREAM;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::readiness::{Readiness, Unready};
use crate::telemetry::metric;

/// The NATS and JetStream settings the ingress owns.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub nats: NatsSettings,
    pub jetstream: JetStreamSettings,
    pub stream: StreamSettings,
}

/// How often readiness is checked when no delivery proved it.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Publishes or probes in a row without an answer (or without a stream
/// answering) after which the server is treated as dead, and the client
/// moves to another one — at most once per [`RECONNECT_AT_MOST_EVERY`], so
/// that a stream missing everywhere does not make it churn.
const UNANSWERED_BEFORE_RECONNECT: u32 = 3;
const RECONNECT_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// Shared by every request.
pub struct Broker {
    pub(crate) connection: Connection,
    pub(crate) config: BrokerConfig,
    pub(crate) readiness: Readiness,
    /// Set once the stream and bucket were ensured (first connection).
    payloads: OnceCell<ObjectStore>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("servers", &self.config.nats.servers)
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Starts connecting; returns at once even when no server answers yet
    /// (requests answer 503 meanwhile).
    pub async fn start(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        let connection = Connection::start(&config.nats).await?;
        Ok(Arc::new(Broker {
            connection,
            config,
            readiness: Readiness::new(),
            payloads: OnceCell::new(),
        }))
    }

    pub fn is_connected(&self) -> bool {
        self.connection.is_connected()
    }

    /// `Ok` when a delivery would be stored now.
    pub fn ready(&self) -> Result<(), Unready> {
        if !self.is_connected() {
            return Err(Unready::NotConnected);
        }
        if self.payloads.get().is_none() {
            return Err(Unready::Starting);
        }
        self.readiness.status()
    }

    /// The server's `max_payload`, once connected.
    pub fn max_payload(&self) -> usize {
        self.connection.max_payload()
    }

    pub(crate) fn payload_store(&self) -> Option<&ObjectStore> {
        self.payloads.get()
    }

    /// Runs until `shutdown`: on the first connection checks the server and
    /// ensures the stream and the payload bucket (an error there — a server
    /// too old, a change that would drop data — ends the ingress), then
    /// probes readiness.
    pub async fn maintain(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        tokio::select! {
            result = self.prepare() => result?,
            () = shutdown.cancelled() => return Ok(()),
        }
        let mut missing_logged: Option<tokio::time::Instant> = None;
        let mut last_reconnect: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
            if !self.is_connected() {
                continue;
            }
            if !self.readiness.recently_ok(PROBE_INTERVAL) {
                let timeout = self.config.nats.publish_timeout.min(Duration::from_secs(2));
                let probed = broker::readiness::probe(&self.connection.jetstream, timeout).await;
                self.readiness.record_probe(&probed);
            }
            if self.readiness.consecutive_unanswered() >= UNANSWERED_BEFORE_RECONNECT
                && last_reconnect.is_none_or(|at| at.elapsed() >= RECONNECT_AT_MOST_EVERY)
            {
                warn!(
                    server = %self.connection.client.server_info().server_name,
                    "no PubAck for several publishes in a row; reconnecting to another server"
                );
                last_reconnect = Some(tokio::time::Instant::now());
                self.readiness.reset_timeouts();
                if let Err(error) = self.connection.reconnect_elsewhere().await {
                    warn!(error = %error, "forcing a reconnect failed");
                }
            }
            if self.readiness.saw_no_stream() {
                self.check_stream_exists(&mut missing_logged).await;
            }
            if self.readiness.is_full() {
                self.check_room().await;
            }
        }
    }

    /// Waits for a connection to a supported server, then ensures the
    /// deliveries stream and the payload bucket.
    async fn prepare(&self) -> anyhow::Result<()> {
        loop {
            match self.connection.ready(Duration::from_secs(5)).await {
                Ok(()) => break,
                Err(error @ broker::ConnectError::Unreachable { .. }) => {
                    warn!(error = %error, "waiting for nats; deliveries answer 503 meanwhile");
                }
                Err(error) => return Err(error.into()),
            }
        }
        let server = self.connection.client.server_info();
        let placement = self.config.jetstream.placement(&server);
        info!(
            version = %server.version,
            server = %server.server_name,
            cluster = server.cluster.as_deref().unwrap_or("-"),
            max_payload = server.max_payload,
            replicas = placement.replicas,
            "nats server"
        );
        loop {
            match self.ensure(placement).await {
                Ok(store) => {
                    self.payloads.set(store).ok();
                    return Ok(());
                }
                Err(error) if is_fatal(&error) => return Err(error.into()),
                Err(error) => {
                    warn!(error = %error, "cannot ensure the deliveries stream yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn ensure(&self, placement: Placement) -> Result<ObjectStore, broker::EnsureError> {
        let jetstream = &self.connection.jetstream;
        let mut stream = ensure_stream(
            jetstream,
            catalog::deliveries(&self.config.stream),
            placement,
        )
        .await?;
        if let Ok(info) = stream.info().await
            && let Some(cluster) = &info.cluster
        {
            info!(
                stream = DELIVERIES_STREAM,
                leader = cluster.leader.as_deref().unwrap_or("-"),
                replicas = info.config.num_replicas,
                "stream placement"
            );
        }
        ensure_object_store(jetstream, catalog::payloads(&self.config.stream), placement).await
    }

    /// After a publish found no stream: is it gone, or electing a leader?
    async fn check_stream_exists(&self, logged: &mut Option<tokio::time::Instant>) {
        match self
            .connection
            .jetstream
            .get_stream(DELIVERIES_STREAM)
            .await
        {
            Err(error) if broker::is_stream_not_found(&error) => {
                self.readiness.set_stream_missing(true);
                metrics::counter!(metric::STREAM_MISSING).increment(1);
                if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    error!(
                        stream = DELIVERIES_STREAM,
                        "the deliveries stream does not exist (deleted, or the broker lost its store); \
                         deliveries answer 503 until it is recreated: run `tidegate streams ensure` or restart the ingress"
                    );
                    *logged = Some(tokio::time::Instant::now());
                }
            }
            Ok(_) => {
                if self.readiness.set_stream_missing(false) {
                    info!(
                        stream = DELIVERIES_STREAM,
                        "the deliveries stream exists again"
                    );
                }
                *logged = None;
            }
            // Unreachable or electing: readiness already says so.
            Err(_) => {}
        }
    }

    /// While the stream is full: has room appeared (messages aged out, or
    /// the limit was raised)?
    async fn check_room(&self) {
        let Ok(mut stream) = self
            .connection
            .jetstream
            .get_stream(DELIVERIES_STREAM)
            .await
        else {
            return;
        };
        let Ok(info) = stream.info().await else {
            return;
        };
        let margin = self.max_payload() as u64;
        let (config, state) = (&info.config, &info.state);
        let bytes_ok =
            config.max_bytes < 0 || state.bytes + margin <= config.max_bytes.unsigned_abs();
        let messages_ok =
            config.max_messages < 0 || state.messages < config.max_messages.unsigned_abs();
        if bytes_ok && messages_ok {
            info!(
                stream = DELIVERIES_STREAM,
                "the deliveries stream has room again"
            );
            self.readiness.clear_full();
        }
    }
}

/// Errors that retrying cannot fix: the operator must act.
fn is_fatal(error: &broker::EnsureError) -> bool {
    matches!(
        error,
        broker::EnsureError::WouldDropData { .. } | broker::EnsureError::Storage { .. }
    )
}
