//! A delivery as a job sees it: the envelope's fields, the body bytes (the
//! message data of an envelope v2, decoded from a v1 document, or fetched
//! from the object store), and where it came from. Both envelope versions
//! are read by `broker::envelope`.

use async_nats::HeaderMap;
use async_nats::jetstream;
use broker::envelope::{self, Read, ReadError};
use bytes::Bytes;
use schemas::Envelope;
use schemas::envelope::v2;

/// One delivery handed to a job.
#[derive(Debug)]
pub struct Delivery {
    /// The fields; `payload` is absent (the body is `payload` below).
    pub envelope: Envelope,
    /// The body exactly as the provider sent it.
    pub payload: Bytes,
    /// The stored document of a v1 message; `None` for v2.
    pub v1_document: Option<Bytes>,
    pub subject: String,
    pub stream_sequence: u64,
    /// 1 for the first delivery.
    pub attempt: u64,
}

impl Delivery {
    /// The delivery as one envelope v1 document (what `mode = "envelope"`
    /// forwarding sends): the stored one, or a rendering of a v2 message.
    pub fn v1_json(&self) -> Bytes {
        match &self.v1_document {
            Some(document) => document.clone(),
            None => Bytes::from(v2::to_v1_json(&self.envelope, &self.payload)),
        }
    }
}

/// Why a stored message cannot become a `Delivery`.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    NotAnEnvelope(String),
    #[error("payload cannot be decoded: {0}")]
    Payload(String),
    #[error("payload object cannot be fetched: {0}")]
    Object(String),
}

impl DeliveryError {
    /// Whether trying again could help.
    pub fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Object(_))
    }
}

impl From<ReadError> for DeliveryError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::NotAnEnvelope(_) => DeliveryError::NotAnEnvelope(error.to_string()),
            ReadError::Payload(why) => DeliveryError::Payload(why),
        }
    }
}

/// Reads the envelope of a message on `subject`; the body of an `object`
/// delivery is fetched by [`body`].
pub fn parse(
    subject: &str,
    headers: Option<&HeaderMap>,
    data: &Bytes,
) -> Result<Read, DeliveryError> {
    Ok(envelope::read(subject, headers, data)?)
}

/// The body: inline, or fetched from the object store (size and SHA-256
/// checked).
pub async fn body(jetstream: &jetstream::Context, read: &Read) -> Result<Bytes, DeliveryError> {
    if let Some(body) = &read.body {
        return Ok(body.clone());
    }
    let Some(reference) = &read.envelope.payload_ref else {
        return Err(DeliveryError::Payload(
            "object payload without payload_ref".into(),
        ));
    };
    broker::payload::fetch(jetstream, reference)
        .await
        .map_err(|error| {
            if error.is_transient() {
                DeliveryError::Object(error.to_string())
            } else {
                DeliveryError::Payload(error.to_string())
            }
        })
}

/// What a dead letter keeps of a message: its v1 document (rendered for a
/// v2 message, the body inline or its object reference), or the data as
/// stored when it is no envelope at all.
pub fn dead_letter_document(subject: &str, headers: Option<&HeaderMap>, data: &Bytes) -> Bytes {
    match envelope::read(subject, headers, data) {
        Ok(read) => read.v1_json(),
        Err(_) => data.clone(),
    }
}
