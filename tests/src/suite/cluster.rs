//! The ingress and workers on a 3-node JetStream cluster: every stream and
//! bucket at R3, a server list, a hung node left for a healthy one, a node
//! down at start-up, and a leader election that is not a missing stream.

use std::time::{Duration, Instant};

use super::{GITHUB_ROUTE, GITHUB_SECRET};
use crate::ingress::metric_sample;
use crate::process::WorkerProcess;
use crate::{NatsCluster, TestIngress, eventually, sign};

const SECRET_ENV: [(&str, &str); 1] = [("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)];

async fn push(ingress: &TestIngress, guid: &str) -> u16 {
    let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
    ingress
        .http
        .post(ingress.url("/v1/webhooks/connectors/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", guid)
        .header("x-hub-signature-256", sign::github(GITHUB_SECRET, body))
        .body(body.to_vec())
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

async fn start_ingress(cluster: &NatsCluster) -> TestIngress {
    let config = format!("[nats]\npublish_timeout = \"2s\"\n{GITHUB_ROUTE}");
    let ingress = TestIngress::start_unready(&cluster.urls(), &config, &SECRET_ENV).await;
    ingress.wait_ready().await;
    ingress
}

async fn replicas(cluster: &NatsCluster, stream: &str) -> usize {
    let jetstream = cluster.jetstream().await;
    let mut stream = jetstream
        .get_stream(stream)
        .await
        .expect("the stream exists");
    stream.info().await.expect("info").config.num_replicas
}

#[tokio::test]
async fn every_stream_is_r3_and_the_ingress_leaves_a_hung_node() {
    let cluster = NatsCluster::start(3).await;
    let ingress = start_ingress(&cluster).await;
    let worker_config = format!(
        "name = \"forward\"\n[nats]\nurl = \"{}\"\n[[forward.targets]]\nsubjects = \"tidegate.in.>\"\nurl = \"http://127.0.0.1:9/\"\n",
        cluster.urls()
    );
    let _worker = WorkerProcess::start("tidegate-forward", &worker_config, &[]);
    let jetstream = cluster.jetstream().await;
    eventually(Duration::from_secs(30), "the worker's consumer", || {
        let jetstream = jetstream.clone();
        async move {
            let stream = jetstream
                .get_stream(schemas::streams::DELIVERIES_STREAM)
                .await
                .ok()?;
            stream.consumer_info("forward").await.ok().map(drop)
        }
    })
    .await;
    for stream in [
        "TIDEGATE_DELIVERIES",
        "OBJ_TIDEGATE_PAYLOADS",
        "TIDEGATE_DLQ",
        "TIDEGATE_RESULTS",
        "KV_tidegate_idempotency",
    ] {
        assert_eq!(replicas(&cluster, stream).await, 3, "{stream}");
    }

    let mut accepted = Vec::new();
    for index in 0..5 {
        let guid = format!("before-{index}");
        assert_eq!(push(&ingress, &guid).await, 202);
        accepted.push(guid);
    }
    let node = eventually(Duration::from_secs(10), "the ingress's node", || async {
        cluster.node_serving("tidegate-ingress").await
    })
    .await;
    cluster.nodes[node].pause();
    let paused = Instant::now();
    let mut attempt = 0;
    eventually(
        Duration::from_secs(40),
        "a 202 through a healthy node",
        || {
            attempt += 1;
            let guid = format!("during-{attempt}");
            let ingress = &ingress;
            async move { (push(ingress, &guid).await == 202).then_some(guid) }
        },
    )
    .await;
    let moved_after = paused.elapsed();
    assert!(
        moved_after < Duration::from_secs(20),
        "the ingress stayed on the hung node for {moved_after:?}"
    );
    let now_on = cluster.node_serving("tidegate-ingress").await;
    assert_ne!(now_on, Some(node), "still connected to the hung node");
    cluster.nodes[node].resume();

    let stored = cluster.stored_delivery_ids().await;
    for guid in &accepted {
        assert!(stored.contains(guid), "{guid} was acknowledged but is gone");
    }
}

#[tokio::test]
async fn an_ingress_started_with_a_node_down_uses_the_others() {
    let mut cluster = NatsCluster::start(3).await;
    // The streams exist (an R3 stream cannot be placed on two nodes); then
    // a node goes down and a new ingress starts with all three listed.
    start_ingress(&cluster).await.stop().await.expect("stopped");
    cluster.nodes[0].kill();
    let ingress = start_ingress(&cluster).await;
    assert_eq!(push(&ingress, "one-down").await, 202);
    assert!(
        cluster
            .stored_delivery_ids()
            .await
            .contains(&"one-down".to_owned())
    );
}

#[tokio::test]
async fn a_leader_election_is_not_a_missing_stream() {
    let mut cluster = NatsCluster::start(3).await;
    let ingress = start_ingress(&cluster).await;
    assert_eq!(push(&ingress, "first").await, 202);
    let leader = cluster
        .stream_leader(schemas::streams::DELIVERIES_STREAM)
        .await;
    let index = cluster.index_of(&leader);
    cluster.nodes[index].kill();
    let mut attempt = 0;
    eventually(Duration::from_secs(30), "a 202 after the election", || {
        attempt += 1;
        let guid = format!("after-{attempt}");
        let ingress = &ingress;
        async move { (push(ingress, &guid).await == 202).then_some(()) }
    })
    .await;
    let missing = metric_sample(
        &ingress.metrics().await,
        "tidegate_ingress_stream_missing_total",
        &[],
    );
    assert_eq!(
        missing,
        Some(0.0),
        "an election was taken for a deleted stream"
    );
    cluster.nodes[index].restart().await;
    assert!(
        cluster
            .stored_delivery_ids()
            .await
            .contains(&"first".to_owned())
    );
}
