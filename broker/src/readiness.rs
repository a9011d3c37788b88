//! "Can a delivery be stored right now?" asked without storing anything:
//! a publish the stream's leader must refuse. It carries
//! `Nats-Expected-Last-Sequence` set to the largest sequence, so the
//! leader answers "wrong last sequence" — an answer that only a reachable,
//! elected leader accepting publishes gives. No answer means no leader, a
//! hung server or a missing stream.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use schemas::streams::IGNORED_PREFIX;

use crate::publish::PublishError;

/// The probe's subject: inside the deliveries stream's `tidegate.ignored.>`
/// but with a `$` token, which no route can render, and never stored.
pub fn probe_subject() -> String {
    format!("{IGNORED_PREFIX}.$probe")
}

/// Asks the deliveries stream's leader to refuse a message, at most
/// `timeout`. `Ok` means it would take a publish now.
pub async fn probe(jetstream: &jetstream::Context, timeout: Duration) -> Result<(), PublishError> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Expected-Last-Sequence", u64::MAX.to_string().as_str());
    let message = PublishMessage::build()
        .payload(bytes::Bytes::new())
        .headers(headers);
    let answer = async {
        let ack = jetstream.send_publish(probe_subject(), message).await?;
        ack.await
    };
    match tokio::time::timeout(timeout, answer).await {
        Err(_) => Err(PublishError::TimedOut(timeout)),
        Ok(Err(error)) => match error.kind() {
            PublishErrorKind::WrongLastSequence => Ok(()),
            PublishErrorKind::StreamNotFound => Err(PublishError::NoStream),
            PublishErrorKind::TimedOut => Err(PublishError::TimedOut(timeout)),
            _ => Err(PublishError::Failed(error.to_string())),
        },
        // A stream whose last sequence is u64::MAX cannot exist; if the
        // server ever stored the probe, say so rather than call it ready.
        Ok(Ok(ack)) => Err(PublishError::Rejected(format!(
            "the readiness probe was stored at sequence {}",
            ack.sequence
        ))),
    }
}
