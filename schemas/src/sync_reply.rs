//! Sync reply v1: what a worker answers to a request on a `tidegate.sync.>`
//! subject. The ingress turns it into the HTTP response.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A worker's answer to a synchronous route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncReply {
    /// HTTP status for the caller, 200 to 599.
    pub status: u16,
    /// Extra response headers (e.g. `location` for a redirect).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Media type of the response; `application/json` by default. With any
    /// other media type, `body` must be a string and is sent as its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The response body; absent for an empty body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Box<RawValue>>,
}
