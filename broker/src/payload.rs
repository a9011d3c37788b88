//! Bodies too large for one NATS message live in the object store bucket
//! `TIDEGATE_PAYLOADS`; the envelope carries a `PayloadRef`. The ingress
//! stores them (before publishing the envelope), workers fetch them and
//! check size and SHA-256 before a job sees them.

use std::fmt::Write as _;
use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use base64::Engine as _;
use bytes::Bytes;
use schemas::PayloadRef;
use schemas::streams::PAYLOADS_BUCKET;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt as _;

/// Shortest wait for an upload or a fetch: a large body takes longer than
/// a PubAck.
pub const MIN_TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest buffer reserved up front for a fetch; bigger objects grow it.
const MAX_PREALLOCATION: u64 = 32 << 20;

/// The reference an envelope carries for `body`, named after the route and
/// the delivery id (see [`object_name`]).
pub fn payload_ref(route: &str, delivery_id: &str, body: &[u8]) -> PayloadRef {
    let sha256 = hex::encode(Sha256::digest(body));
    PayloadRef {
        bucket: PAYLOADS_BUCKET.to_owned(),
        name: object_name(route, delivery_id, &sha256),
        size: body.len() as u64,
        sha256,
    }
}

/// `<route>.<delivery id>.<first 16 hex digits of the SHA-256>`, with every
/// byte outside `A-Z a-z 0-9 _ - .` written `=XX`. Route names never contain
/// `.` and `=` is itself escaped, so distinct deliveries never share a name.
/// The digest suffix means a redelivery with identical bytes finds its object
/// already stored, while an id reused for different bytes cannot replace the
/// object an earlier envelope points to.
pub fn object_name(route: &str, delivery_id: &str, sha256_hex: &str) -> String {
    let mut name = String::with_capacity(route.len() + delivery_id.len() + 18);
    escape_into(&mut name, route);
    name.push('.');
    escape_into(&mut name, delivery_id);
    name.push('.');
    name.push_str(sha256_hex.get(..16).unwrap_or(sha256_hex));
    name
}

fn escape_into(name: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"_-.".contains(&byte) {
            name.push(char::from(byte));
        } else {
            write!(name, "={byte:02X}").expect("writing to a String cannot fail");
        }
    }
}

/// What a store did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Uploaded,
    /// An identical object was already there (a redelivery).
    Present,
}

impl StoreOutcome {
    pub fn label(self) -> &'static str {
        match self {
            StoreOutcome::Uploaded => "uploaded",
            StoreOutcome::Present => "present",
        }
    }
}

/// Why a body could not be stored or read back. `Unavailable` and
/// `TimedOut` are worth retrying; the others will not change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload bucket {0} does not exist")]
    BucketMissing(String),
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
    #[error("the payload transfer took longer than {0:?}")]
    TimedOut(Duration),
}

impl PayloadError {
    /// Worth retrying later (broker trouble), as opposed to a payload that
    /// is gone or corrupt.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PayloadError::Unavailable(_)
                | PayloadError::TimedOut(_)
                | PayloadError::BucketMissing(_)
        )
    }
}

/// Stores `body` under `reference` unless an identical object is already
/// there, within `max(timeout, 30s)`. Only after this returns `Ok` may an
/// envelope pointing at it be published.
pub async fn store(
    store: &object_store::ObjectStore,
    reference: &PayloadRef,
    body: &[u8],
    timeout: Duration,
) -> Result<StoreOutcome, PayloadError> {
    let timeout = timeout.max(MIN_TRANSFER_TIMEOUT);
    tokio::time::timeout(timeout, put(store, reference, body))
        .await
        .unwrap_or(Err(PayloadError::TimedOut(timeout)))
}

async fn put(
    store: &object_store::ObjectStore,
    reference: &PayloadRef,
    body: &[u8],
) -> Result<StoreOutcome, PayloadError> {
    match store.info(&reference.name).await {
        Ok(existing) if is_same(&existing, reference) => return Ok(StoreOutcome::Present),
        Ok(_) => {}
        Err(error) if error.kind() == object_store::InfoErrorKind::NotFound => {}
        Err(error) => return Err(PayloadError::Unavailable(error.to_string())),
    }
    let mut reader = body;
    store
        .put(reference.name.as_str(), &mut reader)
        .await
        .map_err(|error| PayloadError::Unavailable(error.to_string()))?;
    Ok(StoreOutcome::Uploaded)
}

async fn open(
    jetstream: &jetstream::Context,
    bucket: &str,
) -> Result<object_store::ObjectStore, PayloadError> {
    jetstream.get_object_store(bucket).await.map_err(|error| {
        let missing = std::error::Error::source(&error)
            .and_then(|source| source.downcast_ref::<jetstream::context::GetStreamError>())
            .is_some_and(crate::is_stream_not_found);
        if missing {
            PayloadError::BucketMissing(bucket.to_owned())
        } else {
            PayloadError::Unavailable(error.to_string())
        }
    })
}

/// An existing, complete object with the reference's size and digest (the
/// object store writes an object's info only after all its chunks).
fn is_same(existing: &object_store::ObjectInfo, reference: &PayloadRef) -> bool {
    let Ok(digest) = hex::decode(&reference.sha256) else {
        return false;
    };
    let expected = format!(
        "SHA-256={}",
        base64::engine::general_purpose::URL_SAFE.encode(digest)
    );
    !existing.deleted
        && existing.size as u64 == reference.size
        && existing.digest.as_deref() == Some(expected.as_str())
}

/// Reads the body a reference points to and checks its size and SHA-256.
/// Gives up after 30 seconds, or one second per MiB for larger objects.
pub async fn fetch(
    jetstream: &jetstream::Context,
    reference: &PayloadRef,
) -> Result<Bytes, PayloadError> {
    let timeout = MIN_TRANSFER_TIMEOUT.max(Duration::from_secs(reference.size >> 20));
    tokio::time::timeout(timeout, read(jetstream, reference))
        .await
        .map_err(|_| PayloadError::TimedOut(timeout))?
}

async fn read(
    jetstream: &jetstream::Context,
    reference: &PayloadRef,
) -> Result<Bytes, PayloadError> {
    let store = open(jetstream, &reference.bucket).await?;
    let object = store
        .get(&reference.name)
        .await
        .map_err(|error| match error.kind() {
            object_store::GetErrorKind::NotFound => PayloadError::Missing {
                bucket: reference.bucket.clone(),
                name: reference.name.clone(),
            },
            _ => PayloadError::Unavailable(error.to_string()),
        })?;
    let capacity = reference.size.min(MAX_PREALLOCATION);
    let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    // One byte past the expected size is enough to know it is too long.
    object
        .take(reference.size.saturating_add(1))
        .read_to_end(&mut body)
        .await
        .map_err(|error| PayloadError::Unavailable(error.to_string()))?;
    let actual = body.len() as u64;
    if actual != reference.size {
        return Err(PayloadError::SizeMismatch {
            name: reference.name.clone(),
            expected: reference.size,
            actual,
        });
    }
    if hex::encode(Sha256::digest(&body)) != reference.sha256.to_ascii_lowercase() {
        return Err(PayloadError::DigestMismatch {
            name: reference.name.clone(),
        });
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_safe_and_never_collide() {
        let digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let check = |route: &str, id: &str, expected: &str| {
            assert_eq!(object_name(route, id, digest), expected, "{route} {id}");
        };
        check(
            "github",
            "12_72d3-cc78",
            "github.12_72d3-cc78.0123456789abcdef",
        );
        check("stripe", "evt.1", "stripe.evt.1.0123456789abcdef");
        check("a", "x:y@z+w", "a.x=3Ay=40z=2Bw.0123456789abcdef");
        // `=` is escaped too, so an escaped id cannot pose as another id.
        check("a", "x=3Ay", "a.x=3D3Ay.0123456789abcdef");
        check("r~1", "id", "r=7E1.id.0123456789abcdef");
    }

    #[test]
    fn a_reference_describes_the_exact_body() {
        let reference = payload_ref("github", "1_d1", b"hello");
        assert_eq!(reference.bucket, PAYLOADS_BUCKET);
        assert_eq!(reference.size, 5);
        assert_eq!(
            reference.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(reference.name, "github.1_d1.2cf24dba5fb0a30e");
    }
}
