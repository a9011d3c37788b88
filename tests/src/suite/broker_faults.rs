//! What the broker can do to the ingress, and what the ingress must do
//! about it: a stream change that would drop acknowledged deliveries is
//! refused at start-up; readiness follows PubAcks through a hung broker; a
//! full stream answers 503 saying so and evicts nothing; every counter is
//! there before the first request; a server older than the minimum is
//! refused by every binary.

use std::time::{Duration, Instant};

use super::{GITHUB_ROUTE, GITHUB_SECRET};
use crate::ingress::metric_sample;
use crate::{NatsServer, TestIngress, eventually, sign};

const SECRET_ENV: [(&str, &str); 1] = [("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)];

async fn push(ingress: &TestIngress, guid: &str, padding: usize) -> reqwest::Response {
    let body = format!(
        r#"{{"ref":"refs/heads/main","after":"abc","padding":"{}"}}"#,
        "x".repeat(padding)
    );
    ingress
        .http
        .post(ingress.url("/v1/webhooks/connectors/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", guid)
        .header(
            "x-hub-signature-256",
            sign::github(GITHUB_SECRET, body.as_bytes()),
        )
        .body(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the ingress answers")
}

async fn readyz(ingress: &TestIngress) -> (u16, String) {
    let response = ingress
        .http
        .get(ingress.url("/readyz"))
        .send()
        .await
        .expect("readyz answers");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("JSON");
    (
        status,
        body["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn stored(nats: &NatsServer) -> usize {
    nats.stored_deliveries().await.len()
}

#[tokio::test]
async fn a_stream_change_that_would_drop_deliveries_is_refused_at_start_up() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, GITHUB_ROUTE, &SECRET_ENV).await;
    for index in 0..20 {
        assert_eq!(
            push(&ingress, &format!("d-{index}"), 1_000).await.status(),
            202
        );
    }
    ingress.stop().await.expect("stopped cleanly");

    // Lower max_bytes than what is stored: refused, naming the setting.
    let small = format!("[stream]\nmax_bytes = \"4KiB\"\n{GITHUB_ROUTE}");
    let refused = TestIngress::start_unready(&nats.url(), &small, &SECRET_ENV)
        .await
        .exited(Duration::from_secs(20))
        .await
        .expect_err("the ingress refuses to start");
    let message = format!("{refused:#}");
    assert!(message.contains("max_bytes"), "{message}");
    assert!(message.contains("allow_shrink"), "{message}");
    assert_eq!(stored(&nats).await, 20, "nothing was dropped");

    // A shorter max_age than the oldest delivery's age: refused too.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let young = format!("[stream]\nmax_age = \"1s\"\nduplicate_window = \"1s\"\n{GITHUB_ROUTE}");
    let refused = TestIngress::start_unready(&nats.url(), &young, &SECRET_ENV)
        .await
        .exited(Duration::from_secs(20))
        .await
        .expect_err("the ingress refuses to start");
    assert!(format!("{refused:#}").contains("max_age"), "{refused:#}");
    assert_eq!(stored(&nats).await, 20, "nothing was dropped");

    // Raising a limit is no loss: applied.
    let larger = format!("[stream]\nmax_bytes = \"1GiB\"\n{GITHUB_ROUTE}");
    let ingress = TestIngress::start(&nats, &larger, &SECRET_ENV).await;
    let jetstream = nats.jetstream().await;
    let mut stream = jetstream
        .get_stream(schemas::streams::DELIVERIES_STREAM)
        .await
        .expect("the stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.max_bytes, 1 << 30);
    ingress.stop().await.expect("stopped");

    // The operator's explicit leave applies the shrink.
    let allowed = format!("[jetstream]\nallow_shrink = true\n{small}");
    let _ingress = TestIngress::start(&nats, &allowed, &SECRET_ENV).await;
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.max_bytes, 4 << 10);
}

#[tokio::test]
async fn readyz_follows_pubacks_through_a_broker_hang() {
    let nats = NatsServer::start().await;
    let config = format!("[nats]\npublish_timeout = \"1s\"\n{GITHUB_ROUTE}");
    let ingress = TestIngress::start(&nats, &config, &SECRET_ENV).await;
    assert_eq!(readyz(&ingress).await.0, 200);

    nats.pause();
    let paused = Instant::now();
    let (_, reason) = eventually(
        Duration::from_secs(10),
        "/readyz 503 while hung",
        || async {
            let (status, reason) = readyz(&ingress).await;
            (status == 503).then_some(((), reason))
        },
    )
    .await;
    assert!(
        paused.elapsed() < Duration::from_secs(6),
        "unready only after {:?}",
        paused.elapsed()
    );
    assert!(!reason.is_empty());
    let started = Instant::now();
    assert_eq!(push(&ingress, "hung", 10).await.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    nats.resume();
    eventually(Duration::from_secs(20), "ready again", || async {
        (readyz(&ingress).await.0 == 200).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "a 202 again", || async {
        (push(&ingress, "after", 10).await.status() == 202).then_some(())
    })
    .await;
    let text = ingress.metrics().await;
    let timeouts = metric_sample(
        &text,
        "tidegate_ingress_publish_failures_total",
        &["route=\"github\"", "reason=\"timeout\""],
    )
    .unwrap_or_default()
        + metric_sample(
            &text,
            "tidegate_ingress_publish_failures_total",
            &["route=\"github\"", "reason=\"not_connected\""],
        )
        .unwrap_or_default();
    assert!(timeouts >= 1.0, "{text}");
}

#[tokio::test]
async fn a_full_stream_answers_503_saying_so_and_evicts_nothing() {
    let nats = NatsServer::start().await;
    let config = format!("[stream]\nmax_bytes = \"16KiB\"\n{GITHUB_ROUTE}");
    let ingress = TestIngress::start(&nats, &config, &SECRET_ENV).await;
    let mut accepted = Vec::new();
    let refusal = loop {
        let guid = format!("fill-{}", accepted.len());
        let response = push(&ingress, &guid, 1_500).await;
        match response.status().as_u16() {
            202 => accepted.push(guid),
            503 => break response,
            other => panic!("unexpected {other}"),
        }
        assert!(accepted.len() < 100, "the stream never filled");
    };
    assert!(refusal.headers().contains_key("retry-after"));
    let body: serde_json::Value = refusal.json().await.expect("JSON");
    assert_eq!(body["error"], "stream_full", "{body}");
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains("maximum bytes"), "{message}");
    assert!(
        message.contains("stream.max_bytes is 16384 bytes"),
        "{message}"
    );
    let (status, reason) = readyz(&ingress).await;
    assert_eq!(status, 503);
    assert!(reason.contains("full"), "{reason}");

    // Every acknowledged delivery is still there: full refuses, never evicts.
    let ids: Vec<String> = nats
        .stored_deliveries()
        .await
        .iter()
        .map(|message| super::envelope(&message).id)
        .collect();
    assert_eq!(ids, accepted);
    let text = ingress.metrics().await;
    assert!(
        metric_sample(
            &text,
            "tidegate_ingress_publish_failures_total",
            &["route=\"github\"", "reason=\"stream_full\""]
        )
        .is_some_and(|count| count >= 1.0),
        "{text}"
    );

    // An operator raises the limit: ready again without a restart.
    let jetstream = nats.jetstream().await;
    let mut stream = jetstream
        .get_stream(schemas::streams::DELIVERIES_STREAM)
        .await
        .expect("the stream");
    let mut config = stream.info().await.expect("info").config.clone();
    config.max_bytes = 1 << 20;
    jetstream.update_stream(config).await.expect("raised");
    eventually(Duration::from_secs(10), "ready with room", || async {
        (readyz(&ingress).await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(push(&ingress, "room", 10).await.status(), 202);
}

#[tokio::test]
async fn every_counter_is_present_before_the_first_request() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, GITHUB_ROUTE, &SECRET_ENV).await;
    let text = ingress.metrics().await;
    for (name, labels) in [
        (
            "tidegate_ingress_requests_total",
            &["route=\"github\"", "status=\"202\""][..],
        ),
        (
            "tidegate_ingress_deliveries_total",
            &["route=\"github\"", "outcome=\"stored\""],
        ),
        (
            "tidegate_ingress_publish_failures_total",
            &["route=\"github\"", "reason=\"stream_full\""],
        ),
        (
            "tidegate_ingress_verification_failures_total",
            &["route=\"github\"", "reason=\"invalid\""],
        ),
        ("tidegate_ingress_stream_missing_total", &[]),
    ] {
        assert_eq!(
            metric_sample(&text, name, labels),
            Some(0.0),
            "{name} in:\n{text}"
        );
    }
}

/// Runs a worker binary against `nats` and returns its exit status and
/// stderr (it must exit by itself).
async fn worker_exit(binary: &str, config: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("worker.toml");
    std::fs::write(&file, config).expect("writing the config");
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(crate::process::binary(binary))
            .arg("--config")
            .arg(&file)
            .env_remove("TIDEGATE_NATS_URL")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{binary} kept running against an old server"))
    .expect("running the worker");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn every_binary_refuses_a_server_older_than_the_minimum() {
    let old = NatsServer::start_old().await;
    let url = old.url();
    let expected = "older than 2.11.0";

    let refused = TestIngress::start_unready(&url, GITHUB_ROUTE, &SECRET_ENV)
        .await
        .exited(Duration::from_secs(20))
        .await
        .expect_err("the ingress refuses an old server");
    let message = format!("{refused:#}");
    assert!(message.contains(expected), "{message}");
    assert!(message.contains("deploy/tools/install.sh"), "{message}");

    let forward = format!(
        "name = \"forward\"\n[nats]\nurl = \"{url}\"\n[[forward.targets]]\nsubjects = \"tidegate.in.>\"\nurl = \"http://127.0.0.1:9/\"\n"
    );
    let (status, stderr) = worker_exit("tidegate-forward", &forward).await;
    assert!(!status.success());
    assert!(stderr.contains(expected), "{stderr}");

    let state = tempfile::tempdir().expect("temp dir");
    let sync = format!(
        "name = \"github-sync\"\n[nats]\nurl = \"{url}\"\n[github_sync]\nstate_dir = \"{state}/state\"\n[[github_sync.targets]]\nid = \"t\"\ninstance = \"i\"\nrepositories = [\"a/*\"]\nbranches = [\"main\"]\npath = \"{state}/out/{{name}}\"\n",
        state = state.path().display()
    );
    let (status, stderr) = worker_exit("tidegate-github-sync", &sync).await;
    assert!(!status.success());
    assert!(stderr.contains(expected), "{stderr}");

    let cli = crate::cli::tidegate(&old, &["status"]).await;
    assert!(!cli.status.success());
    assert!(cli.stderr.contains(expected), "{}", cli.stderr);
}
