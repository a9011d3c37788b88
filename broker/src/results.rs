//! Where job results live: one message per finished attempt on
//! `tidegate.results.<worker>.<delivery token>`, the last one per subject
//! being the delivery's current status for that worker. For a job whose
//! idempotency key is the delivery id, that last result is also the key's
//! record: it says whether the delivery completed (see [`is_completion`]).

use async_nats::{HeaderMap, jetstream};
use schemas::streams::{RESULTS_PREFIX, RESULTS_STREAM, delivery_token};
use schemas::{JobResult, JobStatus};

/// The subject of `worker`'s results for a delivery.
pub fn subject(worker: &str, delivery_id: &str) -> String {
    format!("{RESULTS_PREFIX}.{worker}.{}", delivery_token(delivery_id))
}

/// Header on every result of a delivery whose job has completed for that
/// worker: its `completed`/`partial` result, and every later result of it
/// (a skipped redelivery, a forced replay), so the last result still says
/// so.
pub const COMPLETED: &str = "Tidegate-Completed";

/// Whether a stored result records a completion: it carries
/// [`COMPLETED`], or (results stored before that header existed) its
/// status is `completed` or `partial`.
pub fn is_completion(headers: Option<&HeaderMap>, payload: &[u8]) -> bool {
    if headers.is_some_and(|headers| headers.get(COMPLETED).is_some()) {
        return true;
    }
    #[derive(serde::Deserialize)]
    struct Status {
        status: JobStatus,
    }
    serde_json::from_slice::<Status>(payload)
        .is_ok_and(|result| matches!(result.status, JobStatus::Completed | JobStatus::Partial))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_by_header_or_by_an_earlier_versions_status() {
        let result = |status: &str| format!(r#"{{"version":1,"status":"{status}"}}"#);
        let mut marked = HeaderMap::new();
        marked.insert(COMPLETED, "1");
        for (headers, status, expected) in [
            (None, "completed", true),
            (None, "partial", true),
            (None, "skipped", false),
            (None, "failed", false),
            (None, "retrying", false),
            (Some(&marked), "skipped", true),
            (Some(&marked), "failed", true),
            (Some(&HeaderMap::new()), "retrying", false),
        ] {
            assert_eq!(
                is_completion(headers, result(status).as_bytes()),
                expected,
                "{status} with {headers:?}"
            );
        }
        assert!(!is_completion(None, b"not json"));
    }
}
