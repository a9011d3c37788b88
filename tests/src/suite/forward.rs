//! The forwarder and the worker runtime, as real processes against a real
//! broker: shared durable consumer, SIGKILL mid-job, retries with growing
//! delays, dead letters, idempotency.

use std::collections::HashSet;
use std::time::Duration;

use schemas::streams::{DEAD_LETTER_STREAM, RESULTS_STREAM};
use schemas::{DeadLetter, JobStatus};

use crate::process::WorkerProcess;
use crate::receiver::{Receiver, Script};
use crate::{NatsServer, TestIngress, eventually, sign};

/// Standard Webhooks secret the forwarder signs with.
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub(crate) const OPEN_ROUTE: &str = r#"
[[routes]]
name = "hooks"
path = "/hooks/{name}"
subject = "hooks.{name}"
delivery_id = "header:x-delivery"
[routes.verifier]
kind = "none"
"#;

struct Setup {
    nats: NatsServer,
    ingress: TestIngress,
    receiver: Receiver,
}

async fn setup(script: Script) -> Setup {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let receiver = Receiver::start(script).await;
    Setup {
        nats,
        ingress,
        receiver,
    }
}

fn forwarder_config(setup: &Setup, consumer: &str) -> String {
    forwarder_config_for(&setup.nats, &setup.receiver, consumer)
}

/// A forwarder on durable `forward` that signs and posts `tidegate.in.hooks.>`
/// deliveries to `receiver`, with extra `[consumer]` settings.
pub(crate) fn forwarder_config_for(
    nats: &NatsServer,
    receiver: &Receiver,
    consumer: &str,
) -> String {
    format!(
        r#"
name = "forward"
[nats]
url = "{nats}"
{auth}
[consumer]
{consumer}
[forward]
timeout = "5s"
[[forward.targets]]
subjects = "tidegate.in.hooks.>"
url = "{url}"
secret = {{ value = "{SIGNING_SECRET}" }}
"#,
        nats = nats.url(),
        auth = nats.nats_toml(),
        url = receiver.url(),
    )
}

pub(crate) async fn deliver(ingress: &TestIngress, id: &str) {
    let response = ingress
        .http
        .post(ingress.url("/hooks/job"))
        .header("content-type", "application/json")
        .header("x-delivery", id)
        .body(format!(r#"{{"job":"{id}"}}"#))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202, "delivery {id}");
}

fn ids(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("d-{index:04}")).collect()
}

/// Checks the Standard Webhooks signature the receiver got.
fn signature_is_valid(received: &crate::receiver::Received) -> bool {
    let header = |name: &str| {
        received
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let expected = sign::standard_webhooks(
        SIGNING_SECRET,
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &received.body,
    );
    header("webhook-signature") == expected
}

async fn dead_letters(nats: &NatsServer) -> Vec<DeadLetter> {
    let jetstream = nats.jetstream().await;
    let Ok(mut stream) = jetstream.get_stream(DEAD_LETTER_STREAM).await else {
        return Vec::new();
    };
    let state = stream.info().await.expect("info").state.clone();
    let mut letters = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            letters.push(serde_json::from_slice(&message.payload).expect("dead letter v1"));
        }
    }
    letters
}

pub(crate) async fn latest_status(nats: &NatsServer, id: &str) -> Option<schemas::JobResult> {
    let jetstream = nats.jetstream().await;
    jetstream.get_stream(RESULTS_STREAM).await.ok()?;
    broker::results::latest(&jetstream, "forward", id)
        .await
        .expect("results query")
}

#[tokio::test]
async fn three_replicas_complete_every_job_exactly_once_even_when_one_is_killed() {
    let setup = setup(Script {
        hold: Duration::from_millis(300),
        ..Script::default()
    })
    .await;
    let config = forwarder_config(
        &setup,
        "concurrency = 4\nack_wait = \"2s\"\nbackoff_base = \"100ms\"",
    );
    let mut replicas: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::start("tidegate-forward", &config, &[]))
        .collect();
    let all = ids(60);
    for id in &all {
        deliver(&setup.ingress, id).await;
    }
    // Kill one replica while it holds jobs at the receiver.
    eventually(
        Duration::from_secs(20),
        "the first jobs to reach the receiver",
        || async { (setup.receiver.received().len() >= 8).then_some(()) },
    )
    .await;
    replicas[0].kill();

    eventually(Duration::from_secs(60), "every job completed", || async {
        let completed: HashSet<String> = setup.receiver.completed().into_iter().collect();
        (completed.len() == all.len()).then_some(())
    })
    .await;
    // Let any straggler redelivery show itself before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let completed = setup.receiver.completed();
    let unique: HashSet<&String> = completed.iter().collect();
    assert_eq!(unique.len(), all.len(), "every job completed");
    assert_eq!(
        completed.len(),
        all.len(),
        "no job completed twice: {completed:?}"
    );
    assert!(
        setup.receiver.received().iter().all(signature_is_valid),
        "a bad signature"
    );
    assert!(dead_letters(&setup.nats).await.is_empty());
    for mut replica in replicas.drain(1..) {
        assert!(replica.terminate().success(), "graceful stop");
    }
}

#[tokio::test]
async fn a_failing_target_is_retried_with_growing_delays_then_completes() {
    let mut script = Script::default();
    script.per_id.insert("d-0000".into(), vec![503, 503, 200]);
    let setup = setup(script).await;
    let config = forwarder_config(&setup, "backoff_base = \"400ms\"\nmax_deliver = 5");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&setup.ingress, "d-0000").await;
    eventually(
        Duration::from_secs(20),
        "completion after retries",
        || async { (setup.receiver.completed().len() == 1).then_some(()) },
    )
    .await;
    let attempts = setup.receiver.attempts_for("d-0000");
    assert_eq!(attempts.len(), 3);
    let first_gap = attempts[1].at - attempts[0].at;
    let second_gap = attempts[2].at - attempts[1].at;
    // Equal jitter: 1st retry after 200–400 ms, 2nd after 400–800 ms.
    assert!(
        first_gap >= Duration::from_millis(180),
        "first gap {first_gap:?}"
    );
    assert!(
        second_gap >= Duration::from_millis(380),
        "second gap {second_gap:?}"
    );
    assert!(
        second_gap > first_gap.mul_f64(0.9),
        "{first_gap:?} then {second_gap:?}"
    );
    let result = eventually(Duration::from_secs(5), "the completed result", || async {
        latest_status(&setup.nats, "d-0000")
            .await
            .filter(|result| result.status == JobStatus::Completed)
    })
    .await;
    assert_eq!(result.attempts, 3);
}

#[tokio::test]
async fn retry_after_from_the_target_is_honoured() {
    let mut script = Script {
        retry_after: Some("2".into()),
        ..Script::default()
    };
    script.per_id.insert("d-0000".into(), vec![429, 200]);
    let setup = setup(script).await;
    let config = forwarder_config(&setup, "backoff_base = \"50ms\"");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&setup.ingress, "d-0000").await;
    eventually(Duration::from_secs(20), "completion", || async {
        (setup.receiver.completed().len() == 1).then_some(())
    })
    .await;
    let attempts = setup.receiver.attempts_for("d-0000");
    let gap = attempts[1].at - attempts[0].at;
    assert!(
        gap >= Duration::from_millis(1_900),
        "retried after {gap:?}, not after Retry-After: 2"
    );
}

#[tokio::test]
async fn a_permanent_4xx_is_dead_lettered_after_one_attempt() {
    let setup = setup(Script {
        default: 400,
        ..Script::default()
    })
    .await;
    let config = forwarder_config(&setup, "max_deliver = 5");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&setup.ingress, "d-0000").await;
    let letters = eventually(Duration::from_secs(20), "a dead letter", || async {
        let letters = dead_letters(&setup.nats).await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.delivery_id, "d-0000");
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.worker, "forward");
    assert_eq!(letter.subject, "tidegate.in.hooks.job");
    assert!(letter.error.contains("400"), "{}", letter.error);
    let envelope: schemas::Envelope =
        serde_json::from_str(letter.envelope.get()).expect("the envelope is kept");
    assert_eq!(envelope.id, "d-0000");
    assert_eq!(setup.receiver.received().len(), 1);
    let result = latest_status(&setup.nats, "d-0000")
        .await
        .expect("a result");
    assert_eq!(result.status, JobStatus::Failed);
}

#[tokio::test]
async fn exhausted_retries_are_dead_lettered_with_the_attempt_count() {
    let setup = setup(Script {
        default: 500,
        ..Script::default()
    })
    .await;
    let config = forwarder_config(&setup, "max_deliver = 3\nbackoff_base = \"100ms\"");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&setup.ingress, "d-0000").await;
    let letters = eventually(Duration::from_secs(20), "a dead letter", || async {
        let letters = dead_letters(&setup.nats).await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters[0].attempts, 3);
    assert!(
        letters[0].error.contains("gave up after 3 attempts"),
        "{}",
        letters[0].error
    );
    assert_eq!(setup.receiver.received().len(), 3);
}

#[tokio::test]
async fn a_delivery_that_kills_its_worker_every_time_is_dead_lettered() {
    // The receiver never answers in time, and the worker is killed while it
    // waits: no attempt ends with an outcome.
    let setup = setup(Script {
        hold: Duration::from_secs(30),
        ..Script::default()
    })
    .await;
    let config = forwarder_config(&setup, "max_deliver = 1\nack_wait = \"1s\"");
    let mut first = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&setup.ingress, "d-0000").await;
    eventually(
        Duration::from_secs(20),
        "the job to reach the receiver",
        || async { (!setup.receiver.received().is_empty()).then_some(()) },
    )
    .await;
    first.kill();
    let _second = WorkerProcess::start("tidegate-forward", &config, &[]);
    let letters = eventually(Duration::from_secs(20), "a dead letter", || async {
        let letters = dead_letters(&setup.nats).await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters[0].delivery_id, "d-0000");
    assert!(
        letters[0].error.contains("without an outcome"),
        "{}",
        letters[0].error
    );
    assert_eq!(
        setup.receiver.received().len(),
        1,
        "not run again after the crash limit"
    );
}

#[tokio::test]
async fn a_completed_delivery_replayed_later_is_skipped() {
    let setup = setup(Script::default()).await;
    let config = forwarder_config(&setup, "");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&setup.ingress, "d-0000").await;
    eventually(Duration::from_secs(20), "completion", || async {
        (setup.receiver.completed().len() == 1).then_some(())
    })
    .await;
    // Replay: the same envelope published again, past the duplicate window
    // (a new Nats-Msg-Id), as an operator's replay would.
    let stored = setup.nats.stored_deliveries().await;
    let jetstream = setup.nats.jetstream().await;
    jetstream
        .publish_with_headers(
            stored[0].subject.to_string(),
            super::copy_headers(&stored[0]),
            stored[0].payload.clone(),
        )
        .await
        .expect("publish")
        .await
        .expect("PubAck");
    let skipped = eventually(Duration::from_secs(20), "a skipped result", || async {
        latest_status(&setup.nats, "d-0000")
            .await
            .filter(|result| result.status == JobStatus::Skipped)
    })
    .await;
    assert_eq!(skipped.delivery_id, "d-0000");
    assert_eq!(
        setup.receiver.received().len(),
        1,
        "the replay reached the target"
    );
}

#[tokio::test]
async fn a_large_payload_reaches_the_target_byte_for_byte_through_the_object_store() {
    let nats = NatsServer::start().await;
    let routes = OPEN_ROUTE.replace(
        "delivery_id = \"header:x-delivery\"",
        "delivery_id = \"header:x-delivery\"\nbody_limit = \"8MiB\"",
    );
    let ingress = TestIngress::start(&nats, &routes, &[]).await;
    let receiver = Receiver::start(Script::default()).await;
    let setup = Setup {
        nats,
        ingress,
        receiver,
    };
    let config =
        forwarder_config(&setup, "").replace("secret = {", "mode = \"original\"\nsecret = {");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    // 5 MB of JSON: far above the server's default 1 MB max_payload.
    let body = format!(r#"{{"blob":"{}"}}"#, "x".repeat(5 << 20));
    let response = setup
        .ingress
        .http
        .post(setup.ingress.url("/hooks/big"))
        .header("content-type", "application/json")
        .header("x-delivery", "big-1")
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let stored = setup.nats.stored_deliveries().await;
    assert_eq!(
        super::envelope(&stored[0]).payload_encoding,
        schemas::PayloadEncoding::Object
    );
    eventually(Duration::from_secs(30), "the forwarded body", || async {
        (setup.receiver.completed().len() == 1).then_some(())
    })
    .await;
    let received = &setup.receiver.received()[0];
    assert!(
        received.body[..] == *body.as_bytes(),
        "the target got other bytes"
    );
    // Sent once, not once from the stored headers and once more.
    let content_types: Vec<_> = received.headers.get_all("content-type").iter().collect();
    assert_eq!(content_types, ["application/json"]);
    assert_eq!(received.headers.get_all("x-delivery").iter().count(), 1);
}

#[tokio::test]
async fn a_worker_serves_health_and_metrics() {
    let setup = setup(Script::default()).await;
    let port = crate::nats::free_port();
    let config = forwarder_config(&setup, "").replace(
        "name = \"forward\"",
        &format!("name = \"forward\"\nlisten = \"127.0.0.1:{port}\""),
    );
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&setup.ingress, "d-0000").await;
    eventually(Duration::from_secs(20), "completion", || async {
        (setup.receiver.completed().len() == 1).then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    let health = eventually(Duration::from_secs(10), "/healthz", || async {
        http.get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .ok()
    })
    .await;
    assert_eq!(health.status(), 200);
    let metrics = eventually(Duration::from_secs(10), "the processed counter", || async {
        let text = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains(r#"tidegate_worker_processed_total{worker="forward",status="completed"} 1"#)
            .then_some(text)
    })
    .await;
    for name in [
        "tidegate_worker_started_total",
        "tidegate_worker_finished_total",
        "tidegate_worker_job_seconds",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
}
