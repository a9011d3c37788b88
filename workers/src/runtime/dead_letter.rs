//! Dead letters: the envelope, the last error, the attempt count and the
//! worker, stored on `tidegate.dlq.<worker>` before the message is
//! terminated. Nothing is terminated without its dead letter stored.

use std::time::SystemTime;

use async_nats::jetstream;
use schemas::headers::{DELIVERY_ID, MSG_ID};
use schemas::streams::DEAD_LETTER_PREFIX;
use schemas::{ConnectorSync, DeadLetter};
use serde_json::value::RawValue;

use super::report::rfc3339;

/// What to store about a delivery the worker gives up on.
#[derive(Debug)]
pub struct GiveUp<'a> {
    pub worker: &'a str,
    pub delivery_id: &'a str,
    pub subject: &'a str,
    pub stream_sequence: u64,
    pub attempts: u64,
    pub error: &'a str,
    /// The delivery's v1 document (`delivery::dead_letter_document`).
    pub envelope: &'a [u8],
    /// The job's connector contract for the delivery, when it has one.
    pub connector: Option<&'a ConnectorSync>,
}

/// Stores the dead letter and waits for the PubAck. `Nats-Msg-Id` is the
/// worker and stream sequence, so a repeated attempt stores it once.
pub async fn store(
    jetstream: &jetstream::Context,
    give_up: &GiveUp<'_>,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    // The envelope is kept verbatim when it is JSON; anything else (a
    // message that is not an envelope at all) is kept as a JSON string.
    let envelope = match serde_json::from_slice::<&RawValue>(give_up.envelope) {
        Ok(raw) => raw.to_owned(),
        Err(_) => serde_json::value::to_raw_value(&String::from_utf8_lossy(give_up.envelope))?,
    };
    let letter = DeadLetter {
        version: 1,
        worker: give_up.worker.to_owned(),
        delivery_id: give_up.delivery_id.to_owned(),
        subject: give_up.subject.to_owned(),
        stream_sequence: give_up.stream_sequence,
        attempts: give_up.attempts,
        error: give_up.error.to_owned(),
        failed_at: rfc3339(SystemTime::now()),
        connector: give_up.connector.cloned(),
        envelope,
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        MSG_ID,
        format!("{}:{}", give_up.worker, give_up.stream_sequence).as_str(),
    );
    headers.insert(DELIVERY_ID, give_up.delivery_id);
    broker::publish::publish(
        jetstream,
        format!("{DEAD_LETTER_PREFIX}.{}", give_up.worker),
        headers,
        serde_json::to_vec(&letter)?.into(),
        timeout,
    )
    .await?;
    Ok(())
}
