//! The fsync trade-off: signed GitHub pushes through the ingress into one
//! server and into a 3-node cluster (the stream at R3), each with
//! nats-server's default sync interval and with `sync_interval: always`.
//! One table, every case on a fresh broker, the same load for each.

use std::time::Duration;

use bytes::Bytes;

use crate::load::{self, LoadConfig};
use crate::processes::{Ingress, NatsServer, cpu_seconds};
use crate::raw::StreamState;

/// What every case shares.
pub(crate) struct DurabilityConfig {
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
    pub(crate) route_path: String,
    pub(crate) secret: String,
    pub(crate) signature: String,
}

/// One row of the table.
struct Row {
    replicas: usize,
    sync: &'static str,
    rate: f64,
    p50: Duration,
    p99: Duration,
    ingress_us: f64,
    nats_us: f64,
    zero_loss: bool,
}

/// Runs the four cases; fails if any case lost a delivery.
pub(crate) async fn run(config: &DurabilityConfig, body: &Bytes) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for (replicas, always) in [(1, false), (1, true), (3, false), (3, true)] {
        rows.push(case(config, body, replicas, always).await?);
    }
    println!(
        "\n| replicas | sync_interval | accepted/s | p50 ms | p99 ms | ingress µs/delivery | nats-server µs/delivery (all nodes) | zero loss |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for row in &rows {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
            row.replicas,
            row.sync,
            row.rate,
            row.p50.as_secs_f64() * 1e3,
            row.p99.as_secs_f64() * 1e3,
            row.ingress_us,
            row.nats_us,
            if row.zero_loss { "PASS" } else { "FAIL" }
        );
    }
    anyhow::ensure!(
        rows.iter().all(|row| row.zero_loss),
        "the stream count does not match the acknowledged count"
    );
    Ok(())
}

async fn case(
    config: &DurabilityConfig,
    body: &Bytes,
    replicas: usize,
    always: bool,
) -> anyhow::Result<Row> {
    let sync = if always { "always" } else { "default (2m)" };
    println!(
        "\ndurability: {replicas} node(s), sync_interval {sync}, {} connections for {} s",
        config.connections,
        config.duration.as_secs()
    );
    let nodes = NatsServer::start_nodes(replicas, always).await?;
    let urls: Vec<&str> = nodes.iter().map(|node| node.url.as_str()).collect();
    // `[jetstream] replicas = "auto"`: R3 on the cluster, R1 alone.
    let ingress = Ingress::start(&urls.join(","), &config.route_path, &config.secret).await?;
    let nats_pids: Vec<u32> = nodes.iter().map(|node| node.process.pid()).collect();
    let nats_cpu =
        || -> anyhow::Result<f64> { nats_pids.iter().map(|pid| cpu_seconds(Some(*pid))).sum() };
    let ingress_pid = Some(ingress.process.pid());
    let stored_before = StreamState::read(&nodes[0].url).await?;
    let (ingress_before, nats_before) = (cpu_seconds(ingress_pid)?, nats_cpu()?);
    let result = load::run(LoadConfig {
        address: ingress.address,
        path: config.route_path.clone(),
        connections: config.connections,
        duration: config.duration,
        body: body.clone(),
        signature: config.signature.clone(),
    })
    .await;
    let ingress_spent = cpu_seconds(ingress_pid)? - ingress_before;
    let nats_spent = nats_cpu()? - nats_before;
    let stored = StreamState::read(&nodes[0].url)
        .await?
        .since(&stored_before);
    let accepted = result.accepted.max(1) as f64;
    let row = Row {
        replicas,
        sync: if always { "always" } else { "default" },
        rate: result.accepted as f64 / result.elapsed.as_secs_f64(),
        p50: result.percentile(50.0),
        p99: result.percentile(99.0),
        ingress_us: ingress_spent * 1e6 / accepted,
        nats_us: nats_spent * 1e6 / accepted,
        zero_loss: stored.messages == result.accepted && result.accepted > 0,
    };
    println!(
        "  {} accepted, {} non-2xx, {} errors: {:.0}/s, p99 {:.2} ms; stream +{}",
        result.accepted,
        result.non_2xx,
        result.errors,
        row.rate,
        row.p99.as_secs_f64() * 1e3,
        stored.messages
    );
    if result.non_2xx + result.errors > 0 {
        println!("{}", ingress.log_tail());
    }
    Ok(row)
}
