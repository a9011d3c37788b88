//! GitHub normalization (the openwork connector's envelope fields) from the
//! delivery headers and a single borrowed scan of the payload
//! (`github_payload.rs`).

use std::borrow::Cow;

use http::HeaderMap;
use schemas::GithubFields;

use super::github_payload;

pub(crate) const DELIVERY_HEADER: &str = "x-github-delivery";
pub(crate) const EVENT_HEADER: &str = "x-github-event";
pub(crate) const HOOK_ID_HEADER: &str = "x-github-hook-id";

/// Why a GitHub delivery cannot be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NormalizeError {
    #[error("missing X-GitHub-Delivery header")]
    MissingDelivery,
    #[error("missing X-GitHub-Event header")]
    MissingEvent,
    #[error("payload is not a GitHub event object: {0}")]
    Payload(String),
    #[error("form body has no `payload` field")]
    MissingFormPayload,
}

/// Headers GitHub always sends: the delivery GUID and the event name.
pub(crate) fn delivery_and_event(headers: &HeaderMap) -> Result<(&str, &str), NormalizeError> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let delivery = text(DELIVERY_HEADER)
        .filter(|value| !value.is_empty())
        .ok_or(NormalizeError::MissingDelivery)?;
    let event = text(EVENT_HEADER)
        .filter(|value| !value.is_empty())
        .ok_or(NormalizeError::MissingEvent)?;
    Ok((delivery, event))
}

/// Builds the normalized fields from the headers and the JSON payload (for
/// form deliveries, the decoded `payload` field).
pub(crate) fn normalize(headers: &HeaderMap, json: &[u8]) -> Result<GithubFields, NormalizeError> {
    let (delivery, event) = delivery_and_event(headers)?;
    let payload =
        github_payload::scan(json).map_err(|error| NormalizeError::Payload(error.to_string()))?;
    let head_sha = payload.after.or(payload.head_sha);
    Ok(GithubFields {
        delivery_id: delivery.to_owned(),
        hook_id: headers
            .get(HOOK_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        event: event.to_owned(),
        installation_id: payload.installation_id,
        repository_id: payload.repository.as_ref().map(|repository| repository.id),
        repository_full_name: payload
            .repository
            .and_then(|repository| repository.full_name)
            .map(Cow::into_owned),
        git_ref: payload.git_ref.map(Cow::into_owned),
        head_sha: head_sha.map(Cow::into_owned),
    })
}

/// The JSON inside a form-encoded delivery (`payload=<urlencoded JSON>`).
pub(crate) fn form_payload(body: &[u8]) -> Result<Vec<u8>, NormalizeError> {
    form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned().into_bytes())
        .ok_or(NormalizeError::MissingFormPayload)
}

#[cfg(test)]
mod differential;
#[cfg(any(test, fuzzing))]
pub(crate) mod oracle;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().expect("valid"));
        }
        headers
    }

    #[test]
    fn push_fields() {
        let body = br#"{"ref":"refs/heads/main","before":"a","after":"6113728f","installation":{"id":42,"account":{}},
            "repository":{"id":1296269,"full_name":"octocat/Hello-World","owner":{"id":1}},"commits":[]}"#;
        let headers = headers(&[
            (DELIVERY_HEADER, "72d3162e"),
            (EVENT_HEADER, "push"),
            (HOOK_ID_HEADER, "99"),
        ]);
        let fields = normalize(&headers, body).expect("normalizes");
        assert_eq!(
            fields,
            GithubFields {
                delivery_id: "72d3162e".into(),
                hook_id: Some("99".into()),
                event: "push".into(),
                installation_id: Some(42),
                repository_id: Some(1296269),
                repository_full_name: Some("octocat/Hello-World".into()),
                git_ref: Some("refs/heads/main".into()),
                head_sha: Some("6113728f".into()),
            }
        );
    }

    #[test]
    fn installation_event_without_repository() {
        let headers = headers(&[(DELIVERY_HEADER, "d"), (EVENT_HEADER, "installation")]);
        let fields = normalize(&headers, br#"{"action":"created","installation":{"id":7}}"#)
            .expect("normalizes");
        assert_eq!(fields.installation_id, Some(7));
        assert_eq!(fields.repository_id, None);
        assert_eq!(fields.head_sha, None);
    }

    #[test]
    fn refusals() {
        let both = headers(&[(DELIVERY_HEADER, "d"), (EVENT_HEADER, "push")]);
        assert!(matches!(
            normalize(&both, b"[1,2]"),
            Err(NormalizeError::Payload(_))
        ));
        assert!(matches!(
            normalize(&both, b"{\"ref\":"),
            Err(NormalizeError::Payload(_))
        ));
        assert_eq!(
            normalize(&headers(&[(EVENT_HEADER, "push")]), b"{}"),
            Err(NormalizeError::MissingDelivery)
        );
        assert_eq!(
            normalize(&headers(&[(DELIVERY_HEADER, "d")]), b"{}"),
            Err(NormalizeError::MissingEvent)
        );
    }

    #[test]
    fn form_encoded_payload() {
        let body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%2C%22after%22%3A%22abc%22%7D";
        assert_eq!(
            form_payload(body).expect("has payload"),
            br#"{"ref":"refs/heads/main","after":"abc"}"#
        );
        assert_eq!(
            form_payload(b"other=1"),
            Err(NormalizeError::MissingFormPayload)
        );
    }
}
