//! NATS header names set on every stored delivery. Consumers can route and
//! filter on these without parsing the envelope body.

/// JetStream's de-duplication header: the delivery's dedupe key.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// Envelope format version of the message body (`1`).
pub const ENVELOPE_VERSION: &str = "Tidegate-Envelope";
/// The envelope's `id` (the delivery id).
pub const DELIVERY_ID: &str = "Tidegate-Delivery-Id";
/// The configured route name that accepted the delivery.
pub const ROUTE: &str = "Tidegate-Route";
/// The delivery's event name, when the route has an event source.
pub const EVENT: &str = "Tidegate-Event";
/// Set on replayed messages: the stream sequence of the original delivery.
pub const REPLAY_OF: &str = "Tidegate-Replay-Of";
/// Set by a replay aimed at one worker: other workers ack and ignore it.
pub const REPLAY_FOR: &str = "Tidegate-Replay-For";
/// Set by `replay --force`: run the job even if its idempotency key completed.
pub const REPLAY_FORCE: &str = "Tidegate-Replay-Force";
