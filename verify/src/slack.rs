//! Slack's `X-Slack-Signature: v0=<hex>`: the HMAC-SHA256 of
//! `v0:{X-Slack-Request-Timestamp}:{body}`, keyed with the app's signing secret.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};

use crate::scheme::insert_text;
use crate::tag::{any_tag_matches, hex_tag, hmac_sha256};
use crate::timestamp::{is_fresh, unix_seconds};
use crate::{Message, Secret, VerifyError};

/// The signature header.
pub const SIGNATURE: HeaderName = HeaderName::from_static("x-slack-signature");
/// The signed timestamp header.
pub const TIMESTAMP: HeaderName = HeaderName::from_static("x-slack-request-timestamp");

/// The signature is checked before the timestamp, so "stale" always
/// describes a genuine request.
pub(crate) fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let signature = headers
        .get(&SIGNATURE)
        .ok_or(VerifyError::Missing { header: SIGNATURE })?;
    let timestamp = headers
        .get(&TIMESTAMP)
        .ok_or(VerifyError::Missing { header: TIMESTAMP })?
        .as_bytes();
    let Some(seconds) = unix_seconds(timestamp) else {
        return Err(VerifyError::invalid(TIMESTAMP));
    };
    let Some(tag) = signature.as_bytes().strip_prefix(b"v0=").and_then(hex_tag) else {
        return Err(VerifyError::invalid(SIGNATURE));
    };
    if !any_tag_matches(secrets, &[b"v0:", timestamp, b":", body], &[tag]) {
        return Err(VerifyError::invalid(SIGNATURE));
    }
    if !is_fresh(seconds, now, tolerance) {
        return Err(VerifyError::stale(TIMESTAMP));
    }
    Ok(())
}

/// The `X-Slack-Signature` value Slack would send with `timestamp`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = hmac_sha256(secret, &[b"v0:", timestamp.as_bytes(), b":", body]);
    format!("v0={}", hex::encode(tag))
}

pub(crate) fn sign(secret: &[u8], message: &Message<'_>, headers: &mut HeaderMap) {
    insert_text(headers, &TIMESTAMP, &message.timestamp.to_string());
    insert_text(
        headers,
        &SIGNATURE,
        &signature(secret, message.timestamp, message.body),
    );
}

#[cfg(test)]
mod tests;
