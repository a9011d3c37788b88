//! A header that carries the secret itself, compared in constant time (the
//! nexus seed's `X-Webhook-Secret`).

use http::{HeaderMap, HeaderName};

use super::{VerifyError, equal};
use crate::secret::Secret;

pub(super) fn verify(
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
}
