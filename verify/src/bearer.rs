//! `Authorization: Bearer <token>`, compared in constant time.

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};

use crate::scheme::insert;
use crate::tag::equal;
use crate::{Secret, SignError, VerifyError};

/// The credential header.
pub const HEADER: HeaderName = AUTHORIZATION;

pub(crate) fn verify(secrets: &[Secret], headers: &HeaderMap) -> Result<(), VerifyError> {
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

/// `Bearer <token>`, marked sensitive.
pub(crate) fn sign(token: &[u8], headers: &mut HeaderMap) -> Result<(), SignError> {
    insert(headers, &HEADER, &[b"Bearer ", token].concat(), true)
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
