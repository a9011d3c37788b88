//! GitHub's `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the
//! raw body, keyed with the webhook secret.

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName};
use sha2::Sha256;

use super::VerifyError;
use crate::secret::Secret;

const HEADER: HeaderName = HeaderName::from_static("x-hub-signature-256");

pub(super) fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), VerifyError> {
    let header = headers
        .get(&HEADER)
        .ok_or(VerifyError::Missing { header: HEADER })?;
    let invalid = VerifyError::Invalid { header: HEADER };
    let hex_signature = header
        .as_bytes()
        .strip_prefix(b"sha256=")
        .ok_or(invalid.clone())?;
    let mut signature = [0u8; 32];
    hex::decode_to_slice(hex_signature, &mut signature).map_err(|_| invalid.clone())?;
    let matches = secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose())
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature).is_ok()
    });
    if matches { Ok(()) } else { Err(invalid) }
}

/// The header value GitHub would send for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(HEADER, value.parse().expect("valid header value"));
        }
        headers
    }

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values
            .iter()
            .map(|value| Secret::new(*value).expect("non-empty"))
            .collect()
    }

    /// The example from GitHub's "Validating webhook deliveries" page.
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_BODY: &[u8] = b"Hello, World!";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn documented_vector_verifies() {
        assert_eq!(sign(DOC_SECRET.as_bytes(), DOC_BODY), DOC_SIGNATURE);
        let result = verify(
            &secrets(&[DOC_SECRET]),
            &headers(Some(DOC_SIGNATURE)),
            DOC_BODY,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn refusals() {
        let invalid = Err(VerifyError::Invalid { header: HEADER });
        let keys = secrets(&[DOC_SECRET]);
        let check = |header: Option<&str>, body: &[u8], expected: &Result<(), VerifyError>| {
            assert_eq!(
                &verify(&keys, &headers(header), body),
                expected,
                "{header:?}"
            );
        };
        check(
            None,
            DOC_BODY,
            &Err(VerifyError::Missing { header: HEADER }),
        );
        check(Some(DOC_SIGNATURE), b"Hello, World?", &invalid);
        check(Some(""), DOC_BODY, &invalid);
        check(Some("sha256="), DOC_BODY, &invalid);
        check(
            Some(&DOC_SIGNATURE.replace("sha256=", "sha1=")),
            DOC_BODY,
            &invalid,
        );
        check(Some(&DOC_SIGNATURE.to_uppercase()), DOC_BODY, &invalid);
        check(
            Some(&DOC_SIGNATURE[..DOC_SIGNATURE.len() - 2]),
            DOC_BODY,
            &invalid,
        );
    }

    #[test]
    fn any_rotated_secret_matches() {
        let keys = secrets(&["old-secret", "new-secret"]);
        for secret in ["old-secret", "new-secret"] {
            let signature = sign(secret.as_bytes(), b"{}");
            assert_eq!(verify(&keys, &headers(Some(&signature)), b"{}"), Ok(()));
        }
        let stranger = sign(b"another", b"{}");
        assert!(verify(&keys, &headers(Some(&stranger)), b"{}").is_err());
    }
}
