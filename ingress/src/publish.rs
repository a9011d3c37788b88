//! Storing a delivery: a large body into the payload bucket first, then the
//! envelope with `Nats-Msg-Id`, answered only after the PubAck. Outcomes
//! feed readiness and the metrics; refusals are logged at a bounded rate.

use std::time::Instant;

use async_nats::HeaderMap;
use async_nats::subject::Subject;
use broker::payload::{self, PayloadError};
use broker::{PublishError, Stored};
use bytes::Bytes;
use schemas::PayloadRef;
use tracing::debug;

use crate::nats::Broker;
use crate::telemetry::metric;

impl Broker {
    /// Publishes and waits for the PubAck, at most `nats.publish_timeout`.
    pub async fn publish(
        &self,
        route: &str,
        subject: Subject,
        headers: HeaderMap,
        envelope: Bytes,
    ) -> Result<Stored, PublishError> {
        let result = if self.is_connected() {
            let started = Instant::now();
            let result = broker::publish::publish(
                &self.connection.jetstream,
                subject,
                headers,
                envelope,
                self.config.nats.publish_timeout,
            )
            .await
            .map_err(|error| match error {
                // The crate cannot know our timeout; name it.
                PublishError::TimedOut(_) => {
                    PublishError::TimedOut(self.config.nats.publish_timeout)
                }
                other => other,
            });
            metrics::histogram!(metric::PUBLISH_SECONDS, "route" => route.to_owned())
                .record(started.elapsed().as_secs_f64());
            result
        } else {
            // While disconnected the client would queue the message and the
            // request would wait out the whole timeout; answer at once.
            Err(PublishError::NotConnected)
        };
        self.readiness.record(&result);
        if let Err(error) = &result {
            metrics::counter!(
                metric::PUBLISH_FAILURES,
                "route" => route.to_owned(),
                "reason" => error.reason()
            )
            .increment(1);
        }
        result
    }

    /// Stores a body too large for one message under `reference`, unless an
    /// identical object is already there (a redelivery). Only after this
    /// returns `Ok` may the envelope pointing at it be published.
    pub async fn store_payload(
        &self,
        route: &str,
        reference: &PayloadRef,
        body: &[u8],
    ) -> Result<(), PayloadError> {
        let result = match self.payload_store() {
            Some(store) if self.is_connected() => {
                let started = Instant::now();
                let result =
                    payload::store(store, reference, body, self.config.nats.publish_timeout).await;
                if let Ok(outcome) = &result {
                    debug!(object = %reference.name, size = reference.size, outcome = outcome.label(), elapsed = ?started.elapsed(), "payload object stored");
                    metrics::counter!(
                        metric::PAYLOAD_OBJECTS,
                        "route" => route.to_owned(),
                        "outcome" => outcome.label()
                    )
                    .increment(1);
                }
                result.map(drop)
            }
            _ => Err(PayloadError::Unavailable("not connected to nats".into())),
        };
        if let Err(error) = &result {
            let reason = if error.is_transient() {
                "payload_unavailable"
            } else {
                "payload_failed"
            };
            metrics::counter!(
                metric::PUBLISH_FAILURES,
                "route" => route.to_owned(),
                "reason" => reason
            )
            .increment(1);
        }
        result
    }
}
