//! Every stream, KV bucket, object store and consumer tidegate uses,
//! declared once. Names and subjects come from `schemas::streams` (the
//! wire contract); the settings are here. `ensure.rs` creates or updates
//! each one, never deleting data.

use std::time::Duration;

use async_nats::jetstream::{consumer, kv, object_store, stream};
use schemas::streams::{
    CONNECTORS_BUCKET, DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, DELIVERIES_STREAM,
    DELIVERIES_SUBJECTS, IDEMPOTENCY_BUCKET, PAYLOADS_BUCKET, REPLAYS_BUCKET, RESULTS_PREFIX,
    RESULTS_STREAM, WORKFLOW_APPROVALS_BUCKET, WORKFLOW_CONTROL_PREFIX, WORKFLOW_CONTROL_STREAM,
    WORKFLOW_RUNS_BUCKET,
};

use crate::settings::StreamSettings;

/// Every accepted delivery, for workers and for replay. Full means refuse
/// (the ingress answers 503 and the provider retries), never drop what was
/// acknowledged.
pub fn deliveries(settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: DELIVERIES_STREAM.to_owned(),
        description: Some("tidegate webhook deliveries (envelope v1)".to_owned()),
        subjects: DELIVERIES_SUBJECTS
            .iter()
            .map(|subject| (*subject).to_owned())
            .collect(),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        max_age: settings.max_age,
        max_bytes: bytes_limit(settings.max_bytes),
        duplicate_window: settings.duplicate_window,
        allow_direct: true,
        ..Default::default()
    }
}

/// Bodies too large for one message; they expire and fill up with the
/// deliveries stream.
pub fn payloads(settings: &StreamSettings) -> object_store::Config {
    object_store::Config {
        bucket: PAYLOADS_BUCKET.to_owned(),
        description: Some("tidegate payloads too large for a message".to_owned()),
        max_age: settings.max_age,
        max_bytes: bytes_limit(settings.max_bytes),
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Dead letters, kept until an operator acts: no age limit.
pub fn dead_letters() -> stream::Config {
    stream::Config {
        name: DEAD_LETTER_STREAM.to_owned(),
        description: Some("tidegate dead letters (dead letter v1)".to_owned()),
        subjects: vec![format!("{DEAD_LETTER_PREFIX}.>")],
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    }
}

/// Job results: the last few per delivery and worker, for `max_age`.
pub fn results(max_age: Duration) -> stream::Config {
    stream::Config {
        name: RESULTS_STREAM.to_owned(),
        description: Some("tidegate job results (job result v1)".to_owned()),
        subjects: vec![format!("{RESULTS_PREFIX}.>")],
        storage: stream::StorageType::File,
        max_messages_per_subject: 10,
        max_age,
        allow_direct: true,
        ..Default::default()
    }
}

/// Completed idempotency keys. Each key carries its own TTL (the worker's
/// `idempotency.ttl`), so workers with different TTLs share the bucket.
pub fn idempotency() -> kv::Config {
    kv::Config {
        bucket: IDEMPOTENCY_BUCKET.to_owned(),
        description: "tidegate completed idempotency keys".to_owned(),
        history: 1,
        storage: stream::StorageType::File,
        // Per-key TTLs need limit markers; expired keys leave a marker
        // for this long so watchers see the removal.
        limit_markers: Some(Duration::from_secs(60)),
        ..Default::default()
    }
}

/// One record per replay: its selection and how far it got.
pub fn replays() -> kv::Config {
    kv::Config {
        bucket: REPLAYS_BUCKET.to_owned(),
        description: "tidegate replay checkpoints".to_owned(),
        history: 1,
        // Long enough to resume after a weekend.
        max_age: Duration::from_secs(30 * 24 * 3600),
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Connector state (GitHub App installations and repositories).
pub fn connectors() -> kv::Config {
    kv::Config {
        bucket: CONNECTORS_BUCKET.to_owned(),
        description: "tidegate connector state".to_owned(),
        history: 1,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// How a worker kind consumes the deliveries stream: one durable shared by
/// every replica.
#[derive(Debug, Clone)]
pub struct WorkerConsumer {
    /// The worker's name: durable name, dead-letter and result subjects.
    pub name: String,
    /// One or more subjects (several become `filter_subjects`).
    pub filter_subjects: Vec<String>,
    pub ack_wait: Duration,
    /// Attempts before the runtime dead-letters a delivery.
    pub max_deliver: u64,
    /// A new consumer starts with deliveries published from now on.
    pub deliver_new_only: bool,
}

/// The durable pull consumer of a worker kind.
pub fn worker(worker: &WorkerConsumer) -> consumer::pull::Config {
    let (filter_subject, filter_subjects) = match worker.filter_subjects.as_slice() {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    };
    consumer::pull::Config {
        durable_name: Some(worker.name.clone()),
        description: Some(format!("tidegate worker {}", worker.name)),
        filter_subject,
        filter_subjects,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: worker.ack_wait,
        // One delivery beyond the attempts: when it arrives, every attempt
        // ended without an outcome (the worker crashed on it), and the
        // runtime dead-letters it without running it again. JetStream has
        // no dead-letter queue of its own, and its max-deliveries advisory
        // is a core NATS message that is lost when no worker listens.
        max_deliver: i64::try_from(worker.max_deliver.saturating_add(1)).unwrap_or(i64::MAX),
        max_ack_pending: 10_000,
        deliver_policy: if worker.deliver_new_only {
            consumer::DeliverPolicy::New
        } else {
            consumer::DeliverPolicy::All
        },
        ..Default::default()
    }
}

/// The stream of a deliveries-style declaration (`-1`: unlimited).
fn bytes_limit(max_bytes: Option<u64>) -> i64 {
    max_bytes.map_or(-1, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX))
}

// --- workflows (assistant seed) ---------------------------------------------

/// Workflow runs: one entry per run, rewritten after every step with
/// compare-and-set on its revision. Kept for `max_age` (the worker's
/// `workflow.runs_max_age`), long enough for any approval to be decided.
pub fn workflow_runs(max_age: Duration) -> kv::Config {
    kv::Config {
        bucket: WORKFLOW_RUNS_BUCKET.to_owned(),
        description: "tidegate workflow runs (workflow run v1)".to_owned(),
        history: 1,
        max_age,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Runs waiting for an approval: one entry per paused run, deleted once
/// it is decided or expires. Small: only what waits.
pub fn workflow_approvals() -> kv::Config {
    kv::Config {
        bucket: WORKFLOW_APPROVALS_BUCKET.to_owned(),
        description: "tidegate workflow runs waiting for an approval".to_owned(),
        history: 1,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Approval decisions for the workflow worker, kept a week for audit.
pub fn workflow_control() -> stream::Config {
    stream::Config {
        name: WORKFLOW_CONTROL_STREAM.to_owned(),
        description: Some("tidegate workflow approval decisions (run decision v1)".to_owned()),
        subjects: vec![format!("{WORKFLOW_CONTROL_PREFIX}.>")],
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(7 * 24 * 3600),
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// The workflow worker's durable consumer of decisions, shared by every
/// replica (`<worker name>-control`).
pub fn workflow_control_consumer(worker: &str, ack_wait: Duration) -> consumer::pull::Config {
    let name = format!("{worker}-control");
    consumer::pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("tidegate workflow decisions for {worker}")),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        max_deliver: 20,
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    }
}
