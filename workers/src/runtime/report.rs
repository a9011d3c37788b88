//! Job results: one message per finished attempt on
//! `tidegate.results.<worker>.<delivery token>`; the last one is the
//! delivery's current status for that worker.

use std::time::SystemTime;

use std::time::Duration;

use async_nats::jetstream;
use schemas::{ConnectorSync, JobResult, JobStatus};
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
    /// The job's connector contract for this delivery (`Job::connector`).
    pub connector: Option<&'a ConnectorSync>,
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
        connector: attempt.connector.cloned(),
        started_at: rfc3339(attempt.started_at),
        completed_at: rfc3339(SystemTime::now()),
    }
}

/// Publishes a result and waits for the PubAck (at most `timeout`).
/// Results are reporting, not state: a failure is logged and the
/// delivery's outcome stands.
pub async fn publish(jetstream: &jetstream::Context, result: &JobResult, timeout: Duration) {
    let payload = serde_json::to_vec(result).expect("a job result always serializes");
    let subject = broker::results::subject(&result.worker, &result.delivery_id);
    if let Err(error) = broker::publish::publish(
        jetstream,
        subject,
        async_nats::HeaderMap::new(),
        payload.into(),
        timeout,
    )
    .await
    {
        warn!(error = %error, "publishing the job result failed");
    }
}

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
