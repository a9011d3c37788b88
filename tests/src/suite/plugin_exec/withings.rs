//! The Withings OAuth plugin through the shipped configs: a browser
//! redirect stores tokens and emits `withings.authorized`, a refused code is
//! a 502, a configured state is checked, and a queued refresh runs through
//! the worker runtime.

use std::time::Duration;

use schemas::streams::DEAD_LETTER_STREAM;
use serde_json::{Value, json};

use super::{CLIENT_ID, CLIENT_SECRET, Fixture};
use crate::eventually;
use crate::suite::json;
use crate::token_endpoint::{GOOD_CODE, USERID};

#[tokio::test]
async fn a_browser_redirect_stores_tokens_and_emits_withings_authorized() {
    let fixture = Fixture::start().await;
    let _exec = fixture.start_exec(&[], "").await;

    // As a browser follows Withings' redirect: no token.
    let response = fixture
        .get(
            &format!("/webhook/withings/oauth_callback?code={GOOD_CODE}&state=XYZ"),
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(
        !text.contains("access-") && !text.contains("refresh-"),
        "tokens in the response: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["result"]["userid"], USERID);
    assert_eq!(body["events"][0]["type"], "withings.authorized");

    let forms = fixture.tokens.forms();
    assert_eq!(forms.len(), 1);
    let form = &forms[0];
    for (name, value) in [
        ("action", "requesttoken"),
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("code", GOOD_CODE),
        ("redirect_uri", "https://mattjoyce.ai/api/withings/"),
    ] {
        assert_eq!(
            form.get(name).map(String::as_str),
            Some(value),
            "form field {name}"
        );
    }

    let rows = fixture.stored_tokens();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["userid"], USERID);
    assert_eq!(rows[0]["access_token"], "access-1");
    assert_eq!(rows[0]["refresh_token"], "refresh-1");
    let expires_at = rows[0]["expires_at"].as_i64().expect("expiry");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(
        (now + 10_700..=now + 10_900).contains(&expires_at),
        "{expires_at}"
    );

    let events = fixture.events("withings.authorized").await;
    assert_eq!(events.len(), 1);
    let (envelope, msg_id) = &events[0];
    assert_eq!(envelope.source, "withings");
    assert_eq!(envelope.event.as_deref(), Some("withings.authorized"));
    assert!(
        msg_id.starts_with("event:") && msg_id.ends_with(":0"),
        "{msg_id}"
    );
    let payload: Value =
        serde_json::from_str(envelope.payload.as_ref().expect("payload").get()).expect("JSON");
    assert_eq!(payload["userid"], USERID);

    // The seed's redirect URI, as cloudflared forwards it (path unchanged).
    let response = fixture
        .get(&format!("/api/withings/?code={GOOD_CODE}&state=XYZ"), false)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["result"]["userid"], USERID);
    assert_eq!(fixture.stored_tokens()[0]["access_token"], "access-2");
}

#[tokio::test]
async fn a_rejected_code_is_a_502_with_the_plugins_error() {
    let fixture = Fixture::start().await;
    let _exec = fixture.start_exec(&[], "").await;
    let response = fixture
        .get(
            "/webhook/withings/oauth_callback?code=EXPIRED&state=XYZ",
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 502);
    let body = json(response).await;
    assert_eq!(body["status"], "error");
    let error = body["error"].as_str().expect("an error message");
    assert!(
        error.contains("Withings refused") && error.contains("invalid code"),
        "{error}"
    );
    assert!(!error.contains(CLIENT_SECRET));
    assert!(fixture.stored_tokens().is_empty());
    assert!(fixture.events("withings.authorized").await.is_empty());
}

#[tokio::test]
async fn a_queued_refresh_runs_through_the_runtime() {
    let fixture = Fixture::start().await;
    let _exec = fixture.start_exec(&[], "").await;
    let response = fixture
        .get(
            &format!("/webhook/withings/oauth_callback?code={GOOD_CODE}&state=XYZ"),
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);

    let response = fixture
        .post("/webhook/withings/refresh", &json!({}), true)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let id = json(response).await["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let jetstream = fixture.nats.jetstream().await;
    let result = eventually(
        Duration::from_secs(30),
        "the refresh's job result",
        || async {
            broker::results::latest(&jetstream, "exec", &id)
                .await
                .ok()
                .flatten()
                .filter(|result| result.status == schemas::JobStatus::Completed)
        },
    )
    .await;
    assert_eq!(result.counts.get("events"), Some(&1));
    assert_eq!(fixture.stored_tokens()[0]["access_token"], "access-2");
    let form = fixture.tokens.forms().pop().expect("a refresh form");
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("refresh_token")
    );
    assert_eq!(
        form.get("refresh_token").map(String::as_str),
        Some("refresh-1")
    );
    assert_eq!(fixture.events("withings.refreshed").await.len(), 1);

    // A queued command for no plugin is dead-lettered, not retried.
    let response = fixture
        .post("/webhook/nope/run", &json!({}), true)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let id = json(response).await["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let result = eventually(Duration::from_secs(30), "a failed result", || async {
        broker::results::latest(&jetstream, "exec", &id)
            .await
            .ok()
            .flatten()
            .filter(|result| result.status == schemas::JobStatus::Failed)
    })
    .await;
    assert_eq!(result.attempts, 1);
    let dlq = jetstream.get_stream(DEAD_LETTER_STREAM).await.expect("dlq");
    let letter = dlq
        .get_last_raw_message_by_subject("tidegate.dlq.exec")
        .await
        .expect("a dead letter");
    let letter: schemas::DeadLetter = serde_json::from_slice(&letter.payload).expect("v1");
    assert!(
        letter.error.contains("no plugin named `nope`"),
        "{}",
        letter.error
    );
}

#[tokio::test]
async fn a_configured_state_must_match() {
    let fixture = Fixture::start().await;
    let _exec = fixture
        .start_exec(
            &[(
                "# WITHINGS_STATE = { env = \"WITHINGS_STATE\" }",
                "WITHINGS_STATE = \"expected-state-5\"",
            )],
            "",
        )
        .await;
    let response = fixture
        .get(
            &format!("/webhook/withings/oauth_callback?code={GOOD_CODE}&state=forged"),
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 502);
    let error = json(response).await["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("state does not match"), "{error}");
    assert!(
        fixture.tokens.forms().is_empty(),
        "the code was not exchanged"
    );
    let response = fixture
        .get(
            &format!("/webhook/withings/oauth_callback?code={GOOD_CODE}&state=expected-state-5"),
            false,
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(fixture.stored_tokens().len(), 1);
}
