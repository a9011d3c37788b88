//! GitLab's `X-Gitlab-Token`: the webhook's secret token itself, compared in
//! constant time. It signs nothing, so it is only as safe as the transport.

use http::{HeaderMap, HeaderName};

use crate::{Secret, SignError, VerifyError, shared_secret};

/// The token header. A `static` rather than a `const`, so that
/// `Scheme::credential_header` can lend it out.
pub static HEADER: HeaderName = HeaderName::from_static("x-gitlab-token");

pub(crate) fn verify(secrets: &[Secret], headers: &HeaderMap) -> Result<(), VerifyError> {
    shared_secret::verify(secrets, headers, &HEADER)
}

pub(crate) fn sign(secret: &[u8], headers: &mut HeaderMap) -> Result<(), SignError> {
    shared_secret::sign(secret, &HEADER, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{headers, secrets};

    #[test]
    fn the_token_must_equal_a_secret() {
        let keys = secrets(&["old-token", "new-token"]);
        let check = |value: Option<&str>, expected: Result<(), VerifyError>| {
            let headers = match value {
                Some(value) => headers(&[("x-gitlab-token", value)]),
                None => HeaderMap::new(),
            };
            assert_eq!(verify(&keys, &headers), expected, "{value:?}");
        };
        let invalid = || Err(VerifyError::invalid(HEADER.clone()));
        check(Some("old-token"), Ok(()));
        check(Some("new-token"), Ok(()));
        check(Some("new-token "), invalid());
        check(Some("new-toke"), invalid());
        check(Some("NEW-TOKEN"), invalid());
        check(Some(""), invalid());
        check(
            None,
            Err(VerifyError::Missing {
                header: HEADER.clone(),
            }),
        );
        // Another scheme's header is not a GitLab token.
        let other = headers(&[("x-webhook-secret", "new-token")]);
        assert_eq!(
            verify(&keys, &other),
            Err(VerifyError::Missing {
                header: HEADER.clone()
            })
        );
    }
}
