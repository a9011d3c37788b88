//! NATS header names set on every stored delivery. Consumers can route and
//! filter on these without parsing the envelope body.

/// JetStream's de-duplication header: the delivery's dedupe key.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// Envelope format: `1` (the body is the v1 JSON document) or `2` (the
/// body is the request body, the fields are the headers in [`v2`]).
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

/// The envelope v2 header set (see `schemas::envelope::v2`), beside
/// [`DELIVERY_ID`], [`ROUTE`] and [`EVENT`] above: one header per scalar
/// field, one compact JSON object per structured one (every header costs
/// its publisher a map insert, so structure is not spread over dozens).
pub mod v2 {
    pub const SOURCE: &str = "Tidegate-Source";
    pub const AGENT: &str = "Tidegate-Agent";
    pub const RECEIVED_AT: &str = "Tidegate-Received-At";
    pub const METHOD: &str = "Tidegate-Method";
    pub const PATH: &str = "Tidegate-Path";
    /// The query string as received, percent-encoded, without the `?`.
    pub const QUERY: &str = "Tidegate-Query";
    pub const CONTENT_TYPE: &str = "Tidegate-Content-Type";
    /// What the message data is: `json` (one JSON value, checked by the
    /// ingress), `bytes` (anything else), `empty`, or `object` (the body is
    /// in the object store; the data is empty).
    pub const BODY: &str = "Tidegate-Body";
    /// With `object`: the body's `{bucket, name, size, sha256}`, as JSON.
    pub const OBJECT: &str = "Tidegate-Object";
    /// GitHub routes: the normalized fields, as the JSON object v1 names
    /// `github` (camelCase).
    pub const GITHUB: &str = "Tidegate-Github";
    /// The path parameters, as a JSON object (when there are any).
    pub const PARAMS: &str = "Tidegate-Params";
    /// The safe request headers, as a JSON object of lower-case name to
    /// value.
    pub const HEADERS: &str = "Tidegate-Headers";
}
