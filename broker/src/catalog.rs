//! Every stream, KV bucket, object store and consumer tidegate uses,
//! declared once. Names and subjects come from `schemas::streams` (the
//! wire contract); the settings are here. `ensure.rs` creates or updates
//! each one, never deleting data.

use std::time::Duration;

use async_nats::jetstream::{consumer, kv, object_store, stream};
use schemas::streams::{
    CONNECTORS_BUCKET, DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, DELIVERIES_STREAM,
    DELIVERIES_SUBJECTS, IDEMPOTENCY_BUCKET, PAYLOADS_BUCKET, REPLAYS_BUCKET, RESULTS_PREFIX,
    RESULTS_STREAM, SYNC_LOCKS_BUCKET, SYNC_TARGETS_BUCKET, WORKFLOW_APPROVALS_BUCKET,
    WORKFLOW_CONTROL_PREFIX, WORKFLOW_CONTROL_STREAM, WORKFLOW_RUNS_BUCKET,
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

// --- nexus: agent inbox and consumer API -------------------------------------

/// The consumer API's durable consumer for one agent and source. Each
/// delivery on `tidegate.in.agent.<agent>.<source>` is reachable through
/// exactly this consumer, so whatever filters pollers combine, an item is
/// leased by one of them at a time. `ack_wait` is the visibility timeout:
/// an item handed out and not deleted within it is handed out again.
/// Items never expire from the consumer (no `max_deliver`): they stay
/// pending until deleted or until the stream ages them out.
pub fn api_consumer(
    agent: &str,
    source: &str,
    visibility_timeout: Duration,
) -> consumer::pull::Config {
    use schemas::streams::AGENT_PREFIX;
    consumer::pull::Config {
        durable_name: Some(api_consumer_name(agent, source)),
        description: Some(format!(
            "tidegate consumer API: agent {agent}, source {source}"
        )),
        filter_subject: format!("{AGENT_PREFIX}.{agent}.{source}"),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: visibility_timeout,
        max_deliver: -1,
        // Items leased at once per agent and source; a poller that keeps
        // leasing without deleting gets nothing more until leases expire.
        max_ack_pending: 10_000,
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

/// `tidegate_api_<32 hex digits>`: a hash, because agent and source tokens
/// may hold characters a consumer name should not, and joining them with
/// any separator they may contain would be ambiguous.
pub fn api_consumer_name(agent: &str, source: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::new()
        .chain_update(agent.as_bytes())
        .chain_update(b"\n")
        .chain_update(source.as_bytes())
        .finalize();
    format!(
        "{}{}",
        schemas::streams::API_CONSUMER_PREFIX,
        hex::encode(&digest[..16])
    )
}

/// The ack subject of each item's latest lease, keyed by its stream
/// sequence: whichever ingress replica receives the `DELETE` acknowledges
/// with it. Records are removed on delete; the rest age out.
pub fn api_leases() -> kv::Config {
    kv::Config {
        bucket: schemas::streams::API_LEASES_BUCKET.to_owned(),
        description: "tidegate consumer API leases (item id → ack subject)".to_owned(),
        history: 1,
        // Far beyond any visibility timeout; a lapsed record only means
        // that item must be fetched again before it can be deleted.
        max_age: Duration::from_secs(30 * 24 * 3600),
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// The inbox worker's progress per delivery (`<agent>.<stream sequence>`:
/// written, notified). Needed only while a delivery can be redelivered.
pub fn inbox_progress() -> kv::Config {
    kv::Config {
        bucket: schemas::streams::INBOX_BUCKET.to_owned(),
        description: "tidegate inbox worker progress (file written, agent notified)".to_owned(),
        history: 1,
        max_age: Duration::from_secs(30 * 24 * 3600),
        storage: stream::StorageType::File,
        ..Default::default()
    }
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
