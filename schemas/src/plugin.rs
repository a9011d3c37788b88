//! Plugin protocol v1: the JSON `tidegate-exec` writes to a plugin's stdin
//! (`PluginRequest`) and reads from its stdout (`PluginResponse`). The JSON
//! Schemas `plugin-request.v1` and `plugin-response.v1` describe the same
//! shapes, so plugins can be written in any language.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version the executor writes.
pub const PROTOCOL: u32 = 1;

/// One command invocation, written to the plugin's stdin (then closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRequest {
    /// Always [`PROTOCOL`].
    pub protocol: u32,
    /// The command to run, as named in the manifest.
    pub command: String,
    /// The command's input, already checked against its `input_schema`:
    /// the JSON body of a POST, or the query of a GET as an object.
    pub payload: Value,
    /// The plugin's `config` table from the executor's configuration (an
    /// object; empty when none is configured).
    pub config: Value,
    pub context: PluginContext,
}

/// Where the invocation comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginContext {
    /// The delivery id of the request (sync) or stored delivery (queued).
    pub delivery_id: String,
    pub plugin: String,
    pub command: String,
    pub mode: InvocationMode,
    /// The ingress route that accepted the request.
    pub route: String,
    /// RFC 3339 time the ingress received the request.
    pub received_at: String,
    /// Delivery attempt, from 1 (always 1 for sync requests).
    pub attempt: u64,
    /// The plugin's own writable folder (also `TIDEGATE_PLUGIN_DATA`).
    pub data_dir: String,
    /// The query string as received, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_query: Option<String>,
}

/// How the command was invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationMode {
    /// A request waiting for the answer (`GET /webhook/{plugin}/{command}`).
    Sync,
    /// A stored delivery run by the worker runtime (retries, dead letters).
    Queued,
}

/// What a plugin prints on stdout: one JSON object. Other fields (such as
/// a ductile plugin's `logs`) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginResponse {
    pub status: PluginStatus,
    /// The command's result: the HTTP response body's `result` for a sync
    /// request, recorded in the job result for a queued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Events to publish for other workers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<PluginEvent>,
    /// With `status: error`: what went wrong, for a person to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `status: error`: whether trying again later may succeed (a
    /// queued command is then retried; otherwise it is dead-lettered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginStatus {
    Ok,
    Error,
}

/// One event a command emits: published as an envelope on
/// `tidegate.in.events.<plugin>.<type>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginEvent {
    /// Dot-separated subject tokens, such as `withings.authorized`.
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}
