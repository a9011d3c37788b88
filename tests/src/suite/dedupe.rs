//! Idempotency keys on the worker's fast path: a completion is acked
//! without the server's confirmation once its key is recorded, so a lost
//! ack must end in a skipped redelivery, never a second run; lookups are
//! batched across jobs and must still skip every completed key.

use std::time::Duration;

use schemas::JobStatus;

use super::forward::{OPEN_ROUTE, deliver, forwarder_config_for, latest_status};
use crate::process::WorkerProcess;
use crate::receiver::{Receiver, Script};
use crate::{NatsServer, TestIngress, eventually};

/// The worker's user may not acknowledge anything: every ack it sends is
/// refused by the server (a permissions violation), as if it were lost.
/// Unauthenticated clients (the harness, the ingress) are `admin`.
const ACKS_REFUSED: &str = r#"
authorization {
  users = [
    { user: admin, password: "admin-5d1e" }
    { user: worker, password: "worker-7a2c", permissions: { publish: { deny: ["$JS.ACK.>"] } } }
  ]
}
no_auth_user: admin
"#;

#[tokio::test]
async fn a_lost_ack_after_a_recorded_key_is_skipped_on_redelivery() {
    let nats = NatsServer::start_with_config(ACKS_REFUSED).await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let receiver = Receiver::start(Script::default()).await;
    let config = forwarder_config_for(&nats, &receiver, "ack_wait = \"1s\"").replacen(
        "[consumer]",
        "user = \"worker\"\npassword = { value = \"worker-7a2c\" }\n[consumer]",
        1,
    );
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&ingress, "d-lost-ack").await;
    let skipped = eventually(
        Duration::from_secs(30),
        "the redelivery reported skipped",
        || async {
            latest_status(&nats, "d-lost-ack")
                .await
                .filter(|result| result.status == JobStatus::Skipped)
        },
    )
    .await;
    assert!(skipped.attempts >= 2, "a redelivery: {skipped:?}");
    assert_eq!(
        receiver.received().len(),
        1,
        "the job ran once although its ack never arrived"
    );
}

#[tokio::test]
async fn batched_lookups_skip_every_completed_key_and_run_the_rest() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let receiver = Receiver::start(Script::default()).await;
    let config = forwarder_config_for(&nats, &receiver, "concurrency = 16");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    let first: Vec<String> = (0..24).map(|index| format!("done-{index:02}")).collect();
    for id in &first {
        deliver(&ingress, id).await;
    }
    eventually(Duration::from_secs(30), "the first deliveries", || async {
        (receiver.completed().len() == first.len()).then_some(())
    })
    .await;
    // Every stored envelope again at once (a replay past the duplicate
    // window), interleaved with new deliveries: the worker looks them up
    // in batches, skips the completed ones and runs the new ones.
    let stored = nats.stored_deliveries().await;
    assert_eq!(stored.len(), first.len());
    let jetstream = nats.jetstream().await;
    let mut acks = Vec::new();
    for message in &stored {
        acks.push(
            jetstream
                .publish_with_headers(
                    message.subject.to_string(),
                    super::copy_headers(message),
                    message.payload.clone(),
                )
                .await
                .expect("publish"),
        );
    }
    let fresh: Vec<String> = (0..8).map(|index| format!("new-{index:02}")).collect();
    for id in &fresh {
        deliver(&ingress, id).await;
    }
    for ack in acks {
        ack.await.expect("PubAck");
    }
    for id in &first {
        eventually(Duration::from_secs(30), "a skipped result", || async {
            latest_status(&nats, id)
                .await
                .filter(|result| result.status == JobStatus::Skipped)
        })
        .await;
    }
    for id in &fresh {
        eventually(Duration::from_secs(30), "a completed result", || async {
            latest_status(&nats, id)
                .await
                .filter(|result| result.status == JobStatus::Completed)
        })
        .await;
    }
    let mut completed = receiver.completed();
    completed.sort();
    let mut expected: Vec<String> = first.iter().chain(&fresh).cloned().collect();
    expected.sort();
    assert_eq!(completed, expected, "each delivery reached the target once");
}

/// Why the results stream's `max_age` is the larger of `results.max_age`
/// and `idempotency.ttl` (a completed result is the idempotency record of
/// a delivery-id key): on nats-server 2.15 a message's own, longer
/// `Nats-TTL` does not keep it past the stream's `max_age`.
#[tokio::test]
async fn a_longer_message_ttl_does_not_outlive_the_stream_max_age() {
    let nats = NatsServer::start().await;
    let jetstream = nats.jetstream().await;
    let stream = jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "TTL_PROBE".to_owned(),
            subjects: vec!["probe.>".to_owned()],
            max_age: Duration::from_secs(1),
            allow_message_ttl: true,
            ..Default::default()
        })
        .await
        .expect("stream");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-TTL", "1h");
    jetstream
        .publish_with_headers("probe.long", headers, "ttl 1h".into())
        .await
        .expect("publish")
        .await
        .expect("PubAck");
    let stored = |subject: &'static str| {
        let stream = stream.clone();
        async move {
            stream
                .get_last_raw_message_by_subject(subject)
                .await
                .is_ok()
        }
    };
    assert!(stored("probe.long").await, "stored at first");
    eventually(
        Duration::from_secs(10),
        "max_age to remove the message despite its 1h TTL",
        || async { (!stored("probe.long").await).then_some(()) },
    )
    .await;
}
