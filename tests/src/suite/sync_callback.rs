//! The ductile route: `GET /webhook/{plugin}/{command}` answered
//! synchronously by a worker over NATS request/reply, token-gated.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use super::envelope;
use crate::{NatsServer, TestIngress};

const PLUGIN_ROUTE: &str = r#"
[[routes]]
name = "plugin"
path = "/webhook/{plugin}/{command}"
methods = ["GET"]
mode = "sync"
subject = "plugin.{plugin}.{command}"
source = "{plugin}"
timeout = "1s"
[routes.verifier]
kind = "bearer"
secrets = [{ env = "TIDEGATE_API_TOKEN" }]
"#;

const TOKEN: &str = "api-token-7f3e";

async fn start() -> (NatsServer, TestIngress) {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, PLUGIN_ROUTE, &[("TIDEGATE_API_TOKEN", TOKEN)]).await;
    (nats, ingress)
}

fn callback(ingress: &TestIngress, token: Option<&str>) -> reqwest::RequestBuilder {
    let request = ingress
        .http
        .get(ingress.url("/webhook/withings/oauth_callback?code=ABC123&state=XYZ"));
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

#[tokio::test]
async fn without_a_worker_the_route_answers_503_with_a_clear_body() {
    let (nats, ingress) = start().await;
    let response = callback(&ingress, Some(TOKEN)).send().await.expect("sent");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "no_worker");
    assert!(
        nats.stored_deliveries().await.is_empty(),
        "sync routes are not stored"
    );
}

#[tokio::test]
async fn the_token_is_required() {
    let (_nats, ingress) = start().await;
    assert_eq!(
        callback(&ingress, None)
            .send()
            .await
            .expect("sent")
            .status(),
        401
    );
    assert_eq!(
        callback(&ingress, Some("wrong"))
            .send()
            .await
            .expect("sent")
            .status(),
        403
    );
}

#[tokio::test]
async fn a_workers_reply_is_the_response() {
    let (nats, ingress) = start().await;
    let client = nats.client().await;
    let mut requests = client
        .subscribe("tidegate.sync.plugin.withings.oauth_callback")
        .await
        .expect("subscribe");
    crate::nats::round_trip(&client).await;
    let worker = tokio::spawn(async move {
        let request = requests.next().await.expect("a request arrives");
        let envelope = envelope(&request);
        assert_eq!(
            envelope.query.get("code").map(String::as_str),
            Some("ABC123")
        );
        assert_eq!(envelope.query.get("state").map(String::as_str), Some("XYZ"));
        assert_eq!(envelope.payload_encoding, schemas::PayloadEncoding::Empty);
        assert!(
            !envelope.headers.contains_key("authorization"),
            "token forwarded"
        );
        let reply = json!({
            "status": 200,
            "body": { "status": "ok", "events": [{ "type": "withings.authorized" }] }
        });
        client
            .publish(
                request.reply.expect("a reply subject"),
                reply.to_string().into(),
            )
            .await
            .expect("reply");
        client.flush().await.expect("flush");
    });
    let response = callback(&ingress, Some(TOKEN)).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["events"][0]["type"], "withings.authorized");
    worker.await.expect("the worker saw the expected envelope");
}

#[tokio::test]
async fn a_silent_worker_times_out_with_504() {
    let (nats, ingress) = start().await;
    let client = nats.client().await;
    let _requests = client
        .subscribe("tidegate.sync.plugin.>")
        .await
        .expect("subscribe");
    crate::nats::round_trip(&client).await;
    let response = callback(&ingress, Some(TOKEN))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 504);
}
