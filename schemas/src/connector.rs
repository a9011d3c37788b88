//! The openwork connector's sync-job contract (`GithubConnectorSyncJob`),
//! field for field: every job result and dead letter of a connector sync
//! carries it, so a consumer can keep its `connector_sync_event` rows from
//! the results alone.

use serde::{Deserialize, Serialize};

/// `connectorType` of the GitHub connector.
pub const GITHUB_CONNECTOR: &str = "github";

/// Which sync a result is about (camelCase, as the seed names the fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectorSync {
    /// `github`.
    pub connector_type: String,
    /// The connector instance the target belongs to (target config).
    pub connector_instance_id: String,
    /// The target's id (target config).
    pub connector_target_id: String,
    /// Stable for one sync: `<target id>:<repository id>:<head SHA>`, the
    /// sync's idempotency key without the `github-sync:` prefix, so every
    /// delivery and attempt of one head SHA names the same event.
    pub connector_sync_event_id: String,
    /// `X-GitHub-Delivery` of the delivery this attempt ran for (the GUID;
    /// the result's own `delivery_id` is tidegate's `<hook id>_<GUID>`).
    pub delivery_id: String,
    /// `installation.id` of the push, when it has one (GitHub App pushes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
    /// `repository.id`, when the payload has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<u64>,
    /// `owner/name`.
    pub repository_full_name: String,
    /// `refs/heads/<branch>`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The pushed head commit.
    pub head_sha: String,
}
