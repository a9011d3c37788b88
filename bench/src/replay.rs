//! Replay throughput: fill the deliveries stream straight through JetStream
//! with valid envelopes, then time the release `tidegate replay` over that
//! range, sampling its peak memory (VmHWM) and CPU while it runs.

use std::future::IntoFuture;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use schemas::headers as nats_headers;
use schemas::streams::DELIVERIES_STREAM;

/// Subject of the prefilled deliveries.
const SUBJECT: &str = "tidegate.in.bench.replay";
/// Longest wait for one PubAck while prefilling.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the CLI's memory and CPU are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Longest a replay run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);

/// The body of a small delivery (an envelope of about 330 bytes).
pub(crate) const SMALL_BODY: &[u8] = br#"{"action":"ping","n":1}"#;

/// Stream sequences a prefill stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefilled {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) envelope_bytes: usize,
    pub(crate) elapsed: Duration,
}

/// Publishes `count` envelopes around `body`, `window` PubAcks in flight.
pub(crate) async fn prefill(
    nats_url: &str,
    count: u64,
    body: &[u8],
    window: usize,
) -> anyhow::Result<Prefilled> {
    let client = crate::raw::connect(nats_url).await?.client;
    let jetstream = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .ack_timeout(ACK_TIMEOUT)
        .max_ack_inflight(window)
        .build(client);
    let body = std::str::from_utf8(body).context("the body is JSON text")?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut in_flight: FuturesUnordered<<PublishAckFuture as IntoFuture>::IntoFuture> =
        FuturesUnordered::new();
    let (mut first, mut last) = (u64::MAX, 0_u64);
    let mut record = |ack: Result<jetstream::publish::PublishAck, _>| -> anyhow::Result<()> {
        let ack = ack.context("prefill PubAck")?;
        first = first.min(ack.sequence);
        last = last.max(ack.sequence);
        Ok(())
    };
    let started = Instant::now();
    let mut envelope_bytes = 0;
    for index in 0..count {
        while in_flight.len() >= window {
            if let Some(ack) = in_flight.next().await {
                record(ack)?;
            }
        }
        let delivery_id = format!("{run}-{index}");
        let envelope = envelope(&delivery_id, body);
        envelope_bytes = envelope.len();
        let mut headers = HeaderMap::new();
        headers.insert(nats_headers::ENVELOPE_VERSION, "1");
        headers.insert(nats_headers::DELIVERY_ID, delivery_id.as_str());
        headers.insert(nats_headers::ROUTE, "bench");
        headers.insert(
            nats_headers::MSG_ID,
            format!("bench:{delivery_id}").as_str(),
        );
        let message = PublishMessage::build()
            .payload(Bytes::from(envelope))
            .headers(headers);
        let ack = jetstream
            .send_publish(SUBJECT, message)
            .await
            .context("prefill publish")?;
        in_flight.push(ack.into_future());
    }
    while let Some(ack) = in_flight.next().await {
        record(ack)?;
    }
    anyhow::ensure!(
        last >= first && last - first + 1 == count,
        "prefill stored sequences {first}..={last}, not {count} in a row"
    );
    Ok(Prefilled {
        first,
        last,
        envelope_bytes,
        elapsed: started.elapsed(),
    })
}

/// A valid envelope v1 around a JSON body.
fn envelope(delivery_id: &str, body: &str) -> Vec<u8> {
    format!(
        r#"{{"version":1,"id":"{delivery_id}","route":"bench","source":"bench","subject":"{SUBJECT}","received_at":"2025-01-01T00:00:00.000Z","method":"POST","path":"/bench","headers":{{"content-type":"application/json"}},"content_type":"application/json","payload_encoding":"json","payload":{body}}}"#
    )
    .into_bytes()
}

/// One `tidegate replay` run, measured from outside.
#[derive(Debug)]
pub(crate) struct ReplayRun {
    /// Copies the CLI reports stored (PubAcks that were not duplicates).
    pub(crate) replayed: u64,
    /// The CLI's own time from the first read to the last PubAck.
    pub(crate) seconds: f64,
    /// From spawn to exit (connecting and setting up included).
    pub(crate) wall: Duration,
    /// VmHWM of the CLI process, in KiB.
    pub(crate) peak_rss_kib: u64,
    /// User plus system CPU seconds of the CLI process.
    pub(crate) cpu_seconds: f64,
}

/// Runs the release `tidegate replay --from-seq first --to-seq last`.
pub(crate) async fn run_cli(
    nats_url: &str,
    prefilled: &Prefilled,
    window: u32,
) -> anyhow::Result<ReplayRun> {
    let binary = crate::processes::sibling_binary("tidegate")?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .args(["replay", "--json", "--nats-url", nats_url])
        .args(["--from-seq", &prefilled.first.to_string()])
        .args(["--to-seq", &prefilled.last.to_string()])
        .args(["--window", &window.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting tidegate replay")?;
    let pid = child.id().context("the replay's pid")?;
    let mut stdout = child.stdout.take().context("piped stdout")?;
    let mut stderr = child.stderr.take().context("piped stderr")?;
    let output = tokio::spawn(async move {
        let mut text = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut text)
            .await
            .map(|_| text)
    });
    let errors = tokio::spawn(async move {
        let mut text = Vec::new();
        let read = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut text).await;
        read.map(|_| String::from_utf8_lossy(&text).into_owned())
            .unwrap_or_default()
    });
    let (mut peak_rss_kib, mut cpu_seconds) = (0, 0.0);
    let status = tokio::time::timeout(RUN_TIMEOUT, async {
        loop {
            // VmHWM only grows, so the last sample before exit is the peak.
            if let Some(hwm) = vm_hwm_kib(pid) {
                peak_rss_kib = hwm;
            }
            if let Ok(cpu) = crate::processes::cpu_seconds(Some(pid)) {
                cpu_seconds = cpu;
            }
            tokio::select! {
                status = child.wait() => return status,
                () = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
        }
    })
    .await
    .context("tidegate replay did not finish in time")?
    .context("waiting for tidegate replay")?;
    let wall = started.elapsed();
    let errors = errors.await.unwrap_or_default();
    anyhow::ensure!(
        status.success(),
        "tidegate replay failed: {status}\n{errors}"
    );
    let text = output.await.context("reading the replay's output")??;
    let report: serde_json::Value =
        serde_json::from_slice(&text).context("the replay's JSON report")?;
    Ok(ReplayRun {
        replayed: report["run"]["replayed"].as_u64().unwrap_or(0),
        seconds: report["run"]["seconds"].as_f64().unwrap_or(0.0),
        wall,
        peak_rss_kib,
        cpu_seconds,
    })
}

/// `VmHWM` from `/proc/<pid>/status`, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Messages in the deliveries stream.
pub(crate) async fn stream_messages(nats_url: &str) -> anyhow::Result<u64> {
    let client = crate::raw::connect(nats_url).await?.client;
    let mut stream = jetstream::new(client)
        .get_stream(DELIVERIES_STREAM)
        .await
        .context("opening the deliveries stream")?;
    Ok(stream.info().await.context("stream info")?.state.messages)
}
