//! Standard Webhooks, as Svix signs: `webhook-signature: v1,<base64>` is the
//! HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the
//! base64 secret after its `whsec_` prefix. Svix's `svix-*` names also work.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::scheme::{insert, insert_text};
use crate::tag::{Tag, any_tag_matches, base64, base64_tag, hmac_sha256};
use crate::timestamp::{is_fresh, unix_seconds};
use crate::{Message, Secret, SignError, VerifyError};

pub const ID: HeaderName = HeaderName::from_static("webhook-id");
pub const TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
pub const SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
pub const SVIX_ID: HeaderName = HeaderName::from_static("svix-id");
pub const SVIX_TIMESTAMP: HeaderName = HeaderName::from_static("svix-timestamp");
pub const SVIX_SIGNATURE: HeaderName = HeaderName::from_static("svix-signature");

/// The prefix of a secret as written in configuration.
const PREFIX: &str = "whsec_";

/// `keys` are decoded secrets (see [`decode_key`]). The signature header
/// may list several space-separated signatures (the sender's own key
/// rotation); any `v1` one made with any key is accepted, other versions are
/// ignored. The signature is checked before the timestamp, so "stale"
/// always describes a genuine delivery.
pub(crate) fn verify(
    keys: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let (_, id) = header(headers, ID, SVIX_ID)?;
    let (timestamp_header, timestamp) = header(headers, TIMESTAMP, SVIX_TIMESTAMP)?;
    let (signature_header, signatures) = header(headers, SIGNATURE, SVIX_SIGNATURE)?;
    let Some(seconds) = unix_seconds(timestamp.as_bytes()) else {
        return Err(VerifyError::invalid(timestamp_header));
    };
    let presented: Vec<Tag> = signatures
        .as_bytes()
        .split(|byte| *byte == b' ')
        .filter_map(|entry| entry.strip_prefix(b"v1,"))
        .filter_map(base64_tag)
        .collect();
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    if presented.is_empty() || !any_tag_matches(keys, &signed, &presented) {
        return Err(VerifyError::invalid(signature_header));
    }
    if !is_fresh(seconds, now, tolerance) {
        return Err(VerifyError::stale(timestamp_header));
    }
    Ok(())
}

/// The unbranded header, else its Svix-branded twin; a request with
/// neither is missing the unbranded one.
fn header(
    headers: &HeaderMap,
    name: HeaderName,
    svix: HeaderName,
) -> Result<(HeaderName, &HeaderValue), VerifyError> {
    if let Some(value) = headers.get(&name) {
        return Ok((name, value));
    }
    match headers.get(&svix) {
        Some(value) => Ok((svix, value)),
        None => Err(VerifyError::Missing { header: name }),
    }
}

/// The HMAC key inside a Standard Webhooks secret: standard base64 after an
/// optional `whsec_` prefix. `None` when it is not valid base64 or decodes
/// to nothing. The only place that reads the secret format.
pub fn decode_key(secret: &Secret) -> Option<Secret> {
    let text = secret.expose();
    let encoded = text.strip_prefix(PREFIX.as_bytes()).unwrap_or(text);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    Secret::new(key)
}

/// A secret as written in configuration for `key`: `whsec_<base64>`.
pub fn encode_key(key: &[u8]) -> String {
    format!("{PREFIX}{}", base64(key))
}

/// The `webhook-signature` value a sender would send, for a decoded `key`.
pub fn signature(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", base64(&tag))
}

pub(crate) fn sign(
    key: &[u8],
    message: &Message<'_>,
    headers: &mut HeaderMap,
) -> Result<(), SignError> {
    insert(headers, &ID, message.id.as_bytes(), false)?;
    insert_text(headers, &TIMESTAMP, &message.timestamp.to_string());
    insert_text(
        headers,
        &SIGNATURE,
        &signature(key, message.id, message.timestamp, message.body),
    );
    Ok(())
}

#[cfg(test)]
mod tests;
