//! Where job results live: one message per finished attempt on
//! `tidegate.results.<worker>.<delivery token>`, the last one per subject
//! being the delivery's current status for that worker.

use async_nats::jetstream;
use schemas::JobResult;
use schemas::streams::{RESULTS_PREFIX, RESULTS_STREAM, delivery_token};

/// The subject of `worker`'s results for a delivery.
pub fn subject(worker: &str, delivery_id: &str) -> String {
    format!("{RESULTS_PREFIX}.{worker}.{}", delivery_token(delivery_id))
}

#[derive(Debug, thiserror::Error)]
pub enum LatestError {
    #[error("reading {RESULTS_STREAM}: {0}")]
    Broker(String),
    #[error("the latest result is not a job result v1: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// The latest result of `worker` for a delivery, if any.
pub async fn latest(
    jetstream: &jetstream::Context,
    worker: &str,
    delivery_id: &str,
) -> Result<Option<JobResult>, LatestError> {
    let stream = jetstream
        .get_stream(RESULTS_STREAM)
        .await
        .map_err(|error| LatestError::Broker(error.to_string()))?;
    match stream
        .get_last_raw_message_by_subject(&subject(worker, delivery_id))
        .await
    {
        Ok(message) => Ok(Some(serde_json::from_slice(&message.payload)?)),
        Err(error)
            if error.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            Ok(None)
        }
        Err(error) => Err(LatestError::Broker(error.to_string())),
    }
}
