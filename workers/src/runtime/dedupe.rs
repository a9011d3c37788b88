//! Idempotency keys in the JetStream KV bucket `tidegate_idempotency`: a key
//! is recorded once its job completed, with the worker's TTL on the key
//! itself (workers with different TTLs share the bucket), and a recorded
//! key is skipped — beyond the stream's duplicate window and across
//! replays.
//!
//! The window: a job's effect happens before its key is recorded. A crash
//! between the two lets the delivery run again, so jobs make their effect
//! idempotent too (the forwarder sends a stable `webhook-id`; a sync of the
//! same head SHA writes the same files).

use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::warn;

/// What is stored under a completed key.
#[derive(Debug, Serialize, Deserialize)]
pub struct Completion {
    pub key: String,
    pub worker: String,
    pub delivery_id: String,
    pub completed_at: String,
}

/// The bucket key for a worker's idempotency key: KV keys allow few
/// characters, so the key is hashed (the value keeps it readable).
pub fn bucket_key(worker: &str, key: &str) -> String {
    format!("{worker}.{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// Whether `key` already completed for `worker`. A lookup that fails counts
/// as not completed: running again is safer than losing work.
pub async fn is_completed(store: &kv::Store, worker: &str, key: &str) -> bool {
    match store.get(bucket_key(worker, key)).await {
        Ok(entry) => entry.is_some(),
        Err(error) => {
            warn!(error = %error, "idempotency lookup failed; running the job");
            false
        }
    }
}

/// Records a completed key for `ttl`; a failure is logged, not fatal (the
/// job's effect already happened). A key recorded already (a forced
/// replay ran it again) keeps its first record.
pub async fn record(store: &kv::Store, completion: &Completion, ttl: Duration) {
    let value = serde_json::to_vec(completion).expect("a completion always serializes");
    let key = bucket_key(&completion.worker, &completion.key);
    // The server counts TTLs in whole seconds, at least one.
    let ttl = Duration::from_secs(ttl.as_secs().max(1));
    match store.create_with_ttl(&key, value.into(), ttl).await {
        Ok(_) => {}
        Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {}
        Err(error) => {
            warn!(error = %error, "recording the idempotency key failed; a replay would run the job again");
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
