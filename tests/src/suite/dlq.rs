//! `tidegate dlq` as a process against a real broker and forwarder: list,
//! show, a redrive that succeeds the second time, redrive of all of a
//! worker's letters, and purge.

use std::time::Duration;

use schemas::JobStatus;
use schemas::headers::{REPLAY_FOR, REPLAY_FORCE, REPLAY_OF};
use schemas::streams::DEAD_LETTER_STREAM;

use super::forward::{OPEN_ROUTE, deliver, forwarder_config_for, latest_status};
use crate::cli::tidegate;
use crate::process::WorkerProcess;
use crate::receiver::{Receiver, Script};
use crate::{NatsServer, TestIngress, eventually};

/// Sequences of the dead letters now in the stream, via `dlq list --json`.
async fn listed(nats: &NatsServer) -> Vec<serde_json::Value> {
    tidegate(nats, &["dlq", "list", "--json"])
        .await
        .success()
        .json_lines()
}

async fn wait_for_letters(nats: &NatsServer, count: usize) -> Vec<serde_json::Value> {
    eventually(Duration::from_secs(20), "dead letters", || async {
        let letters = listed(nats).await;
        (letters.len() == count).then_some(letters)
    })
    .await
}

async fn stored_letters(nats: &NatsServer) -> u64 {
    let jetstream = nats.jetstream().await;
    let mut stream = jetstream
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .expect("the dead-letter stream");
    stream.info().await.expect("stream info").state.messages
}

#[tokio::test]
async fn a_redriven_dead_letter_completes_once_the_target_recovers() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let receiver = Receiver::start(Script {
        default: 400,
        ..Script::default()
    })
    .await;
    let _forwarder = WorkerProcess::start(
        "tidegate-forward",
        &forwarder_config_for(&nats, &receiver, "max_deliver = 5"),
        &[],
    );
    deliver(&ingress, "d-0000").await;
    let letters = wait_for_letters(&nats, 1).await;
    let letter = &letters[0];
    assert_eq!(letter["worker"], "forward");
    assert_eq!(letter["delivery_id"], "d-0000");
    assert_eq!(letter["subject"], "tidegate.in.hooks.job");
    assert_eq!(letter["attempts"], 1);
    let sequence = letter["sequence"].as_u64().expect("a sequence").to_string();

    let table = tidegate(&nats, &["dlq", "list"]).await.success();
    assert!(
        table.stdout.contains("d-0000") && table.stdout.contains("400"),
        "{table:#?}"
    );
    let shown = tidegate(&nats, &["dlq", "show", &sequence]).await.success();
    assert!(
        shown.stdout.contains(r#""job": "d-0000""#),
        "the envelope: {shown:#?}"
    );
    let shown = tidegate(&nats, &["dlq", "show", &sequence, "--json"])
        .await
        .success();
    let document: serde_json::Value = serde_json::from_str(shown.stdout.trim()).expect("JSON");
    assert_eq!(document["envelope"]["id"], "d-0000");
    assert!(
        !tidegate(&nats, &["dlq", "show", "999"])
            .await
            .status
            .success()
    );

    receiver.set_script(Script::default());
    let run = tidegate(&nats, &["dlq", "redrive", &sequence])
        .await
        .success();
    assert!(run.stdout.contains("redriven 1 dead letters"), "{run:#?}");
    eventually(
        Duration::from_secs(20),
        "the redriven delivery to complete",
        || async { (receiver.completed() == ["d-0000"]).then_some(()) },
    )
    .await;
    let result = eventually(Duration::from_secs(20), "a completed result", || async {
        latest_status(&nats, "d-0000")
            .await
            .filter(|result| result.status == JobStatus::Completed)
    })
    .await;
    assert_eq!(result.attempts, 1, "a fresh delivery: attempts start again");
    assert_eq!(stored_letters(&nats).await, 0, "the dead letter is gone");
    assert!(listed(&nats).await.is_empty());

    let copy = nats
        .stored_deliveries()
        .await
        .pop()
        .expect("the redriven copy");
    let header = |name: &str| copy.headers.get(name).map(|value| value.to_string());
    assert_eq!(header(REPLAY_FOR).as_deref(), Some("forward"));
    assert_eq!(header(REPLAY_FORCE).as_deref(), Some("1"));
    assert_eq!(header(REPLAY_OF).as_deref(), Some("1"));
    assert_eq!(copy.subject.as_str(), "tidegate.in.hooks.job");
}

#[tokio::test]
async fn redrive_all_of_a_worker_and_purge() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    // No worker has run yet: there is no dead-letter stream.
    let empty = tidegate(&nats, &["dlq", "list"]).await.success();
    assert!(empty.stdout.contains("no dead letters"), "{empty:#?}");

    let receiver = Receiver::start(Script {
        default: 400,
        ..Script::default()
    })
    .await;
    let _forwarder = WorkerProcess::start(
        "tidegate-forward",
        &forwarder_config_for(&nats, &receiver, "max_deliver = 5"),
        &[],
    );
    for id in ["p-0", "p-1", "p-2"] {
        deliver(&ingress, id).await;
    }
    let first = wait_for_letters(&nats, 3).await;

    // Another worker's letters: none.
    let run = tidegate(&nats, &["dlq", "redrive", "--all", "--worker", "other"])
        .await
        .success();
    assert!(run.stdout.contains("redriven 0 dead letters"), "{run:#?}");
    // The target still refuses: each letter is redriven, fails again and
    // comes back as a new dead letter.
    let run = tidegate(
        &nats,
        &["dlq", "redrive", "--all", "--worker", "forward", "--json"],
    )
    .await
    .success();
    assert_eq!(run.json_lines().len(), 3);
    let second = wait_for_letters(&nats, 3).await;
    let sequences = |letters: &[serde_json::Value]| -> Vec<u64> {
        letters
            .iter()
            .map(|letter| letter["sequence"].as_u64().expect("a sequence"))
            .collect()
    };
    assert!(
        sequences(&second).iter().min() > sequences(&first).iter().max(),
        "new letters: {first:?} then {second:?}"
    );
    assert_eq!(receiver.received().len(), 6);

    let refused = tidegate(&nats, &["dlq", "purge"]).await;
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("without --yes"), "{refused:#?}");
    assert_eq!(stored_letters(&nats).await, 3);

    let run = tidegate(&nats, &["dlq", "purge", "--worker", "other", "--yes"])
        .await
        .success();
    assert!(run.stdout.contains("purged 0"), "{run:#?}");
    let run = tidegate(&nats, &["dlq", "purge", "--worker", "forward", "--yes"])
        .await
        .success();
    assert!(
        run.stdout
            .contains("purged 3 dead letters of worker forward"),
        "{run:#?}"
    );
    assert_eq!(stored_letters(&nats).await, 0);
    let empty = tidegate(&nats, &["dlq", "list"]).await.success();
    assert!(empty.stdout.contains("no dead letters"), "{empty:#?}");
}
