//! The nexus route: `POST /api/webhook/{agentId}?source=...`, a secret per
//! agent and source, open where none is configured, hostile agent ids.

use super::{envelope, json};
use crate::{NatsServer, TestIngress};

const AGENT_ROUTE: &str = r#"
[[routes]]
name = "agent"
path = "/api/webhook/{agentId}"
subject = "agent.{agentId}.{query.source}"
agent = "{agentId}"
source = "{query.source}"
[routes.verifier]
kind = "shared_secret"
header = "X-Webhook-Secret"
secret_env = "WEBHOOK_SECRET_{agentId}_{query.source}"
if_unset = "open"
"#;

const PUTIO: &str =
    r#"{"transfer_id":12345,"file_id":67890,"name":"Movie.2024.1080p.mkv","status":"COMPLETED"}"#;

async fn start() -> (NatsServer, TestIngress) {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(
        &nats,
        AGENT_ROUTE,
        &[("WEBHOOK_SECRET_flickclaw_putio", "abc123")],
    )
    .await;
    (nats, ingress)
}

async fn post(
    ingress: &TestIngress,
    path_and_query: &str,
    secret: Option<&str>,
) -> reqwest::Response {
    let mut request = ingress
        .http
        .post(ingress.url(path_and_query))
        .header("content-type", "application/json")
        .body(PUTIO);
    if let Some(secret) = secret {
        request = request.header("x-webhook-secret", secret);
    }
    request.send().await.expect("sent")
}

#[tokio::test]
async fn a_configured_secret_is_required_for_its_agent_and_source() {
    let (nats, ingress) = start().await;
    let url = "/api/webhook/flickclaw?source=putio";
    assert_eq!(post(&ingress, url, None).await.status(), 401);
    assert_eq!(post(&ingress, url, Some("abc12")).await.status(), 403);
    let accepted = post(&ingress, url, Some("abc123")).await;
    assert_eq!(accepted.status(), 202);
    let id = json(accepted).await["id"].as_str().expect("id").to_owned();

    let stored = nats.stored_deliveries().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].subject.as_str(),
        "tidegate.in.agent.flickclaw.putio"
    );
    let envelope = envelope(&stored[0].payload);
    assert_eq!(envelope.id, id);
    assert_eq!(envelope.agent.as_deref(), Some("flickclaw"));
    assert_eq!(envelope.source, "putio");
    assert_eq!(envelope.payload.expect("payload").get(), PUTIO);
    assert!(
        !envelope.headers.contains_key("x-webhook-secret"),
        "the shared secret was stored"
    );
}

#[tokio::test]
async fn agents_and_sources_without_a_secret_are_open() {
    let (nats, ingress) = start().await;
    // Same agent, other source; and another agent: no secret configured.
    assert_eq!(
        post(&ingress, "/api/webhook/flickclaw?source=github", None)
            .await
            .status(),
        202
    );
    assert_eq!(
        post(&ingress, "/api/webhook/stewardclaw?source=putio", None)
            .await
            .status(),
        202
    );
    let subjects: Vec<String> = nats
        .stored_deliveries()
        .await
        .iter()
        .map(|message| message.subject.to_string())
        .collect();
    assert_eq!(
        subjects,
        [
            "tidegate.in.agent.flickclaw.github",
            "tidegate.in.agent.stewardclaw.putio"
        ]
    );
}

#[tokio::test]
async fn hostile_agent_ids_and_sources_never_reach_a_subject() {
    let (nats, ingress) = start().await;
    let long = "a".repeat(129);
    let hostile = [
        "/api/webhook/flickclaw.putio?source=putio".to_owned(),
        "/api/webhook/flickclaw%2Eother?source=putio".to_owned(),
        "/api/webhook/%2A?source=putio".to_owned(),
        "/api/webhook/%3E?source=putio".to_owned(),
        "/api/webhook/a%20b?source=putio".to_owned(),
        "/api/webhook/a%09b?source=putio".to_owned(),
        "/api/webhook/a%00b?source=putio".to_owned(),
        "/api/webhook/%24JS?source=putio".to_owned(),
        format!("/api/webhook/{long}?source=putio"),
        "/api/webhook/flickclaw?source=put.io".to_owned(),
        "/api/webhook/flickclaw?source=%3E".to_owned(),
        "/api/webhook/flickclaw?source=".to_owned(),
        "/api/webhook/flickclaw".to_owned(),
    ];
    for path in &hostile {
        let response = post(&ingress, path, Some("abc123")).await;
        assert_eq!(response.status(), 400, "{path}");
    }
    assert!(
        nats.stored_deliveries().await.is_empty(),
        "a hostile request was stored"
    );
}
