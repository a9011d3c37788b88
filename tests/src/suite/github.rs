//! The openwork connector's GitHub route against a real JetStream.

use schemas::headers::MSG_ID;
use serde_json::json;

use super::{GITHUB_ROUTE, GITHUB_SECRET, envelope, json};
use crate::{NatsServer, TestIngress, sign};

const PATH: &str = "/v1/webhooks/connectors/github";

struct Delivery<'a> {
    event: &'a str,
    guid: &'a str,
    hook: &'a str,
    body: &'a [u8],
}

async fn send(ingress: &TestIngress, delivery: &Delivery<'_>) -> reqwest::Response {
    ingress
        .http
        .post(ingress.url(PATH))
        .header("content-type", "application/json")
        .header("x-github-event", delivery.event)
        .header("x-github-delivery", delivery.guid)
        .header("x-github-hook-id", delivery.hook)
        .header(
            "x-hub-signature-256",
            sign::github(GITHUB_SECRET, delivery.body),
        )
        .header("user-agent", "GitHub-Hookshot/test")
        .body(delivery.body.to_vec())
        .send()
        .await
        .expect("request is sent")
}

async fn start() -> (NatsServer, TestIngress) {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(
        &nats,
        GITHUB_ROUTE,
        &[("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)],
    )
    .await;
    (nats, ingress)
}

/// Deliberately odd spacing and key order: a re-serialized payload would
/// not match these bytes.
const PUSH: &[u8] = br#"{ "ref" : "refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "installation":{"id":42},"repository":{"id":1296269,"full_name":"octocat/Hello-World"},"zzz":[1.50, 2e3]}"#;

#[tokio::test]
async fn a_signed_push_is_stored_byte_for_byte_and_normalized() {
    let (nats, ingress) = start().await;
    let delivery = Delivery {
        event: "push",
        guid: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        hook: "123456",
        body: PUSH,
    };
    let response = send(&ingress, &delivery).await;
    assert_eq!(response.status(), 202);
    let id = "123456_72d3162e-cc78-11e3-81ab-4c9367dc0958";
    assert_eq!(
        json(response).await,
        json!({ "id": id, "duplicate": false })
    );

    let stored = nats.stored_deliveries().await;
    assert_eq!(stored.len(), 1);
    let message = &stored[0];
    assert_eq!(message.subject.as_str(), "tidegate.in.github.push");
    assert_eq!(
        message.headers.get(MSG_ID).map(|value| value.as_str()),
        Some(format!("github:{id}").as_str())
    );
    let envelope = envelope(&message);
    assert_eq!(envelope.id, id);
    assert_eq!(envelope.payload_encoding, schemas::PayloadEncoding::Json);
    let payload = envelope.payload.expect("payload is embedded");
    assert_eq!(
        payload.get().as_bytes(),
        PUSH,
        "payload bytes changed on the way"
    );
    let github = envelope.github.expect("normalized fields");
    assert_eq!(github.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(github.installation_id, Some(42));
    assert_eq!(github.repository_id, Some(1296269));
    assert_eq!(
        github.repository_full_name.as_deref(),
        Some("octocat/Hello-World")
    );
    assert_eq!(github.git_ref.as_deref(), Some("refs/heads/main"));
    assert_eq!(
        github.head_sha.as_deref(),
        Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246")
    );
    // The signature header is kept so a consumer can re-verify the bytes.
    assert_eq!(
        envelope.headers.get("x-hub-signature-256"),
        Some(&sign::github(GITHUB_SECRET, PUSH))
    );
}

#[tokio::test]
async fn a_redelivery_is_stored_once_but_a_second_hook_is_not_a_duplicate() {
    let (nats, ingress) = start().await;
    let first = Delivery {
        event: "push",
        guid: "d1",
        hook: "1",
        body: PUSH,
    };
    assert_eq!(send(&ingress, &first).await.status(), 202);
    let again = send(&ingress, &first).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        json(again).await,
        json!({ "id": "1_d1", "duplicate": true })
    );
    // Same GUID, another hook subscribed to the same event.
    let other_hook = Delivery { hook: "2", ..first };
    assert_eq!(send(&ingress, &other_hook).await.status(), 202);

    let ids: Vec<String> = nats
        .stored_deliveries()
        .await
        .iter()
        .map(|message| envelope(&message).id)
        .collect();
    assert_eq!(ids, ["1_d1", "2_d1"]);
}

#[tokio::test]
async fn ignored_events_answer_200_and_stay_out_of_worker_subjects() {
    let (nats, ingress) = start().await;
    let ping = Delivery {
        event: "ping",
        guid: "p1",
        hook: "9",
        body: br#"{"zen":"Design for failure.","hook_id":9}"#,
    };
    let response = send(&ingress, &ping).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await,
        json!({ "id": "9_p1", "duplicate": false, "ignored": true })
    );
    let stored = nats.stored_deliveries().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].subject.as_str(), "tidegate.ignored.github.ping");
}

#[tokio::test]
async fn form_encoded_deliveries_are_verified_raw_and_normalized() {
    let (nats, ingress) = start().await;
    let body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fdev%22%2C%22after%22%3A%22abc%22%2C%22repository%22%3A%7B%22id%22%3A7%7D%7D";
    let response = ingress
        .http
        .post(ingress.url(PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-github-event", "push")
        .header("x-github-delivery", "f1")
        .header("x-hub-signature-256", sign::github(GITHUB_SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let stored = nats.stored_deliveries().await;
    let envelope = envelope(&stored[0]);
    assert_eq!(
        envelope.id, "f1",
        "without a hook id the GUID alone is the id"
    );
    assert_eq!(envelope.payload_encoding, schemas::PayloadEncoding::Base64);
    let github = envelope.github.expect("normalized");
    assert_eq!(github.git_ref.as_deref(), Some("refs/heads/dev"));
    assert_eq!(github.repository_id, Some(7));
}

#[tokio::test]
async fn every_rejection_stores_nothing() {
    let (nats, ingress) = start().await;
    let good = sign::github(GITHUB_SECRET, PUSH);
    let post = |headers: &[(&str, String)], body: &[u8]| {
        let mut request = ingress.http.post(ingress.url(PATH)).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send()
    };
    let base = |signature: &str| {
        vec![
            ("content-type", "application/json".to_owned()),
            ("x-github-event", "push".to_owned()),
            ("x-github-delivery", "r1".to_owned()),
            ("x-hub-signature-256", signature.to_owned()),
        ]
    };
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16);
    let cases: Vec<Case<'_>> = vec![
        (
            "missing signature",
            base("")[..3].to_vec(),
            PUSH.to_vec(),
            401,
        ),
        (
            "wrong secret",
            base(&sign::github("nope", PUSH)),
            PUSH.to_vec(),
            401,
        ),
        ("tampered body", base(&good), [PUSH, b" "].concat(), 401),
        ("garbage signature", base("sha256=zz"), PUSH.to_vec(), 401),
        (
            "malformed JSON",
            base(&sign::github(GITHUB_SECRET, b"{\"ref\":")),
            b"{\"ref\":".to_vec(),
            400,
        ),
        (
            "missing event header",
            vec![
                base(&good)[0].clone(),
                base(&good)[2].clone(),
                base(&good)[3].clone(),
            ],
            PUSH.to_vec(),
            400,
        ),
        (
            "wrong media type",
            [
                vec![("content-type", "text/plain".to_owned())],
                base(&good)[1..].to_vec(),
            ]
            .concat(),
            PUSH.to_vec(),
            415,
        ),
        (
            "too large",
            base(&sign::github(GITHUB_SECRET, &vec![b' '; 70_000])),
            vec![b' '; 70_000],
            413,
        ),
    ];
    for (what, headers, body, status) in cases {
        let response = post(&headers, &body).await.expect("sent");
        assert_eq!(response.status(), status, "{what}");
        let body = json(response).await;
        assert!(body["error"].is_string(), "{what}: {body}");
    }
    let response = ingress
        .http
        .get(ingress.url(PATH))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let response = ingress
        .http
        .post(ingress.url("/nope"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    assert!(
        nats.stored_deliveries().await.is_empty(),
        "a rejected request was stored"
    );
}

#[tokio::test]
async fn githubs_documented_test_vector_verifies_end_to_end() {
    // From GitHub's "Validating webhook deliveries": a route without
    // normalization accepts any media type, so the plain-text body passes.
    let nats = NatsServer::start().await;
    let routes = r#"
        [[routes]]
        name = "vector"
        path = "/webhooks/{workflow}"
        subject = "workflow.{workflow}"
        [routes.verifier]
        kind = "github"
        secrets = [{ value = "It's a Secret to Everybody" }]
    "#;
    let ingress = TestIngress::start(&nats, routes, &[]).await;
    let send = |signature: &'static str| {
        ingress
            .http
            .post(ingress.url("/webhooks/vector"))
            .header("content-type", "text/plain")
            .header("x-hub-signature-256", signature)
            .body("Hello, World!")
            .send()
    };
    let documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(send(documented).await.expect("sent").status(), 202);
    let flipped = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18";
    assert_eq!(send(flipped).await.expect("sent").status(), 403);

    let stored = nats.stored_deliveries().await;
    assert_eq!(stored.len(), 1);
    let envelope = envelope(&stored[0]);
    assert_eq!(envelope.payload_encoding, schemas::PayloadEncoding::Base64);
    assert_eq!(
        envelope.payload.expect("payload").get(),
        "\"SGVsbG8sIFdvcmxkIQ==\"",
        "base64 of the exact body"
    );
}
