//! Envelope v1: the JSON document stored for every delivery before v2. The JSON Schema
//! in `schemas/json/envelope.v1.schema.json` describes the same shape; a test
//! checks the two agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub mod v2;

/// The version of the JSON document below (a v2 message carries the same
/// fields as headers: [`v2`]).
pub const VERSION: u32 = 1;

/// Whether well-formed JSON text can be embedded as is: no surrounding
/// whitespace, and not `null` (which reads back as an absent payload).
pub fn embeddable(body: &[u8]) -> bool {
    let space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
    !body.first().is_some_and(space) && !body.last().is_some_and(space) && body != b"null"
}

/// One delivery as stored on the stream.
///
/// `P` is the payload representation: [`Box<RawValue>`] when reading, a
/// borrowed `&RawValue` when the ingress writes (no copy of the body). Either
/// way the payload text is the received bytes, untouched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<P = Box<RawValue>> {
    /// Always [`VERSION`].
    pub version: u32,
    /// Delivery id: the provider's id where it has one (GitHub:
    /// `<hook id>_<delivery guid>`), otherwise a generated UUIDv7.
    pub id: String,
    /// Name of the configured route that accepted the delivery.
    pub route: String,
    /// Source or connector name (e.g. `github`, `putio`).
    pub source: String,
    /// Agent the delivery is routed to, when the route names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Event name, when the route has an event source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Subject the envelope was published on.
    pub subject: String,
    /// RFC 3339 UTC timestamp with milliseconds, taken when the request
    /// arrived at the ingress.
    pub received_at: String,
    /// HTTP method of the request.
    pub method: String,
    /// Request path, without the query string.
    pub path: String,
    /// Path parameters, already validated as subject tokens.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Query parameters (the last value wins for repeated names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// The query string exactly as received (percent-encoded, without the
    /// `?`), when the request had one: repeated names are all kept here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_query: Option<String>,
    /// Request headers, names lower-cased. Credentials (authorization,
    /// cookies, shared-secret headers) are never included; signature headers
    /// are, so a consumer can re-verify the payload.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request's `Content-Type`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// How [`Envelope::payload`] holds the body.
    pub payload_encoding: PayloadEncoding,
    /// The body. For `json`: the received JSON text embedded verbatim. For
    /// `base64`: a string with the standard base64 (padded) of the body. For
    /// `empty` and `object`: absent.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub payload: Option<P>,
    /// For `object`: where the body is stored instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_ref: Option<PayloadRef>,
    /// Normalized GitHub fields, for routes with GitHub normalization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubFields>,
}

fn none<P>() -> Option<P> {
    None
}

/// How the body is carried in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadEncoding {
    /// The body is one JSON value with no surrounding whitespace, embedded
    /// as is in `payload`.
    Json,
    /// Any other body: `payload` is its standard base64.
    Base64,
    /// No body (e.g. a GET callback); the query carries the data.
    Empty,
    /// The body is in the object store; see `payload_ref`.
    Object,
}

/// A body kept in the JetStream object store because it exceeds the
/// broker's message size limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRef {
    pub bucket: String,
    pub name: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the body.
    pub sha256: String,
}

/// The openwork connector's normalized GitHub envelope, field for field
/// (camelCase, as the connector's `GithubWebhookEnvelope`), minus the
/// payload, which is the envelope's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GithubFields {
    /// `X-GitHub-Delivery`: the GUID, kept across redeliveries and shared by
    /// every hook subscribed to the event.
    pub delivery_id: String,
    /// `X-GitHub-Hook-ID`, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_id: Option<String>,
    /// `X-GitHub-Event`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_full_name: Option<String>,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// `after` of a push (the new head), or the pull request head SHA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
}
