//! Job results: one message per finished attempt on
//! `tidegate.results.<worker>.<delivery token>`; the last one is the
//! delivery's current status for that worker.

use std::time::SystemTime;

use async_nats::jetstream;
use schemas::streams::{RESULTS_PREFIX, RESULTS_STREAM, delivery_token};
use schemas::{JobResult, JobStatus};
use tracing::warn;

use super::Report;

/// What the runtime knows about a finished attempt.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub worker: &'a str,
    pub delivery_id: &'a str,
    pub key: Option<&'a str>,
    pub attempt: u64,
    pub started_at: SystemTime,
}

pub fn subject(worker: &str, delivery_id: &str) -> String {
    format!("{RESULTS_PREFIX}.{worker}.{}", delivery_token(delivery_id))
}

pub fn result(
    attempt: &Attempt<'_>,
    status: JobStatus,
    report: Option<&Report>,
    error: Option<&str>,
) -> JobResult {
    JobResult {
        version: 1,
        delivery_id: attempt.delivery_id.to_owned(),
        worker: attempt.worker.to_owned(),
        status,
        key: attempt.key.map(str::to_owned),
        attempts: attempt.attempt,
        counts: report
            .map(|report| report.counts.clone())
            .unwrap_or_default(),
        failures: report
            .map(|report| report.failures.clone())
            .unwrap_or_default(),
        error: error.map(str::to_owned),
        detail: report
            .map(|report| report.detail.clone())
            .unwrap_or_default(),
        started_at: rfc3339(attempt.started_at),
        completed_at: rfc3339(SystemTime::now()),
    }
}

/// Publishes a result and waits for the PubAck. Results are reporting, not
/// state: a failure is logged and the delivery's outcome stands.
pub async fn publish(jetstream: &jetstream::Context, result: &JobResult) {
    let payload = serde_json::to_vec(result).expect("a job result always serializes");
    let subject = subject(&result.worker, &result.delivery_id);
    let acked = match jetstream.publish(subject, payload.into()).await {
        Ok(ack) => ack.await.map(drop).map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = acked {
        warn!(error = %error, "publishing the job result failed");
    }
}

/// The latest result of `worker` for a delivery, if any.
pub async fn latest(
    jetstream: &jetstream::Context,
    worker: &str,
    delivery_id: &str,
) -> anyhow::Result<Option<JobResult>> {
    let stream = jetstream.get_stream(RESULTS_STREAM).await?;
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
        Err(error) => Err(error.into()),
    }
}

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
