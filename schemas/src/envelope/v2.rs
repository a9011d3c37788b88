//! Envelope v2: the body as the message data, byte for byte, and every
//! other envelope field as a NATS header — a scalar per header, a
//! structured field (request headers, path parameters, GitHub fields,
//! object reference) as one compact JSON object. The body is never parsed
//! or re-encoded to store or to read a delivery; a consumer that only
//! routes looks at the headers alone. The header set is described by
//! `schemas/json/envelope-headers.v2.schema.json`.
//!
//! Both directions go through [`Envelope`], so a v1 document and a v2
//! message read the same: [`write_headers`] turns an envelope into headers
//! (its `payload` is the message data instead), [`read_headers`] turns
//! headers back into an envelope with `payload` absent. [`to_v1_json`]
//! renders a v2 delivery as the v1 document, for consumers that want one.

use std::collections::BTreeMap;
use std::fmt;

use crate::headers::{self, v2};
use crate::{Envelope, GithubFields, PayloadEncoding, PayloadRef};

/// The value of `Tidegate-Envelope` on a v2 message.
pub const VERSION: u32 = 2;

/// Why an envelope cannot be written as headers, or headers read as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// A value a NATS header cannot carry as is: CR, LF, or whitespace at
    /// either end (the protocol trims it).
    Value(&'static str),
    /// A required header is absent.
    Missing(&'static str),
    /// A header is present but malformed.
    Invalid(&'static str),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Value(field) => write!(
                f,
                "`{field}` holds a line break or surrounding whitespace, which a NATS header cannot carry"
            ),
            HeaderError::Missing(name) => write!(f, "missing {name} header"),
            HeaderError::Invalid(name) => write!(f, "invalid {name} header"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// The `Tidegate-Body` value for each way a body is held.
fn body_kind(encoding: PayloadEncoding) -> &'static str {
    match encoding {
        PayloadEncoding::Json => "json",
        PayloadEncoding::Base64 => "bytes",
        PayloadEncoding::Empty => "empty",
        PayloadEncoding::Object => "object",
    }
}

fn carried(value: &str) -> bool {
    let space = |c: char| c == ' ' || c == '\t';
    !value.contains(['\r', '\n']) && !value.starts_with(space) && !value.ends_with(space)
}

/// Writes the v2 header set of `envelope` through `put(name, value)`, the
/// dedupe and replay headers excepted (the publisher adds those). The
/// envelope's `payload` is not written: it is the message data. Every value
/// is checked first, so `put` may use an infallible insert.
pub fn write_headers<P>(
    envelope: &Envelope<P>,
    mut put: impl FnMut(&str, &str),
) -> Result<(), HeaderError> {
    let mut check = |name: &str, field: &'static str, value: &str| {
        if carried(value) {
            put(name, value);
            Ok(())
        } else {
            Err(HeaderError::Value(field))
        }
    };
    check(headers::ENVELOPE_VERSION, "version", "2")?;
    check(headers::DELIVERY_ID, "id", &envelope.id)?;
    check(headers::ROUTE, "route", &envelope.route)?;
    check(v2::SOURCE, "source", &envelope.source)?;
    if let Some(agent) = &envelope.agent {
        check(v2::AGENT, "agent", agent)?;
    }
    if let Some(event) = &envelope.event {
        check(headers::EVENT, "event", event)?;
    }
    check(v2::RECEIVED_AT, "received_at", &envelope.received_at)?;
    check(v2::METHOD, "method", &envelope.method)?;
    check(v2::PATH, "path", &envelope.path)?;
    if let Some(query) = &envelope.raw_query {
        check(v2::QUERY, "raw_query", query)?;
    }
    if let Some(content_type) = &envelope.content_type {
        check(v2::CONTENT_TYPE, "content_type", content_type)?;
    }
    check(
        v2::BODY,
        "payload_encoding",
        body_kind(envelope.payload_encoding),
    )?;
    // Compact JSON never holds a raw line break and starts and ends with a
    // brace, so these always pass the check.
    if let Some(reference) = &envelope.payload_ref {
        check(v2::OBJECT, "payload_ref", &compact(reference))?;
    }
    if let Some(github) = &envelope.github {
        check(v2::GITHUB, "github", &compact(github))?;
    }
    if !envelope.params.is_empty() {
        check(v2::PARAMS, "params", &compact(&envelope.params))?;
    }
    check(v2::HEADERS, "headers", &compact(&envelope.headers))?;
    Ok(())
}

/// A structured field as one compact JSON header value.
fn compact<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps of strings and plain structs serialize")
}

/// Reads a v2 message's headers (every `(name, value)` pair, in any order;
/// unknown names are ignored) back into an envelope. `subject` is the
/// message's subject. The payload is absent: it is the message data.
pub fn read_headers<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    subject: &str,
) -> Result<Envelope, HeaderError> {
    let fields: BTreeMap<&'a str, &'a str> = pairs.into_iter().collect();
    let optional = |name: &str| fields.get(name).map(|value| (*value).to_owned());
    let required = |name: &'static str| optional(name).ok_or(HeaderError::Missing(name));
    fn json<T: serde::de::DeserializeOwned>(
        fields: &BTreeMap<&str, &str>,
        name: &'static str,
    ) -> Result<Option<T>, HeaderError> {
        fields
            .get(name)
            .map(|value| serde_json::from_str(value).map_err(|_| HeaderError::Invalid(name)))
            .transpose()
    }
    if fields.get(headers::ENVELOPE_VERSION) != Some(&"2") {
        return Err(HeaderError::Invalid(headers::ENVELOPE_VERSION));
    }
    let payload_encoding = match fields.get(v2::BODY).copied() {
        Some("json") => PayloadEncoding::Json,
        Some("bytes") => PayloadEncoding::Base64,
        Some("empty") => PayloadEncoding::Empty,
        Some("object") => PayloadEncoding::Object,
        Some(_) => return Err(HeaderError::Invalid(v2::BODY)),
        None => return Err(HeaderError::Missing(v2::BODY)),
    };
    let payload_ref: Option<PayloadRef> = json(&fields, v2::OBJECT)?;
    if payload_encoding == PayloadEncoding::Object && payload_ref.is_none() {
        return Err(HeaderError::Missing(v2::OBJECT));
    }
    let raw_query = optional(v2::QUERY);
    let query = raw_query
        .as_deref()
        .map(|raw| {
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Envelope {
        version: VERSION,
        id: required(headers::DELIVERY_ID)?,
        route: required(headers::ROUTE)?,
        source: required(v2::SOURCE)?,
        agent: optional(v2::AGENT),
        event: optional(headers::EVENT),
        subject: subject.to_owned(),
        received_at: required(v2::RECEIVED_AT)?,
        method: required(v2::METHOD)?,
        path: required(v2::PATH)?,
        params: json(&fields, v2::PARAMS)?.unwrap_or_default(),
        query,
        raw_query,
        headers: json(&fields, v2::HEADERS)?.ok_or(HeaderError::Missing(v2::HEADERS))?,
        content_type: optional(v2::CONTENT_TYPE),
        payload_encoding,
        payload: None,
        payload_ref: payload_ref.filter(|_| payload_encoding == PayloadEncoding::Object),
        github: json::<GithubFields>(&fields, v2::GITHUB)?,
    })
}

/// The v1 document for a delivery read from v2 headers and its body: the
/// body embedded verbatim when the ingress found it one JSON value (and it
/// still is), otherwise base64. What dead letters, the HTTP consumer API
/// and `mode = "envelope"` forwarding hand on.
pub fn to_v1_json<P>(envelope: &Envelope<P>, body: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let verbatim = envelope.payload_encoding == PayloadEncoding::Json
        && crate::webhook_item::embeddable_json(body).is_some();
    let (encoding, encoded) = match envelope.payload_encoding {
        PayloadEncoding::Object => (PayloadEncoding::Object, None),
        PayloadEncoding::Empty if body.is_empty() => (PayloadEncoding::Empty, None),
        _ if verbatim => (PayloadEncoding::Json, None),
        _ if body.is_empty() => (PayloadEncoding::Empty, None),
        _ => {
            let text = base64::engine::general_purpose::STANDARD.encode(body);
            let raw = serde_json::value::to_raw_value(&text).expect("a string serializes");
            (PayloadEncoding::Base64, Some(raw))
        }
    };
    let v1 = Envelope {
        version: super::VERSION,
        id: envelope.id.clone(),
        route: envelope.route.clone(),
        source: envelope.source.clone(),
        agent: envelope.agent.clone(),
        event: envelope.event.clone(),
        subject: envelope.subject.clone(),
        received_at: envelope.received_at.clone(),
        method: envelope.method.clone(),
        path: envelope.path.clone(),
        params: envelope.params.clone(),
        query: envelope.query.clone(),
        raw_query: envelope.raw_query.clone(),
        headers: envelope.headers.clone(),
        content_type: envelope.content_type.clone(),
        payload_encoding: encoding,
        payload: encoded,
        payload_ref: envelope.payload_ref.clone(),
        github: envelope.github.clone(),
    };
    let mut json = serde_json::to_vec(&v1).expect("an envelope serializes");
    if encoding == PayloadEncoding::Json {
        json.pop();
        json.extend_from_slice(b",\"payload\":");
        json.extend_from_slice(body);
        json.push(b'}');
    }
    json
}
