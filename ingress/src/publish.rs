//! Publishing a delivery: `Nats-Msg-Id` for de-duplication, then wait for the
//! PubAck. There is no success without a PubAck; every failure is a
//! `PublishError`, which the ingress answers with 503.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::subject::Subject;
use bytes::Bytes;

use crate::broker::Broker;
use crate::telemetry::metric;

/// What JetStream said about a stored delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Stored {
        sequence: u64,
    },
    /// Same `Nats-Msg-Id` within the duplicate window: stored once already.
    Duplicate {
        sequence: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to nats")]
    NotConnected,
    #[error("the deliveries stream does not exist")]
    StreamMissing,
    #[error("the payload bucket does not exist")]
    BucketMissing,
    #[error("no PubAck within {0:?}")]
    TimedOut(Duration),
    #[error("message of {size} bytes exceeds the server's max_payload of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("publish failed: {0}")]
    Failed(String),
}

impl PublishError {
    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PublishError::NotConnected => "not_connected",
            PublishError::StreamMissing => "stream_missing",
            PublishError::BucketMissing => "bucket_missing",
            PublishError::TimedOut(_) => "timeout",
            PublishError::TooLarge { .. } => "too_large",
            PublishError::Failed(_) => "failed",
        }
    }
}

impl Broker {
    /// Publishes and waits for the PubAck, at most `publish_timeout`.
    pub async fn publish(
        &self,
        route: &str,
        subject: Subject,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Published, PublishError> {
        // While disconnected the client would queue the message and the
        // request would wait out the whole timeout; answer at once instead.
        if !self.is_connected() {
            return Err(PublishError::NotConnected);
        }
        let started = Instant::now();
        let result = self.publish_and_wait(subject, headers, payload).await;
        metrics::histogram!(metric::PUBLISH_SECONDS, "route" => route.to_owned())
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            metrics::counter!(
                metric::PUBLISH_FAILURES,
                "route" => route.to_owned(),
                "reason" => error.reason()
            )
            .increment(1);
            if *error == PublishError::StreamMissing {
                self.stream_missing();
            }
        }
        result
    }

    async fn publish_and_wait(
        &self,
        subject: Subject,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Published, PublishError> {
        let timeout = self.nats.publish_timeout;
        let size = payload.len();
        let publish = PublishMessage::build().payload(payload).headers(headers);
        let wait = async {
            let ack_future = self
                .jetstream
                .send_publish(subject, publish)
                .await
                .map_err(|error| {
                    classify(error.kind(), size, self.max_payload(), timeout, &error)
                })?;
            ack_future
                .await
                .map_err(|error| classify(error.kind(), size, self.max_payload(), timeout, &error))
        };
        let ack = tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| PublishError::TimedOut(timeout))??;
        Ok(if ack.duplicate {
            Published::Duplicate {
                sequence: ack.sequence,
            }
        } else {
            Published::Stored {
                sequence: ack.sequence,
            }
        })
    }
}

fn classify(
    kind: PublishErrorKind,
    size: usize,
    max: usize,
    timeout: Duration,
    error: &dyn std::fmt::Display,
) -> PublishError {
    match kind {
        PublishErrorKind::StreamNotFound => PublishError::StreamMissing,
        PublishErrorKind::TimedOut => PublishError::TimedOut(timeout),
        PublishErrorKind::MaxPayloadExceeded => PublishError::TooLarge { size, max },
        _ => PublishError::Failed(error.to_string()),
    }
}
