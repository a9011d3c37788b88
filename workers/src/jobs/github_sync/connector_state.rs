//! Connector state from GitHub App lifecycle events (`installation`,
//! `installation_repositories`, `repository`): one JSON record per
//! installation in the connectors KV bucket, updated with optimistic
//! concurrency so concurrent replicas never lose an update.

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use tracing::warn;

/// KV key of an installation's record: `github.installation.<id>`.
pub const KEY_PREFIX: &str = "github.installation";
/// Read-modify-write rounds before giving up to a retry.
const MAX_ROUNDS: usize = 16;

/// What is stored for one installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationState {
    pub installation_id: u64,
    /// The account the app is installed on (`account.login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub status: InstallationStatus,
    /// `received_at` of the delivery that set `status`: an older delivery
    /// processed later never overrides it.
    pub status_at: String,
    /// `all` or `selected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_selection: Option<String>,
    /// Repositories the installation can access, sorted by full name.
    #[serde(default)]
    pub repositories: Vec<RepositoryRef>,
    pub updated_at: String,
    pub last_delivery_id: String,
    /// `<event>.<action>` of the last applied delivery.
    pub last_event: String,
}

/// Installation health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallationStatus {
    Active,
    Suspended,
    Deleted,
}

impl InstallationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallationStatus::Active => "active",
            InstallationStatus::Suspended => "suspended",
            InstallationStatus::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub full_name: String,
}

/// The lifecycle events this job records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lifecycle {
    Installation,
    InstallationRepositories,
    Repository,
}

impl Lifecycle {
    pub(super) fn from_event(event: &str) -> Option<Lifecycle> {
        match event {
            "installation" => Some(Lifecycle::Installation),
            "installation_repositories" => Some(Lifecycle::InstallationRepositories),
            "repository" => Some(Lifecycle::Repository),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Lifecycle::Installation => "installation",
            Lifecycle::InstallationRepositories => "installation_repositories",
            Lifecycle::Repository => "repository",
        }
    }
}

/// One lifecycle delivery, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub(super) kind: Lifecycle,
    pub(super) action: String,
    pub(super) installation_id: u64,
    account: Option<String>,
    selection: Option<String>,
    suspended: bool,
    /// `installation.created`: the full list.
    repositories: Option<Vec<RepositoryRef>>,
    added: Vec<RepositoryRef>,
    removed: Vec<RepositoryRef>,
    /// `repository` events: the repository as it is now.
    repository: Option<RepositoryRef>,
}

impl Change {
    /// `<event>.<action>`.
    pub(super) fn event(&self) -> String {
        format!("{}.{}", self.kind.name(), self.action)
    }

    pub(super) fn key(&self) -> String {
        format!("{KEY_PREFIX}.{}", self.installation_id)
    }
}

#[derive(Deserialize)]
struct Payload {
    action: Option<String>,
    installation: Option<Installation>,
    repositories: Option<Vec<RepositoryRef>>,
    #[serde(default)]
    repositories_added: Vec<RepositoryRef>,
    #[serde(default)]
    repositories_removed: Vec<RepositoryRef>,
    repository_selection: Option<String>,
    repository: Option<RepositoryRef>,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
    account: Option<Account>,
    repository_selection: Option<String>,
    suspended_at: Option<String>,
}

#[derive(Deserialize)]
struct Account {
    login: Option<String>,
}

/// Parses a lifecycle payload. `Ok(None)`: no installation (a repository
/// webhook, not the app's), nothing to record; `Err`: not a GitHub payload.
pub(super) fn parse(kind: Lifecycle, payload: &[u8]) -> Result<Option<Change>, String> {
    let payload: Payload = serde_json::from_slice(payload)
        .map_err(|error| format!("payload is not a GitHub {} event: {error}", kind.name()))?;
    let action = payload
        .action
        .ok_or_else(|| format!("payload is not a GitHub {} event: no `action`", kind.name()))?;
    let Some(installation) = payload.installation else {
        return Ok(None);
    };
    if kind == Lifecycle::Repository && payload.repository.is_none() {
        return Err("payload is not a GitHub repository event: no `repository`".into());
    }
    Ok(Some(Change {
        kind,
        action,
        installation_id: installation.id,
        account: installation.account.and_then(|account| account.login),
        selection: payload
            .repository_selection
            .or(installation.repository_selection),
        suspended: installation.suspended_at.is_some(),
        repositories: payload.repositories,
        added: payload.repositories_added,
        removed: payload.repositories_removed,
        repository: payload.repository,
    }))
}

/// The record after `change`, received at `received_at` (RFC 3339 UTC,
/// so text order is time order).
pub(super) fn apply(
    current: Option<InstallationState>,
    change: &Change,
    received_at: &str,
    delivery_id: &str,
) -> InstallationState {
    let mut state = current.unwrap_or_else(|| InstallationState {
        installation_id: change.installation_id,
        account: None,
        status: if change.suspended {
            InstallationStatus::Suspended
        } else {
            InstallationStatus::Active
        },
        status_at: String::new(),
        repository_selection: None,
        repositories: Vec::new(),
        updated_at: String::new(),
        last_delivery_id: String::new(),
        last_event: String::new(),
    });
    if change.account.is_some() {
        state.account.clone_from(&change.account);
    }
    if change.selection.is_some() {
        state.repository_selection.clone_from(&change.selection);
    }
    let status = match (change.kind, change.action.as_str()) {
        (Lifecycle::Installation, "created" | "unsuspend") => Some(InstallationStatus::Active),
        (Lifecycle::Installation, "suspend") => Some(InstallationStatus::Suspended),
        (Lifecycle::Installation, "deleted") => Some(InstallationStatus::Deleted),
        _ => None,
    };
    let status_applies = received_at >= state.status_at.as_str();
    if let Some(status) = status
        && status_applies
    {
        state.status = status;
        received_at.clone_into(&mut state.status_at);
    }
    match (change.kind, change.action.as_str()) {
        (Lifecycle::Installation, "deleted") if status_applies => state.repositories.clear(),
        (Lifecycle::Installation, "created") => {
            if let Some(repositories) = &change.repositories {
                state.repositories.clone_from(repositories);
            }
        }
        (Lifecycle::Installation, _) => {}
        (Lifecycle::InstallationRepositories, _) => {
            for repository in &change.removed {
                remove(&mut state.repositories, repository);
            }
            for repository in &change.added {
                upsert(&mut state.repositories, repository);
            }
        }
        (Lifecycle::Repository, action) => {
            if let Some(repository) = &change.repository {
                if action == "deleted" {
                    remove(&mut state.repositories, repository);
                } else {
                    // renamed, transferred, edited, archived, ...: the
                    // payload has the repository as it is now.
                    upsert(&mut state.repositories, repository);
                }
            }
        }
    }
    state
        .repositories
        .sort_by(|a, b| a.full_name.cmp(&b.full_name));
    received_at.clone_into(&mut state.updated_at);
    delivery_id.clone_into(&mut state.last_delivery_id);
    state.last_event = change.event();
    state
}

fn same(a: &RepositoryRef, b: &RepositoryRef) -> bool {
    match (a.id, b.id) {
        (Some(a), Some(b)) => a == b,
        _ => a.full_name.eq_ignore_ascii_case(&b.full_name),
    }
}

fn remove(repositories: &mut Vec<RepositoryRef>, repository: &RepositoryRef) {
    repositories.retain(|existing| !same(existing, repository));
}

/// Adds `repository`, or updates the name (and id) of the one it is.
fn upsert(repositories: &mut Vec<RepositoryRef>, repository: &RepositoryRef) {
    match repositories
        .iter_mut()
        .find(|existing| same(existing, repository))
    {
        Some(existing) => {
            existing.full_name.clone_from(&repository.full_name);
            existing.id = existing.id.or(repository.id);
        }
        None => repositories.push(repository.clone()),
    }
}

/// The recorded status of `installation`, when the connectors bucket has
/// a record of it.
pub(super) async fn status(
    store: &kv::Store,
    installation: u64,
) -> Result<Option<InstallationStatus>, String> {
    let key = format!("{KEY_PREFIX}.{installation}");
    match store.get(key.as_str()).await {
        Ok(Some(value)) => serde_json::from_slice::<InstallationState>(&value)
            .map(|state| Some(state.status))
            .map_err(|error| format!("{key} is not an installation record: {error}")),
        Ok(None) => Ok(None),
        Err(error) => Err(format!("reading {key}: {error}")),
    }
}

/// Applies `change` to its installation's record: read, apply, then write
/// only if nobody wrote in between (`update` at the read revision, or
/// `create` when absent); on a conflict, read again.
pub(super) async fn record(
    store: &kv::Store,
    change: &Change,
    received_at: &str,
    delivery_id: &str,
) -> Result<InstallationState, String> {
    let key = change.key();
    for _ in 0..MAX_ROUNDS {
        let entry = store
            .entry(key.as_str())
            .await
            .map_err(|error| format!("reading {key}: {error}"))?;
        let (current, revision) = match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let current = serde_json::from_slice(&entry.value)
                    .inspect_err(|error| {
                        warn!(key = %key, error = %error, "connector state is not valid JSON; rebuilding it");
                    })
                    .ok();
                (current, Some(entry.revision))
            }
            _ => (None, None),
        };
        let next = apply(current, change, received_at, delivery_id);
        let value = serde_json::to_vec(&next)
            .expect("connector state always serializes")
            .into();
        let written = match revision {
            Some(revision) => store
                .update(key.as_str(), value, revision)
                .await
                .map_err(|error| {
                    let conflict = error.kind() == kv::UpdateErrorKind::WrongLastRevision;
                    (conflict, error.to_string())
                }),
            None => store.create(key.as_str(), value).await.map_err(|error| {
                let conflict = error.kind() == kv::CreateErrorKind::AlreadyExists;
                (conflict, error.to_string())
            }),
        };
        match written {
            Ok(_) => return Ok(next),
            Err((true, _)) => continue,
            Err((false, error)) => return Err(format!("writing {key}: {error}")),
        }
    }
    Err(format!(
        "writing {key}: still conflicting after {MAX_ROUNDS} rounds"
    ))
}

#[cfg(test)]
mod tests;
