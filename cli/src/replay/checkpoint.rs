//! A replay's durable record in the KV bucket `tidegate_replays`: its
//! selection, target and how far it got, written regularly so that
//! `tidegate replay --resume <id>` continues where it stopped.

use anyhow::Context as _;
use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::select::Selection;

/// The KV bucket holding one record per replay, keyed by replay id.
pub(crate) use schemas::streams::REPLAYS_BUCKET as BUCKET;

/// Where a replay goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Target {
    /// Only this worker runs the copies (`Tidegate-Replay-For`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) worker: Option<String>,
    /// Run even where the idempotency key completed (`Tidegate-Replay-Force`).
    #[serde(default)]
    pub(crate) force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Running,
    Interrupted,
    Failed,
    Done,
}

/// One replay, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) version: u32,
    pub(crate) id: String,
    pub(crate) selection: Selection,
    pub(crate) target: Target,
    /// Messages per second, when limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate: Option<f64>,
    /// The last sequence this replay may read: the stream's last sequence
    /// when it started (or `--to-seq`). Its own copies land after it.
    pub(crate) end_sequence: u64,
    /// Every selected message up to this sequence has been replayed (its
    /// copy has a PubAck); a resumed replay starts after it.
    pub(crate) done_through: u64,
    /// Copies stored so far (across runs).
    pub(crate) replayed: u64,
    /// Copies the broker already had (same `Nats-Msg-Id`: re-sent after an
    /// interruption within the duplicate window).
    pub(crate) duplicates: u64,
    pub(crate) status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) updated_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// The bucket, ensured from its one declaration (`broker::catalog`).
pub(crate) async fn bucket(
    jetstream: &jetstream::Context,
    placement: broker::Placement,
) -> anyhow::Result<kv::Store> {
    broker::ensure::ensure_key_value(jetstream, broker::catalog::replays(), placement)
        .await
        .with_context(|| format!("opening KV bucket {BUCKET}"))
}

/// A stored checkpoint and the revision it was read at; writes check the
/// revision, so two processes cannot drive the same replay.
pub(crate) struct Stored {
    pub(crate) checkpoint: Checkpoint,
    revision: u64,
}

impl Stored {
    /// Stores a new replay; fails if the id exists.
    pub(crate) async fn create(
        store: &kv::Store,
        checkpoint: Checkpoint,
    ) -> anyhow::Result<Stored> {
        let revision = store
            .create(&checkpoint.id, serde_json::to_vec(&checkpoint)?.into())
            .await
            .with_context(|| format!("recording replay {} in {BUCKET}", checkpoint.id))?;
        Ok(Stored {
            checkpoint,
            revision,
        })
    }

    pub(crate) async fn load(store: &kv::Store, id: &str) -> anyhow::Result<Stored> {
        let entry = store
            .entry(id)
            .await
            .with_context(|| format!("reading replay {id} from {BUCKET}"))?
            .with_context(|| format!("no replay {id} in {BUCKET}"))?;
        let checkpoint: Checkpoint = serde_json::from_slice(&entry.value)
            .with_context(|| format!("replay {id} in {BUCKET} is not a replay record"))?;
        Ok(Stored {
            checkpoint,
            revision: entry.revision,
        })
    }

    /// Writes the current state, if nobody else wrote since we last did.
    pub(crate) async fn save(&mut self, store: &kv::Store) -> anyhow::Result<()> {
        self.checkpoint.updated_at = OffsetDateTime::now_utc();
        let value = serde_json::to_vec(&self.checkpoint)?;
        self.revision = store
            .update(&self.checkpoint.id, value.into(), self.revision)
            .await
            .with_context(|| {
                format!(
                    "checkpointing replay {} (is another process running it?)",
                    self.checkpoint.id
                )
            })?;
        Ok(())
    }
}

/// A short id that is a valid KV key and easy to paste.
pub(crate) fn new_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    let time = OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{}",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        &uuid[..6]
    )
}
