//! Standard Webhooks, as Svix signs: `webhook-signature: v1,<base64>` is the
//! HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the
//! base64 secret after its `whsec_` prefix. Svix's `svix-*` names also work.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::{Duration, SystemTime};

use super::{Tag, VerifyError, any_tag_matches, base64_tag, hmac_sha256, is_fresh, unix_seconds};
use crate::secret::Secret;

const ID: HeaderName = HeaderName::from_static("webhook-id");
const TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const SVIX_ID: HeaderName = HeaderName::from_static("svix-id");
const SVIX_TIMESTAMP: HeaderName = HeaderName::from_static("svix-timestamp");
const SVIX_SIGNATURE: HeaderName = HeaderName::from_static("svix-signature");

/// `keys` are decoded secrets (see [`decode_secret`]). The signature header
/// may list several space-separated signatures (the sender's own key
/// rotation); any `v1` one made with any key is accepted, other versions are
/// ignored. The signature is checked before the timestamp, so "stale"
/// always describes a genuine delivery.
pub(super) fn verify(
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
/// optional `whsec_` prefix. `None` when it is not valid base64.
pub(crate) fn decode_secret(secret: &Secret) -> Option<Secret> {
    let text = secret.expose();
    let encoded = text.strip_prefix(b"whsec_").unwrap_or(text);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    Secret::new(key)
}

/// The `webhook-signature` value a sender would send, for a decoded `key`.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

#[cfg(test)]
mod tests;
