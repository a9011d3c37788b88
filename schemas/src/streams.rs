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
