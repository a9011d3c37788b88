//! Turns what happened to a delivery into acknowledgement: ack, nak with
//! a delay, or dead-letter then terminate. The only place that acks.
//!
//! Every attempt's result is sent before its acknowledgement (see
//! `report.rs`). A completion is acknowledged with a plain ack once its
//! idempotency key is recorded (`dedupe.rs`: the `completed` result itself
//! for a delivery-id key, else a KV record): if that ack is lost, the redelivery finds
//! the key and is skipped (reported `skipped`), so waiting for the server
//! to confirm the ack would buy nothing. Without a recorded key (no
//! idempotency, or recording failed) the ack is confirmed. Skips are plain
//! acks: a redelivered skip is skipped again.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, AckKind, Message};
use schemas::JobStatus;
use tracing::{debug, error, warn};

use super::dead_letter::{self, GiveUp};
use super::dedupe::{self, Completion, Record};
use super::delivery;
use super::report::{self, Attempt, Reporter};
use super::{Outcome, Report, backoff};
use crate::config::RuntimeConfig;
use crate::metric;

/// What `apply` needs besides the outcome.
pub struct Context<'a> {
    pub config: &'a RuntimeConfig,
    pub jetstream: &'a jetstream::Context,
    pub idempotency: Option<&'a jetstream::kv::Store>,
    pub reporter: &'a Reporter,
    pub message: &'a Message,
    pub attempt: Attempt<'a>,
    pub subject: &'a str,
    pub stream_sequence: u64,
    /// The delivery's key had completed before this attempt (a forced
    /// replay, or a redelivery skipped for it): every result of the
    /// attempt carries the completion forward.
    pub completed_before: bool,
}

/// Acknowledges according to `outcome` and publishes the job result.
pub async fn apply(context: &Context<'_>, outcome: Outcome) {
    let worker = context.config.name.as_str();
    let attempt = context.attempt.attempt;
    match outcome {
        Outcome::Done(report) => {
            let status = report.status();
            let recorded = record(context, &report).await;
            if recorded {
                ack(context.message, AckKind::Ack).await;
            } else {
                ack_confirmed(context.message).await;
            }
            metrics::counter!(metric::PROCESSED, "worker" => worker.to_owned(), "status" => status_label(status))
                .increment(1);
            debug!(status = status_label(status), "job finished");
        }
        Outcome::Skip(reason) => {
            debug!(reason = %reason, "job skipped");
            let report = Report::default().detail("reason", reason);
            publish(context, JobStatus::Skipped, Some(&report), None).await;
            ack(context.message, AckKind::Ack).await;
            metrics::counter!(metric::PROCESSED, "worker" => worker.to_owned(), "status" => "skipped")
                .increment(1);
        }
        Outcome::Retry { error, after } if attempt < context.config.consumer.max_deliver => {
            let consumer = &context.config.consumer;
            let delay = backoff::delay(attempt, consumer.backoff_base, consumer.backoff_max, after);
            publish(context, JobStatus::Retrying, None, Some(&error)).await;
            ack(context.message, AckKind::Nak(Some(delay))).await;
            metrics::counter!(metric::RETRIED, "worker" => worker.to_owned()).increment(1);
            warn!(error = %error, retry_in = ?delay, "job failed; will retry");
        }
        Outcome::Retry { error, .. } => {
            let error = format!("gave up after {attempt} attempts: {error}");
            give_up(context, &error).await;
        }
        Outcome::Fail(error) => give_up(context, &error).await,
    }
}

/// Publishes a completion's result and records its key; whether the key
/// is recorded (its record has a PubAck). A delivery-id key's record is
/// the result itself, so that PubAck is awaited here; another key's
/// result is sent and its record written to the bucket.
async fn record(context: &Context<'_>, report: &Report) -> bool {
    let status = report.status();
    let result = report::result(&context.attempt, status, Some(report), None);
    let timeout = context.config.nats.publish_timeout;
    match (context.idempotency, context.attempt.key) {
        (Some(_), Some(key)) if Record::of(key, context.attempt.delivery_id) == Record::Result => {
            report::publish(context.jetstream, &result, timeout).await
        }
        (Some(store), Some(key)) => {
            context
                .reporter
                .send(context.jetstream, &result, true, timeout)
                .await;
            let completion = Completion {
                key,
                worker: context.config.name.as_str(),
                delivery_id: context.attempt.delivery_id,
                completed_at: &report::rfc3339(SystemTime::now()),
            };
            dedupe::record(store, &completion, context.config.idempotency.ttl).await
        }
        _ => {
            context
                .reporter
                .send(context.jetstream, &result, true, timeout)
                .await;
            false
        }
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
            envelope: &delivery::dead_letter_document(
                context.subject,
                context.message.headers.as_ref(),
                &context.message.payload,
            ),
            connector: context.attempt.connector,
        },
        context.config.nats.publish_timeout,
    )
    .await;
    match stored {
        Ok(()) => {
            publish(context, JobStatus::Failed, None, Some(reason)).await;
            ack(context.message, AckKind::Term).await;
            metrics::counter!(metric::DEAD_LETTERED, "worker" => worker.to_owned()).increment(1);
            metrics::counter!(metric::PROCESSED, "worker" => worker.to_owned(), "status" => "failed")
                .increment(1);
            warn!(error = %reason, "dead-lettered");
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
    context
        .reporter
        .send(
            context.jetstream,
            &result,
            context.completed_before,
            context.config.nats.publish_timeout,
        )
        .await;
}

/// Acks without waiting for the server and logs failures: an ack that
/// does not arrive means redelivery, which idempotency keys absorb.
pub async fn ack(message: &Message, kind: AckKind) {
    if let Err(error) = message.ack_with(kind).await {
        warn!(error = %error, "acknowledgement failed; the delivery may be redelivered");
    }
}

/// Acks and waits for the server to confirm it, for a completion no
/// recorded key would stop from running again.
async fn ack_confirmed(message: &Message) {
    if let Err(error) = message.double_ack().await {
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
