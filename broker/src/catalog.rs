//! Every stream, KV bucket, object store and consumer tidegate uses,
//! declared once. Names and subjects come from `schemas::streams` (the
//! wire contract); the settings are here. `ensure.rs` creates or updates
//! each one, never deleting data.

use std::time::Duration;

use async_nats::jetstream::{consumer, kv, object_store, stream};
use schemas::streams::{
    CONNECTORS_BUCKET, DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, DELIVERIES_STREAM,
    DELIVERIES_SUBJECTS, IDEMPOTENCY_BUCKET, PAYLOADS_BUCKET, REPLAYS_BUCKET, RESULTS_PREFIX,
    RESULTS_STREAM, SYNC_LOCKS_BUCKET, SYNC_TARGETS_BUCKET,
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

// Connector sync: live targets and folder locks (tidegate-github-sync and
// `tidegate targets`).

/// Live connector sync targets, one key per target id. A few revisions are
/// kept so an operator can see what a target was before an edit.
pub fn sync_targets() -> kv::Config {
    kv::Config {
        bucket: SYNC_TARGETS_BUCKET.to_owned(),
        description: "tidegate connector sync targets (sync target v1)".to_owned(),
        history: 5,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Folder locks of connector syncs: each key carries its own TTL (the
/// lease), renewed while its sync runs, so a crashed holder's lock expires.
pub fn sync_locks() -> kv::Config {
    kv::Config {
        bucket: SYNC_LOCKS_BUCKET.to_owned(),
        description: "tidegate connector sync folder locks".to_owned(),
        history: 1,
        storage: stream::StorageType::File,
        // Per-key TTLs need limit markers; an expired lock leaves a marker
        // for this long, and the next holder writes over it.
        limit_markers: Some(Duration::from_secs(60)),
        ..Default::default()
    }
}
