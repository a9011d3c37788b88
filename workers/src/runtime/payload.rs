//! Reading a body kept in the object store (`payload_encoding: "object"`):
//! fetch it and check its size and SHA-256 against the envelope's
//! `payload_ref` before a job sees it.

use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use bytes::Bytes;
use schemas::PayloadRef;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt as _;

/// Shortest wait for a fetch: a large body takes a while.
const MIN_TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest buffer reserved up front; bigger objects grow it.
const MAX_PREALLOCATION: u64 = 32 << 20;

/// Why a stored body could not be read back. `Unavailable` and `TimedOut`
/// are worth retrying; the others will not change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    #[error("no payload object {name} in bucket {bucket} (expired or never stored)")]
    Missing { bucket: String, name: String },
    #[error("payload object {name} has {actual} bytes, the envelope says {expected}")]
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("payload object {name} does not match the envelope's sha256")]
    DigestMismatch { name: String },
    #[error("fetching the payload took longer than {0:?}")]
    TimedOut(Duration),
}

impl FetchError {
    /// Worth retrying later (broker trouble), as opposed to a payload that
    /// is gone or corrupt.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Unavailable(_) | FetchError::TimedOut(_))
    }
}

/// Reads the body an `object` envelope points to and checks its size and
/// SHA-256 against the reference. Gives up after 30 seconds, or one second
/// per MiB for larger objects.
pub async fn fetch_payload(
    jetstream: &jetstream::Context,
    reference: &PayloadRef,
) -> Result<Bytes, FetchError> {
    let timeout = MIN_TRANSFER_TIMEOUT.max(Duration::from_secs(reference.size >> 20));
    tokio::time::timeout(timeout, fetch(jetstream, reference))
        .await
        .map_err(|_| FetchError::TimedOut(timeout))?
}

async fn fetch(
    jetstream: &jetstream::Context,
    reference: &PayloadRef,
) -> Result<Bytes, FetchError> {
    let store = jetstream
        .get_object_store(&reference.bucket)
        .await
        .map_err(|error| FetchError::Unavailable(error.to_string()))?;
    let object = store
        .get(&reference.name)
        .await
        .map_err(|error| match error.kind() {
            object_store::GetErrorKind::NotFound => FetchError::Missing {
                bucket: reference.bucket.clone(),
                name: reference.name.clone(),
            },
            _ => FetchError::Unavailable(error.to_string()),
        })?;
    let capacity = reference.size.min(MAX_PREALLOCATION);
    let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    // One byte past the expected size is enough to know it is too long.
    object
        .take(reference.size.saturating_add(1))
        .read_to_end(&mut body)
        .await
        .map_err(|error| FetchError::Unavailable(error.to_string()))?;
    let actual = body.len() as u64;
    if actual != reference.size {
        return Err(FetchError::SizeMismatch {
            name: reference.name.clone(),
            expected: reference.size,
            actual,
        });
    }
    if hex::encode(Sha256::digest(&body)) != reference.sha256.to_ascii_lowercase() {
        return Err(FetchError::DigestMismatch {
            name: reference.name.clone(),
        });
    }
    Ok(Bytes::from(body))
}
