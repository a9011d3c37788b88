//! The broker goes away: no 2xx without a PubAck, a prompt 503 with
//! `Retry-After`, and recovery without restarting the ingress.

use std::time::{Duration, Instant};

use super::{GITHUB_ROUTE, GITHUB_SECRET};
use crate::ingress::metric_sample;
use crate::{NatsServer, TestIngress, eventually, sign};

async fn push(ingress: &TestIngress, guid: &str) -> reqwest::Response {
    let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
    ingress
        .http
        .post(ingress.url("/v1/webhooks/connectors/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", guid)
        .header("x-hub-signature-256", sign::github(GITHUB_SECRET, body))
        .body(body.to_vec())
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the ingress answers even when the broker is down")
}

fn config() -> String {
    format!("[nats]\npublish_timeout = \"2s\"\n[http]\nretry_after = \"3s\"\n{GITHUB_ROUTE}")
}

#[tokio::test]
async fn broker_killed_answers_503_then_recovers_without_restart() {
    let mut nats = NatsServer::start().await;
    let ingress = TestIngress::start(
        &nats,
        &config(),
        &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
    )
    .await;
    assert_eq!(push(&ingress, "before").await.status(), 202);

    nats.kill();
    let started = Instant::now();
    let response = push(&ingress, "during").await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "503 took {:?}",
        started.elapsed()
    );
    assert_eq!(response.headers()["retry-after"], "3");
    let ready = ingress
        .http
        .get(ingress.url("/readyz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 503);

    nats.restart().await;
    eventually(
        Duration::from_secs(15),
        "a 202 after the broker restarts",
        || async { (push(&ingress, "after").await.status() == 202).then_some(()) },
    )
    .await;
    let ids: Vec<String> = nats
        .stored_deliveries()
        .await
        .iter()
        .map(|message| super::envelope(&message).id)
        .collect();
    // `during` may have been queued by the client and flushed on reconnect
    // (then the sender's retry is a duplicate), but `before` survived the
    // crash and `after` is stored exactly once.
    assert_eq!(ids.first().map(String::as_str), Some("before"));
    assert_eq!(ids.iter().filter(|id| *id == "after").count(), 1);
    assert!(
        ids.iter()
            .all(|id| ["before", "during", "after"].contains(&id.as_str()))
    );
}

/// A stream deleted while the ingress runs stays deleted until an operator
/// acts: every delivery answers 503 (never 2xx), `/readyz` says why and
/// the metric counts it; `tidegate streams ensure` brings it back and the
/// running ingress accepts again.
#[tokio::test]
async fn a_deleted_stream_answers_503_until_an_operator_recreates_it() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(
        &nats,
        &config(),
        &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
    )
    .await;
    assert_eq!(push(&ingress, "before").await.status(), 202);
    let jetstream = nats.jetstream().await;
    jetstream
        .delete_stream(schemas::streams::DELIVERIES_STREAM)
        .await
        .expect("deleting the stream");

    let response = push(&ingress, "lost").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "3");
    let reason = eventually(
        Duration::from_secs(10),
        "/readyz to name the missing stream",
        || async {
            let response = ingress.http.get(ingress.url("/readyz")).send().await.ok()?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.ok()?;
            let reason = body["reason"].as_str()?.to_owned();
            (status == 503 && reason.contains("does not exist")).then_some(reason)
        },
    )
    .await;
    assert_eq!(reason, "the deliveries stream does not exist");
    // Not recreated behind the operator's back, whatever the senders do.
    for attempt in 0..5 {
        let status = push(&ingress, &format!("retry-{attempt}")).await.status();
        assert_eq!(status, 503);
    }
    assert!(
        jetstream
            .get_stream(schemas::streams::DELIVERIES_STREAM)
            .await
            .is_err(),
        "the ingress recreated the stream"
    );
    let missing = metric_sample(
        &ingress.metrics().await,
        "tidegate_ingress_stream_missing_total",
        &[],
    )
    .expect("the stream-missing counter");
    assert!(missing >= 1.0, "{missing}");

    let recreated = crate::cli::tidegate(&nats, &["streams", "ensure"])
        .await
        .success();
    assert!(
        recreated.stdout.contains("TIDEGATE_DELIVERIES"),
        "{recreated:?}"
    );
    eventually(
        Duration::from_secs(10),
        "a 202 after the stream is back",
        || async { (push(&ingress, "again").await.status() == 202).then_some(()) },
    )
    .await;
    let ids: Vec<String> = nats
        .stored_deliveries()
        .await
        .iter()
        .map(|message| super::envelope(&message).id)
        .collect();
    assert_eq!(ids, ["again"]);
}

#[tokio::test]
async fn the_ingress_starts_while_the_broker_is_down() {
    let port = crate::nats::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let ingress =
        TestIngress::start_unready(&url, &config(), &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)])
            .await;
    eventually(Duration::from_secs(10), "the ingress to listen", || async {
        let response = ingress
            .http
            .get(ingress.url("/healthz"))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    assert_eq!(push(&ingress, "early").await.status(), 503);
    let ready = ingress
        .http
        .get(ingress.url("/readyz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 503);

    let nats = NatsServer::start_on_port(port).await;
    ingress.wait_ready().await;
    assert_eq!(push(&ingress, "late").await.status(), 202);
    assert_eq!(nats.stored_deliveries().await.len(), 1);
}
