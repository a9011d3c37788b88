//! Shopify's `X-Shopify-Hmac-Sha256`: the standard base64 of the HMAC-SHA256
//! of the raw body, keyed with the app's client secret.

use http::{HeaderMap, HeaderName};

use crate::scheme::insert_text;
use crate::tag::{any_tag_matches, base64, base64_tag, hmac_sha256};
use crate::{Message, Secret, VerifyError};

/// The signature header.
pub const HEADER: HeaderName = HeaderName::from_static("x-shopify-hmac-sha256");

pub(crate) fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), VerifyError> {
    let value = headers
        .get(&HEADER)
        .ok_or(VerifyError::Missing { header: HEADER })?;
    match base64_tag(value.as_bytes()) {
        Some(tag) if any_tag_matches(secrets, &[body], &[tag]) => Ok(()),
        _ => Err(VerifyError::invalid(HEADER)),
    }
}

/// The `X-Shopify-Hmac-Sha256` value Shopify would send.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    base64(&hmac_sha256(secret, &[body]))
}

pub(crate) fn sign(secret: &[u8], message: &Message<'_>, headers: &mut HeaderMap) {
    insert_text(headers, &HEADER, &signature(secret, message.body));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{headers, secrets};

    const BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;

    fn check(value: Option<&str>, body: &[u8], expected: Result<(), VerifyError>) {
        let headers = match value {
            Some(value) => headers(&[("x-shopify-hmac-sha256", value)]),
            None => HeaderMap::new(),
        };
        let keys = secrets(&["old-client-secret", "new-client-secret"]);
        assert_eq!(verify(&keys, &headers, body), expected, "{value:?}");
    }

    #[test]
    fn known_value_and_round_trips() {
        // Shopify publishes no vector; this is the widely quoted
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")
        // = f7bc83f4...2d1a3cd8, in base64.
        assert_eq!(
            signature(b"key", b"The quick brown fox jumps over the lazy dog"),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
        // Either of two rotated secrets.
        check(Some(&signature(b"old-client-secret", BODY)), BODY, Ok(()));
        check(Some(&signature(b"new-client-secret", BODY)), BODY, Ok(()));
    }

    #[test]
    fn refusals() {
        let good = signature(b"new-client-secret", BODY);
        let invalid = || Err(VerifyError::invalid(HEADER));
        check(None, BODY, Err(VerifyError::Missing { header: HEADER }));
        check(Some(&good), br#"{"id":1}"#, invalid());
        check(Some(&signature(b"stranger", BODY)), BODY, invalid());
        check(Some(""), BODY, invalid());
        check(Some(&good[..20]), BODY, invalid());
        check(Some(good.trim_end_matches('=')), BODY, invalid());
        check(
            Some(&hex::encode(hmac_sha256(b"new-client-secret", &[BODY]))),
            BODY,
            invalid(),
        );
        check(Some("not base64!"), BODY, invalid());
    }
}
