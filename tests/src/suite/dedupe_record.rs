//! A completion recorded in its own result (idempotency keys that are the
//! delivery id): one stored message per completed job, copies skipped
//! with no KV record, forced replays, records written by earlier
//! versions, and keys other than the delivery id still in KV.

use std::collections::HashMap;
use std::time::Duration;

use schemas::JobStatus;
use schemas::headers::REPLAY_FORCE;
use schemas::streams::{IDEMPOTENCY_BUCKET, RESULTS_STREAM};
use sha2::{Digest, Sha256};

use super::forward::{OPEN_ROUTE, deliver, forwarder_config_for, latest_status};
use crate::process::WorkerProcess;
use crate::receiver::{Receiver, Script};
use crate::{NatsServer, TestIngress, eventually};

/// Every value stored in the idempotency bucket's stream.
pub(crate) async fn kv_records(nats: &NatsServer) -> Vec<serde_json::Value> {
    let jetstream = nats.jetstream().await;
    let mut stream = jetstream
        .get_stream(format!("KV_{IDEMPOTENCY_BUCKET}"))
        .await
        .expect("the workers ensured the bucket");
    let state = stream.info().await.expect("info").state.clone();
    let mut records = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await
            && !message.payload.is_empty()
        {
            records.push(serde_json::from_slice(&message.payload).expect("a completion"));
        }
    }
    records
}

/// Whether the last result of `id` carries the completion header.
async fn last_result_marked(nats: &NatsServer, id: &str) -> bool {
    let jetstream = nats.jetstream().await;
    let stream = jetstream.get_stream(RESULTS_STREAM).await.expect("stream");
    let message = stream
        .get_last_raw_message_by_subject(&broker::results::subject("forward", id))
        .await
        .expect("a result");
    message.headers.get(broker::results::COMPLETED).is_some()
}

/// Publishes the stored delivery `id` again (past the duplicate window),
/// with `extra` headers.
async fn republish(nats: &NatsServer, id: &str, extra: &[(&str, &str)]) {
    let stored = nats.stored_deliveries().await;
    let original = stored
        .iter()
        .find(|message| super::envelope(*message).id == id)
        .expect("stored");
    let mut headers = super::copy_headers(original);
    for (name, value) in extra {
        headers.insert(*name, *value);
    }
    nats.jetstream()
        .await
        .publish_with_headers(
            original.subject.to_string(),
            headers,
            original.payload.clone(),
        )
        .await
        .expect("publish")
        .await
        .expect("PubAck");
}

async fn status(nats: &NatsServer, id: &str, wanted: JobStatus) -> schemas::JobResult {
    eventually(Duration::from_secs(30), "a result", || async {
        latest_status(nats, id)
            .await
            .filter(|result| result.status == wanted)
    })
    .await
}

#[tokio::test]
async fn a_completed_delivery_republished_later_is_skipped_with_no_kv_record() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let receiver = Receiver::start(Script::default()).await;
    let config = forwarder_config_for(&nats, &receiver, "");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&ingress, "d-once").await;
    status(&nats, "d-once", JobStatus::Completed).await;
    assert!(
        last_result_marked(&nats, "d-once").await,
        "the completion is marked"
    );

    republish(&nats, "d-once", &[]).await;
    let skipped = status(&nats, "d-once", JobStatus::Skipped).await;
    assert!(
        skipped.detail["reason"].contains("already completed"),
        "{skipped:?}"
    );
    assert!(
        last_result_marked(&nats, "d-once").await,
        "the skip carries it forward"
    );
    assert_eq!(receiver.received().len(), 1, "the copy reached the target");
    assert_eq!(
        kv_records(&nats).await,
        Vec::<serde_json::Value>::new(),
        "the forwarder wrote no idempotency record to KV"
    );
}

#[tokio::test]
async fn a_forced_replay_runs_again_and_its_failure_keeps_the_completion() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    // First attempt 200; the forced replay gets a permanent 400.
    let receiver = Receiver::start(Script {
        per_id: HashMap::from([("d-forced".to_owned(), vec![200, 400])]),
        ..Script::default()
    })
    .await;
    let config = forwarder_config_for(&nats, &receiver, "");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    deliver(&ingress, "d-forced").await;
    status(&nats, "d-forced", JobStatus::Completed).await;

    republish(&nats, "d-forced", &[(REPLAY_FORCE, "1")]).await;
    let failed = status(&nats, "d-forced", JobStatus::Failed).await;
    assert!(
        failed.error.as_deref().unwrap_or_default().contains("400"),
        "{failed:?}"
    );
    assert_eq!(receiver.received().len(), 2, "the forced replay ran");
    assert!(
        last_result_marked(&nats, "d-forced").await,
        "the failure carries the completion"
    );

    // A plain copy afterwards is still skipped: the delivery completed once.
    republish(&nats, "d-forced", &[]).await;
    status(&nats, "d-forced", JobStatus::Skipped).await;
    assert_eq!(receiver.received().len(), 2, "the plain copy ran");
    assert!(kv_records(&nats).await.is_empty());
}

#[tokio::test]
async fn completions_recorded_by_earlier_versions_are_skipped() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let receiver = Receiver::start(Script::default()).await;
    let config = forwarder_config_for(&nats, &receiver, "");
    let _worker = WorkerProcess::start("tidegate-forward", &config, &[]);
    let jetstream = nats.jetstream().await;
    let kv = eventually(Duration::from_secs(20), "the worker's bucket", || async {
        jetstream.get_key_value(IDEMPOTENCY_BUCKET).await.ok()
    })
    .await;
    eventually(Duration::from_secs(20), "the results stream", || async {
        jetstream.get_stream(RESULTS_STREAM).await.ok()
    })
    .await;
    // Before the results held the record: a `completed` result with no
    // header, and a KV record under the delivery id.
    let old_result = serde_json::json!({
        "version": 1, "delivery_id": "old-result", "worker": "forward",
        "status": "completed", "key": "old-result", "attempts": 1,
        "started_at": "2025-01-01T00:00:00.000Z", "completed_at": "2025-01-01T00:00:01.000Z",
    });
    jetstream
        .publish(
            broker::results::subject("forward", "old-result"),
            serde_json::to_vec(&old_result).expect("json").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("PubAck");
    let bucket_key = format!("forward.{}", hex::encode(Sha256::digest(b"old-kv")));
    kv.create(
        &bucket_key,
        r#"{"key":"old-kv","worker":"forward","delivery_id":"old-kv","completed_at":"2025-01-01T00:00:01.000Z"}"#
            .into(),
    )
    .await
    .expect("an earlier version's record");

    for id in ["old-result", "old-kv", "new-one"] {
        deliver(&ingress, id).await;
    }
    status(&nats, "new-one", JobStatus::Completed).await;
    status(&nats, "old-result", JobStatus::Skipped).await;
    status(&nats, "old-kv", JobStatus::Skipped).await;
    assert_eq!(receiver.completed(), vec!["new-one".to_owned()]);
}
