//! The GitHub connector sync (openwork seed): a push to a tracked branch
//! becomes a sync of the pushed commit into the target's folder; GitHub App
//! lifecycle events update connector state in KV without a sync.
//!
//! One writer per target folder: syncs of one folder never interleave in a
//! process, and a push whose branch has moved on is skipped as stale, but
//! two replicas could both write one folder. The idempotency key
//! (`github-sync:<target>:<repository>:<head SHA>`) only stops repeats of the
//! same SHA, so run this worker as a single replica, or give each replica
//! its own targets.

mod connector_state;
mod git;
mod materialize;
mod push;
mod targets;
#[cfg(test)]
mod test_repo;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use async_nats::jetstream;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

pub use self::connector_state::{InstallationState, InstallationStatus, KEY_PREFIX, RepositoryRef};
use self::git::Git;
use self::push::{Push, PushEvent};
pub use self::targets::{DEFAULT_STATE_DIR, GithubSyncConfig, TargetConfig};
use self::targets::{Settings, Target};
use crate::{Delivery, Job, Outcome, Report, Setup};

/// The job: typed settings, git, and the connectors bucket once prepared.
pub struct GithubSync {
    settings: Settings,
    git: Git,
    connectors: Option<jetstream::kv::Store>,
    /// One lock per target folder: syncs of one folder never interleave in
    /// this process.
    folders: std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// The last commit synced into a folder, kept under `state_dir`.
#[derive(Debug, Serialize, Deserialize)]
struct SyncedState {
    head_sha: String,
    git_ref: String,
    delivery_id: String,
    synced_at: String,
}

const STATE_FILE: &str = "last-synced.json";

impl GithubSync {
    /// Parses `[github_sync]`, reporting every bad key at once.
    pub fn new(config: GithubSyncConfig) -> anyhow::Result<GithubSync> {
        let settings = Settings::parse(config)?;
        let git = Git {
            timeout: settings.git_timeout,
            allow_protocol: settings.protocols.join(":"),
        };
        Ok(GithubSync {
            settings,
            git,
            connectors: None,
            folders: std::sync::Mutex::default(),
        })
    }

    /// A branch push and the target it maps to, if any.
    fn tracked(&self, delivery: &Delivery) -> Option<(Push, &Target)> {
        if event_name(delivery) != Some("push") {
            return None;
        }
        let Ok(PushEvent::Branch(push)) = push::parse(&delivery.payload) else {
            return None;
        };
        let target = self.settings.target_for(&push.full_name, &push.branch)?;
        Some((push, target))
    }

    async fn push(&self, delivery: &Delivery) -> Outcome {
        let push = match push::parse(&delivery.payload) {
            Ok(PushEvent::Branch(push)) => push,
            Ok(PushEvent::Tag(git_ref)) => return Outcome::Skip(format!("tag push {git_ref}")),
            Ok(PushEvent::Deleted(git_ref)) => {
                return Outcome::Skip(format!("branch deletion {git_ref}"));
            }
            Ok(PushEvent::Other(git_ref)) => {
                return Outcome::Skip(format!("push to {git_ref}, not a branch"));
            }
            Err(error) => return Outcome::Fail(error),
        };
        let Some(target) = self.settings.target_for(&push.full_name, &push.branch) else {
            return Outcome::Skip(format!(
                "{} {} is not tracked by any target",
                push.full_name, push.branch
            ));
        };
        let protocol = match push.clone_url() {
            Ok(_) => push.protocol().unwrap_or_default(),
            Err(error) => return Outcome::Fail(error),
        };
        if !self
            .settings
            .protocols
            .iter()
            .any(|allowed| allowed == protocol)
        {
            return Outcome::Fail(format!(
                "clone URL protocol `{protocol}` is not in github_sync.protocols"
            ));
        }
        self.sync(delivery, target, &push).await
    }

    /// Fetches the pushed commit into the repository's mirror and
    /// materializes it into the target folder.
    async fn sync(&self, delivery: &Delivery, target: &Target, push: &Push) -> Outcome {
        let folder = target.folder(&push.owner, &push.name);
        let state_dir = self
            .settings
            .state_dir
            .join("targets")
            .join(&target.id)
            .join(push.repository_key());
        let lock = self.folder_lock(&folder);
        let _guard = lock.lock().await;
        let sha = push.head_sha.as_str();
        if let Err(error) = tokio::fs::create_dir_all(&state_dir).await {
            return Outcome::retry(format!("creating {}: {error}", state_dir.display()));
        }
        let mirror = state_dir.join("mirror.git");
        if let Err(error) = self.git.init_mirror(&mirror).await {
            return Outcome::retry(error.to_string());
        }
        // The same head again (a redelivery the key did not catch, e.g. a
        // crash before the key was recorded): the folder already has it.
        if let Some(last) = read_state(&state_dir).await
            && last.head_sha == sha
        {
            return Outcome::Skip(format!("target {}: {sha} is already synced", target.id));
        }
        let clone_url = match push.clone_url() {
            Ok(url) => url,
            Err(error) => return Outcome::Fail(error),
        };
        if let Err(error) = self.git.fetch(&mirror, clone_url, &push.git_ref).await {
            if error.is_missing_remote_ref() {
                return Outcome::Skip(format!(
                    "{} {} no longer exists",
                    push.full_name, push.git_ref
                ));
            }
            return Outcome::retry(format!(
                "fetching {} {}: {error}",
                push.full_name, push.git_ref
            ));
        }
        match self.git.has_commit(&mirror, sha).await {
            Ok(true) => {}
            Ok(false) => {
                return Outcome::retry(format!(
                    "commit {sha} is not in {} {} after fetching",
                    push.full_name, push.git_ref
                ));
            }
            Err(error) => return Outcome::retry(error.to_string()),
        }
        if let Some(reason) = self.superseded(&mirror, push).await {
            return Outcome::Skip(format!("target {}: {reason}", target.id));
        }
        let changes = match materialize::materialize(&self.git, &mirror, sha, &folder).await {
            Ok(changes) => changes,
            Err(error) => return Outcome::retry(error.to_string()),
        };
        let synced = SyncedState {
            head_sha: sha.to_owned(),
            git_ref: push.git_ref.clone(),
            delivery_id: delivery.envelope.id.clone(),
            synced_at: crate::runtime::report::rfc3339(std::time::SystemTime::now()),
        };
        if let Err(error) = write_state(&state_dir, &synced).await {
            warn!(error = %error, target = %target.id, "recording the synced commit failed; a repeat of this head would sync again");
        }
        let mut report = Report::default()
            .count("created", changes.created)
            .count("updated", changes.updated)
            .count("deleted", changes.deleted)
            .count("skipped", changes.skipped)
            .detail("target", &target.id)
            .detail("repository", &push.full_name)
            .detail("ref", &push.git_ref)
            .detail("head_sha", sha)
            .detail("folder", folder.display().to_string());
        for (path, error) in changes.failures {
            report.failure(path, error);
        }
        debug!(target = %target.id, head_sha = %sha, "synced");
        Outcome::Done(report)
    }

    /// Why this push should not be synced: its ref has moved on since
    /// (a later push, whose own delivery syncs the newer head, or a force
    /// push). Comparing with the ref's current head, rather than with the
    /// last synced commit, keeps reordered deliveries from going backwards
    /// and still lets a force push back to an older commit through.
    async fn superseded(&self, mirror: &Path, push: &Push) -> Option<String> {
        let sha = push.head_sha.as_str();
        let head = match self.git.resolve(mirror, &push.git_ref).await {
            Ok(Some(head)) if head != sha => head,
            Ok(_) => return None,
            Err(error) => {
                warn!(error = %error, "reading the fetched ref failed; syncing");
                return None;
            }
        };
        match self.git.is_ancestor(mirror, sha, &head).await {
            Ok(Some(true)) => Some(format!(
                "{sha} is older than the head of {} ({head})",
                push.git_ref
            )),
            _ => Some(format!(
                "{sha} is no longer on {} (force-pushed to {head})",
                push.git_ref
            )),
        }
    }

    fn folder_lock(&self, folder: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut folders = self.folders.lock().unwrap_or_else(PoisonError::into_inner);
        folders.entry(folder.to_path_buf()).or_default().clone()
    }

    async fn lifecycle(&self, kind: connector_state::Lifecycle, delivery: &Delivery) -> Outcome {
        let change = match connector_state::parse(kind, &delivery.payload) {
            Ok(Some(change)) => change,
            Ok(None) => return Outcome::Skip("event without an installation".into()),
            Err(error) => return Outcome::Fail(error),
        };
        let Some(store) = &self.connectors else {
            return Outcome::retry("the connectors bucket is not open");
        };
        let envelope = &delivery.envelope;
        match connector_state::record(store, &change, &envelope.received_at, &envelope.id).await {
            Ok(state) => Outcome::Done(
                Report::default()
                    .count("repositories", state.repositories.len() as u64)
                    .detail("event", change.event())
                    .detail("installation", change.installation_id.to_string())
                    .detail("status", state.status.as_str())
                    .detail("account", state.account.unwrap_or_default())
                    .detail("key", change.key()),
            ),
            Err(error) => Outcome::retry(error),
        }
    }
}

impl Job for GithubSync {
    /// Pushes that map to a target dedupe on target, repository and head
    /// SHA (a redelivery, or a second push of the same commit, syncs once);
    /// everything else on the delivery id.
    fn key(&self, delivery: &Delivery) -> Option<String> {
        match self.tracked(delivery) {
            Some((push, target)) => Some(format!(
                "github-sync:{}:{}:{}",
                target.id,
                push.repository_key(),
                push.head_sha
            )),
            None => Some(delivery.envelope.id.clone()),
        }
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let Some(event) = event_name(delivery) else {
            return Outcome::Skip("delivery has no GitHub event name".into());
        };
        if event == "push" {
            return self.push(delivery).await;
        }
        match connector_state::Lifecycle::from_event(event) {
            Some(kind) => self.lifecycle(kind, delivery).await,
            None => Outcome::Skip(format!("{event} events are not synced")),
        }
    }

    async fn prepare(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        let store = broker::ensure::ensure_key_value(
            setup.jetstream,
            broker::catalog::connectors(),
            setup.placement,
        )
        .await?;
        self.connectors = Some(store);
        Ok(())
    }
}

/// The normalized event name, or the route's event header.
fn event_name(delivery: &Delivery) -> Option<&str> {
    let envelope = &delivery.envelope;
    envelope
        .github
        .as_ref()
        .map(|github| github.event.as_str())
        .or(envelope.event.as_deref())
}

async fn read_state(state_dir: &Path) -> Option<SyncedState> {
    let bytes = tokio::fs::read(state_dir.join(STATE_FILE)).await.ok()?;
    serde_json::from_slice(&bytes)
        .inspect_err(|error| warn!(error = %error, "unreadable sync state; ignoring it"))
        .ok()
}

async fn write_state(state_dir: &Path, state: &SyncedState) -> std::io::Result<()> {
    let temp = state_dir.join(format!("{STATE_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(state).expect("sync state always serializes");
    tokio::fs::write(&temp, bytes).await?;
    tokio::fs::rename(&temp, state_dir.join(STATE_FILE)).await
}

#[cfg(test)]
mod tests;
