//! The nexus route: `POST /api/webhook/{agentId}?source=...`, a secret per
//! agent and source (or per agent; the pair wins), open where none is
//! configured, hostile agent ids, bodies stored byte for byte. The consumer
//! API and the inbox worker have their own modules.

mod consumer_api;
mod worker;

use base64::Engine as _;

use super::{envelope, json};
use crate::logs::CapturedLogs;
use crate::{NatsServer, TestIngress};

/// The route as `deploy/examples/tidegate.toml` has it: bodies never
/// parsed, the pair's secret, else the agent's.
pub(crate) const SEED_ROUTE: &str = r#"
[[routes]]
name = "agent"
path = "/api/webhook/{agentId}"
subject = "agent.{agentId}.{query.source}"
agent = "{agentId}"
source = "{query.source}"
validate_json = false
[routes.verifier]
kind = "shared_secret"
header = "X-Webhook-Secret"
secret_env = ["WEBHOOK_SECRET_{agentId}_{query.source}", "WEBHOOK_SECRET_{agentId}"]
if_unset = "open"
"#;

/// The seed's example request body, verbatim.
pub(crate) const SEED_BODY: &str = r#"{
  "transfer_id": 12345,
  "file_id": 67890,
  "name": "Movie.2024.1080p.mkv",
  "size": 5000000000,
  "parent_id": 930386098,
  "status": "COMPLETED"
}"#;

/// The seed's example request: `POST /api/webhook/flickclaw?source=putio`
/// with `X-Webhook-Secret: abc123`. Returns the delivery id.
pub(crate) async fn send_seed_request(ingress: &TestIngress) -> String {
    let response = ingress
        .http
        .post(ingress.url("/api/webhook/flickclaw?source=putio"))
        .header("Content-Type", "application/json")
        .header("X-Webhook-Secret", "abc123")
        .body(SEED_BODY)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    json(response).await["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// Posts `body` as `content_type` to an agent without a secret; returns
/// the delivery id.
pub(crate) async fn send_open(
    ingress: &TestIngress,
    agent: &str,
    source: &str,
    content_type: &str,
    body: &[u8],
) -> String {
    let response = ingress
        .http
        .post(ingress.url(&format!("/api/webhook/{agent}?source={source}")))
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202, "{agent}/{source}");
    json(response).await["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// A body sent as JSON that is not JSON, and a body that is not JSON at
/// all: the seed stores both as they are.
pub(crate) const INVALID_JSON: &[u8] = b"{\"transfer_id\": 12345, \"status\": ";
pub(crate) const PLAIN_TEXT: &[u8] = b"transfer 12345 COMPLETED\r\n\xff\x00";

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
    let envelope = envelope(&stored[0]);
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

#[tokio::test]
async fn the_pair_secret_wins_over_the_agent_secret() {
    let logs = CapturedLogs::install();
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(
        &nats,
        SEED_ROUTE,
        &[
            ("WEBHOOK_SECRET_flickclaw_putio", "abc123"),
            ("WEBHOOK_SECRET_flickclaw", "flickclaw-any-source"),
        ],
    )
    .await;
    let putio = "/api/webhook/flickclaw?source=putio";
    let github = "/api/webhook/flickclaw?source=github";
    assert_eq!(post(&ingress, putio, None).await.status(), 401);
    assert_eq!(post(&ingress, putio, Some("wrong")).await.status(), 403);
    assert_eq!(
        post(&ingress, putio, Some("flickclaw-any-source"))
            .await
            .status(),
        403,
        "the agent secret stood in for the pair's"
    );
    assert_eq!(post(&ingress, putio, Some("abc123")).await.status(), 202);
    assert_eq!(post(&ingress, github, None).await.status(), 401);
    assert_eq!(post(&ingress, github, Some("abc123")).await.status(), 403);
    assert_eq!(
        post(&ingress, github, Some("flickclaw-any-source"))
            .await
            .status(),
        202
    );
    // Neither is set for another agent: open, as designed.
    assert_eq!(
        post(&ingress, "/api/webhook/stewardclaw?source=putio", None)
            .await
            .status(),
        202
    );
    assert_eq!(nats.stored_deliveries().await.len(), 3);
    let logs = logs.text();
    assert!(
        logs.contains("ROUTE ACCEPTS UNSIGNED REQUESTS") && logs.contains("route=agent"),
        "no start-up warning for the open agent route"
    );
    assert!(!logs.contains("abc123") && !logs.contains("flickclaw-any-source"));
}

#[tokio::test]
async fn bodies_are_stored_byte_for_byte_whatever_they_are() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, SEED_ROUTE, &[]).await;
    let sent = [
        ("application/json", INVALID_JSON),
        ("text/plain", PLAIN_TEXT),
        ("application/json", SEED_BODY.as_bytes()),
    ];
    for (content_type, body) in sent {
        send_open(&ingress, "flickclaw", "putio", content_type, body).await;
    }
    let stored = nats.stored_deliveries().await;
    assert_eq!(stored.len(), 3);
    for ((content_type, body), message) in sent.iter().zip(&stored) {
        let envelope = envelope(&message);
        let payload = envelope.payload.expect("a payload");
        let bytes = match envelope.payload_encoding {
            schemas::PayloadEncoding::Json => payload.get().as_bytes().to_vec(),
            schemas::PayloadEncoding::Base64 => {
                let text: String = serde_json::from_str(payload.get()).expect("a string");
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .expect("base64")
            }
            other => panic!("unexpected encoding {other:?}"),
        };
        assert_eq!(&bytes, body, "{content_type}");
        assert_eq!(envelope.content_type.as_deref(), Some(*content_type));
    }
}

#[tokio::test]
async fn routes_that_validate_json_still_refuse_invalid_json() {
    let (nats, ingress) = start().await;
    let response = ingress
        .http
        .post(ingress.url("/api/webhook/stewardclaw?source=putio"))
        .header("content-type", "application/json")
        .body(INVALID_JSON)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    assert!(nats.stored_deliveries().await.is_empty());
}
