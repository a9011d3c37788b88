//! Idempotency keys in the JetStream KV bucket `tidegate_idempotency`: a key
//! is recorded once its job completed, with the worker's TTL on the key
//! itself (workers with different TTLs share the bucket), and a recorded
//! key is skipped — beyond the stream's duplicate window and across
//! replays.
//!
//! Lookups are batched across jobs (`lookups.rs`); records are written
//! here.
//!
//! The windows, in the order a completion goes: the job's effect; its
//! result sent; the key recorded (PubAck awaited); a plain ack.
//! - A crash before the key is recorded lets the delivery run again, so
//!   jobs make their effect idempotent too (the forwarder sends a stable
//!   `webhook-id`; a sync of the same head SHA writes the same files). The
//!   `completed` result may then be stored twice.
//! - A crash after the record, or a lost ack: the redelivery (after
//!   `ack_wait`) finds the key and is skipped, reported `skipped`; the job
//!   does not run again. This is why a recorded completion is acked
//!   without waiting for the server's confirmation.
//! - A record that fails is logged, and the ack is confirmed instead.

use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::warn;

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
