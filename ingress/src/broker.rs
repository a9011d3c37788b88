//! The NATS connection and the deliveries stream: connect (retrying in the
//! background), create or update the stream idempotently, and track whether
//! the ingress is ready to accept deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, Event};
use schemas::streams::{DELIVERIES_STREAM, DELIVERIES_SUBJECTS, PAYLOADS_BUCKET};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{NatsAuth, NatsConfig, StreamConfig};

/// Shared by every request: the client, a JetStream context, and readiness.
#[derive(Debug)]
pub struct Broker {
    pub(crate) client: Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) nats: NatsConfig,
    stream: StreamConfig,
    /// Set once the deliveries stream and the payload bucket are known to
    /// exist; cleared when a publish finds one missing, which wakes the
    /// maintainer.
    streams_ready: AtomicBool,
    recheck: Notify,
}

impl Broker {
    /// Connects without waiting for the server: if it is down, the client
    /// keeps retrying and requests answer 503 meanwhile.
    pub async fn connect(nats: &NatsConfig, stream: &StreamConfig) -> anyhow::Result<Arc<Broker>> {
        let mut options = ConnectOptions::new()
            .name(&nats.name)
            .connection_timeout(nats.connect_timeout)
            .retry_on_initial_connect()
            .max_reconnects(None)
            // Reconnect fast: a restarted broker should be used again within
            // a second or two, not after an exponential back-off.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((50u64 << attempts.min(5)).min(1_000))
            })
            .event_callback(|event| async move {
                match event {
                    Event::Connected => info!("connected to nats"),
                    Event::Disconnected => {
                        warn!("disconnected from nats; deliveries answer 503 until reconnected")
                    }
                    other => info!(event = %other, "nats event"),
                }
            });
        options = match &nats.auth {
            NatsAuth::None => options,
            NatsAuth::CredentialsFile(path) => options.credentials_file(path).await?,
            NatsAuth::Token(token) => {
                options.token(String::from_utf8_lossy(token.expose()).into_owned())
            }
            NatsAuth::UserPassword { user, password } => options.user_and_password(
                user.clone(),
                String::from_utf8_lossy(password.expose()).into_owned(),
            ),
        };
        let client = options.connect(&nats.url).await?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(nats.publish_timeout)
            .ack_timeout(nats.publish_timeout)
            .max_ack_inflight(nats.max_acks_in_flight)
            .build(client.clone());
        Ok(Arc::new(Broker {
            client,
            jetstream,
            nats: nats.clone(),
            stream: stream.clone(),
            streams_ready: AtomicBool::new(false),
            recheck: Notify::new(),
        }))
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Connected, and the deliveries stream and payload bucket exist.
    pub fn is_ready(&self) -> bool {
        self.is_connected() && self.streams_ready.load(Ordering::Acquire)
    }

    /// The server's `max_payload`, once connected.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    /// Called when a publish finds no stream (or an upload no payload
    /// bucket): recreate it.
    pub(crate) fn stream_missing(&self) {
        self.streams_ready.store(false, Ordering::Release);
        self.recheck.notify_one();
    }

    /// Keeps the stream present while the ingress runs: ensures it after
    /// every (re)connect and whenever a publish reports it missing.
    pub async fn maintain(self: Arc<Self>, shutdown: CancellationToken) {
        let mut logged_version = false;
        loop {
            if self.is_connected() && !self.streams_ready.load(Ordering::Acquire) {
                if !logged_version {
                    let server = self.client.server_info();
                    info!(
                        version = %server.version,
                        jetstream = server.jetstream,
                        max_payload = server.max_payload,
                        "nats server"
                    );
                    logged_version = true;
                }
                // The payload bucket is part of being ready: a large body
                // arriving right after start-up must find it.
                let ensured = match ensure_stream(&self.jetstream, &self.stream).await {
                    Ok(()) => crate::object::ensure_bucket(&self.jetstream, &self.stream)
                        .await
                        .map_err(|error| {
                            error.context(format!("payload bucket {PAYLOADS_BUCKET}"))
                        }),
                    Err(error) => Err(error.context(format!("stream {DELIVERIES_STREAM}"))),
                };
                match ensured {
                    Ok(()) => self.streams_ready.store(true, Ordering::Release),
                    Err(error) => {
                        warn!(
                            error = format!("{error:#}"),
                            "cannot ensure stream or payload bucket; retrying"
                        )
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.recheck.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            // A reconnect to a server that lost its store must recreate the
            // stream, so check again after every disconnection.
            if !self.is_connected() {
                self.streams_ready.store(false, Ordering::Release);
            }
        }
    }
}

/// The deliveries stream as tidegate wants it.
pub fn desired_stream(settings: &StreamConfig) -> stream::Config {
    stream::Config {
        name: DELIVERIES_STREAM.to_owned(),
        description: Some("tidegate webhook deliveries (envelope v1)".to_owned()),
        subjects: DELIVERIES_SUBJECTS
            .iter()
            .map(|subject| subject.to_string())
            .collect(),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        // Refuse new deliveries when full rather than drop acknowledged
        // ones: the ingress answers 503 and the provider retries.
        discard: stream::DiscardPolicy::New,
        max_age: settings.max_age,
        max_bytes: settings
            .max_bytes
            .map_or(-1, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        allow_direct: true,
        ..Default::default()
    }
}

/// Creates the stream, or brings an existing one's limits and subjects in
/// line. Never deletes the stream or its messages; settings the server
/// cannot change in place (storage type) are reported, not forced.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    settings: &StreamConfig,
) -> anyhow::Result<()> {
    let desired = desired_stream(settings);
    let mut existing = match jetstream.get_stream(DELIVERIES_STREAM).await {
        Ok(stream) => stream,
        Err(error) if is_not_found(&error) => {
            jetstream.create_stream(desired).await?;
            info!(stream = DELIVERIES_STREAM, "created stream");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let current = existing.info().await?.config.clone();
    let mut updated = current.clone();
    for subject in &desired.subjects {
        if !updated.subjects.contains(subject) {
            updated.subjects.push(subject.clone());
        }
    }
    updated.max_age = desired.max_age;
    updated.max_bytes = desired.max_bytes;
    updated.duplicate_window = desired.duplicate_window;
    updated.discard = desired.discard;
    if current.storage != desired.storage {
        warn!(
            stream = DELIVERIES_STREAM,
            "stream uses memory storage; deliveries do not survive a broker restart"
        );
    }
    if current.num_replicas != desired.num_replicas {
        warn!(
            stream = DELIVERIES_STREAM,
            current = current.num_replicas,
            configured = desired.num_replicas,
            "stream replicas differ from the configuration; change them with the nats CLI"
        );
    }
    if updated != current {
        jetstream.update_stream(updated).await?;
        info!(stream = DELIVERIES_STREAM, "updated stream settings");
    }
    Ok(())
}

pub(crate) fn is_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(inner)
            if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}
