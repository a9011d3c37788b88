//! Secrets never appear in logs, responses or stored envelopes, whatever
//! the request does with them.

use super::{GITHUB_ROUTE, GITHUB_SECRET};
use crate::logs::CapturedLogs;
use crate::{NatsServer, TestIngress, sign};

const AGENT_SECRET: &str = "agent-secret-91be";
const TOKEN: &str = "bearer-secret-5d0a";

const ROUTES: &str = r#"
[[routes]]
name = "agent"
path = "/api/webhook/{agentId}"
subject = "agent.{agentId}"
[routes.verifier]
kind = "shared_secret"
secret_env = "WEBHOOK_SECRET_{agentId}_{query.source}"

[[routes]]
name = "token"
path = "/token"
subject = "token"
[routes.verifier]
kind = "bearer"
secrets = [{ env = "TIDEGATE_API_TOKEN" }]
"#;

#[tokio::test]
async fn secrets_never_reach_logs_responses_or_the_stream() {
    let logs = CapturedLogs::install();
    let nats = NatsServer::start().await;
    let routes = format!("[nats]\nname = \"secrets-test\"\n{GITHUB_ROUTE}{ROUTES}");
    let ingress = TestIngress::start(
        &nats,
        &routes,
        &[
            ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET),
            ("WEBHOOK_SECRET_bot_putio", AGENT_SECRET),
            ("TIDEGATE_API_TOKEN", TOKEN),
        ],
    )
    .await;
    let mut bodies = Vec::new();
    let body = br#"{"ref":"refs/heads/main"}"#;
    let github = |signature: String| {
        ingress
            .http
            .post(ingress.url("/v1/webhooks/connectors/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", "s1")
            .header("x-hub-signature-256", signature)
            .body(body.to_vec())
    };
    let agent = |secret: &str| {
        ingress
            .http
            .post(ingress.url("/api/webhook/bot?source=putio"))
            .header("content-type", "application/json")
            .header("x-webhook-secret", secret)
            .body("{}")
    };
    let token = |value: &str| {
        ingress
            .http
            .post(ingress.url("/token"))
            .bearer_auth(value)
            .body("x")
    };
    let requests = [
        github(sign::github(GITHUB_SECRET, body)),
        github(sign::github("wrong", body)),
        github(GITHUB_SECRET.to_owned()),
        agent(AGENT_SECRET),
        agent(&format!("{AGENT_SECRET}x")),
        token(TOKEN),
        token(&format!("{TOKEN}x")),
    ];
    let mut statuses = Vec::new();
    for request in requests {
        let response = request.send().await.expect("sent");
        statuses.push(response.status().as_u16());
        bodies.push(response.text().await.expect("text"));
    }
    assert_eq!(statuses, [202, 401, 401, 202, 403, 202, 403]);

    let stored: Vec<String> = nats
        .stored_deliveries()
        .await
        .iter()
        .map(|message| String::from_utf8_lossy(&message.payload).into_owned())
        .collect();
    assert_eq!(stored.len(), 3);
    let logs = logs.text();
    assert!(logs.contains("delivery"), "logging was captured at all");
    for secret in [GITHUB_SECRET, AGENT_SECRET, TOKEN] {
        assert!(!logs.contains(secret), "a secret appears in the logs");
        for text in bodies.iter().chain(&stored) {
            assert!(
                !text.contains(secret),
                "a secret appears in a response or envelope"
            );
        }
    }
}
