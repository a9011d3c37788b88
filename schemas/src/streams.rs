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

// Connector sync (GitHub App) targets and folder locks.

/// KV bucket of live connector sync targets: key `<target id>`, value a
/// sync target v1 (`SyncTarget`). Workers watch it; `tidegate targets`
/// edits it.
pub const SYNC_TARGETS_BUCKET: &str = "tidegate_sync_targets";
/// KV bucket of folder locks: one key per target folder while a sync
/// writes it, with a per-key TTL (the lease) renewed while the sync runs.
pub const SYNC_LOCKS_BUCKET: &str = "tidegate_sync_locks";
// --- Plugin executor (`tidegate-exec`, the ductile seed) --------------------

/// Synchronous plugin commands: `tidegate.sync.plugin.<plugin>.<command>`,
/// answered by an executor replica of the queue group.
pub const PLUGIN_SYNC_PREFIX: &str = "tidegate.sync.plugin";
/// Queued plugin commands: `tidegate.in.plugin.<plugin>.<command>`, stored
/// deliveries consumed through the worker runtime.
pub const PLUGIN_QUEUED_PREFIX: &str = "tidegate.in.plugin";
/// Events plugins emit: `tidegate.in.events.<plugin>.<type>` (a dotted type
/// such as `withings.authorized` adds one token per part), stored as
/// envelopes for other workers.
pub const PLUGIN_EVENTS_PREFIX: &str = "tidegate.in.events";

/// Whether `value` can be one subject token: 1 to [`MAX_TOKEN_LEN`]
/// characters from `A-Z a-z 0-9 - _ ~ @ + = :`.
pub fn is_subject_token(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_TOKEN_LEN && value.bytes().all(is_token_byte)
}

/// Whether `byte` may appear in a subject token.
pub fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-_~@+=:".contains(&byte)
}
// --- nexus: agent inbox and consumer API -----------------------------------

/// Deliveries routed to agents: `tidegate.in.agent.<agentId>.<source>`. The
/// consumer API and the inbox worker read this layout.
pub const AGENT_PREFIX: &str = "tidegate.in.agent";
/// Durable consumers of the consumer API, one per agent and source:
/// `tidegate_api_<32 hex digits of SHA-256(agentId "\n" source)>`.
pub const API_CONSUMER_PREFIX: &str = "tidegate_api_";
/// KV bucket: the ack subject of the latest lease of every item the
/// consumer API handed out (key: the item id, its stream sequence), so any
/// ingress replica can complete a `DELETE`.
pub const API_LEASES_BUCKET: &str = "tidegate_api_leases";
/// KV bucket: the inbox worker's progress per delivery (file written,
/// notify done), so a redelivery neither writes a second file nor skips
/// the notification.
pub const INBOX_BUCKET: &str = "tidegate_inbox";

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
