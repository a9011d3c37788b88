//! The envelope builder (`envelope::event`, `delivery_id`, `build` and
//! `build_within`) over fuzzed routes, headers, query, params, content type
//! and body: no panic, and every envelope v2 it returns reads back (headers
//! and data), carries the body exactly, and renders as a v1 document that
//! deserializes into `schemas::Envelope` with the same fields.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, header};
use ingress::config::Route;
use ingress::envelope::{self, Built, Incoming};
use ingress::error::IngressError;
use ingress::subject::Vars;
use libfuzzer_sys::fuzz_target;
use schemas::{Envelope, PayloadEncoding};
use serde_json::Value;
use tidegate_fuzz::{FuzzHeader, FuzzName, at, header_map, route_from};

/// One route per delivery-id source and event source the config offers.
const ROUTES: [&str; 6] = [
    // GitHub: normalized fields, `<hook>_<delivery>` ids, event header.
    "name = \"github\"\npath = \"/github\"\nsubject = \"github.{event}\"\nnormalize = \"github\"\n\
     [routes.verifier]\nkind = \"github\"\nif_unset = \"open\"",
    // Agent inbox: params and query in the subject, a UUID id.
    "name = \"agent\"\npath = \"/api/webhook/{agentId}\"\nsubject = \"agent.{agentId}.{query.source}\"\n\
     agent = \"{agentId}\"\nsource = \"{query.source}\"\n\
     [routes.verifier]\nkind = \"shared_secret\"\nif_unset = \"open\"",
    // Stripe: the id from the JSON body, the event from the query.
    "name = \"stripe\"\npath = \"/stripe\"\nsubject = \"stripe.{event}\"\nevent = \"query:type\"\n\
     [routes.verifier]\nkind = \"stripe\"\nif_unset = \"open\"",
    // Standard Webhooks: the first of two id headers, the event from a param.
    "name = \"svix\"\npath = \"/svix/{kind}\"\nsubject = \"svix.{event}\"\nevent = \"param:kind\"\n\
     [routes.verifier]\nkind = \"standard_webhooks\"\nif_unset = \"open\"",
    // Shopify: an id header, the event from a header, an extra dropped header.
    "name = \"shopify\"\npath = \"/shopify\"\nsubject = \"shopify.{event}\"\n\
     event = \"header:x-shopify-topic\"\ndrop_headers = [\"x-shopify-hmac-sha256\"]\n\
     [routes.verifier]\nkind = \"shopify\"\nif_unset = \"open\"",
    // A fixed event and the id from another JSON body field.
    "name = \"fixed\"\npath = \"/fixed\"\nsubject = \"fixed.{event}\"\nevent = \"deploy\"\n\
     delivery_id = \"json:event_id\"\n[routes.verifier]\nkind = \"none\"",
];

static COMPILED: LazyLock<Vec<Arc<Route>>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|table| route_from(&format!("[[routes]]\n{table}\n"), &[]))
        .collect()
});

const HEADER_NAMES: [&str; 16] = [
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "webhook-id",
    "svix-id",
    "x-shopify-webhook-id",
    "x-shopify-topic",
    "x-shopify-hmac-sha256",
    "authorization",
    "cookie",
    "x-webhook-secret",
    "connection",
    "content-length",
    "transfer-encoding",
    "content-type",
    "x-request-id",
];

const PARAM_NAMES: [&str; 3] = ["agentId", "kind", "source"];
const QUERY_NAMES: [&str; 3] = ["source", "type", "payload"];
const JSON_KEYS: [&str; 12] = [
    "id",
    "event_id",
    "ref",
    "after",
    "installation",
    "repository",
    "full_name",
    "pull_request",
    "head",
    "sha",
    "payload",
    "type",
];
const MEDIA_TYPES: [&str; 7] = [
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON",
    "application/vnd.github+json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/octet-stream",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    route: u8,
    method: u8,
    path: &'a str,
    params: Vec<(FuzzName<'a>, &'a str)>,
    query: Vec<(FuzzName<'a>, &'a str)>,
    headers: Vec<FuzzHeader<'a>>,
    content_type: Option<FuzzName<'a>>,
    body: Body<'a>,
    received_at: u32,
    max_inline: Option<u16>,
}

#[derive(Arbitrary, Debug)]
enum Body<'a> {
    Raw(&'a [u8]),
    /// A JSON document, optionally with whitespace around it.
    Json(Json<'a>, bool),
    /// `payload=<urlencoded JSON>`, as GitHub's form deliveries.
    Form(Json<'a>),
}

#[derive(Arbitrary, Debug)]
enum Json<'a> {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(&'a str),
    Array(Vec<Json<'a>>),
    Object(Vec<(FuzzName<'a>, Json<'a>)>),
}

impl Json<'_> {
    fn value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(value) => Value::Bool(*value),
            Json::Integer(value) => Value::from(*value),
            Json::Float(value) => Value::from(*value),
            Json::Text(text) => Value::from(*text),
            Json::Array(items) => Value::Array(items.iter().map(Json::value).collect()),
            Json::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(key, value)| (key.resolve(&JSON_KEYS).to_owned(), value.value()))
                    .collect(),
            ),
        }
    }
}

impl Body<'_> {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Raw(bytes) => bytes.to_vec(),
            Body::Json(json, false) => json.value().to_string().into_bytes(),
            Body::Json(json, true) => format!(" {}\n", json.value()).into_bytes(),
            Body::Form(json) => form_urlencoded::Serializer::new(String::new())
                .append_pair("payload", &json.value().to_string())
                .finish()
                .into_bytes(),
        }
    }
}

fn pairs(fuzzed: &[(FuzzName<'_>, &str)], known: &[&str]) -> Vec<(String, String)> {
    fuzzed
        .iter()
        .map(|(name, value)| (name.resolve(known).to_owned(), (*value).to_owned()))
        .collect()
}

fuzz_target!(|input: Input<'_>| {
    let route = &COMPILED[usize::from(input.route) % COMPILED.len()];
    let methods = [Method::GET, Method::POST, Method::PUT, Method::PATCH];
    let method = &methods[usize::from(input.method) % methods.len()];
    let params = pairs(&input.params, &PARAM_NAMES);
    let query = pairs(&input.query, &QUERY_NAMES);
    let mut headers = header_map(&HEADER_NAMES, &input.headers);
    if let Some(media) = &input.content_type
        && let Ok(value) = HeaderValue::from_str(media.resolve(&MEDIA_TYPES))
    {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let body = bytes::Bytes::from(input.body.bytes());
    // As the ingress does: the pairs are what the raw query string parses to.
    let raw_query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&query)
        .finish();
    let incoming = Incoming {
        route,
        method,
        path: input.path,
        params: &params,
        query: &query,
        raw_query: Some(raw_query.as_str()).filter(|raw| !raw.is_empty()),
        headers: &headers,
        body: &body,
        received_at: at(u64::from(input.received_at)),
    };

    let event = expect_client_error(envelope::event(&incoming));
    if let Some(Some(event)) = &event {
        assert!(!event.is_empty());
    }
    let event = event.flatten();
    let id = expect_client_error(envelope::delivery_id(route, &headers, &body));
    if let Some(id) = &id {
        assert!(id.len() <= 200, "{id:?}");
        assert!(
            id.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"_=.:@+-".contains(&byte)),
            "{id:?}"
        );
    }
    let id = id.unwrap_or_else(|| "fuzz-delivery".to_owned());
    let vars = Vars {
        params: &params,
        query: &query,
        event: event.as_deref(),
        route: &route.name,
    };
    let subject = route
        .subject
        .render(&vars)
        .unwrap_or_else(|_| "fuzz.subject".to_owned());
    let agent = route
        .agent
        .as_ref()
        .and_then(|agent| agent.render(&vars).ok());

    let built = envelope::build(
        &incoming,
        &id,
        event.as_deref(),
        route.name.clone(),
        agent.clone(),
        &subject,
    );
    let Some(built) = expect_client_error(built) else {
        return;
    };
    assert!(built.payload_ref.is_none(), "build always embeds");
    let envelope = check_envelope(&built, &incoming, &id, &subject);
    assert_eq!(envelope.agent, agent);
    assert_eq!(envelope.event, event);
    assert_eq!(envelope.github, built.github);
    assert_eq!(envelope.github.is_some(), route.normalize.is_some());

    // The same request with an inline limit: embedded below it, a
    // reference to the body above it.
    let max_inline = input.max_inline.map(usize::from);
    let within = envelope::build_within(
        &incoming,
        &id,
        event.as_deref(),
        route.name.clone(),
        agent,
        &subject,
        max_inline,
    )
    .expect("the same request built once already");
    let referenced = check_envelope(&within, &incoming, &id, &subject);
    // The body is the message data, as is: its own length counts.
    let embedded_len = body.len();
    let too_large = max_inline.is_some_and(|max| embedded_len > max);
    match referenced.payload_encoding {
        PayloadEncoding::Object => {
            assert!(
                too_large,
                "{embedded_len} bytes referenced under {max_inline:?}"
            );
            let payload_ref = referenced
                .payload_ref
                .expect("object encoding has a reference");
            assert_eq!(payload_ref.size, body.len() as u64);
            assert_eq!(within.payload_ref, Some(payload_ref));
        }
        encoding => {
            assert!(
                !too_large,
                "{embedded_len} bytes embedded under {max_inline:?}"
            );
            assert_eq!(encoding, envelope.payload_encoding);
            assert!(within.payload_ref.is_none());
        }
    }
});

/// `Some(value)`, or `None` for a refusal, which must be the client's fault
/// (a 4xx): no input may produce a 500.
fn expect_client_error<T>(result: Result<T, IngressError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            assert!(error.status().is_client_error(), "{error:?}");
            None
        }
    }
}

/// Reads a built envelope v2 back (headers and data), renders it as the v1
/// document, and checks that against the request it came from.
fn check_envelope(built: &Built, incoming: &Incoming<'_>, id: &str, subject: &str) -> Envelope {
    let body = &incoming.body[..];
    let read = broker::envelope::read(subject, Some(&built.headers), &built.data)
        .expect("the headers read back");
    match read.envelope.payload_encoding {
        PayloadEncoding::Object => assert!(built.data.is_empty()),
        _ => assert_eq!(&built.data[..], body, "the data is the body"),
    }
    let json = read.v1_json();
    let envelope: Envelope = serde_json::from_slice(&json).expect("the envelope deserializes");
    assert_eq!(envelope.payload_encoding, read.envelope.payload_encoding);
    assert_eq!(envelope.version, schemas::envelope::VERSION);
    assert_eq!(envelope.id, id);
    assert_eq!(envelope.route, incoming.route.name);
    assert_eq!(envelope.subject, subject);
    assert_eq!(envelope.method, incoming.method.as_str());
    assert_eq!(envelope.path, incoming.path);
    assert_eq!(envelope.params, last_wins(incoming.params));
    assert_eq!(envelope.query, last_wins(incoming.query));
    assert_eq!(
        envelope.content_type.as_deref(),
        incoming
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
    );
    check_headers(&envelope.headers, incoming.route, incoming.headers);
    match envelope.payload_encoding {
        PayloadEncoding::Json => {
            let payload = envelope
                .payload
                .as_ref()
                .expect("json encoding has a payload");
            assert_eq!(
                payload.get().as_bytes(),
                body,
                "json payload differs from the body"
            );
        }
        PayloadEncoding::Base64 => {
            let payload = envelope
                .payload
                .as_ref()
                .expect("base64 encoding has a payload");
            let text: String = serde_json::from_str(payload.get()).expect("a JSON string");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("standard base64");
            assert_eq!(decoded, body);
        }
        PayloadEncoding::Empty => {
            assert!(body.is_empty());
            assert!(envelope.payload.is_none());
        }
        PayloadEncoding::Object => assert!(envelope.payload.is_none()),
    }
    envelope
}

/// Dropped and framing headers never reach the envelope; every other one
/// does, under its lower-case name.
fn check_headers(safe: &BTreeMap<String, String>, route: &Route, headers: &HeaderMap) {
    const FRAMING: [&str; 6] = [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "content-length",
    ];
    for name in headers.keys() {
        let kept = !route.drop_headers.contains(name) && !FRAMING.contains(&name.as_str());
        assert_eq!(safe.contains_key(name.as_str()), kept, "{name}");
    }
    assert!(safe.keys().all(|name| headers.contains_key(name.as_str())));
}

fn last_wins(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}
