//! The fault suite: steady load from a sender that logs every delivery id
//! and answer, a fault injected into a 3-node cluster while it runs, and a
//! loss audit of the sender's log against the stream. Nothing answered
//! 2xx may be missing, nothing may be stored twice, and every refusal is a
//! 503 with `Retry-After` (or, when an ingress itself dies, no answer).

use std::collections::HashMap;
use std::time::Duration;

use super::{GITHUB_ROUTE, GITHUB_SECRET};
use crate::load::{Audit, Sender};
use crate::netns::Hosts;
use crate::process::WorkerProcess;
use crate::receiver::{Receiver, Script};
use crate::{NatsCluster, TestIngress, eventually};

const SECRET_ENV: [(&str, &str); 1] = [("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)];
const PATH: &str = "/v1/webhooks/connectors/github";
const INTERVAL: Duration = Duration::from_millis(25);

/// An ingress config: `extra` top-level keys and tables, then `[nats]`
/// (client `name`, the servers) and the GitHub route.
fn ingress_config(urls: &str, name: &str, extra: &str) -> String {
    format!(
        "{extra}\n[nats]\nurl = \"{urls}\"\nname = \"{name}\"\npublish_timeout = \"2s\"\n{GITHUB_ROUTE}"
    )
}

async fn start_ingress(urls: &str, name: &str, extra: &str) -> TestIngress {
    let config = ingress_config(urls, name, extra);
    let ingress = TestIngress::start_unready(urls, &config, &SECRET_ENV).await;
    ingress.wait_ready().await;
    ingress
}

/// Waits until `sender` has `more` 2xx answers beyond `from`.
async fn accepted_beyond(sender: &Sender, from: usize, more: usize, what: &str) {
    eventually(Duration::from_secs(60), what, || async {
        (sender.accepted() >= from + more).then_some(())
    })
    .await;
}

/// A forwarder on the cluster delivering every push to `receiver`.
fn forwarder(cluster: &NatsCluster, receiver: &Receiver, consumer: &str) -> WorkerProcess {
    let config = format!(
        "name = \"forward\"\n[nats]\nurl = \"{urls}\"\n[consumer]\n{consumer}\n[forward]\ntimeout = \"5s\"\n[[forward.targets]]\nsubjects = \"tidegate.in.github.>\"\nurl = \"{target}\"\n",
        urls = cluster.urls(),
        target = receiver.url(),
    );
    WorkerProcess::start("tidegate-forward", &config, &[])
}

#[tokio::test]
async fn a_killed_stream_leader_loses_nothing() {
    let mut cluster = NatsCluster::start(3).await;
    let ingress = start_ingress(&cluster.urls(), "tidegate-ingress", "").await;
    let sender = Sender::start("load", vec![ingress.url(PATH)], GITHUB_SECRET, 4, INTERVAL);
    accepted_beyond(&sender, 0, 50, "load before the fault").await;

    let leader = cluster
        .stream_leader(schemas::streams::DELIVERIES_STREAM)
        .await;
    let index = cluster.index_of(&leader);
    cluster.nodes[index].kill();
    let at_kill = sender.accepted();
    accepted_beyond(&sender, at_kill, 50, "2xx again without an ingress restart").await;
    cluster.nodes[index].restart().await;
    let sent = sender.stop().await;

    Audit::new(&sent, &cluster.stored_delivery_ids().await).assert_clean("stream leader SIGKILLed");
}

#[tokio::test]
async fn a_killed_ingress_replica_acknowledged_nothing_unstored() {
    let cluster = NatsCluster::start(3).await;
    let mut replicas = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..2 {
        let port = crate::nats::free_port();
        let config = ingress_config(
            &cluster.urls(),
            "tidegate-ingress",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        replicas.push(WorkerProcess::start(
            "tidegate-ingress",
            &config,
            &SECRET_ENV,
        ));
        urls.push(format!("http://127.0.0.1:{port}"));
    }
    let http = reqwest::Client::new();
    for url in &urls {
        eventually(Duration::from_secs(30), "an ingress replica ready", || {
            let request = http.get(format!("{url}/readyz"));
            async move { (request.send().await.ok()?.status() == 200).then_some(()) }
        })
        .await;
    }
    let targets = urls.iter().map(|url| format!("{url}{PATH}")).collect();
    let sender = Sender::start("load", targets, GITHUB_SECRET, 4, INTERVAL);
    accepted_beyond(&sender, 0, 50, "load before the fault").await;
    replicas[1].kill();
    let at_kill = sender.accepted();
    accepted_beyond(&sender, at_kill, 50, "the surviving replica accepting").await;
    let sent = sender.stop().await;

    let audit = Audit::new(&sent, &cluster.stored_delivery_ids().await);
    audit.assert_clean("an ingress replica SIGKILLed");
    assert!(
        audit.unanswered > 0,
        "the killed replica was never asked\n{audit}"
    );
}

#[tokio::test]
async fn a_worker_killed_mid_job_completes_once_in_effect() {
    let cluster = NatsCluster::start(3).await;
    let ingress = start_ingress(&cluster.urls(), "tidegate-ingress", "").await;
    let receiver = Receiver::start(Script {
        hold: Duration::from_millis(200),
        ..Script::default()
    })
    .await;
    let consumer = "concurrency = 4\nack_wait = \"3s\"\nbackoff_base = \"100ms\"";
    let mut worker = forwarder(&cluster, &receiver, consumer);
    let sender = Sender::start("load", vec![ingress.url(PATH)], GITHUB_SECRET, 2, INTERVAL);
    eventually(Duration::from_secs(60), "jobs completing", || async {
        (receiver.completed().len() >= 20).then_some(())
    })
    .await;
    worker.kill();
    let _worker = forwarder(&cluster, &receiver, consumer);
    accepted_beyond(
        &sender,
        sender.accepted(),
        30,
        "load after the worker restart",
    )
    .await;
    let sent = sender.stop().await;
    let stored = cluster.stored_delivery_ids().await;
    Audit::new(&sent, &stored).assert_clean("a worker SIGKILLed mid-job");

    // At least once in delivery: every stored push reaches the target.
    eventually(
        Duration::from_secs(60),
        "every delivery forwarded",
        || async {
            let completed = receiver.completed();
            stored
                .iter()
                .all(|id| completed.iter().any(|done| done.ends_with(id.as_str())))
                .then_some(())
        },
    )
    .await;
    // Once in effect: a completed job's idempotency key stops a second
    // run; only jobs in flight when the worker died (at most its
    // concurrency) reached the target twice, with the same webhook-id, so
    // a receiver that de-duplicates on it applies each once.
    let mut effects: HashMap<String, usize> = HashMap::new();
    for id in receiver.completed() {
        *effects.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = effects.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        twice.len() <= 4,
        "more repeats than jobs in flight: {twice:?}"
    );
    assert!(effects.values().all(|count| *count <= 2), "{twice:?}");
    assert_eq!(effects.len(), stored.len());
}

#[tokio::test]
async fn the_whole_cluster_restarts_and_nothing_is_lost() {
    let mut cluster = NatsCluster::start(3).await;
    let ingress = start_ingress(&cluster.urls(), "tidegate-ingress", "").await;
    let receiver = Receiver::start(Script::default()).await;
    let _worker = forwarder(&cluster, &receiver, "concurrency = 8");
    let sender = Sender::start("load", vec![ingress.url(PATH)], GITHUB_SECRET, 4, INTERVAL);
    accepted_beyond(&sender, 0, 50, "load before the fault").await;

    cluster.kill_all();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.restart_all().await;
    let at_restart = sender.accepted();
    accepted_beyond(&sender, at_restart, 50, "2xx after the cluster restart").await;
    let sent = sender.stop().await;
    let stored = cluster.stored_delivery_ids().await;
    Audit::new(&sent, &stored).assert_clean("every node SIGKILLed and restarted");

    // The worker resumes without a restart of its own.
    eventually(
        Duration::from_secs(90),
        "the worker to forward everything",
        || async {
            let completed = receiver.completed();
            stored.iter().all(|id| completed.contains(id)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_partitioned_node_answers_503_while_the_majority_accepts() {
    let hosts = Hosts::create(3);
    let cluster = NatsCluster::start_on(&hosts).await;
    // The minority's ingress runs on node 0's host and knows only it; cut
    // off, it reaches nothing else. The majority's knows nodes 1 and 2.
    let minority_listen = format!("{}:8080", hosts.client_address(0));
    let minority_config = ingress_config(
        &cluster.nodes[0].url(),
        "minority",
        &format!("listen = \"{minority_listen}\""),
    );
    let _minority = WorkerProcess::start_in(
        &hosts.namespace(0),
        "tidegate-ingress",
        &minority_config,
        &SECRET_ENV,
    );
    let minority_url = format!("http://{minority_listen}");
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(30),
        "the minority's ingress ready",
        || {
            let request = http.get(format!("{minority_url}/readyz"));
            async move { (request.send().await.ok()?.status() == 200).then_some(()) }
        },
    )
    .await;
    let majority_urls = format!("{},{}", cluster.nodes[1].url(), cluster.nodes[2].url());
    let majority = start_ingress(&majority_urls, "majority", "").await;
    let to_minority = Sender::start(
        "minority",
        vec![format!("{minority_url}{PATH}")],
        GITHUB_SECRET,
        2,
        INTERVAL,
    );
    let to_majority = Sender::start(
        "majority",
        vec![majority.url(PATH)],
        GITHUB_SECRET,
        2,
        INTERVAL,
    );
    accepted_beyond(&to_minority, 0, 20, "the minority's node accepting first").await;
    accepted_beyond(&to_majority, 0, 20, "the majority accepting first").await;

    hosts.partition(0);
    // The cut-off node can reach no stream leader: only 503s, steadily.
    eventually(
        Duration::from_secs(45),
        "the minority answering 503",
        || async {
            let sent = to_minority.sent();
            let last: Vec<u16> = sent.iter().rev().take(6).map(|sent| sent.status).collect();
            (last.len() == 6 && last.iter().all(|status| *status == 503)).then_some(())
        },
    )
    .await;
    let before = to_majority.accepted();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while to_majority.accepted() < before + 40 {
        if std::time::Instant::now() > deadline {
            let last: Vec<u16> = to_majority
                .sent()
                .iter()
                .rev()
                .take(20)
                .map(|sent| sent.status)
                .collect();
            let on = cluster.node_serving("majority").await;
            panic!(
                "the majority stalled while partitioned: last answers {last:?}, connected to {on:?}, leader {:?}",
                cluster
                    .local_states(schemas::streams::DELIVERIES_STREAM)
                    .await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hosts.heal(0);
    accepted_beyond(
        &to_minority,
        to_minority.accepted(),
        10,
        "the healed node accepting again",
    )
    .await;

    let mut sent = to_minority.stop().await;
    sent.extend(to_majority.stop().await);
    Audit::new(&sent, &cluster.stored_delivery_ids().await).assert_clean("one node partitioned");
}

#[tokio::test]
async fn a_full_stream_refuses_and_evicts_nothing() {
    let cluster = NatsCluster::start(3).await;
    let ingress = start_ingress(
        &cluster.urls(),
        "tidegate-ingress",
        "[stream]\nmax_bytes = \"64KiB\"",
    )
    .await;
    let sender = Sender::start("load", vec![ingress.url(PATH)], GITHUB_SECRET, 2, INTERVAL);
    eventually(Duration::from_secs(60), "the stream to fill", || async {
        let sent = sender.sent();
        (sent.iter().filter(|sent| sent.status == 503).count() >= 20).then_some(())
    })
    .await;
    let sent = sender.stop().await;
    let stored = cluster.stored_delivery_ids().await;
    let audit = Audit::new(&sent, &stored);
    audit.assert_clean("the stream filled");
    assert_eq!(
        audit.stored, audit.accepted,
        "a refused delivery was stored, or an acknowledged one evicted\n{audit}"
    );
}
