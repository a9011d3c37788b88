//! Stripe's `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`: each `v1`
//! is a hex HMAC-SHA256 of `{t}.{body}` keyed with the endpoint secret.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};

use crate::scheme::insert_text;
use crate::tag::{Tag, any_tag_matches, hex_tag, hmac_sha256};
use crate::timestamp::{is_fresh, unix_seconds};
use crate::{Message, Secret, VerifyError};

/// The signature header.
pub const HEADER: HeaderName = HeaderName::from_static("stripe-signature");

/// Any `v1` signature made with any secret is accepted (Stripe lists one per
/// active endpoint secret while one is being rolled); `v0` and unknown
/// schemes are ignored. The signature is checked before the timestamp, so
/// "stale" always describes a genuine delivery.
pub(crate) fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let value = headers
        .get(&HEADER)
        .ok_or(VerifyError::Missing { header: HEADER })?;
    let mut timestamp: Option<&[u8]> = None;
    let mut presented: Vec<Tag> = Vec::new();
    for item in value.as_bytes().split(|byte| *byte == b',') {
        let Some((key, text)) = split_pair(item) else {
            continue;
        };
        match key {
            // Two timestamps would make "the" signed payload ambiguous.
            b"t" if timestamp.is_some() => return Err(VerifyError::invalid(HEADER)),
            b"t" => timestamp = Some(text),
            b"v1" => presented.extend(hex_tag(text)),
            _ => {}
        }
    }
    let Some((timestamp, seconds)) = timestamp.and_then(|text| Some((text, unix_seconds(text)?)))
    else {
        return Err(VerifyError::invalid(HEADER));
    };
    if presented.is_empty() {
        return Err(VerifyError::invalid(HEADER));
    }
    if !any_tag_matches(secrets, &[timestamp, b".", body], &presented) {
        return Err(VerifyError::invalid(HEADER));
    }
    if !is_fresh(seconds, now, tolerance) {
        return Err(VerifyError::stale(HEADER));
    }
    Ok(())
}

/// `key=value`, tolerating spaces around either.
fn split_pair(item: &[u8]) -> Option<(&[u8], &[u8])> {
    let split = item.iter().position(|byte| *byte == b'=')?;
    Some((item[..split].trim_ascii(), item[split + 1..].trim_ascii()))
}

/// The `Stripe-Signature` value Stripe would send.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = hmac_sha256(secret, &[timestamp.as_bytes(), b".", body]);
    format!("t={timestamp},v1={}", hex::encode(tag))
}

pub(crate) fn sign(secret: &[u8], message: &Message<'_>, headers: &mut HeaderMap) {
    insert_text(
        headers,
        &HEADER,
        &signature(secret, message.timestamp, message.body),
    );
}

#[cfg(test)]
mod tests;
