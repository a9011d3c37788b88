//! The broker goes away: no 2xx without a PubAck, a prompt 503 with
//! `Retry-After`, and recovery without restarting the ingress.

use std::time::{Duration, Instant};

use super::{GITHUB_ROUTE, GITHUB_SECRET};
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
    format!("[nats]\npublish_timeout = \"2s\"\nretry_after = \"3s\"\n{GITHUB_ROUTE}")
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
        .map(|message| super::envelope(&message.payload).id)
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

#[tokio::test]
async fn a_deleted_stream_is_recreated_and_never_answered_2xx_meanwhile() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(
        &nats,
        &config(),
        &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
    )
    .await;
    let jetstream = nats.jetstream().await;
    jetstream
        .delete_stream(schemas::streams::DELIVERIES_STREAM)
        .await
        .expect("deleting the stream");
    let status = push(&ingress, "lost").await.status();
    // Either the publish found no stream (503), or the ingress recreated
    // it first (202) — never a 2xx for an unstored delivery.
    if status == 202 {
        assert_eq!(nats.stored_deliveries().await.len(), 1);
    } else {
        assert_eq!(status, 503);
    }
    eventually(
        Duration::from_secs(10),
        "the stream to be recreated",
        || async { (push(&ingress, "again").await.status() == 202).then_some(()) },
    )
    .await;
    let stored = nats.stored_deliveries().await;
    assert!(
        stored
            .iter()
            .any(|message| super::envelope(&message.payload).id == "again")
    );
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
