//! Reading a stored delivery, whatever its envelope version: v2 (the body
//! is the message data, the fields are headers) or v1 (one JSON document,
//! still in streams written by earlier versions, and written for plugin
//! events). Every reader of the deliveries stream goes through here.

use async_nats::HeaderMap;
use base64::Engine as _;
use bytes::Bytes;
use schemas::envelope::v2;
use schemas::headers::ENVELOPE_VERSION;
use schemas::{Envelope, PayloadEncoding};

/// A delivery read from a message.
#[derive(Debug)]
pub struct Read {
    /// The fields; `payload` is always absent (the body is below).
    pub envelope: Envelope,
    /// The body exactly as the provider sent it; `None` when it is in the
    /// object store (`payload_ref`, fetched with `payload::fetch`).
    pub body: Option<Bytes>,
    /// The stored document of a v1 message; `None` for v2.
    pub v1_document: Option<Bytes>,
}

impl Read {
    /// The delivery as one envelope v1 document: the stored one, or a
    /// rendering of a v2 message (the body inline, or an `object`
    /// delivery's reference).
    pub fn v1_json(&self) -> Bytes {
        match &self.v1_document {
            Some(document) => document.clone(),
            None => {
                let body = self.body.as_deref().unwrap_or_default();
                Bytes::from(v2::to_v1_json(&self.envelope, body))
            }
        }
    }
}

/// Why a message is not a delivery.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("message is not an envelope: {0}")]
    NotAnEnvelope(String),
    #[error("payload cannot be decoded: {0}")]
    Payload(String),
}

/// Every `(name, value)` pair of a message's headers.
pub fn header_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers.iter().flat_map(|(name, values)| {
        values
            .iter()
            .map(move |value| (name.as_ref(), value.as_str()))
    })
}

fn is_v2(headers: Option<&HeaderMap>) -> bool {
    headers
        .and_then(|headers| headers.get(ENVELOPE_VERSION))
        .is_some_and(|version| version.as_str() == "2")
}

/// Reads the delivery in a message on `subject`.
pub fn read(subject: &str, headers: Option<&HeaderMap>, data: &Bytes) -> Result<Read, ReadError> {
    if let Some(headers) = headers.filter(|headers| is_v2(Some(headers))) {
        let envelope = v2::read_headers(header_pairs(headers), subject)
            .map_err(|error| ReadError::NotAnEnvelope(error.to_string()))?;
        let body = (envelope.payload_encoding != PayloadEncoding::Object).then(|| data.clone());
        return Ok(Read {
            envelope,
            body,
            v1_document: None,
        });
    }
    let mut envelope: Envelope = serde_json::from_slice(data)
        .map_err(|error| ReadError::NotAnEnvelope(error.to_string()))?;
    if envelope.version != schemas::envelope::VERSION {
        return Err(ReadError::NotAnEnvelope(format!(
            "version {}",
            envelope.version
        )));
    }
    let body = v1_body(&envelope)?;
    envelope.payload = None;
    Ok(Read {
        envelope,
        body,
        v1_document: Some(data.clone()),
    })
}

/// The body of a v1 document's inline payload; `None` for `object`.
fn v1_body(envelope: &Envelope) -> Result<Option<Bytes>, ReadError> {
    let text = || {
        envelope
            .payload
            .as_ref()
            .map(|raw| raw.get())
            .ok_or_else(|| ReadError::Payload("payload is missing".into()))
    };
    match envelope.payload_encoding {
        PayloadEncoding::Empty => Ok(Some(Bytes::new())),
        PayloadEncoding::Json => Ok(Some(Bytes::copy_from_slice(text()?.as_bytes()))),
        PayloadEncoding::Base64 => {
            let quoted: String = serde_json::from_str(text()?)
                .map_err(|error| ReadError::Payload(error.to_string()))?;
            base64::engine::general_purpose::STANDARD
                .decode(quoted)
                .map(Bytes::from)
                .map(Some)
                .map_err(|error| ReadError::Payload(error.to_string()))
        }
        PayloadEncoding::Object => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_message(encoding: &str, data: &'static [u8]) -> (HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("Nats-Msg-Id", "r:1"),
            ("Tidegate-Envelope", "2"),
            ("Tidegate-Delivery-Id", "1"),
            ("Tidegate-Route", "r"),
            ("Tidegate-Source", "r"),
            ("Tidegate-Received-At", "2026-11-29T00:00:00.000Z"),
            ("Tidegate-Method", "POST"),
            ("Tidegate-Path", "/r"),
            ("Tidegate-Query", "a=1&a=2&b=%20x"),
            ("Tidegate-Body", encoding),
            ("Tidegate-Headers", r#"{"content-type":"application/json"}"#),
            ("Tidegate-Params", r#"{"agent":"flick"}"#),
        ] {
            headers.insert(name, value);
        }
        (headers, Bytes::from_static(data))
    }

    #[test]
    fn a_v2_message_reads_as_headers_and_the_untouched_body() {
        let (headers, data) = v2_message("json", br#"{"a": 1}"#);
        let read = read("tidegate.in.r", Some(&headers), &data).expect("reads");
        assert_eq!(read.body.as_deref(), Some(&br#"{"a": 1}"#[..]));
        assert_eq!(read.envelope.route, "r");
        assert_eq!(read.envelope.subject, "tidegate.in.r");
        assert_eq!(read.envelope.query["a"], "2");
        assert_eq!(read.envelope.query["b"], " x");
        assert_eq!(read.envelope.params["agent"], "flick");
        assert_eq!(read.envelope.headers["content-type"], "application/json");

        let v1 = read.v1_json();
        let again = super::read("tidegate.in.r", None, &v1).expect("the v1 rendering reads");
        assert_eq!(again.body, read.body);
        assert_eq!(again.envelope.payload_encoding, PayloadEncoding::Json);
        assert_eq!(again.envelope.query, read.envelope.query);
    }

    #[test]
    fn a_v2_body_that_is_not_json_renders_as_base64() {
        // The ingress said json, but the bytes are not: the rendering
        // checks instead of producing a broken document.
        let (headers, data) = v2_message("json", b"{not json");
        let read = read("s", Some(&headers), &data).expect("reads");
        let v1 = read.v1_json();
        let again = super::read("s", None, &v1).expect("reads");
        assert_eq!(again.envelope.payload_encoding, PayloadEncoding::Base64);
        assert_eq!(again.body.as_deref(), Some(&b"{not json"[..]));
    }

    #[test]
    fn a_v2_message_missing_a_field_is_not_an_envelope() {
        let (mut headers, data) = v2_message("json", b"{}");
        headers.insert("Tidegate-Body", "sometimes");
        let error = read("s", Some(&headers), &data).expect_err("refused");
        assert!(error.to_string().contains("Tidegate-Body"), "{error}");
    }
}
