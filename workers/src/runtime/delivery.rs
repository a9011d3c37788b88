//! A delivery as a job sees it: the parsed envelope, the payload bytes
//! (decoded, or fetched from the object store), and where it came from.

use base64::Engine as _;
use bytes::Bytes;
use schemas::{Envelope, PayloadEncoding};

/// One delivery handed to a job.
#[derive(Debug)]
pub struct Delivery {
    pub envelope: Envelope,
    /// The body exactly as the provider sent it.
    pub payload: Bytes,
    /// The stored envelope, verbatim (what dead letters carry).
    pub raw_envelope: Bytes,
    pub subject: String,
    pub stream_sequence: u64,
    /// 1 for the first delivery.
    pub attempt: u64,
}

/// Why a stored message cannot become a `Delivery`.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("message is not an envelope v1: {0}")]
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

/// Parses the envelope; the payload is resolved by [`payload_bytes`].
pub fn parse(raw: &Bytes) -> Result<Envelope, DeliveryError> {
    let envelope: Envelope = serde_json::from_slice(raw)
        .map_err(|error| DeliveryError::NotAnEnvelope(error.to_string()))?;
    if envelope.version != schemas::envelope::VERSION {
        return Err(DeliveryError::NotAnEnvelope(format!(
            "version {}",
            envelope.version
        )));
    }
    Ok(envelope)
}

/// The body bytes of an inline payload; `None` for `object` payloads.
pub fn inline_payload(envelope: &Envelope) -> Result<Option<Bytes>, DeliveryError> {
    let text = || {
        envelope
            .payload
            .as_ref()
            .map(|raw| raw.get())
            .ok_or_else(|| DeliveryError::Payload("payload is missing".into()))
    };
    match envelope.payload_encoding {
        PayloadEncoding::Empty => Ok(Some(Bytes::new())),
        PayloadEncoding::Json => Ok(Some(Bytes::copy_from_slice(text()?.as_bytes()))),
        PayloadEncoding::Base64 => {
            let quoted: String = serde_json::from_str(text()?)
                .map_err(|error| DeliveryError::Payload(error.to_string()))?;
            base64::engine::general_purpose::STANDARD
                .decode(quoted)
                .map(Bytes::from)
                .map(Some)
                .map_err(|error| DeliveryError::Payload(error.to_string()))
        }
        PayloadEncoding::Object => Ok(None),
    }
}
