//! One writer per target folder across replicas: a lock per folder in the
//! KV bucket `tidegate_sync_locks`, taken with a per-key TTL (the lease),
//! renewed while the sync runs and deleted after. A holder that crashes
//! stops renewing, so its lock expires after one TTL. Every write names
//! the revision it expects, so two syncs never both hold a folder, and a
//! sync that loses its lease (it stalled past the TTL) stops writing.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, kv};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use super::LockConfig;
use super::targets::duration;
use crate::runtime::report::rfc3339;

const DEFAULT_TTL: Duration = Duration::from_secs(30);
const DEFAULT_WAIT: Duration = Duration::from_secs(120);
/// How often a waiting sync looks at the lock again.
const POLL: Duration = Duration::from_millis(250);

/// `[github_sync.lock]`, parsed.
#[derive(Debug, Clone, Copy)]
pub(super) struct LockSettings {
    pub(super) ttl: Duration,
    pub(super) wait: Duration,
}

impl LockSettings {
    pub(super) fn parse(config: &LockConfig, problems: &mut Vec<String>) -> LockSettings {
        let ttl = duration(
            problems,
            "github_sync.lock.ttl",
            config.ttl.as_deref(),
            DEFAULT_TTL,
        );
        if ttl < Duration::from_secs(2) {
            problems.push(
                "github_sync.lock.ttl: must be at least 2s (the server counts whole seconds)"
                    .into(),
            );
        }
        let wait = duration(
            problems,
            "github_sync.lock.wait",
            config.wait.as_deref(),
            DEFAULT_WAIT,
        );
        LockSettings { ttl, wait }
    }
}

/// What a lock says about its holder (the KV value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LockRecord {
    /// `<process instance>.<pid>`.
    pub(super) holder: String,
    pub(super) folder: String,
    pub(super) target: String,
    pub(super) delivery_id: String,
    pub(super) head_sha: String,
    pub(super) acquired_at: String,
}

/// Why a folder could not be had, or was lost.
#[derive(Debug, thiserror::Error)]
pub(super) enum LockError {
    #[error("folder {folder} is being synced by {} (target {}, delivery {}, since {}); waited {waited:?}", .holder.holder, .holder.target, .holder.delivery_id, .holder.acquired_at)]
    Busy {
        folder: String,
        holder: Box<LockRecord>,
        waited: Duration,
    },
    #[error("folder {folder}: lost its lock mid-sync: {why}")]
    Lost { folder: String, why: String },
    #[error("folder lock of {folder}: {why}")]
    Store { folder: String, why: String },
}

/// A held folder lock.
#[derive(Debug)]
pub(super) struct Lease {
    key: String,
    revision: u64,
    pub(super) record: LockRecord,
    /// When the lease was last written; it holds until this plus the TTL.
    written: Instant,
}

/// The lock bucket of one worker process.
pub(super) struct Locks {
    jetstream: jetstream::Context,
    store: kv::Store,
    settings: LockSettings,
    /// Bound on every lock write.
    timeout: Duration,
}

impl Locks {
    pub(super) fn new(
        jetstream: jetstream::Context,
        store: kv::Store,
        settings: LockSettings,
    ) -> Locks {
        // A write that takes a third of the lease is as good as failed.
        let timeout = (settings.ttl / 3).max(Duration::from_secs(1));
        Locks {
            jetstream,
            store,
            settings,
            timeout,
        }
    }

    /// Takes the lock of `record.folder`, waiting at most the configured
    /// `wait` while another sync holds it.
    pub(super) async fn acquire(&self, mut record: LockRecord) -> Result<Lease, LockError> {
        let key = key_for(Path::new(&record.folder));
        let folder = record.folder.clone();
        let started = Instant::now();
        let store_error = |why: String| LockError::Store {
            folder: folder.clone(),
            why,
        };
        loop {
            record.acquired_at = rfc3339(SystemTime::now());
            let value = serde_json::to_vec(&record).expect("a lock record always serializes");
            let holder = match self.write(&key, &value, 0).await {
                Ok(revision) => return Ok(self.lease(key, revision, record)),
                Err(Write::Conflict) => match self.store.entry(key.as_str()).await {
                    Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                        serde_json::from_slice(&entry.value)
                            .unwrap_or_else(|_| unreadable(&record.folder))
                    }
                    // Released or expired: take it over at that revision.
                    Ok(Some(entry)) => match self.write(&key, &value, entry.revision).await {
                        Ok(revision) => return Ok(self.lease(key, revision, record)),
                        Err(Write::Conflict) => continue,
                        Err(Write::Failed(why)) => return Err(store_error(why)),
                    },
                    // Expired and removed between the two reads.
                    Ok(None) => continue,
                    Err(error) => return Err(store_error(format!("reading: {error}"))),
                },
                Err(Write::Failed(why)) => return Err(store_error(why)),
            };
            let waited = started.elapsed();
            if waited >= self.settings.wait {
                return Err(LockError::Busy {
                    folder: record.folder,
                    holder: Box::new(holder),
                    waited,
                });
            }
            debug!(folder = %record.folder, holder = %holder.holder, "folder locked; waiting");
            tokio::time::sleep(POLL).await;
        }
    }

    fn lease(&self, key: String, revision: u64, record: LockRecord) -> Lease {
        debug!(folder = %record.folder, revision, "folder lock taken");
        Lease {
            key,
            revision,
            record,
            written: Instant::now(),
        }
    }

    /// Runs `work` while renewing `lease` every third of the TTL. If the
    /// lease is lost (someone else holds the folder, or no renewal got
    /// through within the TTL), `work` is dropped — it stops at its next
    /// await — and the loss is returned.
    pub(super) async fn hold<F: Future>(
        &self,
        lease: &mut Lease,
        work: F,
    ) -> Result<F::Output, LockError> {
        tokio::pin!(work);
        let interval = self.settings.ttl / 3;
        loop {
            tokio::select! {
                output = &mut work => return Ok(output),
                () = tokio::time::sleep(interval) => {
                    if let Err(why) = self.renew(lease).await {
                        return Err(LockError::Lost { folder: lease.record.folder.clone(), why });
                    }
                }
            }
        }
    }

    async fn renew(&self, lease: &mut Lease) -> Result<(), String> {
        let value = serde_json::to_vec(&lease.record).expect("a lock record always serializes");
        match self.write(&lease.key, &value, lease.revision).await {
            Ok(revision) => {
                lease.revision = revision;
                lease.written = Instant::now();
                Ok(())
            }
            Err(Write::Conflict) => {
                Err("another sync took the lock (the lease had expired)".into())
            }
            Err(Write::Failed(why))
                if lease.written.elapsed() + self.timeout < self.settings.ttl =>
            {
                warn!(folder = %lease.record.folder, error = %why, "renewing the folder lock failed; trying again");
                Ok(())
            }
            Err(Write::Failed(why)) => {
                Err(format!("no renewal got through within the lease: {why}"))
            }
        }
    }

    /// Deletes the lock if it is still ours (a lease that expired may
    /// already be someone else's).
    pub(super) async fn release(&self, lease: Lease) {
        let deleted = tokio::time::timeout(
            self.timeout,
            self.store
                .delete_expect_revision(lease.key.as_str(), Some(lease.revision)),
        )
        .await;
        match deleted {
            Ok(Ok(())) => debug!(folder = %lease.record.folder, "folder lock released"),
            Ok(Err(error)) => {
                warn!(folder = %lease.record.folder, error = %error, "releasing the folder lock failed; it expires with its lease")
            }
            Err(_) => {
                warn!(folder = %lease.record.folder, "releasing the folder lock timed out; it expires with its lease")
            }
        }
    }

    /// Writes the lock if its last revision is `expected` (0: absent),
    /// with the lease as the message's TTL. (async-nats writes a TTL only
    /// on its first try of `create_with_ttl`, not over a deleted key.)
    async fn write(&self, key: &str, value: &[u8], expected: u64) -> Result<u64, Write> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        headers.insert("Nats-TTL", self.settings.ttl.as_secs().to_string().as_str());
        let subject = format!("$KV.{}.{key}", schemas::streams::SYNC_LOCKS_BUCKET);
        let publish = async {
            let ack = self
                .jetstream
                .publish_with_headers(subject, headers, value.to_vec().into())
                .await?;
            ack.await
        };
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(Ok(ack)) => Ok(ack.sequence),
            Ok(Err(error)) if error.kind() == PublishErrorKind::WrongLastSequence => {
                Err(Write::Conflict)
            }
            Ok(Err(error)) => Err(Write::Failed(error.to_string())),
            Err(_) => Err(Write::Failed(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

enum Write {
    /// The key's last revision is not the one expected.
    Conflict,
    Failed(String),
}

/// The lock key of a folder: KV keys allow few characters, so the path is
/// hashed (the value names it).
pub(super) fn key_for(folder: &Path) -> String {
    format!(
        "folder.{}",
        hex::encode(Sha256::digest(folder.as_os_str().as_encoded_bytes()))
    )
}

fn unreadable(folder: &str) -> LockRecord {
    LockRecord {
        holder: "unknown (unreadable lock record)".into(),
        folder: folder.to_owned(),
        target: "?".into(),
        delivery_id: "?".into(),
        head_sha: "?".into(),
        acquired_at: "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_valid_kv_keys_per_folder() {
        let a = key_for(Path::new("/srv/plugins/octocat/a b"));
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b)),
            "{a}"
        );
        assert_ne!(a, key_for(Path::new("/srv/plugins/octocat/a")));
        assert_eq!(a, key_for(Path::new("/srv/plugins/octocat/a b")));
    }

    #[test]
    fn lock_settings_defaults_and_bounds() {
        let mut problems = Vec::new();
        let settings = LockSettings::parse(&LockConfig::default(), &mut problems);
        assert_eq!((settings.ttl, settings.wait), (DEFAULT_TTL, DEFAULT_WAIT));
        LockSettings::parse(
            &LockConfig {
                ttl: Some("1s".into()),
                wait: None,
            },
            &mut problems,
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("github_sync.lock.ttl"));
    }
}
