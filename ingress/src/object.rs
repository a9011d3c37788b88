//! Bodies too large for one NATS message: `deliver.rs` uploads them to the
//! object store bucket `TIDEGATE_PAYLOADS` before publishing an envelope
//! that carries a `PayloadRef`; workers read them back with
//! `workers::runtime::payload::fetch_payload`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, object_store, stream};
use base64::Engine as _;
use schemas::PayloadRef;
use schemas::streams::{PAYLOADS_BUCKET, PAYLOADS_STREAM};
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use crate::broker::{Broker, is_not_found};
use crate::config::StreamConfig;
use crate::publish::PublishError;
use crate::telemetry::metric;

/// Room left in a message for the envelope's other fields and the NATS
/// headers: a payload whose embedded form is longer than `max_payload`
/// minus this goes to the object store.
pub const ENVELOPE_HEADROOM: usize = 8 * 1024;

/// Shortest wait for an upload or a fetch: a large body takes longer than a
/// PubAck.
const MIN_TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);

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

impl Broker {
    /// Stores `body` under `reference` unless an identical object is already
    /// there (a redelivery), within `max(publish_timeout, 30s)`. Only after
    /// this returns `Ok` may the envelope pointing at it be published.
    pub async fn store_payload(
        &self,
        route: &str,
        reference: &PayloadRef,
        body: &[u8],
    ) -> Result<(), PublishError> {
        if !self.is_connected() {
            return Err(PublishError::NotConnected);
        }
        let timeout = self.nats.publish_timeout.max(MIN_TRANSFER_TIMEOUT);
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, self.put_object(reference, body))
            .await
            .unwrap_or(Err(PublishError::TimedOut(timeout)));
        match &result {
            Ok(outcome) => {
                debug!(
                    object = %reference.name,
                    size = reference.size,
                    outcome,
                    elapsed = ?started.elapsed(),
                    "payload object stored"
                );
                metrics::counter!(
                    metric::PAYLOAD_OBJECTS,
                    "route" => route.to_owned(),
                    "outcome" => *outcome
                )
                .increment(1);
            }
            Err(error) => {
                metrics::counter!(
                    metric::PUBLISH_FAILURES,
                    "route" => route.to_owned(),
                    "reason" => error.reason()
                )
                .increment(1);
                if *error == PublishError::BucketMissing {
                    self.stream_missing();
                }
            }
        }
        result.map(drop)
    }

    /// Returns `"uploaded"`, or `"present"` when an identical object exists.
    async fn put_object(
        &self,
        reference: &PayloadRef,
        body: &[u8],
    ) -> Result<&'static str, PublishError> {
        let store = self
            .jetstream
            .get_object_store(&reference.bucket)
            .await
            .map_err(|error| {
                let missing = std::error::Error::source(&error)
                    .and_then(|source| source.downcast_ref::<jetstream::context::GetStreamError>())
                    .is_some_and(is_not_found);
                if missing {
                    PublishError::BucketMissing
                } else {
                    PublishError::Failed(error.to_string())
                }
            })?;
        match store.info(&reference.name).await {
            Ok(existing) if is_same(&existing, reference) => return Ok("present"),
            Ok(_) => {}
            Err(error) if error.kind() == object_store::InfoErrorKind::NotFound => {}
            Err(error) => return Err(PublishError::Failed(error.to_string())),
        }
        let mut reader = body;
        store
            .put(reference.name.as_str(), &mut reader)
            .await
            .map_err(|error| PublishError::Failed(error.to_string()))?;
        Ok("uploaded")
    }
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

/// Creates the payload bucket, or brings an existing one's limits in line
/// with the deliveries stream: objects expire with the stream's `max_age`
/// and the bucket refuses uploads past `max_bytes` (the sender gets 503).
pub async fn ensure_bucket(
    jetstream: &jetstream::Context,
    settings: &StreamConfig,
) -> anyhow::Result<()> {
    let max_bytes = settings
        .max_bytes
        .map_or(-1, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX));
    let mut existing = match jetstream.get_stream(PAYLOADS_STREAM).await {
        Ok(stream) => stream,
        Err(error) if is_not_found(&error) => {
            jetstream
                .create_object_store(object_store::Config {
                    bucket: PAYLOADS_BUCKET.to_owned(),
                    description: Some("tidegate payloads too large for a message".to_owned()),
                    max_age: settings.max_age,
                    max_bytes,
                    storage: stream::StorageType::File,
                    num_replicas: settings.replicas,
                    ..Default::default()
                })
                .await?;
            info!(bucket = PAYLOADS_BUCKET, "created payload bucket");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let current = existing.info().await?.config.clone();
    let mut updated = current.clone();
    updated.max_age = settings.max_age;
    updated.max_bytes = max_bytes;
    if updated != current {
        jetstream.update_stream(updated).await?;
        info!(bucket = PAYLOADS_BUCKET, "updated payload bucket settings");
    }
    Ok(())
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
