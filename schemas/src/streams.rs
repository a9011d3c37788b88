//! Stream names and subject layout, declared once. The ingress creates the
//! deliveries stream; workers and the CLI read these names from here.
//!
//! ```text
//! tidegate.in.<rendered route subject>       deliveries for workers (stored)
//! tidegate.ignored.<route>.<event>           valid but ignored events (stored, audit only)
//! tidegate.sync.<rendered route subject>     request/reply routes (not stored)
//! tidegate.dlq.<worker>                      dead letters (TIDEGATE_DLQ)
//! tidegate.results.<worker>.<delivery>       job results (TIDEGATE_RESULTS)
//! ```

/// Stream holding every accepted delivery, for workers and for replay.
pub const DELIVERIES_STREAM: &str = "TIDEGATE_DELIVERIES";
/// Prefix of subjects that workers consume.
pub const DELIVERIES_PREFIX: &str = "tidegate.in";
/// Prefix of subjects for valid deliveries the route does not act on
/// (e.g. GitHub `ping`, events outside a route's `events` list). They are
/// kept in the same stream for audit and replay, but no worker filter
/// under [`DELIVERIES_PREFIX`] matches them.
pub const IGNORED_PREFIX: &str = "tidegate.ignored";
/// Subjects captured by [`DELIVERIES_STREAM`].
pub const DELIVERIES_SUBJECTS: [&str; 2] = ["tidegate.in.>", "tidegate.ignored.>"];
/// Prefix for synchronous (request/reply) routes; never stored.
pub const SYNC_PREFIX: &str = "tidegate.sync";

/// JetStream object store bucket for bodies too large for one message
/// (envelope `payload_encoding: "object"`). Objects expire with the
/// deliveries stream's `max_age`.
pub const PAYLOADS_BUCKET: &str = "TIDEGATE_PAYLOADS";
/// The stream behind [`PAYLOADS_BUCKET`] (object store convention: `OBJ_`).
pub const PAYLOADS_STREAM: &str = "OBJ_TIDEGATE_PAYLOADS";

/// Dead letters: `tidegate.dlq.<worker>`.
pub const DEAD_LETTER_STREAM: &str = "TIDEGATE_DLQ";
pub const DEAD_LETTER_PREFIX: &str = "tidegate.dlq";
/// Job results: `tidegate.results.<worker>.<delivery token>`; the last
/// message per subject is the current status.
pub const RESULTS_STREAM: &str = "TIDEGATE_RESULTS";
pub const RESULTS_PREFIX: &str = "tidegate.results";
/// KV bucket of completed idempotency keys.
pub const IDEMPOTENCY_BUCKET: &str = "tidegate_idempotency";
/// KV bucket of replay checkpoints (`tidegate replay --resume`).
pub const REPLAYS_BUCKET: &str = "tidegate_replays";
/// KV bucket of connector state (installations, repositories).
pub const CONNECTORS_BUCKET: &str = "tidegate_connectors";
/// Worker heartbeats: `tidegate.workers.<worker>.<instance>`.
pub const HEARTBEAT_PREFIX: &str = "tidegate.workers";

/// A delivery id as one subject token: ids may contain `.`, which NATS
/// would read as a token separator, so it is written `%2E` (`%` never
/// occurs in an id).
pub fn delivery_token(delivery_id: &str) -> String {
    delivery_id.replace('.', "%2E")
}

/// Longest accepted subject token (one rendered template variable).
pub const MAX_TOKEN_LEN: usize = 128;

// --- workflows (assistant seed) ---------------------------------------------

/// KV bucket of workflow runs (`WorkflowRun` v1), one key per run
/// (`workflow::run_key`). Every write also goes out on
/// `$KV.tidegate_workflow_runs.<run key>`, which the ingress listens to for
/// synchronous workflows.
pub const WORKFLOW_RUNS_BUCKET: &str = "tidegate_workflow_runs";
/// KV bucket of runs waiting for an approval (`PendingApproval` v1).
pub const WORKFLOW_APPROVALS_BUCKET: &str = "tidegate_workflow_approvals";
/// Stream of approval decisions (`RunDecision` v1).
pub const WORKFLOW_CONTROL_STREAM: &str = "TIDEGATE_WORKFLOW_CONTROL";
/// `tidegate.workflow.control.<run key>`.
pub const WORKFLOW_CONTROL_PREFIX: &str = "tidegate.workflow.control";

/// The subject a run's KV entry is written on.
pub fn workflow_run_subject(run_key: &str) -> String {
    format!("$KV.{WORKFLOW_RUNS_BUCKET}.{run_key}")
}

/// Whether `value` is one subject token by the ingress's rules: 1 to
/// [`MAX_TOKEN_LEN`] characters from `A-Z a-z 0-9 - _ ~ @ + = :`.
pub fn is_subject_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_TOKEN_LEN
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_~@+=:".contains(&byte))
}
