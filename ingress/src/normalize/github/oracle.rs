//! The serde_json reading of a GitHub payload that `github_payload.rs`
//! replaced, kept as the tests' oracle: the one-pass scan must give its
//! verdict and its fields for every input (the unit tests here, the
//! `github_scan` fuzz target through `ingress::github_fields_oracle`).

use std::borrow::Cow;

use http::HeaderMap;
use schemas::GithubFields;
use serde::Deserialize;

use super::{HOOK_ID_HEADER, NormalizeError, delivery_and_event};

/// The fields read from the payload; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(default, borrow, rename = "ref")]
    git_ref: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    after: Option<Cow<'a, str>>,
    #[serde(default)]
    installation: Option<Id>,
    #[serde(default, borrow)]
    repository: Option<Repository<'a>>,
    #[serde(default, borrow)]
    pull_request: Option<PullRequest<'a>>,
}

#[derive(Deserialize)]
struct Id {
    id: u64,
}

#[derive(Deserialize)]
struct Repository<'a> {
    id: u64,
    #[serde(borrow)]
    full_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PullRequest<'a> {
    #[serde(borrow)]
    head: Option<Head<'a>>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    sha: Option<Cow<'a, str>>,
}

/// `github::normalize` as it was, with `serde_json::from_slice`.
pub(crate) fn normalize(headers: &HeaderMap, json: &[u8]) -> Result<GithubFields, NormalizeError> {
    let (delivery, event) = delivery_and_event(headers)?;
    let fields: Fields<'_> =
        serde_json::from_slice(json).map_err(|error| NormalizeError::Payload(error.to_string()))?;
    let head_sha = fields.after.or_else(|| {
        fields
            .pull_request
            .and_then(|pr| pr.head)
            .and_then(|head| head.sha)
    });
    Ok(GithubFields {
        delivery_id: delivery.to_owned(),
        hook_id: headers
            .get(HOOK_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        event: event.to_owned(),
        installation_id: fields.installation.map(|installation| installation.id),
        repository_id: fields.repository.as_ref().map(|repository| repository.id),
        repository_full_name: fields
            .repository
            .and_then(|repository| repository.full_name)
            .map(Cow::into_owned),
        git_ref: fields.git_ref.map(Cow::into_owned),
        head_sha: head_sha.map(Cow::into_owned),
    })
}
