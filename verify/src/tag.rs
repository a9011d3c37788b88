//! HMAC tags and their constant-time comparison, shared by the schemes: the
//! only place that computes an HMAC or compares secret material.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::Secret;

/// An HMAC-SHA256 tag.
pub(crate) type Tag = [u8; 32];

/// An HMAC-SHA1 tag (GitHub's legacy header only).
pub(crate) type Sha1Tag = [u8; 20];

/// Constant-time equality for values of possibly different lengths. The
/// length comparison leaks only the length, which is not secret material.
pub(crate) fn equal(left: &[u8], right: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    left.len() == right.len() && bool::from(left.ct_eq(right))
}

/// HMAC-SHA256 over `parts` (concatenated), keyed with `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Tag {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA1 over `parts` (concatenated), keyed with `key`.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Sha1Tag {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether any secret's tag over `signed` (made by `mac`) equals any of the
/// `presented` tags. Each secret's tag is computed once, and every
/// comparison is constant-time.
pub(crate) fn any_matches<const N: usize>(
    mac: fn(&[u8], &[&[u8]]) -> [u8; N],
    secrets: &[Secret],
    signed: &[&[u8]],
    presented: &[[u8; N]],
) -> bool {
    secrets.iter().any(|secret| {
        let expected = mac(secret.expose(), signed);
        presented.iter().any(|tag| equal(&expected, tag))
    })
}

/// [`any_matches`] for HMAC-SHA256, which every signing scheme but GitHub's
/// legacy header uses.
pub(crate) fn any_tag_matches(secrets: &[Secret], signed: &[&[u8]], presented: &[Tag]) -> bool {
    any_matches(hmac_sha256, secrets, signed, presented)
}

/// A tag written as lower- or upper-case hex.
pub(crate) fn hex_tag<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    let mut tag = [0u8; N];
    hex::decode_to_slice(text, &mut tag).ok().map(|()| tag)
}

/// A tag written as standard (padded) base64.
pub(crate) fn base64_tag(text: &[u8]) -> Option<Tag> {
    // Larger than a tag, so that longer input fails as a length mismatch
    // rather than as a short buffer.
    let mut buffer = [0u8; 48];
    let written = base64::engine::general_purpose::STANDARD
        .decode_slice(text, &mut buffer)
        .ok()?;
    buffer[..written].try_into().ok()
}

/// Standard (padded) base64, as Standard Webhooks and Shopify write tags.
pub(crate) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
