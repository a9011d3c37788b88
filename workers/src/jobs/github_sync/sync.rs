//! One sync of a pushed commit into its target folder: the folder's lock
//! is taken (waiting a bounded time), the commit fetched into the
//! repository's mirror and its tree materialized while the lease is
//! renewed, then the lock released. The report names the lock holder and
//! when it held the folder.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::git::GitAuth;
use super::lease::LockRecord;
use super::materialize;
use super::push::Push;
use super::targets::Target;
use super::{Buckets, GithubSync};
use crate::runtime::report::rfc3339;
use crate::{Delivery, Outcome, Report};

/// The last commit synced into a folder, kept under `state_dir`.
#[derive(Debug, Serialize, Deserialize)]
struct SyncedState {
    head_sha: String,
    git_ref: String,
    delivery_id: String,
    synced_at: String,
}

const STATE_FILE: &str = "last-synced.json";

/// Syncs `push` into `target`'s folder under the folder's lock.
pub(super) async fn locked(
    job: &GithubSync,
    buckets: &Buckets,
    delivery: &Delivery,
    target: &Target,
    push: &Push,
    auth: Option<&GitAuth>,
) -> Outcome {
    let folder = target.folder(&push.owner, &push.name);
    let record = LockRecord {
        holder: job.holder.clone(),
        folder: folder.display().to_string(),
        target: target.id.clone(),
        delivery_id: delivery.envelope.id.clone(),
        head_sha: push.head_sha.clone(),
        acquired_at: String::new(),
    };
    let mut lease = match buckets.locks.acquire(record).await {
        Ok(lease) => lease,
        Err(error) => return Outcome::retry(error.to_string()),
    };
    let written = buckets
        .locks
        .hold(&mut lease, job.write(delivery, target, push, auth, &folder))
        .await;
    let released_at = rfc3339(SystemTime::now());
    let holder = lease.record.holder.clone();
    let acquired_at = lease.record.acquired_at.clone();
    buckets.locks.release(lease).await;
    match written {
        Ok(Outcome::Done(report)) => Outcome::Done(
            report
                .detail("lock_holder", holder)
                .detail("lock_acquired_at", acquired_at)
                .detail("lock_released_at", released_at),
        ),
        Ok(outcome) => outcome,
        // Lost mid-sync: what was written stays; the next attempt (or the
        // new holder) makes the folder whole.
        Err(error) => Outcome::retry(error.to_string()),
    }
}

impl GithubSync {
    /// Fetches the pushed commit into the repository's mirror and
    /// materializes it into `folder`. The caller holds the folder.
    pub(super) async fn write(
        &self,
        delivery: &Delivery,
        target: &Target,
        push: &Push,
        auth: Option<&GitAuth>,
        folder: &Path,
    ) -> Outcome {
        let state_dir = self.state_dir(target, push);
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
        if let Err(error) = self
            .git
            .fetch(&mirror, clone_url, &push.git_ref, auth)
            .await
        {
            if error.is_missing_remote_ref() {
                return Outcome::Skip(format!(
                    "{} {} no longer exists",
                    push.full_name, push.git_ref
                ));
            }
            if auth.is_some()
                && error.is_auth_failure()
                && let (Some(app), Some(installation)) = (&self.app, push.installation_id)
            {
                // Revoked, or the installation lost the repository: the
                // next attempt mints a new token and asks again.
                app.forget(installation);
                return Outcome::retry(format!(
                    "fetching {} {} with the token of installation {installation}: {error}",
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
        let changes = match materialize::materialize(&self.git, &mirror, sha, folder).await {
            Ok(changes) => changes,
            Err(error) => return Outcome::retry(error.to_string()),
        };
        let synced = SyncedState {
            head_sha: sha.to_owned(),
            git_ref: push.git_ref.clone(),
            delivery_id: delivery.envelope.id.clone(),
            synced_at: rfc3339(SystemTime::now()),
        };
        if let Err(error) = write_state(&state_dir, &synced).await {
            warn!(error = %error, target_id = %target.id, "recording the synced commit failed; a repeat of this head would sync again");
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
        debug!(target_id = %target.id, head_sha = %sha, "synced");
        Outcome::Done(report)
    }

    /// The repository's mirror and last-synced record for one target.
    fn state_dir(&self, target: &Target, push: &Push) -> PathBuf {
        self.settings
            .state_dir
            .join("targets")
            .join(&target.id)
            .join(push.repository_key())
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
