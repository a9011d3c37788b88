//! The worker runtime: everything between the stream and a job's business
//! logic. A job only classifies; the runtime acks, retries, dead-letters,
//! dedupes and reports.

pub mod backoff;
pub mod consume;
pub mod dead_letter;
pub mod dedupe;
pub mod delivery;
pub mod lookups;
pub mod outcome;
pub mod report;
pub mod streams;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

pub use delivery::Delivery;
use schemas::{ConnectorSync, Envelope, ItemFailure, JobStatus};

/// A worker's business logic.
pub trait Job: Send + Sync + 'static {
    /// The idempotency key: a completed key is never run again. Defaults to
    /// the delivery id; `None` opts out of de-duplication.
    fn key(&self, delivery: &Delivery) -> Option<String> {
        Some(delivery.envelope.id.clone())
    }

    /// For connector syncs: which sync the delivery is (the openwork
    /// contract). Read from the envelope alone, as soon as it is parsed, so
    /// the runtime puts it on every result and dead letter of the delivery
    /// — completed, partial, retrying, failed, skipped — even when the
    /// payload cannot be read or the job never runs. `None` by default.
    fn connector(&self, _envelope: &Envelope) -> Option<ConnectorSync> {
        None
    }

    /// Runs the job once. Never acks or naks: it says what happened.
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Outcome> + Send;

    /// Called before the first delivery (again after an error, until it
    /// succeeds): a job that keeps state in the broker, such as a KV
    /// bucket, ensures it here (`broker::catalog` declares it). Does
    /// nothing by default.
    fn prepare(&mut self, _setup: &Setup<'_>) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Called once consuming has stopped at shutdown: a job that serves
    /// work outside the stream (request/reply subscriptions started in
    /// `prepare`) lets it finish here. Does nothing by default.
    fn finish(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Tasks that run beside the consumer until `shutdown` (a second
    /// consumer, a periodic sweep), started once after `prepare`
    /// succeeded; the runtime waits for them before it returns. None by
    /// default.
    fn background(
        &self,
        _shutdown: &tokio_util::sync::CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }
}

/// What a job's `prepare` gets: JetStream and the placement every stream
/// and bucket is ensured with.
pub struct Setup<'a> {
    pub jetstream: &'a async_nats::jetstream::Context,
    pub placement: broker::Placement,
    /// Cancelled at shutdown, for work a job starts in `prepare`.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// What a job concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished (possibly with per-item failures): ack and record the key.
    Done(Report),
    /// The job does not apply to this delivery: ack, report skipped.
    Skip(String),
    /// A transient failure: retry after `after` (the job's own, e.g. a
    /// `Retry-After`) or the runtime's back-off; dead-letter when attempts
    /// run out.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// A permanent failure: dead-letter now.
    Fail(String),
}

impl Outcome {
    pub fn retry(error: impl Into<String>) -> Outcome {
        Outcome::Retry {
            error: error.into(),
            after: None,
        }
    }
}

/// Counts and per-item failures of a finished job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub counts: BTreeMap<String, u64>,
    pub failures: Vec<ItemFailure>,
    pub detail: BTreeMap<String, String>,
}

impl Report {
    pub fn count(mut self, name: &str, value: u64) -> Report {
        self.counts.insert(name.to_owned(), value);
        self
    }

    pub fn detail(mut self, name: &str, value: impl Into<String>) -> Report {
        self.detail.insert(name.to_owned(), value.into());
        self
    }

    pub fn failure(&mut self, item: impl Into<String>, error: impl Into<String>) {
        self.failures.push(ItemFailure {
            item: item.into(),
            error: error.into(),
        });
    }

    /// `partial` when some item failed, else `completed`.
    pub fn status(&self) -> JobStatus {
        if self.failures.is_empty() {
            JobStatus::Completed
        } else {
            JobStatus::Partial
        }
    }
}
