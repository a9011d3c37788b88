//! Idempotency records: a completed key is skipped — beyond the stream's
//! duplicate window and across replays — for at least the worker's
//! `idempotency.ttl`. Where a key's completion is recorded depends on the
//! key ([`Record`]):
//! - a key that is the delivery id (the forwarder, inbox, exec, workflow):
//!   the delivery's last job result says it (`broker::results::COMPLETED`,
//!   or `completed`/`partial` from earlier versions), so a completion
//!   stores one message, not two. The results stream keeps messages for
//!   the larger of `results.max_age` and `idempotency.ttl` (a longer
//!   `Nats-TTL` would not outlive the stream's `max_age`), and every later
//!   result of a completed delivery carries the header forward;
//! - any other key (github-sync's head SHA): a record in the KV bucket
//!   `tidegate_idempotency`, with the worker's TTL on the key itself
//!   (workers with different TTLs share the bucket).
//!
//! Lookups of both kinds are batched across jobs (`lookups.rs`); records
//! are written here and in `outcome.rs`.
//!
//! The windows, in the order a completion goes: the job's effect; the
//! record — the `completed` result (delivery-id keys) or the result sent,
//! then the KV key (other keys) — with its PubAck awaited; a plain ack.
//! - A crash before the record's PubAck lets the delivery run again, so
//!   jobs make their effect idempotent too (the forwarder sends a stable
//!   `webhook-id`; a sync of the same head SHA writes the same files). The
//!   `completed` result may then be stored twice.
//! - A crash after the record, or a lost ack: the redelivery (after
//!   `ack_wait`) finds the record and is skipped, reported `skipped` (for
//!   a delivery-id key that skipped result carries the completion
//!   forward); the job does not run again. This is why a recorded
//!   completion is acked without waiting for the server's confirmation.
//! - A record that fails (no PubAck in time) is logged, and the ack is
//!   confirmed instead.
//! - A crash between a later result of a completed delivery (skipped,
//!   forced replay, dead letter) and its PubAck changes nothing: the
//!   header is carried by every result stored after the completion, so
//!   whichever is last still records it.

use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::warn;

/// Where a key's completion is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// In the delivery's last job result: the key is the delivery id.
    Result,
    /// In the KV bucket, under [`bucket_key`].
    Bucket,
}

impl Record {
    /// Where `key` of the delivery `delivery_id` is recorded.
    pub fn of(key: &str, delivery_id: &str) -> Record {
        if key == delivery_id {
            Record::Result
        } else {
            Record::Bucket
        }
    }
}

/// What is stored under a completed key.
#[derive(Debug, Serialize, Deserialize)]
pub struct Completion<'a> {
    pub key: &'a str,
    pub worker: &'a str,
    pub delivery_id: &'a str,
    pub completed_at: &'a str,
}

/// The bucket key for a worker's idempotency key: KV keys allow few
/// characters, so the key is hashed (the value keeps it readable).
pub fn bucket_key(worker: &str, key: &str) -> String {
    format!("{worker}.{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// Records a completed key for `ttl`; whether the key is recorded now (a
/// key recorded already — a forced replay ran it again — keeps its first
/// record and counts). A failure is logged, not fatal: the job's effect
/// already happened, and the caller confirms its ack instead.
pub async fn record(store: &kv::Store, completion: &Completion<'_>, ttl: Duration) -> bool {
    let value = serde_json::to_vec(completion).expect("a completion always serializes");
    let key = bucket_key(completion.worker, completion.key);
    // The server counts TTLs in whole seconds, at least one.
    let ttl = Duration::from_secs(ttl.as_secs().max(1));
    match store.create_with_ttl(&key, value.into(), ttl).await {
        Ok(_) => true,
        Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => true,
        Err(error) => {
            warn!(error = %error, "recording the idempotency key failed; a replay would run the job again");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_id_keys_are_recorded_in_results() {
        assert_eq!(Record::of("d-1", "d-1"), Record::Result);
        assert_eq!(Record::of("github-sync:t/r@sha", "d-1"), Record::Bucket);
    }

    #[test]
    fn bucket_keys_are_valid_kv_keys_for_any_key() {
        for key in ["1_d1", "target:sha/..*>", "", "é ü"] {
            let bucket_key = bucket_key("forward", key);
            assert!(
                bucket_key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b)),
                "{bucket_key}"
            );
        }
        assert_ne!(bucket_key("a", "k"), bucket_key("b", "k"));
    }
}
