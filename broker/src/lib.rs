//! tidegate's broker layer, shared by every binary: the NATS connection
//! with every auth mode (`connect`, `settings`), one declaration of every
//! stream, bucket and consumer (`catalog`) behind one create-or-update
//! (`ensure`), bounded publishing (`publish`), reading a stored delivery
//! of either envelope version (`envelope`), large payloads (`payload`),
//! nexus webhook item payloads (`item`),
//! job result lookup (`results`), readiness probing (`readiness`) and
//! finding a nats-server binary for dev mode and tests (`server`).

pub mod catalog;
pub mod connect;
pub mod ensure;
pub mod envelope;
pub mod item;
pub mod payload;
pub mod publish;
pub mod readiness;
pub mod results;
pub mod server;
pub mod settings;

use async_nats::jetstream;

pub use connect::{ConnectError, Connection, MIN_SERVER_VERSION};
pub use ensure::{EnsureError, Placement};
pub use publish::{PublishError, Stored};
pub use settings::{JetStreamSettings, NatsAuth, NatsSettings, Replicas, StreamSettings};

/// Whether a stream lookup failed because the stream does not exist (as
/// opposed to the broker being unreachable or electing a leader).
pub fn is_stream_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(inner)
            if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}
