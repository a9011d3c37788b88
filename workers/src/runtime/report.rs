//! Job results: one message per finished attempt on
//! `tidegate.results.<worker>.<delivery token>`; the last one is the
//! delivery's current status for that worker.
//!
//! A result is sent before the attempt's acknowledgement, on the same
//! connection, so it is stored before any later attempt of the delivery
//! can start; its PubAck is awaited in a task of its own (at most
//! [`Reporter`]'s limit at once) instead of holding the job's slot —
//! except a completion that is its delivery's idempotency record
//! ([`publish`], awaited before the ack). Every result of a completed
//! delivery carries `broker::results::COMPLETED`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use schemas::{ConnectorSync, JobResult, JobStatus};
use tokio::sync::Semaphore;
use tracing::{Instrument, warn};

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

/// Publishes a result and waits for its PubAck (at most `timeout`):
/// whether it is stored. A `completed` or `partial` result is marked
/// [`broker::results::COMPLETED`]. A failure is logged. The runtime uses
/// this for a result that is the delivery's idempotency record
/// (`dedupe::Record`), and [`Reporter`] for the others.
pub async fn publish(
    jetstream: &jetstream::Context,
    result: &JobResult,
    timeout: Duration,
) -> bool {
    let completed = matches!(result.status, JobStatus::Completed | JobStatus::Partial);
    let payload = serde_json::to_vec(result).expect("a job result always serializes");
    let subject = broker::results::subject(&result.worker, &result.delivery_id);
    match broker::publish::publish(
        jetstream,
        subject,
        headers(completed),
        payload.into(),
        timeout,
    )
    .await
    {
        Ok(_) => true,
        Err(error) => {
            warn!(error = %error, "publishing the job result failed");
            false
        }
    }
}

/// A result's headers: [`broker::results::COMPLETED`] on every result of
/// a delivery whose job completed.
fn headers(completed: bool) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    if completed {
        headers.insert(broker::results::COMPLETED, "1");
    }
    headers
}

/// Sends results and awaits their PubAcks off the job's path. Results are
/// reporting, not state: a failure is logged and the delivery's outcome
/// stands.
pub struct Reporter {
    in_flight: Arc<Semaphore>,
    limit: u32,
}

impl Reporter {
    /// At most `limit` PubAcks awaited at once; a job sending one more
    /// waits for room.
    pub fn new(limit: usize) -> Reporter {
        let limit = u32::try_from(limit.max(1)).unwrap_or(u32::MAX);
        Reporter {
            in_flight: Arc::new(Semaphore::new(limit as usize)),
            limit,
        }
    }

    /// Sends `result` (in order with whatever this task sends next) and
    /// awaits its PubAck (at most `timeout`) in the background.
    pub async fn send(
        &self,
        jetstream: &jetstream::Context,
        result: &JobResult,
        completed: bool,
        timeout: Duration,
    ) {
        let permit = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let payload = serde_json::to_vec(result).expect("a job result always serializes");
        let subject = broker::results::subject(&result.worker, &result.delivery_id);
        let sent = broker::publish::send(
            jetstream,
            subject,
            headers(completed),
            payload.into(),
            timeout,
        )
        .await;
        match sent {
            Ok(pending) => {
                tokio::spawn(
                    async move {
                        if let Err(error) = pending.await {
                            warn!(error = %error, "publishing the job result failed");
                        }
                        drop(permit);
                    }
                    .instrument(tracing::Span::current()),
                );
            }
            Err(error) => warn!(error = %error, "publishing the job result failed"),
        }
    }

    /// Waits, at most `grace`, for the PubAcks of every result sent.
    pub async fn finish(&self, grace: Duration) {
        if tokio::time::timeout(grace, self.in_flight.acquire_many(self.limit))
            .await
            .is_err()
        {
            warn!("results still unconfirmed at shutdown");
        }
    }
}

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
