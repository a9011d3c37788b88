//! The payload of a nexus webhook item (`schemas::webhook_item`) from a
//! stored envelope, the same way for the inbox worker's files and the
//! consumer API's responses: JSON bodies verbatim, anything else base64.

use base64::Engine as _;
use schemas::webhook_item::{ItemEncoding, embeddable_json, is_json_media};
use schemas::{Envelope, PayloadEncoding};
use serde_json::value::RawValue;

/// An item's `encoding` and `payload`.
#[derive(Debug)]
pub struct ItemPayload {
    pub encoding: ItemEncoding,
    pub payload: Option<Box<RawValue>>,
}

/// The item payload for a delivery's `body` (inline, or fetched from the
/// object store with `payload::fetch`): embedded verbatim when it is one
/// JSON value the ingress took as JSON, or JSON sent as JSON that was too
/// large for a message — exactly as a v1 envelope embeds it — otherwise
/// base64.
pub fn item_payload(envelope: &Envelope, body: &[u8]) -> ItemPayload {
    let json = match envelope.payload_encoding {
        PayloadEncoding::Json => true,
        PayloadEncoding::Object => envelope.content_type.as_deref().is_some_and(is_json_media),
        PayloadEncoding::Base64 | PayloadEncoding::Empty => false,
    };
    let (encoding, payload) = match embeddable_json(body).filter(|_| json) {
        Some(raw) => (ItemEncoding::Json, Some(raw.to_owned())),
        None if body.is_empty() => (ItemEncoding::Empty, None),
        None => {
            let text = base64::engine::general_purpose::STANDARD.encode(body);
            let raw = serde_json::value::to_raw_value(&text).expect("a string always serializes");
            (ItemEncoding::Base64, Some(raw))
        }
    };
    ItemPayload { encoding, payload }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(encoding: PayloadEncoding, payload: Option<&str>, content_type: &str) -> Envelope {
        let encoding = serde_json::to_string(&encoding).expect("serializes");
        let payload = payload.map_or(String::new(), |payload| format!(r#","payload":{payload}"#));
        let text = format!(
            r#"{{"version":1,"id":"d1","route":"agent","source":"putio","agent":"flickclaw",
                "subject":"tidegate.in.agent.flickclaw.putio","received_at":"2026-11-23T18:21:00.000Z",
                "method":"POST","path":"/api/webhook/flickclaw","headers":{{}},
                "content_type":"{content_type}","payload_encoding":{encoding}{payload}}}"#
        );
        serde_json::from_str(&text).expect("an envelope")
    }

    #[test]
    fn payloads_keep_their_bytes() {
        let json = r#"{"b":1,"a":[2]}"#;
        let item = item_payload(
            &envelope(PayloadEncoding::Json, None, "application/json"),
            json.as_bytes(),
        );
        assert_eq!(item.encoding, ItemEncoding::Json);
        assert_eq!(item.payload.expect("payload").get(), json);

        let item = item_payload(
            &envelope(PayloadEncoding::Base64, None, "application/json"),
            b"{\"x\":",
        );
        assert_eq!(item.encoding, ItemEncoding::Base64);
        assert_eq!(item.payload.expect("payload").get(), r#""eyJ4Ijo=""#);

        let item = item_payload(&envelope(PayloadEncoding::Empty, None, "text/plain"), b"");
        assert_eq!(item.encoding, ItemEncoding::Empty);
        assert!(item.payload.is_none());
    }

    #[test]
    fn fetched_bodies_are_embedded_only_when_json_sent_as_json() {
        let object = |content_type: &str, body: &[u8]| {
            let envelope = envelope(PayloadEncoding::Object, None, content_type);
            item_payload(&envelope, body)
        };
        let json = object("application/json", br#"{"a":1}"#);
        assert_eq!(json.encoding, ItemEncoding::Json);
        assert_eq!(json.payload.expect("payload").get(), r#"{"a":1}"#);
        let text = object("text/plain", br#"{"a":1}"#);
        assert_eq!(text.encoding, ItemEncoding::Base64);
        assert_eq!(text.payload.expect("payload").get(), r#""eyJhIjoxfQ==""#);
        let invalid = object("application/json", b"{\"a\":");
        assert_eq!(invalid.encoding, ItemEncoding::Base64);
    }
}
