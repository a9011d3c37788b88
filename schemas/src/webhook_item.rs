//! The nexus seed's webhook item: one delivery routed to an agent, as the
//! inbox worker writes it to `<workspace>/inbox/webhooks/` (inbox item v1)
//! and as the consumer API hands it out (`GET /api/webhook/pending`,
//! `DELETE /api/webhook/items`). JSON Schemas: `json/inbox-item.v1.schema.json`,
//! `json/webhook-pending.v1.schema.json` and `json/webhook-delete-*.v1.schema.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// How an item's `payload` holds the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemEncoding {
    /// The body is one JSON value, embedded byte for byte.
    Json,
    /// Any other body (not JSON, invalid JSON, JSON with surrounding
    /// whitespace): `payload` is its standard padded base64.
    Base64,
    /// No body; `payload` is absent.
    Empty,
}

/// A file `<workspace>/inbox/webhooks/<received>_<id>.json`, written by
/// `tidegate-inbox`.
///
/// `P` is the payload representation: [`Box<RawValue>`] when reading, a
/// borrowed `&RawValue` when writing. Either way the text is the body's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboxItem<P = Box<RawValue>> {
    /// The delivery id (the envelope's `id`).
    pub id: String,
    pub agent_id: String,
    /// The calling service (`?source=putio`).
    pub source: String,
    /// RFC 3339 UTC with milliseconds: when the ingress received it.
    pub received_at: String,
    /// Request headers, names lower-cased, credentials removed.
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub encoding: ItemEncoding,
    /// `json`: the body verbatim; `base64`: a string; `empty`: absent.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub payload: Option<P>,
}

/// `GET /api/webhook/pending`: pending items grouped by agent id, each
/// group oldest first.
pub type PendingItems<P = Box<RawValue>> = BTreeMap<String, Vec<PendingItem<P>>>;

/// One item handed out by the consumer API, leased to the caller until
/// `leaseExpiresAt`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PendingItem<P = Box<RawValue>> {
    /// What `DELETE /api/webhook/items` takes: the item's stream sequence,
    /// in decimal. Stable across leases.
    pub id: String,
    /// The delivery id (the envelope's `id`; an inbox file's `id`).
    pub delivery_id: String,
    pub agent_id: String,
    pub source: String,
    pub received_at: String,
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub encoding: ItemEncoding,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub payload: Option<P>,
    /// How many times the item was handed out, this time included.
    pub deliveries: u64,
    /// RFC 3339 UTC: when the item becomes pending again unless deleted.
    pub lease_expires_at: String,
}

/// `DELETE /api/webhook/items` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteItems {
    pub ids: Vec<String>,
}

/// `DELETE /api/webhook/items` response: every id given is in one list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletedItems {
    /// Marked processed now.
    pub deleted: Vec<String>,
    /// Not pending: already deleted, never handed out, or not an id. Not
    /// an error.
    pub unknown: Vec<String>,
}

fn none<P>() -> Option<P> {
    None
}

/// The body as an item embeds it: `Some` when `body` is one JSON value
/// that can be embedded byte for byte (no surrounding whitespace, not a
/// bare `null`, which reads back as no payload).
pub fn embeddable_json(body: &[u8]) -> Option<&RawValue> {
    let raw: &RawValue = serde_json::from_slice(body).ok()?;
    (raw.get().len() == body.len() && raw.get() != "null").then_some(raw)
}

/// Whether a `Content-Type` value names JSON (`application/json`, `*+json`).
pub fn is_json_media(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}
