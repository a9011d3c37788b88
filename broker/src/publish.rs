//! Publishing to a stream and waiting for its PubAck, bounded by our own
//! timeout (async-nats bounds only part of the wait). Every caller that
//! stores something — the ingress, dead letters, results, replays — goes
//! through here, so failures are classified once.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use async_nats::subject::Subject;
use bytes::Bytes;

/// What JetStream said about a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub sequence: u64,
    /// Same `Nats-Msg-Id` within the duplicate window: stored once already.
    pub duplicate: bool,
}

/// Why a message was not stored. Everything but `TooLarge` and `Rejected`
/// may succeed when tried again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to nats")]
    NotConnected,
    /// Nothing answered for the subject: the stream does not exist, or it
    /// has no leader at the moment (an election in a cluster).
    #[error("no stream answered for the subject (missing, or electing a leader)")]
    NoStream,
    #[error("no PubAck within {0:?}")]
    TimedOut(Duration),
    /// The stream is at a limit and refuses new messages (discard new).
    #[error("the stream is full: {0}")]
    Full(String),
    #[error("message of {size} bytes exceeds the server's max_payload of {max}")]
    TooLarge { size: usize, max: usize },
    /// JetStream refused the message for another reason.
    #[error("jetstream refused the message: {0}")]
    Rejected(String),
    #[error("publish failed: {0}")]
    Failed(String),
}

impl PublishError {
    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PublishError::NotConnected => "not_connected",
            PublishError::NoStream => "no_stream",
            PublishError::TimedOut(_) => "timeout",
            PublishError::Full(_) => "stream_full",
            PublishError::TooLarge { .. } => "too_large",
            PublishError::Rejected(_) => "rejected",
            PublishError::Failed(_) => "failed",
        }
    }
}

/// Publishes and waits for the PubAck, at most `timeout` in all.
pub async fn publish(
    jetstream: &jetstream::Context,
    subject: impl Into<Subject>,
    headers: HeaderMap,
    payload: Bytes,
    timeout: Duration,
) -> Result<Stored, PublishError> {
    let size = payload.len();
    let message = PublishMessage::build().payload(payload).headers(headers);
    let wait = async {
        let ack = jetstream
            .send_publish(subject.into(), message)
            .await
            .map_err(|error| classify(&error, size, &jetstream.client()))?;
        ack.await
            .map_err(|error| classify(&error, size, &jetstream.client()))
    };
    let ack = tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| PublishError::TimedOut(timeout))??;
    Ok(Stored {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}

/// Sends without waiting for the PubAck: the returned future resolves to
/// it, at most `timeout` after the send. Messages sent one after another on
/// a connection are stored in that order, so a caller may go on (and hand
/// the wait to another task) without reordering what it stores.
pub async fn send(
    jetstream: &jetstream::Context,
    subject: impl Into<Subject>,
    headers: HeaderMap,
    payload: Bytes,
    timeout: Duration,
) -> Result<impl Future<Output = Result<Stored, PublishError>> + Send + 'static, PublishError> {
    let size = payload.len();
    let message = PublishMessage::build().payload(payload).headers(headers);
    let deadline = tokio::time::Instant::now() + timeout;
    let ack = tokio::time::timeout_at(deadline, jetstream.send_publish(subject.into(), message))
        .await
        .map_err(|_| PublishError::TimedOut(timeout))?
        .map_err(|error| classify(&error, size, &jetstream.client()))?;
    let client = jetstream.client();
    Ok(async move {
        let ack = tokio::time::timeout_at(deadline, ack)
            .await
            .map_err(|_| PublishError::TimedOut(timeout))?
            .map_err(|error| classify(&error, size, &client))?;
        Ok(Stored {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    })
}

/// JetStream API error codes of a stream at a limit, or an account or
/// server out of storage.
const FULL_CODES: [u64; 3] = [
    10077, // stream store failed: maximum messages / bytes / per subject exceeded
    10023, // insufficient resources
    10047, // storage resources exceeded
];

fn classify(
    error: &jetstream::context::PublishError,
    size: usize,
    client: &async_nats::Client,
) -> PublishError {
    match error.kind() {
        PublishErrorKind::StreamNotFound => PublishError::NoStream,
        PublishErrorKind::TimedOut => PublishError::TimedOut(Duration::ZERO),
        PublishErrorKind::MaxPayloadExceeded => PublishError::TooLarge {
            size,
            max: client.server_info().max_payload,
        },
        _ => match std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<jetstream::Error>())
        {
            Some(api) if FULL_CODES.contains(&api.error_code().0) => {
                PublishError::Full(description(api))
            }
            Some(api) => PublishError::Rejected(api.to_string()),
            None => PublishError::Failed(error.to_string()),
        },
    }
}

/// The server's description of an API error, without the codes.
fn description(error: &jetstream::Error) -> String {
    let text = error.to_string();
    match text.find(" (code ") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}
