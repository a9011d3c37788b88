//! Stream names and subject layout, declared once. The ingress creates the
//! deliveries stream; workers and the CLI read these names from here.
//!
//! ```text
//! tidegate.in.<rendered route subject>       deliveries for workers (stored)
//! tidegate.ignored.<route>.<event>           valid but ignored events (stored, audit only)
//! tidegate.sync.<rendered route subject>     request/reply routes (not stored)
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

/// Longest accepted subject token (one rendered template variable).
pub const MAX_TOKEN_LEN: usize = 128;
