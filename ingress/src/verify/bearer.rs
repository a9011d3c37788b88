//! `Authorization: Bearer <token>`, compared in constant time.

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};

use super::{VerifyError, equal};
use crate::secret::Secret;

const HEADER: HeaderName = AUTHORIZATION;

pub(super) fn verify(secrets: &[Secret], headers: &HeaderMap) -> Result<(), VerifyError> {
    let value = headers
        .get(&HEADER)
        .ok_or(VerifyError::Missing { header: HEADER })?;
    let invalid = VerifyError::invalid(HEADER);
    let bytes = value.as_bytes();
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    if bytes.len() < 7 || !bytes[..7].eq_ignore_ascii_case(b"bearer ") {
        return Err(invalid);
    }
    let token = &bytes[7..];
    if secrets.iter().any(|secret| equal(token, secret.expose())) {
        Ok(())
    } else {
        Err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let secrets = vec![Secret::new("t0ken").expect("non-empty")];
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().expect("valid"));
            verify(&secrets, &headers)
        };
        assert_eq!(with("Bearer t0ken"), Ok(()));
        assert_eq!(with("bearer t0ken"), Ok(()));
        let invalid = Err(VerifyError::invalid(HEADER));
        assert_eq!(with("Bearer t0ken2"), invalid);
        assert_eq!(with("Basic t0ken"), invalid);
        assert_eq!(with("t0ken"), invalid);
        assert_eq!(with("Bearer "), invalid);
        assert_eq!(
            verify(&secrets, &HeaderMap::new()),
            Err(VerifyError::Missing { header: HEADER })
        );
    }
}
