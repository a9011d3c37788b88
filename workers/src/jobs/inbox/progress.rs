//! How far the inbox got with a stored delivery, kept in the KV bucket
//! `tidegate_inbox` (key: the stream sequence) so that a redelivery — after
//! a crash, on any replica — resumes instead of starting over: a file
//! written is never written again (the agent may have archived it), and a
//! notification is not skipped because the file exists.

use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

/// Longest wait for one bucket operation.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A delivery's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Step {
    /// The file is in the inbox (or was, before the agent took it).
    Written,
    /// The notify command succeeded (or there is none).
    Notified,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    step: Step,
    file: String,
    at: String,
}

/// The record's key: the stream sequence identifies the stored delivery
/// (its redeliveries share it; an operator's forced replay is a new one).
fn key(stream_sequence: u64) -> String {
    stream_sequence.to_string()
}

/// The step recorded for this delivery, if any.
pub(super) async fn load(bucket: &kv::Store, stream_sequence: u64) -> Result<Option<Step>, String> {
    let entry = tokio::time::timeout(TIMEOUT, bucket.get(key(stream_sequence)))
        .await
        .map_err(|_| "reading inbox progress timed out".to_owned())?
        .map_err(|error| format!("reading inbox progress: {error}"))?;
    Ok(entry.and_then(|bytes| {
        serde_json::from_slice::<Record>(&bytes)
            .ok()
            .map(|record| record.step)
    }))
}

/// Records that the delivery reached `step`.
pub(super) async fn save(
    bucket: &kv::Store,
    stream_sequence: u64,
    step: Step,
    file: &str,
) -> Result<(), String> {
    let record = Record {
        step,
        file: file.to_owned(),
        at: crate::runtime::report::rfc3339(std::time::SystemTime::now()),
    };
    let bytes = serde_json::to_vec(&record).expect("a record always serializes");
    tokio::time::timeout(TIMEOUT, bucket.put(key(stream_sequence), bytes.into()))
        .await
        .map_err(|_| "recording inbox progress timed out".to_owned())?
        .map(drop)
        .map_err(|error| format!("recording inbox progress: {error}"))
}
