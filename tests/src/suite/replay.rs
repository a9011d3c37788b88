//! `tidegate replay` as a process against a real broker: selection by time,
//! id and sequence, dry run, interruption and resume, idempotency and
//! `--force` with a real forwarder.

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{consumer, message::StreamMessage};
use schemas::JobStatus;
use schemas::headers::{DELIVERY_ID, MSG_ID, REPLAY_FOR, REPLAY_FORCE, REPLAY_OF, ROUTE};
use schemas::streams::DELIVERIES_STREAM;
use tokio::io::{AsyncBufReadExt as _, BufReader};

// Re-exported for the other CLI suites.
use super::forward::{OPEN_ROUTE, deliver, forwarder_config_for, latest_status};
pub(crate) use crate::cli::CliRun;
use crate::cli::{tidegate, tidegate_command};
use crate::process::WorkerProcess;
use crate::receiver::{Receiver, Script};
use crate::{NatsServer, TestIngress, eventually};

async fn deliver_all(ingress: &TestIngress, ids: &[String]) {
    for id in ids {
        deliver(ingress, id).await;
    }
}

fn ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("{prefix}-{index:03}"))
        .collect()
}

fn header(message: &StreamMessage, name: &str) -> Option<String> {
    message.headers.get(name).map(|value| value.to_string())
}

/// The replayed copies in the deliveries stream.
async fn copies(nats: &NatsServer) -> Vec<StreamMessage> {
    nats.stored_deliveries()
        .await
        .into_iter()
        .filter(|message| header(message, REPLAY_OF).is_some())
        .collect()
}

fn replayed_sequences(copies: &[StreamMessage]) -> Vec<u64> {
    copies
        .iter()
        .map(|copy| {
            header(copy, REPLAY_OF)
                .and_then(|of| of.parse().ok())
                .expect("Tidegate-Replay-Of is a sequence")
        })
        .collect()
}

/// Sequences of the originals with these delivery ids.
async fn sequences_of(nats: &NatsServer, ids: &[String]) -> Vec<u64> {
    nats.stored_deliveries()
        .await
        .iter()
        .filter(|message| header(message, REPLAY_OF).is_none())
        .filter(|message| header(message, DELIVERY_ID).is_some_and(|id| ids.contains(&id)))
        .map(|message| message.sequence)
        .collect()
}

fn now_rfc3339() -> String {
    workers::runtime::report::rfc3339(SystemTime::now())
}

/// Stream timestamps and the test's clock are the same clock, but a
/// boundary taken in the same millisecond as a store would be ambiguous:
/// a short pause on either side of it keeps every delivery clearly inside
/// or outside.
async fn boundary() -> String {
    tokio::time::sleep(Duration::from_millis(30)).await;
    let time = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(30)).await;
    time
}

#[tokio::test]
async fn a_time_range_replays_exactly_the_deliveries_stored_in_it() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let (before, inside, after) = (ids("a", 5), ids("b", 5), ids("c", 5));
    deliver_all(&ingress, &before).await;
    let since = boundary().await;
    deliver_all(&ingress, &inside).await;
    let until = boundary().await;
    deliver_all(&ingress, &after).await;

    let run = tidegate(&nats, &["replay", "--since", &since, "--until", &until])
        .await
        .success();
    assert!(run.stdout.contains("done"), "{run:#?}");
    assert!(
        run.stderr.contains("--resume"),
        "the id is announced: {run:#?}"
    );

    let stored = nats.stored_deliveries().await;
    let originals: HashMap<u64, &StreamMessage> = stored
        .iter()
        .filter(|message| header(message, REPLAY_OF).is_none())
        .map(|message| (message.sequence, message))
        .collect();
    let copies = copies(&nats).await;
    assert_eq!(
        replayed_sequences(&copies),
        sequences_of(&nats, &inside).await,
        "exactly the middle five, in order"
    );
    for copy in &copies {
        let of: u64 = header(copy, REPLAY_OF)
            .and_then(|of| of.parse().ok())
            .expect("a sequence");
        let original = originals[&of];
        assert_eq!(copy.subject, original.subject);
        assert_eq!(copy.payload, original.payload, "the envelope verbatim");
        assert_eq!(header(copy, DELIVERY_ID), header(original, DELIVERY_ID));
        assert_eq!(header(copy, ROUTE).as_deref(), Some("hooks"));
        let message_id = header(copy, MSG_ID).expect("a message id");
        assert!(
            message_id.starts_with("replay:") && message_id.ends_with(&format!(":{of}")),
            "{message_id}"
        );
        assert_eq!(header(copy, REPLAY_FOR), None);
        assert_eq!(header(copy, REPLAY_FORCE), None);
    }

    // "An hour ago" covers everything; the copies themselves are not
    // replayed again.
    let run = tidegate(&nats, &["replay", "--since", "1h", "--dry-run", "--json"])
        .await
        .success();
    assert_eq!(run.json_lines().len(), 15);
}

#[tokio::test]
async fn replay_by_delivery_id_and_by_sequence_range() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let all = ids("d", 10);
    deliver_all(&ingress, &all).await;

    tidegate(&nats, &["replay", "--id", "d-003", "--id", "d-007"])
        .await
        .success();
    assert_eq!(
        replayed_sequences(&copies(&nats).await),
        sequences_of(&nats, &[all[3].clone(), all[7].clone()]).await
    );

    let run = tidegate(
        &nats,
        &["replay", "--from-seq", "2", "--to-seq", "4", "--json"],
    )
    .await
    .success();
    let report: serde_json::Value =
        serde_json::from_str(run.stdout.trim()).expect("one JSON document");
    assert_eq!(report["status"], "done");
    assert_eq!(report["replayed"], 3);
    assert_eq!(report["run"]["replayed"], 3);
    assert_eq!(
        replayed_sequences(&copies(&nats).await),
        [4, 8, 2, 3, 4],
        "by id, then the range"
    );

    let run = tidegate(&nats, &["replay", "--from-seq", "5", "--to-seq", "2"]).await;
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("--from-seq 5 is after --to-seq 2"),
        "{run:#?}"
    );
    let run = tidegate(&nats, &["replay"]).await;
    assert!(
        !run.status.success(),
        "a replay without a selection is refused"
    );
}

#[tokio::test]
async fn a_dry_run_lists_the_selection_and_publishes_nothing() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let all = ids("e", 5);
    deliver_all(&ingress, &all).await;

    let run = tidegate(&nats, &["replay", "--from-seq", "2", "--dry-run", "--json"])
        .await
        .success();
    let rows = run.json_lines();
    let listed: Vec<&str> = rows
        .iter()
        .map(|row| row["delivery_id"].as_str().expect("an id"))
        .collect();
    assert_eq!(listed, ["e-001", "e-002", "e-003", "e-004"]);
    assert_eq!(rows[0]["sequence"], 2);
    assert_eq!(rows[0]["subject"], "tidegate.in.hooks.job");
    assert!(
        rows[0]["received_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    let table = tidegate(&nats, &["replay", "--id", "e-004", "--dry-run"])
        .await
        .success();
    assert!(
        table.stdout.contains("e-004") && !table.stdout.contains("e-003"),
        "{table:#?}"
    );
    assert!(
        table.stderr.contains("1 deliveries would be replayed"),
        "{table:#?}"
    );
    assert_eq!(nats.stored_deliveries().await.len(), 5, "nothing published");

    // A copy is left out unless replays are asked for.
    tidegate(&nats, &["replay", "--id", "e-000"])
        .await
        .success();
    let run = tidegate(&nats, &["replay", "--since", "1h", "--dry-run", "--json"])
        .await
        .success();
    assert_eq!(run.json_lines().len(), 5);
    let run = tidegate(
        &nats,
        &[
            "replay",
            "--since",
            "1h",
            "--dry-run",
            "--json",
            "--include-replays",
        ],
    )
    .await
    .success();
    assert_eq!(run.json_lines().len(), 6);
}

/// Starts a rate-limited replay of sequences 1..=100 and returns the child
/// and its replay id, read from its stderr.
async fn start_slow_replay(nats: &NatsServer) -> (tokio::process::Child, String) {
    let mut child = tidegate_command(
        nats,
        &[
            "replay",
            "--from-seq",
            "1",
            "--to-seq",
            "100",
            "--rate",
            "20",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("starting tidegate replay");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let id = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("reading stderr") {
            if let Some(rest) = line.strip_prefix("replay ") {
                let id = rest.split([':', ' ']).next().expect("an id");
                return id.to_owned();
            }
        }
        panic!("tidegate exited without announcing a replay id");
    })
    .await
    .expect("the replay id within 20 s");
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, id)
}

async fn wait_for_copies(nats: &NatsServer, at_least: usize) {
    eventually(Duration::from_secs(30), "copies to appear", || async {
        (copies(nats).await.len() >= at_least).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_killed_replay_resumes_and_stores_each_copy_once() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    deliver_all(&ingress, &ids("r", 100)).await;

    let (mut child, id) = start_slow_replay(&nats).await;
    wait_for_copies(&nats, 25).await;
    child.kill().await.expect("SIGKILL");
    let partial = copies(&nats).await.len();
    assert!(partial < 100, "killed before the end ({partial} copies)");

    let run = tidegate(&nats, &["replay", "--resume", &id, "--json"])
        .await
        .success();
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(report["status"], "done");
    // Copies stored after the last checkpoint were sent again and counted
    // as duplicates; every other one once as replayed.
    let count = |field: &str| report[field].as_u64().expect("a count");
    assert_eq!(count("replayed") + count("duplicates"), 100, "{report}");
    eprintln!(
        "killed after {partial} copies; {} re-sent as duplicates",
        count("duplicates")
    );
    let copies = copies(&nats).await;
    let sequences = replayed_sequences(&copies);
    let unique: BTreeSet<u64> = sequences.iter().copied().collect();
    assert_eq!(unique, (1..=100).collect(), "the union is the selection");
    assert_eq!(
        sequences.len(),
        100,
        "copies re-sent after the kill were absorbed by Nats-Msg-Id"
    );

    let again = tidegate(&nats, &["replay", "--resume", &id])
        .await
        .success();
    assert!(again.stderr.contains("already finished"), "{again:#?}");
    assert_eq!(self::copies(&nats).await.len(), 100);
}

#[tokio::test]
async fn ctrl_c_stops_a_replay_after_checkpointing() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    deliver_all(&ingress, &ids("s", 100)).await;

    let (mut child, id) = start_slow_replay(&nats).await;
    wait_for_copies(&nats, 10).await;
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("running kill");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("stopped within 20 s")
        .expect("exit status");
    assert!(!status.success(), "an interrupted replay exits non-zero");

    // Every PubAck was awaited before the checkpoint: it covers exactly the
    // copies stored, and the resume sends nothing twice.
    let stored = copies(&nats).await.len() as u64;
    let checkpoint = checkpoint(&nats, &id).await;
    assert_eq!(checkpoint["status"], "interrupted");
    assert_eq!(checkpoint["done_through"], stored);
    assert_eq!(checkpoint["replayed"], stored);

    let run = tidegate(
        &nats,
        &["replay", "--resume", &id, "--rate", "1000", "--json"],
    )
    .await
    .success();
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["replayed"], 100);
    let sequences = replayed_sequences(&copies(&nats).await);
    assert_eq!(sequences, (1..=100).collect::<Vec<u64>>());
}

async fn checkpoint(nats: &NatsServer, id: &str) -> serde_json::Value {
    let jetstream = nats.jetstream().await;
    let bucket = jetstream
        .get_key_value("tidegate_replays")
        .await
        .expect("the replays bucket");
    let value = bucket
        .get(id)
        .await
        .expect("reading the checkpoint")
        .expect("a checkpoint");
    serde_json::from_slice(&value).expect("checkpoint JSON")
}

/// Waits until the `forward` consumer has acknowledged everything.
async fn forwarder_caught_up(nats: &NatsServer) {
    let jetstream = nats.jetstream().await;
    eventually(
        Duration::from_secs(20),
        "the forwarder to catch up",
        || async {
            let stream = jetstream.get_stream(DELIVERIES_STREAM).await.ok()?;
            let info = stream.consumer_info("forward").await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn completed_deliveries_are_skipped_unless_forced() {
    let nats = NatsServer::start().await;
    let ingress = TestIngress::start(&nats, OPEN_ROUTE, &[]).await;
    let receiver = Receiver::start(Script::default()).await;
    let _forwarder = WorkerProcess::start(
        "tidegate-forward",
        &forwarder_config_for(&nats, &receiver, ""),
        &[],
    );
    let all = ids("f", 3);
    deliver_all(&ingress, &all).await;
    eventually(Duration::from_secs(20), "three completions", || async {
        (receiver.completed().len() == 3).then_some(())
    })
    .await;

    // The default: workers skip copies whose idempotency key completed.
    tidegate(&nats, &["replay", "--from-seq", "1", "--to-seq", "3"])
        .await
        .success();
    for id in &all {
        eventually(Duration::from_secs(20), "a skipped result", || async {
            latest_status(&nats, id)
                .await
                .filter(|result| result.status == JobStatus::Skipped)
        })
        .await;
    }
    forwarder_caught_up(&nats).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "skipped copies reached the target"
    );

    // Aimed at another worker: the forwarder acknowledges and ignores them.
    let jetstream = nats.jetstream().await;
    jetstream
        .get_stream(DELIVERIES_STREAM)
        .await
        .expect("stream")
        .create_consumer(consumer::pull::Config {
            durable_name: Some("other".into()),
            ..Default::default()
        })
        .await
        .expect("a second worker's consumer");
    tidegate(
        &nats,
        &[
            "replay",
            "--from-seq",
            "1",
            "--to-seq",
            "3",
            "--worker",
            "other",
            "--force",
        ],
    )
    .await
    .success();
    forwarder_caught_up(&nats).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "copies for another worker ran"
    );
    let run = tidegate(&nats, &["replay", "--from-seq", "1", "--worker", "nosuch"]).await;
    assert!(!run.status.success());
    assert!(run.stderr.contains("no worker nosuch"), "{run:#?}");

    // Forced, and aimed at the forwarder: each runs again.
    let run = tidegate(
        &nats,
        &[
            "replay",
            "--from-seq",
            "1",
            "--to-seq",
            "3",
            "--worker",
            "forward",
            "--force",
        ],
    )
    .await
    .success();
    assert!(run.stdout.contains("3 replayed"), "{run:#?}");
    eventually(
        Duration::from_secs(20),
        "three more completions",
        || async { (receiver.completed().len() == 6).then_some(()) },
    )
    .await;
    let mut completed = receiver.completed();
    completed.sort();
    assert_eq!(
        completed,
        ["f-000", "f-000", "f-001", "f-001", "f-002", "f-002"]
    );
}
