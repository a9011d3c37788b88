//! The integration suite: one module per feature, each test with its own
//! nats-server and ingress.

mod abuse;
mod agent_inbox;
mod bench_guard;
mod broker_down;
mod broker_faults;
mod cli;
mod cluster;
mod dedupe;
mod dev_mode;
mod dlq;
mod faults;
mod forward;
mod github;
mod github_app;
mod github_sync;
mod http_edges;
mod large_payloads;
mod plugin_exec;
mod replay;
mod secrets;
mod secured;
mod slow_clients;
mod sync_callback;
mod workflows;

use serde_json::Value;

/// The openwork route from the example config, with a literal secret.
pub(crate) const GITHUB_ROUTE: &str = r#"
[[routes]]
name = "github"
path = "/v1/webhooks/connectors/github"
subject = "github.{event}"
normalize = "github"
events = ["push", "installation", "installation_repositories", "repository"]
body_limit = "64KiB"
content_types = ["application/json", "application/x-www-form-urlencoded"]
[routes.verifier]
kind = "github"
secrets = [{ env = "GITHUB_WEBHOOK_SECRET" }]
invalid_status = 401
"#;

pub(crate) const GITHUB_SECRET: &str = "gh-test-secret-2f9c";

/// Parses a stored envelope.
pub(crate) fn envelope(payload: &[u8]) -> schemas::Envelope {
    serde_json::from_slice(payload).expect("stored message is an envelope v1")
}

pub(crate) async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("response body is JSON")
}
