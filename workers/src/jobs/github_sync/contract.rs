//! The openwork sync-job contract of a push (`schemas::ConnectorSync`),
//! from the envelope's normalized GitHub fields and the target they map
//! to. The sync event id and the idempotency key are made from the same
//! parts, so they always agree.

use schemas::{ConnectorSync, Envelope, GITHUB_CONNECTOR};

use super::live_targets::Targets;
use super::push::{is_branch_name, is_sha};

/// Prefix of the sync's idempotency key: `github-sync:<sync event id>`.
pub(super) const KEY_PREFIX: &str = "github-sync";

/// `<target id>:<repository id, or owner/name>:<head SHA>`.
pub(super) fn sync_event_id(target: &str, repository: &str, head_sha: &str) -> String {
    format!("{target}:{repository}:{head_sha}")
}

/// The contract of a push to a tracked branch; `None` for anything else
/// (other events, tags, deletions, untracked repositories or branches, a
/// route without GitHub normalization).
pub(super) fn connector(targets: &Targets, envelope: &Envelope) -> Option<ConnectorSync> {
    let github = envelope.github.as_ref()?;
    if github.event != "push" {
        return None;
    }
    let git_ref = github.git_ref.as_deref()?;
    let branch = git_ref
        .strip_prefix("refs/heads/")
        .filter(|branch| is_branch_name(branch))?;
    let head_sha = github
        .head_sha
        .as_deref()
        .filter(|sha| is_sha(sha) && sha.bytes().any(|b| b != b'0'))?;
    let full_name = github.repository_full_name.as_deref()?;
    let target = targets.target_for(full_name, branch)?;
    let repository = match github.repository_id {
        Some(id) => id.to_string(),
        None => full_name.to_owned(),
    };
    Some(ConnectorSync {
        connector_type: GITHUB_CONNECTOR.to_owned(),
        connector_instance_id: target.instance.clone(),
        connector_target_id: target.id.clone(),
        connector_sync_event_id: sync_event_id(&target.id, &repository, head_sha),
        delivery_id: github.delivery_id.clone(),
        installation_id: github.installation_id,
        repository_id: github.repository_id,
        repository_full_name: full_name.to_owned(),
        git_ref: git_ref.to_owned(),
        head_sha: head_sha.to_owned(),
    })
}
