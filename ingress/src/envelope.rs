//! Builds envelope v2 from a verified request: the delivery id, the event,
//! what the body is (JSON, other bytes, empty, or too large: an object
//! store reference), the safe headers and the GitHub fields, written as
//! NATS headers (`schemas::envelope::v2`) beside the untouched body.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, header};
use schemas::envelope::{embeddable, v2};
use schemas::{Envelope, GithubFields, PayloadEncoding, PayloadRef};
use serde_json::value::RawValue;

use crate::config::{DeliveryIdSource, Normalize, Route, ValueSource};
use crate::error::IngressError;
use crate::normalize::github;

/// Room left in a message for the envelope's headers: a body longer than
/// `max_payload` minus this goes to the object store.
pub const ENVELOPE_HEADROOM: usize = 8 * 1024;

/// Longest delivery id accepted from a provider header.
const MAX_ID_LEN: usize = 200;

/// Hop-by-hop and framing headers: meaningless once the request is stored.
const FRAMING_HEADERS: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
];

/// The parts of a request the envelope is made from.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub route: &'a Route,
    pub method: &'a Method,
    pub path: &'a str,
    pub params: &'a [(String, String)],
    pub query: &'a [(String, String)],
    /// The query string as received, when there is one.
    pub raw_query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub received_at: SystemTime,
}

/// The event named by the route's event source, if it has one.
pub fn event(incoming: &Incoming<'_>) -> Result<Option<String>, IngressError> {
    let route = incoming.route;
    if route.normalize == Some(Normalize::Github) && route.event.is_none() {
        let (_, event) = github::delivery_and_event(incoming.headers)
            .map_err(|error| IngressError::BadRequest(error.to_string()))?;
        return Ok(Some(event.to_owned()));
    }
    let Some(source) = &route.event else {
        return Ok(None);
    };
    let pick = |pairs: &[(String, String)], name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let value = match source {
        ValueSource::Header(name) => incoming
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        ValueSource::Query(name) => pick(incoming.query, name),
        ValueSource::Param(name) => pick(incoming.params, name),
        ValueSource::Fixed(value) => Some(value.clone()),
    };
    Ok(value.filter(|value| !value.is_empty()))
}

/// The delivery id from the headers alone, for callers without the body.
/// The delivery id: the provider's where it has one, else a UUIDv7. The
/// body is read only by a `json:` source, and only after verification.
pub fn delivery_id(
    route: &Route,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, IngressError> {
    let header = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty())
    };
    let id = match &route.delivery_id {
        DeliveryIdSource::Uuid => return Ok(uuid::Uuid::now_v7().to_string()),
        DeliveryIdSource::Github => {
            let (delivery, _) = github::delivery_and_event(headers)
                .map_err(|error| IngressError::BadRequest(error.to_string()))?;
            // The GUID is shared by every hook subscribed to the event; the
            // hook id keeps two hooks' deliveries apart.
            match headers
                .get(github::HOOK_ID_HEADER)
                .and_then(|value| value.to_str().ok())
            {
                Some(hook) if !hook.is_empty() => format!("{hook}_{delivery}"),
                _ => delivery.to_owned(),
            }
        }
        DeliveryIdSource::Header(name) => header(name)
            .ok_or_else(|| IngressError::BadRequest(format!("missing {name} header")))?
            .to_owned(),
        DeliveryIdSource::FirstHeader(names) => names
            .iter()
            .find_map(header)
            .ok_or_else(|| {
                let names: Vec<&str> = names.iter().map(HeaderName::as_str).collect();
                IngressError::BadRequest(format!("missing {} header", names.join(" or ")))
            })?
            .to_owned(),
        DeliveryIdSource::JsonField(field) => json_string_field(body, field)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                IngressError::BadRequest(format!(
                    "body is not a JSON object with a string `{field}` field"
                ))
            })?,
    };
    let valid = id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_=.:@+-".contains(&byte));
    if valid {
        Ok(id)
    } else {
        Err(IngressError::BadRequest(
            "delivery id must be at most 200 characters from A-Z a-z 0-9 _ = . : @ + -".into(),
        ))
    }
}

/// The string at top-level `field` of a JSON object. Values stay borrowed
/// as raw JSON and only the wanted one is decoded, so the payload is
/// scanned but not copied.
fn json_string_field(body: &[u8], field: &str) -> Option<String> {
    let fields: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_slice(body).ok()?;
    serde_json::from_str(fields.get(field)?.get()).ok()
}

/// Media type essence, lower-cased: `application/json; charset=utf-8` →
/// `application/json`.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
}

fn is_json(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|media| media == "application/json" || media.ends_with("+json"))
}

const FORM: &str = "application/x-www-form-urlencoded";

/// An envelope ready to publish: its v2 headers and the message data.
#[derive(Debug)]
pub struct Built {
    pub headers: async_nats::HeaderMap,
    /// The body as received, or nothing when it goes to the object store.
    pub data: Bytes,
    pub github: Option<GithubFields>,
    /// Set when the body goes to the object store: it must be stored there
    /// before the envelope is published.
    pub payload_ref: Option<PayloadRef>,
}

/// Builds the envelope with the body inline, whatever its size.
pub fn build(
    incoming: &Incoming<'_>,
    id: &str,
    event: Option<&str>,
    source: String,
    agent: Option<String>,
    subject: &str,
) -> Result<Built, IngressError> {
    build_within(incoming, id, event, source, agent, subject, None)
}

/// Builds the envelope v2: the body is the message data, untouched, and the
/// fields are headers. What the body is (`json`, `bytes`, `empty`) is
/// decided as for v1, so a v1 rendering embeds the same bytes. A body
/// longer than `max_inline` bytes is left out and referenced instead
/// (`object`, see `broker::payload`); it is still checked and normalized
/// here, before anything is uploaded.
pub fn build_within(
    incoming: &Incoming<'_>,
    id: &str,
    event: Option<&str>,
    source: String,
    agent: Option<String>,
    subject: &str,
    max_inline: Option<usize>,
) -> Result<Built, IngressError> {
    let media = media_type(incoming.headers);
    let body = incoming.body;
    let json_body = !body.is_empty() && is_json(media.as_deref());
    // GitHub normalization parses a JSON body; that one parse also proves
    // it well-formed, so the body is read once, not twice.
    let (github, parsed) = match incoming.route.normalize {
        Some(Normalize::Github) => {
            let form;
            let json = if media.as_deref() == Some(FORM) {
                form = github::form_payload(body)
                    .map_err(|error| IngressError::BadRequest(error.to_string()))?;
                &form[..]
            } else {
                body
            };
            let fields = github::normalize(incoming.headers, json)
                .map_err(|error| IngressError::BadRequest(error.to_string()))?;
            (Some(fields), json_body)
        }
        None => (None, false),
    };
    let valid_json = json_body && (parsed || well_formed(body, incoming.route.validate_json)?);
    let verbatim = valid_json && embeddable(body) && std::str::from_utf8(body).is_ok();
    let payload_ref = max_inline
        .filter(|max| body.len() > *max)
        .map(|_| broker::payload::payload_ref(&incoming.route.name, id, body));
    let encoding = if payload_ref.is_some() {
        PayloadEncoding::Object
    } else if body.is_empty() {
        PayloadEncoding::Empty
    } else if verbatim {
        PayloadEncoding::Json
    } else {
        PayloadEncoding::Base64
    };

    let envelope: Envelope<()> = Envelope {
        version: schemas::envelope::v2::VERSION,
        id: id.to_owned(),
        route: incoming.route.name.clone(),
        source,
        agent,
        event: event.map(str::to_owned),
        subject: subject.to_owned(),
        received_at: humantime::format_rfc3339_millis(incoming.received_at).to_string(),
        method: incoming.method.as_str().to_owned(),
        path: incoming.path.to_owned(),
        params: incoming.params.iter().cloned().collect(),
        query: BTreeMap::new(),
        raw_query: incoming.raw_query.map(str::to_owned),
        headers: safe_headers(incoming.route, incoming.headers),
        content_type: incoming
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        payload_encoding: encoding,
        payload: None,
        payload_ref,
        github,
    };
    let mut headers = async_nats::HeaderMap::new();
    v2::write_headers(&envelope, |name, value| headers.insert(name, value))
        .map_err(|error| IngressError::BadRequest(error.to_string()))?;
    let data = match encoding {
        PayloadEncoding::Object => Bytes::new(),
        _ => incoming.body.clone(),
    };
    Ok(Built {
        headers,
        data,
        github: envelope.github,
        payload_ref: envelope.payload_ref,
    })
}

/// Whether `body` is well-formed JSON (any value). A malformed body is
/// refused when the route validates JSON, otherwise carried as bytes.
fn well_formed(body: &[u8], validate: bool) -> Result<bool, IngressError> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        Ok(_) => Ok(true),
        Err(_) if !validate => Ok(false),
        Err(error) => Err(IngressError::BadRequest(format!(
            "body is not valid JSON: {error}"
        ))),
    }
}

/// Every header except credentials and framing; repeated headers joined
/// with `, ` (RFC 9110 §5.3).
fn safe_headers(route: &Route, headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut safe: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        if route.drop_headers.contains(name) || FRAMING_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        safe.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    safe
}

#[cfg(test)]
mod delivery_id_tests;
#[cfg(test)]
mod payload_tests;
