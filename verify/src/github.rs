//! GitHub's `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the
//! raw body, keyed with the webhook secret. Routes that opt in also accept
//! the legacy `X-Hub-Signature: sha1=<hex HMAC-SHA1>` when the former is absent.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::scheme::insert_text;
use crate::tag::{any_matches, hex_tag, hmac_sha1, hmac_sha256};
use crate::{Message, Secret, VerifyError};

/// The signature header.
pub const HEADER: HeaderName = HeaderName::from_static("x-hub-signature-256");
/// The legacy SHA-1 signature header.
pub const SHA1_HEADER: HeaderName = HeaderName::from_static("x-hub-signature");

/// Checks the SHA-256 signature; with `allow_sha1`, a request that has none
/// may be checked by its SHA-1 signature instead. A present but wrong
/// SHA-256 signature never falls back, so SHA-1 cannot be used to
/// downgrade a request that has both.
pub(crate) fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
    allow_sha1: bool,
) -> Result<(), VerifyError> {
    if let Some(value) = headers.get(&HEADER) {
        return check(hmac_sha256, secrets, value, body, b"sha256=", HEADER);
    }
    if allow_sha1 && let Some(value) = headers.get(&SHA1_HEADER) {
        return check(hmac_sha1, secrets, value, body, b"sha1=", SHA1_HEADER);
    }
    Err(VerifyError::Missing { header: HEADER })
}

/// `<prefix><hex tag>`, where the tag is `mac` of the body keyed with any
/// of the secrets.
fn check<const N: usize>(
    mac: fn(&[u8], &[&[u8]]) -> [u8; N],
    secrets: &[Secret],
    value: &HeaderValue,
    body: &[u8],
    prefix: &[u8],
    header: HeaderName,
) -> Result<(), VerifyError> {
    match value.as_bytes().strip_prefix(prefix).and_then(hex_tag::<N>) {
        Some(tag) if any_matches(mac, secrets, &[body], &[tag]) => Ok(()),
        _ => Err(VerifyError::invalid(header)),
    }
}

/// The `X-Hub-Signature-256` value GitHub would send for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret, &[body])))
}

/// The legacy `X-Hub-Signature` value GitHub would send for `body`.
pub fn sha1_signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha1={}", hex::encode(hmac_sha1(secret, &[body])))
}

pub(crate) fn sign(secret: &[u8], message: &Message<'_>, headers: &mut HeaderMap) {
    insert_text(headers, &HEADER, &signature(secret, message.body));
}

#[cfg(test)]
mod tests;
