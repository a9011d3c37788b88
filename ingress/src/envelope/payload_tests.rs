//! Payloads read back through `schemas::Envelope` as the exact body, for
//! every JSON body (the `envelope` fuzz target found the bare `null`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::HeaderValue;
use schemas::Envelope;

use super::*;
use crate::config::Config;

fn route() -> Arc<Route> {
    let text = "[[routes]]\nname = \"r\"\npath = \"/r\"\nsubject = \"r\"\n\
                [routes.verifier]\nkind = \"none\"\n";
    let config = Config::from_toml(text, &HashMap::new()).expect("valid route");
    config.routes[0].clone()
}

/// The encoding chosen for `body` sent as JSON, and the body as a consumer
/// reads it back from the envelope.
fn round_trip(body: &[u8]) -> (PayloadEncoding, Vec<u8>) {
    let route = route();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let incoming = Incoming {
        route: &route,
        method: &Method::POST,
        path: "/r",
        params: &[],
        query: &[],
        raw_query: None,
        headers: &headers,
        body,
        received_at: UNIX_EPOCH,
    };
    let built = build(&incoming, "id", None, "r".into(), None, "r").expect("builds");
    let envelope: Envelope = serde_json::from_slice(&built.json).expect("deserializes");
    let text = envelope
        .payload
        .as_ref()
        .map(|raw| raw.get().to_owned())
        .expect("a non-empty body has a payload");
    let bytes = match envelope.payload_encoding {
        PayloadEncoding::Json => text.into_bytes(),
        PayloadEncoding::Base64 => {
            let quoted: String = serde_json::from_str(&text).expect("a JSON string");
            base64::engine::general_purpose::STANDARD
                .decode(quoted)
                .expect("standard base64")
        }
        other => panic!("unexpected encoding {other:?}"),
    };
    (envelope.payload_encoding, bytes)
}

#[test]
fn every_json_body_reads_back_exactly() {
    let check = |body: &str, expected: PayloadEncoding| {
        let (encoding, bytes) = round_trip(body.as_bytes());
        assert_eq!(encoding, expected, "{body:?}");
        assert_eq!(bytes, body.as_bytes(), "{body:?}");
    };
    check(r#"{"action":"opened"}"#, PayloadEncoding::Json);
    check("[null]", PayloadEncoding::Json);
    check("0", PayloadEncoding::Json);
    check(r#""null""#, PayloadEncoding::Json);
    // Embedded, a bare `null` would read back as a missing payload.
    check("null", PayloadEncoding::Base64);
    // Embedded, surrounding whitespace would be lost.
    check(" {}\n", PayloadEncoding::Base64);
}
