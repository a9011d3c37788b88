//! Turns what happened to a delivery into acknowledgement: ack, nak with
//! a delay, or dead-letter then terminate. The only place that acks.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, AckKind, Message};
use schemas::JobStatus;
use tracing::{debug, error, warn};

use super::dead_letter::{self, GiveUp};
use super::dedupe::{self, Completion};
use super::report::{self, Attempt};
use super::{Outcome, Report, backoff};
use crate::config::RuntimeConfig;
use crate::metric;

/// What `apply` needs besides the outcome.
pub struct Context<'a> {
    pub config: &'a RuntimeConfig,
    pub jetstream: &'a jetstream::Context,
    pub idempotency: Option<&'a jetstream::kv::Store>,
    pub message: &'a Message,
    pub attempt: Attempt<'a>,
    pub subject: &'a str,
    pub stream_sequence: u64,
}

/// Acknowledges according to `outcome` and publishes the job result.
pub async fn apply(context: &Context<'_>, outcome: Outcome) {
    let worker = context.config.name.as_str();
    let attempt = context.attempt.attempt;
    match outcome {
        Outcome::Done(report) => {
            if let (Some(store), Some(key)) = (context.idempotency, context.attempt.key) {
                let completion = Completion {
                    key: key.to_owned(),
                    worker: worker.to_owned(),
                    delivery_id: context.attempt.delivery_id.to_owned(),
                    completed_at: report::rfc3339(SystemTime::now()),
                };
                dedupe::record(store, &completion, context.config.idempotency.ttl).await;
            }
            ack(context.message, AckKind::Ack).await;
            let status = report.status();
            metrics::counter!(metric::PROCESSED, "worker" => worker.to_owned(), "status" => status_label(status))
                .increment(1);
            debug!(status = status_label(status), "job finished");
            publish(context, status, Some(&report), None).await;
        }
        Outcome::Skip(reason) => {
            ack(context.message, AckKind::Ack).await;
            metrics::counter!(metric::PROCESSED, "worker" => worker.to_owned(), "status" => "skipped")
                .increment(1);
            debug!(reason = %reason, "job skipped");
            let report = Report::default().detail("reason", reason);
            publish(context, JobStatus::Skipped, Some(&report), None).await;
        }
        Outcome::Retry { error, after } if attempt < context.config.consumer.max_deliver => {
            let consumer = &context.config.consumer;
            let delay = backoff::delay(attempt, consumer.backoff_base, consumer.backoff_max, after);
            ack(context.message, AckKind::Nak(Some(delay))).await;
            metrics::counter!(metric::RETRIED, "worker" => worker.to_owned()).increment(1);
            warn!(error = %error, retry_in = ?delay, "job failed; will retry");
            publish(context, JobStatus::Retrying, None, Some(&error)).await;
        }
        Outcome::Retry { error, .. } => {
            let error = format!("gave up after {attempt} attempts: {error}");
            give_up(context, &error).await;
        }
        Outcome::Fail(error) => give_up(context, &error).await,
    }
}

/// Dead-letters, then terminates. If the dead letter cannot be stored the
/// message is released for a later attempt instead: never dropped.
pub async fn give_up(context: &Context<'_>, reason: &str) {
    let worker = context.config.name.as_str();
    let stored = dead_letter::store(
        context.jetstream,
        &GiveUp {
            worker,
            delivery_id: context.attempt.delivery_id,
            subject: context.subject,
            stream_sequence: context.stream_sequence,
            attempts: context.attempt.attempt,
            error: reason,
            raw_envelope: &context.message.payload,
            connector: context.attempt.connector,
        },
        context.config.nats.publish_timeout,
    )
    .await;
    match stored {
        Ok(()) => {
            ack(context.message, AckKind::Term).await;
            metrics::counter!(metric::DEAD_LETTERED, "worker" => worker.to_owned()).increment(1);
            metrics::counter!(metric::PROCESSED, "worker" => worker.to_owned(), "status" => "failed")
                .increment(1);
            warn!(error = %reason, "dead-lettered");
            publish(context, JobStatus::Failed, None, Some(reason)).await;
        }
        Err(store_error) => {
            error!(error = %store_error, "storing the dead letter failed; releasing the delivery for later");
            ack(context.message, AckKind::Nak(Some(Duration::from_secs(5)))).await;
        }
    }
}

async fn publish(
    context: &Context<'_>,
    status: JobStatus,
    report: Option<&Report>,
    error: Option<&str>,
) {
    let result = report::result(&context.attempt, status, report, error);
    report::publish(
        context.jetstream,
        &result,
        context.config.nats.publish_timeout,
    )
    .await;
}

/// Acks and logs failures: an ack that does not arrive means redelivery,
/// which idempotency keys absorb.
pub async fn ack(message: &Message, kind: AckKind) {
    let result = match kind {
        // Wait for the server to confirm a completion, so a confirmed
        // result is never redelivered.
        AckKind::Ack => message.double_ack().await,
        other => message.ack_with(other).await,
    };
    if let Err(error) = result {
        warn!(error = %error, "acknowledgement failed; the delivery may be redelivered");
    }
}

pub fn status_label(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Completed => "completed",
        JobStatus::Partial => "partial",
        JobStatus::Failed => "failed",
        JobStatus::Retrying => "retrying",
        JobStatus::Skipped => "skipped",
    }
}
