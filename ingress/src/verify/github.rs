//! GitHub's `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the
//! raw body, keyed with the webhook secret. Routes that opt in also accept
//! the legacy `X-Hub-Signature: sha1=<hex HMAC-SHA1>` when the former is absent.

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha1::Sha1;
use sha2::Sha256;

use super::VerifyError;
use crate::secret::Secret;

const HEADER: HeaderName = HeaderName::from_static("x-hub-signature-256");
const SHA1_HEADER: HeaderName = HeaderName::from_static("x-hub-signature");

/// Checks the SHA-256 signature; with `allow_sha1`, a request that has none
/// may be checked by its SHA-1 signature instead. A present but wrong
/// SHA-256 signature never falls back, so SHA-1 cannot be used to
/// downgrade a request that has both.
pub(super) fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
    allow_sha1: bool,
) -> Result<(), VerifyError> {
    if let Some(value) = headers.get(&HEADER) {
        return check::<Hmac<Sha256>, 32>(secrets, value, body, b"sha256=", HEADER);
    }
    if allow_sha1 && let Some(value) = headers.get(&SHA1_HEADER) {
        return check::<Hmac<Sha1>, 20>(secrets, value, body, b"sha1=", SHA1_HEADER);
    }
    Err(VerifyError::Missing { header: HEADER })
}

/// `<prefix><hex tag>`, where the tag is `M` (an HMAC with an `N`-byte
/// output) of the body keyed with any of the secrets.
fn check<M: Mac + hmac::digest::KeyInit, const N: usize>(
    secrets: &[Secret],
    value: &HeaderValue,
    body: &[u8],
    prefix: &[u8],
    header: HeaderName,
) -> Result<(), VerifyError> {
    let Some(hex_signature) = value.as_bytes().strip_prefix(prefix) else {
        return Err(VerifyError::invalid(header));
    };
    let mut signature = [0u8; N];
    if hex::decode_to_slice(hex_signature, &mut signature).is_err() {
        return Err(VerifyError::invalid(header));
    }
    let matches = secrets.iter().any(|secret| {
        let mut mac =
            <M as Mac>::new_from_slice(secret.expose()).expect("HMAC accepts keys of any length");
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::invalid(header))
    }
}

/// The header value GitHub would send for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The legacy `X-Hub-Signature` value GitHub would send.
pub fn sign_sha1(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests;
