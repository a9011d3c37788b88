//! Bodies read back exactly, from the v2 message and from its v1
//! rendering, for every JSON body (the `envelope` fuzz target found the bare `null`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::HeaderValue;

use super::*;
use crate::config::Config;

fn route() -> Arc<Route> {
    let text = "[[routes]]\nname = \"r\"\npath = \"/r\"\nsubject = \"r\"\n\
                [routes.verifier]\nkind = \"none\"\n";
    let config = Config::from_toml(text, &HashMap::new()).expect("valid route");
    config.routes[0].clone()
}

/// The body kind chosen for `body` sent as JSON, and the body as a
/// consumer reads it back: from the v2 message, and from its v1 rendering.
fn round_trip(body: &[u8]) -> (PayloadEncoding, Vec<u8>) {
    let route = route();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = Bytes::copy_from_slice(body);
    let incoming = Incoming {
        route: &route,
        method: &Method::POST,
        path: "/r",
        params: &[],
        query: &[],
        raw_query: None,
        headers: &headers,
        body: &body,
        received_at: UNIX_EPOCH,
    };
    let built = build(&incoming, "id", None, "r".into(), None, "r").expect("builds");
    assert_eq!(built.data, body, "the data is the body, untouched");
    let read = broker::envelope::read("r", Some(&built.headers), &built.data).expect("reads");
    assert_eq!(read.body.as_ref(), Some(&body));
    let v1 = read.v1_json();
    let again = broker::envelope::read("r", None, &v1).expect("the v1 rendering reads");
    assert_eq!(
        again.envelope.payload_encoding,
        read.envelope.payload_encoding
    );
    let bytes = again.body.expect("a non-empty body is inline").to_vec();
    (read.envelope.payload_encoding, bytes)
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
