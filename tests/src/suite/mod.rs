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
mod dedupe_record;
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

/// A message that holds a delivery: a stored one, or a sync request.
pub(crate) trait HoldsDelivery {
    fn parts(&self) -> (&str, Option<&async_nats::HeaderMap>, &bytes::Bytes);
}

impl HoldsDelivery for async_nats::jetstream::message::StreamMessage {
    fn parts(&self) -> (&str, Option<&async_nats::HeaderMap>, &bytes::Bytes) {
        (self.subject.as_str(), Some(&self.headers), &self.payload)
    }
}

impl HoldsDelivery for async_nats::Message {
    fn parts(&self) -> (&str, Option<&async_nats::HeaderMap>, &bytes::Bytes) {
        (self.subject.as_str(), self.headers.as_ref(), &self.payload)
    }
}

impl<T: HoldsDelivery> HoldsDelivery for &T {
    fn parts(&self) -> (&str, Option<&async_nats::HeaderMap>, &bytes::Bytes) {
        (**self).parts()
    }
}

/// A stored delivery's headers without its `Nats-Msg-Id`: what a copy
/// published again past the duplicate window carries.
pub(crate) fn copy_headers(
    message: &async_nats::jetstream::message::StreamMessage,
) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in broker::envelope::header_pairs(&message.headers) {
        if name != schemas::headers::MSG_ID {
            headers.append(name, value);
        }
    }
    headers
}

/// The delivery in a message as one envelope v1 document (a v2 message is
/// rendered), with the payload embedded, for assertions on any field.
pub(crate) fn envelope(message: &impl HoldsDelivery) -> schemas::Envelope {
    let (subject, headers, data) = message.parts();
    let read = broker::envelope::read(subject, headers, data).expect("the message is a delivery");
    let v1 = read.v1_json();
    serde_json::from_slice(&v1).expect("the v1 rendering is an envelope v1")
}

pub(crate) async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("response body is JSON")
}
