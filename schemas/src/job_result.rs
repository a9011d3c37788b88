//! Job result v1 and dead letter v1: what workers publish about each
//! finished attempt, and what they store when they give up on a delivery.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::connector::ConnectorSync;

/// Published to `tidegate.results.<worker>.<delivery token>` after every
/// finished attempt; the last message on that subject is the delivery's
/// current status for that worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub version: u32,
    pub delivery_id: String,
    pub worker: String,
    pub status: JobStatus,
    /// The idempotency key the attempt ran under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Which attempt this was (1 for the first delivery).
    pub attempts: u64,
    /// Named counts, e.g. `created`, `updated`, `deleted`, `skipped`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    /// Items that failed inside an otherwise finished job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ItemFailure>,
    /// For `failed` and `retrying`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Job-specific detail (e.g. the sync target and head SHA).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
    /// For connector syncs: which sync this is, on every result of it
    /// (completed, partial, retrying, failed, skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorSync>,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub completed_at: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Done, every item succeeded.
    Completed,
    /// Done, some items failed (see `failures`).
    Partial,
    /// Given up: dead-lettered.
    Failed,
    /// Failed this time; will be retried.
    Retrying,
    /// Not run: the idempotency key had already completed, or the job does
    /// not apply to this delivery.
    Skipped,
}

/// One item that failed inside a job (e.g. a file a sync could not write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    pub item: String,
    pub error: String,
}

/// Stored on `tidegate.dlq.<worker>` when a worker gives up on a delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub version: u32,
    pub worker: String,
    pub delivery_id: String,
    /// The subject the delivery was consumed from (redrive publishes there).
    pub subject: String,
    /// Its sequence in the deliveries stream.
    pub stream_sequence: u64,
    pub attempts: u64,
    pub error: String,
    /// RFC 3339 UTC.
    pub failed_at: String,
    /// For connector syncs: which sync was given up on (as in its results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorSync>,
    /// The delivery's envelope, verbatim.
    pub envelope: Box<RawValue>,
}
