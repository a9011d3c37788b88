//! A header that carries the secret itself, compared in constant time (the
//! nexus seed's `X-Webhook-Secret`).

use http::{HeaderMap, HeaderName};

use crate::scheme::insert;
use crate::tag::equal;
use crate::{Secret, SignError, VerifyError};

pub(crate) fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    header: &HeaderName,
) -> Result<(), VerifyError> {
    let presented = headers.get(header).ok_or_else(|| VerifyError::Missing {
        header: header.clone(),
    })?;
    if secrets
        .iter()
        .any(|secret| equal(presented.as_bytes(), secret.expose()))
    {
        Ok(())
    } else {
        Err(VerifyError::invalid(header.clone()))
    }
}

/// The secret itself in `header`, marked sensitive.
pub(crate) fn sign(
    secret: &[u8],
    header: &HeaderName,
    headers: &mut HeaderMap,
) -> Result<(), SignError> {
    insert(headers, header, secret, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_the_header_with_every_secret() {
        let header = HeaderName::from_static("x-webhook-secret");
        let secrets = vec![
            Secret::new("abc123").expect("non-empty"),
            Secret::new("next").expect("non-empty"),
        ];
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header.clone(), value.parse().expect("valid"));
            verify(&secrets, &headers, &header)
        };
        assert_eq!(with("abc123"), Ok(()));
        assert_eq!(with("next"), Ok(()));
        let invalid = Err(VerifyError::invalid(header.clone()));
        assert_eq!(with("abc1234"), invalid);
        assert_eq!(with("abc12"), invalid);
        assert_eq!(with(""), invalid);
        assert_eq!(
            verify(&secrets, &HeaderMap::new(), &header),
            Err(VerifyError::Missing {
                header: header.clone()
            })
        );
    }

    #[test]
    fn a_secret_a_header_cannot_carry_is_an_error_without_it() {
        let header = HeaderName::from_static("x-webhook-secret");
        let mut headers = HeaderMap::new();
        let error = sign(b"line\nbreak", &header, &mut headers).expect_err("not header text");
        assert_eq!(error, SignError::NotHeaderText { header });
        assert!(!error.to_string().contains("line"));
        assert!(headers.is_empty());
    }
}
