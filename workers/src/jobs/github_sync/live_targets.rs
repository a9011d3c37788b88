//! The targets a push is matched against: the TOML file's, then the live
//! ones from the KV bucket `tidegate_sync_targets` (in key order), which
//! are watched and applied without a restart. A live record that breaks
//! the rules (`SyncTarget::problems`, this worker's `state_dir`, or an id
//! or folder another target has) is logged and left out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::{StreamExt as _, TryStreamExt as _};
use schemas::SyncTarget;
use tracing::{Instrument as _, info, info_span, warn};

use super::targets::{Target, target_for};

/// The current set of targets, shared by every task of the job.
#[derive(Debug)]
pub(super) struct Targets {
    configured: Vec<Arc<Target>>,
    state_dir: PathBuf,
    current: RwLock<Arc<Vec<Arc<Target>>>>,
}

impl Targets {
    /// The TOML file's targets, until live ones are loaded.
    pub(super) fn new(configured: Vec<Arc<Target>>, state_dir: PathBuf) -> Targets {
        Targets {
            current: RwLock::new(Arc::new(configured.clone())),
            configured,
            state_dir,
        }
    }

    /// The first target tracking `full_name` at `branch`.
    pub(super) fn target_for(&self, full_name: &str, branch: &str) -> Option<Arc<Target>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        target_for(&current, full_name, branch).cloned()
    }

    /// Rebuilds the set from the live records (key → JSON value).
    fn apply(&self, records: &BTreeMap<String, bytes::Bytes>) {
        let mut targets = self.configured.clone();
        for (key, value) in records {
            let label = format!("{}[{key}]", schemas::streams::SYNC_TARGETS_BUCKET);
            let definition: SyncTarget = match serde_json::from_slice(value) {
                Ok(definition) => definition,
                Err(error) => {
                    warn!(target_key = %key, error = %error, "live target is not a sync target v1; ignoring it");
                    continue;
                }
            };
            let mut problems = Vec::new();
            if definition.id != *key {
                problems.push(format!("{label}.id: `{}` is not its key", definition.id));
            }
            problems.extend(
                targets
                    .iter()
                    .filter_map(|other| definition.conflict(&other.definition))
                    .map(|why| format!("{label}: {why}")),
            );
            match Target::compile(&label, definition, &self.state_dir) {
                Ok(target) if problems.is_empty() => targets.push(Arc::new(target)),
                Ok(_) => {}
                Err(found) => problems.extend(found),
            }
            if !problems.is_empty() {
                warn!(target_key = %key, problems = %problems.join("; "), "live target is invalid; ignoring it");
            }
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(targets);
    }
}

/// Loads the live targets, then keeps applying changes in a background
/// task until the process ends (re-watching after errors).
pub(super) async fn watch(store: kv::Store, targets: Arc<Targets>) -> anyhow::Result<()> {
    let (records, watch) = load(&store).await?;
    targets.apply(&records);
    info!(live = records.len(), "sync targets loaded");
    let span = info_span!("sync_targets");
    tokio::spawn(
        async move {
            let mut state = Some((records, watch));
            loop {
                let (mut records, mut watch) = match state.take() {
                    Some(state) => state,
                    None => match load(&store).await {
                        Ok(state) => {
                            targets.apply(&state.0);
                            state
                        }
                        Err(error) => {
                            warn!(
                                error = format!("{error:#}"),
                                "reloading sync targets failed; retrying"
                            );
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    },
                };
                while let Some(entry) = watch.next().await {
                    let entry = match entry {
                        Ok(entry) => entry,
                        Err(error) => {
                            warn!(error = %error, "watching sync targets failed; reloading");
                            break;
                        }
                    };
                    match entry.operation {
                        kv::Operation::Put => {
                            info!(target_key = %entry.key, "sync target added or changed");
                            records.insert(entry.key, entry.value);
                        }
                        kv::Operation::Delete | kv::Operation::Purge => {
                            info!(target_key = %entry.key, "sync target removed");
                            records.remove(&entry.key);
                        }
                    }
                    targets.apply(&records);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        .instrument(span),
    );
    Ok(())
}

/// Starts watching for changes, then reads every current record: a change
/// made while reading arrives on the watch afterwards, so nothing is missed.
async fn load(store: &kv::Store) -> anyhow::Result<(BTreeMap<String, bytes::Bytes>, kv::Watch)> {
    let watch = store.watch_all().await?;
    let keys: Vec<String> = store.keys().await?.try_collect().await?;
    let mut records = BTreeMap::new();
    for key in keys {
        if let Some(value) = store.get(key.as_str()).await? {
            records.insert(key, value);
        }
    }
    Ok((records, watch))
}
