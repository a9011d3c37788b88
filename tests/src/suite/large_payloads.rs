//! Bodies past the broker's `max_payload`: GitHub's 25 MiB default limit,
//! the object store path (`payload_encoding: "object"`), `fetch_payload`,
//! and no 2xx unless both the object and the envelope are stored.

use std::time::Duration;

use broker::payload::{PayloadError as FetchError, fetch as fetch_payload};
use schemas::streams::{PAYLOADS_BUCKET, PAYLOADS_STREAM};
use schemas::{PayloadEncoding, PayloadRef};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{GITHUB_SECRET, envelope, json};
use crate::{NatsServer, TestIngress, eventually, sign};

/// The GitHub route of `GITHUB_ROUTE` without `body_limit`: the 25 MiB
/// default for `normalize = "github"` applies.
const LARGE_GITHUB_ROUTE: &str = r#"
[[routes]]
name = "github"
path = "/v1/webhooks/connectors/github"
subject = "github.{event}"
normalize = "github"
events = ["push", "installation", "installation_repositories", "repository"]
content_types = ["application/json", "application/x-www-form-urlencoded"]
[routes.verifier]
kind = "github"
secrets = [{ env = "GITHUB_WEBHOOK_SECRET" }]
invalid_status = 401
"#;

const PATH: &str = "/v1/webhooks/connectors/github";
const MAX_PAYLOAD: usize = 1 << 20;
const GITHUB_CAP: usize = 25 << 20;

/// A broker with the default 1 MiB `max_payload`, written out so the test
/// does not depend on the server's default.
async fn start() -> (NatsServer, TestIngress) {
    let nats = NatsServer::start_with_config("max_payload: 1MB").await;
    assert_eq!(
        nats.client().await.server_info().max_payload,
        MAX_PAYLOAD,
        "the test assumes a 1 MiB max_payload"
    );
    let ingress = TestIngress::start(
        &nats,
        LARGE_GITHUB_ROUTE,
        &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
    )
    .await;
    (nats, ingress)
}

/// A valid push payload of exactly `size` bytes: the normalized fields,
/// then a padding string.
fn push_body(size: usize) -> Vec<u8> {
    let head = br#"{"ref":"refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","installation":{"id":42},"repository":{"id":1296269,"full_name":"octocat/Hello-World"},"padding":""#;
    let tail = br#""}"#;
    let padding = size
        .checked_sub(head.len() + tail.len())
        .expect("size leaves room for the fields");
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head);
    body.extend(std::iter::repeat_n(b'x', padding));
    body.extend_from_slice(tail);
    body
}

async fn send(ingress: &TestIngress, guid: &str, body: &[u8]) -> reqwest::Response {
    ingress
        .http
        .post(ingress.url(PATH))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", guid)
        .header("x-github-hook-id", "77")
        .header("x-hub-signature-256", sign::github(GITHUB_SECRET, body))
        .body(body.to_vec())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("request is sent")
}

/// Messages in the payload bucket's stream (chunks and object infos).
async fn bucket_messages(nats: &NatsServer) -> u64 {
    let jetstream = nats.jetstream().await;
    let mut stream = jetstream
        .get_stream(PAYLOADS_STREAM)
        .await
        .expect("the ingress created the payload bucket");
    stream.info().await.expect("stream info").state.messages
}

/// Sends a push of `size` bytes and checks it was stored as an object
/// reference whose object holds exactly the body.
async fn large_push_round_trips(size: usize) {
    let (nats, ingress) = start().await;
    let body = push_body(size);
    let response = send(&ingress, "big-1", &body).await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        json(response).await,
        json!({ "id": "77_big-1", "duplicate": false })
    );

    let stored = nats.stored_deliveries().await;
    assert_eq!(stored.len(), 1);
    let message = &stored[0];
    assert_eq!(message.subject.as_str(), "tidegate.in.github.push");
    assert!(message.payload.len() < 16 << 10, "the envelope stays small");
    let envelope = envelope(&message);
    assert_eq!(envelope.payload_encoding, PayloadEncoding::Object);
    assert!(envelope.payload.is_none(), "the body is not embedded");
    let reference = envelope.payload_ref.expect("an object reference");
    let sha256 = hex::encode(Sha256::digest(&body));
    assert_eq!(reference.bucket, PAYLOADS_BUCKET);
    assert_eq!(reference.size, size as u64);
    assert_eq!(reference.sha256, sha256);
    assert!(
        reference.name.starts_with("github.77_big-1."),
        "{}",
        reference.name
    );
    // Normalization read the body before it was uploaded.
    let github = envelope.github.expect("normalized fields");
    assert_eq!(github.installation_id, Some(42));
    assert_eq!(
        github.repository_full_name.as_deref(),
        Some("octocat/Hello-World")
    );

    let fetched = fetch_payload(&nats.jetstream().await, &reference)
        .await
        .expect("the object is fetched and verified");
    assert_eq!(hex::encode(Sha256::digest(&fetched)), sha256);
    assert!(
        fetched[..] == body[..],
        "fetched bytes differ from the body"
    );

    // A redelivery finds the identical object and is a duplicate envelope.
    let objects = bucket_messages(&nats).await;
    let again = send(&ingress, "big-1", &body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(json(again).await["duplicate"], true);
    assert_eq!(nats.stored_deliveries().await.len(), 1);
    assert_eq!(
        bucket_messages(&nats).await,
        objects,
        "the redelivery uploaded the body again"
    );
}

#[tokio::test]
async fn a_5_mb_push_goes_to_the_object_store() {
    large_push_round_trips(5_000_000).await;
}

#[tokio::test]
async fn a_push_at_githubs_25_mib_cap_goes_to_the_object_store() {
    large_push_round_trips(GITHUB_CAP).await;
}

#[tokio::test]
async fn one_byte_past_the_25_mib_default_is_refused_and_stores_nothing() {
    let (nats, ingress) = start().await;
    let response = send(&ingress, "too-big", &push_body(GITHUB_CAP + 1)).await;
    assert_eq!(response.status(), 413);
    assert!(nats.stored_deliveries().await.is_empty());
    assert_eq!(bucket_messages(&nats).await, 0);
}

#[tokio::test]
async fn a_900_kb_push_stays_inline() {
    let (nats, ingress) = start().await;
    let body = push_body(900_000);
    assert_eq!(send(&ingress, "mid", &body).await.status(), 202);
    let stored = nats.stored_deliveries().await;
    assert_eq!(stored.len(), 1);
    let envelope = envelope(&stored[0]);
    assert_eq!(envelope.payload_encoding, PayloadEncoding::Json);
    assert!(envelope.payload_ref.is_none());
    assert!(
        envelope.payload.expect("embedded").get().as_bytes() == &body[..],
        "payload bytes changed on the way"
    );
    assert_eq!(bucket_messages(&nats).await, 0);
}

#[tokio::test]
async fn a_missing_bucket_answers_503_until_an_operator_recreates_it() {
    let (nats, ingress) = start().await;
    nats.jetstream()
        .await
        .delete_stream(PAYLOADS_STREAM)
        .await
        .expect("deleting the payload bucket");
    let body = push_body(2_000_000);
    let response = send(&ingress, "retry-me", &body).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        nats.stored_deliveries().await.is_empty(),
        "an envelope was stored without its object"
    );

    // The provider retries; the ingress does not recreate the bucket, an
    // operator does (`tidegate streams ensure`), and the retry is accepted.
    assert_eq!(send(&ingress, "retry-me", &body).await.status(), 503);
    crate::cli::tidegate(&nats, &["streams", "ensure"])
        .await
        .success();
    eventually(Duration::from_secs(15), "a retry accepted", || async {
        (send(&ingress, "retry-me", &body).await.status() == 202).then_some(())
    })
    .await;
    let stored = nats.stored_deliveries().await;
    assert_eq!(stored.len(), 1);
    let reference = envelope(&stored[0])
        .payload_ref
        .expect("an object reference");
    let jetstream = nats.jetstream().await;
    let fetched = fetch_payload(&jetstream, &reference)
        .await
        .expect("the object is fetched and verified");
    assert!(
        fetched[..] == body[..],
        "fetched bytes differ from the body"
    );

    // A reference the object does not match is refused, not returned.
    let tampered = PayloadRef {
        sha256: "0".repeat(64),
        ..reference.clone()
    };
    let error = fetch_payload(&jetstream, &tampered)
        .await
        .expect_err("a wrong digest is refused");
    assert!(
        matches!(error, FetchError::DigestMismatch { .. }),
        "{error}"
    );
    let gone = PayloadRef {
        name: "github.nope.0000000000000000".into(),
        ..reference
    };
    let error = fetch_payload(&jetstream, &gone)
        .await
        .expect_err("a missing object is an error");
    assert!(matches!(error, FetchError::Missing { .. }), "{error}");
    assert!(!error.is_transient());
}
