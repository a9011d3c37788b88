//! `tidegate status`: the three streams, the worker consumers on the
//! deliveries stream (lag, pending, redeliveries), dead letters per worker,
//! and which workers are alive (waiting pulls, heartbeats heard meanwhile).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, ErrorCode, consumer, stream};
use futures::{StreamExt as _, TryStreamExt as _};
use schemas::streams::{
    DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, DELIVERIES_STREAM, HEARTBEAT_PREFIX, RESULTS_STREAM,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::common::Common;
use crate::scan::rfc3339;
use crate::table::Table;

/// Heartbeats are sent every 10 s: a listen this long hears every worker.
const FULL_HEARTBEAT_WAIT: Duration = Duration::from_secs(11);
/// Each request to the broker.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    common: Common,
    /// How long to listen for worker heartbeats (sent every 10 s; `11s`
    /// hears every live worker). Waiting pulls show idle live workers
    /// without waiting.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    wait: Duration,
}

#[derive(Debug, Serialize)]
struct Status {
    streams: Vec<StreamStatus>,
    consumers: Vec<ConsumerStatus>,
    dead_letters: DeadLetters,
    workers: Vec<WorkerStatus>,
    /// How long heartbeats were listened for, in milliseconds.
    heartbeat_wait_ms: u128,
}

#[derive(Debug, Serialize)]
struct StreamStatus {
    name: &'static str,
    exists: bool,
    messages: u64,
    bytes: u64,
    first_sequence: u64,
    last_sequence: u64,
    /// RFC 3339; absent when the stream is empty.
    first_time: Option<String>,
    last_time: Option<String>,
    consumers: usize,
}

#[derive(Debug, Serialize)]
struct ConsumerStatus {
    name: String,
    filter_subject: String,
    /// Deliveries not yet handed to the consumer (`num_pending`).
    lag: u64,
    /// Handed out, not yet acknowledged.
    ack_pending: usize,
    redelivered: usize,
    /// Pull requests waiting: an idle live worker keeps one open.
    waiting_pulls: usize,
    delivered_sequence: u64,
    ack_floor_sequence: u64,
    last_active: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct DeadLetters {
    total: u64,
    by_worker: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct WorkerStatus {
    name: String,
    /// A waiting pull or a heartbeat within the wait.
    alive: bool,
    /// Instances whose heartbeat arrived within the wait.
    instances: BTreeSet<String>,
    waiting_pulls: usize,
    has_consumer: bool,
}

pub(crate) async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let jetstream = args.common.jetstream().await?;
    // Listen first, so the wait overlaps the requests below.
    let heartbeats = jetstream
        .client()
        .subscribe(format!("{HEARTBEAT_PREFIX}.>"))
        .await
        .context("listening for worker heartbeats")?;
    let listen_until = tokio::time::Instant::now() + args.wait.min(FULL_HEARTBEAT_WAIT);
    let listening = tokio::spawn(collect_heartbeats(heartbeats, listen_until));

    let mut streams = Vec::new();
    for name in [DELIVERIES_STREAM, DEAD_LETTER_STREAM, RESULTS_STREAM] {
        streams.push(stream_status(&jetstream, name).await?);
    }
    let consumers = if streams[0].exists {
        consumers(&jetstream).await?
    } else {
        Vec::new()
    };
    let dead_letters = if streams[1].exists {
        dead_letters(&jetstream).await?
    } else {
        DeadLetters::default()
    };
    let heard = listening.await.context("listening for heartbeats")?;
    let status = Status {
        workers: workers(&consumers, heard),
        streams,
        consumers,
        dead_letters,
        heartbeat_wait_ms: args.wait.min(FULL_HEARTBEAT_WAIT).as_millis(),
    };
    if args.common.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

/// Worker name → instances heard until `until`.
async fn collect_heartbeats(
    mut heartbeats: async_nats::Subscriber,
    until: tokio::time::Instant,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut heard: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    while let Ok(Some(message)) = tokio::time::timeout_at(until, heartbeats.next()).await {
        let subject = message.subject.as_str();
        let tokens = subject
            .strip_prefix(HEARTBEAT_PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.split_once('.'));
        if let Some((worker, instance)) = tokens {
            heard
                .entry(worker.to_owned())
                .or_default()
                .insert(instance.to_owned());
        }
    }
    heard
}

async fn stream_status(
    jetstream: &jetstream::Context,
    name: &'static str,
) -> anyhow::Result<StreamStatus> {
    let info = match jetstream.get_stream(name).await {
        Ok(mut stream) => Some(
            tokio::time::timeout(REQUEST_TIMEOUT, stream.info())
                .await
                .map_err(|_| anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}"))
                .and_then(|info| Ok(info?.state.clone()))
                .with_context(|| format!("reading the state of {name}"))?,
        ),
        Err(error)
            if matches!(
                error.kind(),
                GetStreamErrorKind::JetStream(error) if error.error_code() == ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            None
        }
        Err(error) => return Err(error).with_context(|| format!("opening stream {name}")),
    };
    let time =
        |state: &stream::State, time: OffsetDateTime| (state.messages > 0).then(|| rfc3339(time));
    Ok(match info {
        Some(state) => StreamStatus {
            name,
            exists: true,
            messages: state.messages,
            bytes: state.bytes,
            first_sequence: state.first_sequence,
            last_sequence: state.last_sequence,
            first_time: time(&state, state.first_timestamp),
            last_time: time(&state, state.last_timestamp),
            consumers: state.consumer_count,
        },
        None => StreamStatus {
            name,
            exists: false,
            messages: 0,
            bytes: 0,
            first_sequence: 0,
            last_sequence: 0,
            first_time: None,
            last_time: None,
            consumers: 0,
        },
    })
}

/// Durable consumers on the deliveries stream: one per worker, named after
/// it. Ephemeral readers (`deliveries list`, replays) are left out.
async fn consumers(jetstream: &jetstream::Context) -> anyhow::Result<Vec<ConsumerStatus>> {
    let stream = jetstream
        .get_stream(DELIVERIES_STREAM)
        .await
        .with_context(|| format!("opening stream {DELIVERIES_STREAM}"))?;
    let infos: Vec<consumer::Info> =
        tokio::time::timeout(REQUEST_TIMEOUT, stream.consumers().try_collect::<Vec<_>>())
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}"))
            .and_then(|infos| Ok(infos?))
            .with_context(|| format!("listing the consumers of {DELIVERIES_STREAM}"))?;
    let mut consumers: Vec<ConsumerStatus> = infos
        .into_iter()
        .filter(|info| info.config.durable_name.is_some())
        .map(|info| ConsumerStatus {
            filter_subject: info.config.filter_subject.clone(),
            lag: info.num_pending,
            ack_pending: info.num_ack_pending,
            redelivered: info.num_redelivered,
            waiting_pulls: info.num_waiting,
            delivered_sequence: info.delivered.stream_sequence,
            ack_floor_sequence: info.ack_floor.stream_sequence,
            last_active: info.delivered.last_active.map(rfc3339),
            name: info.name,
        })
        .collect();
    consumers.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(consumers)
}

/// Message counts per `tidegate.dlq.<worker>` subject.
async fn dead_letters(jetstream: &jetstream::Context) -> anyhow::Result<DeadLetters> {
    let stream = jetstream
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .with_context(|| format!("opening stream {DEAD_LETTER_STREAM}"))?;
    let subjects: Vec<(String, usize)> = tokio::time::timeout(REQUEST_TIMEOUT, async {
        stream
            .info_with_subjects(format!("{DEAD_LETTER_PREFIX}.>"))
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}"))
    .and_then(|subjects| Ok(subjects?))
    .with_context(|| format!("counting dead letters in {DEAD_LETTER_STREAM}"))?;
    let mut letters = DeadLetters::default();
    for (subject, count) in subjects {
        let worker = subject
            .strip_prefix(DEAD_LETTER_PREFIX)
            .map_or(subject.as_str(), |rest| rest.trim_start_matches('.'));
        let count = count as u64;
        *letters.by_worker.entry(worker.to_owned()).or_default() += count;
        letters.total += count;
    }
    Ok(letters)
}

/// Every worker with a consumer or a heartbeat.
fn workers(
    consumers: &[ConsumerStatus],
    mut heard: BTreeMap<String, BTreeSet<String>>,
) -> Vec<WorkerStatus> {
    let mut workers: Vec<WorkerStatus> = consumers
        .iter()
        .map(|consumer| {
            let instances = heard.remove(&consumer.name).unwrap_or_default();
            WorkerStatus {
                name: consumer.name.clone(),
                alive: consumer.waiting_pulls > 0 || !instances.is_empty(),
                instances,
                waiting_pulls: consumer.waiting_pulls,
                has_consumer: true,
            }
        })
        .collect();
    workers.extend(heard.into_iter().map(|(name, instances)| WorkerStatus {
        name,
        alive: true,
        instances,
        waiting_pulls: 0,
        has_consumer: false,
    }));
    workers.sort_by(|left, right| left.name.cmp(&right.name));
    workers
}

fn render(status: &Status) -> String {
    let mut text = String::new();
    let mut streams = Table::new(&["STREAM", "MESSAGES", "BYTES", "FIRST", "LAST"]);
    for stream in &status.streams {
        if !stream.exists {
            streams.row(vec![
                stream.name.to_owned(),
                "(absent)".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            ]);
            continue;
        }
        let time = |time: &Option<String>| time.clone().unwrap_or_else(|| "-".to_owned());
        streams.row(vec![
            stream.name.to_owned(),
            stream.messages.to_string(),
            bytes(stream.bytes),
            time(&stream.first_time),
            time(&stream.last_time),
        ]);
    }
    text.push_str(&streams.render());
    text.push('\n');

    let mut consumers = Table::new(&[
        "CONSUMER",
        "FILTER",
        "LAG",
        "ACK PENDING",
        "REDELIVERED",
        "WAITING",
        "LAST ACTIVE",
    ]);
    for consumer in &status.consumers {
        consumers.row(vec![
            consumer.name.clone(),
            consumer.filter_subject.clone(),
            consumer.lag.to_string(),
            consumer.ack_pending.to_string(),
            consumer.redelivered.to_string(),
            consumer.waiting_pulls.to_string(),
            consumer
                .last_active
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    if consumers.is_empty() {
        text.push_str(&format!("no worker consumers on {DELIVERIES_STREAM}\n"));
    } else {
        text.push_str(&consumers.render());
    }
    text.push('\n');

    let by_worker: Vec<String> = status
        .dead_letters
        .by_worker
        .iter()
        .map(|(worker, count)| format!("{worker}: {count}"))
        .collect();
    text.push_str(&format!("dead letters: {}", status.dead_letters.total));
    if !by_worker.is_empty() {
        text.push_str(&format!(" ({})", by_worker.join(", ")));
    }
    text.push_str("\n\n");

    let wait = Duration::from_millis(u64::try_from(status.heartbeat_wait_ms).unwrap_or(u64::MAX));
    let mut workers = Table::new(&["WORKER", "ALIVE", "HEARTBEATS", "WAITING PULLS"]);
    for worker in &status.workers {
        workers.row(vec![
            worker.name.clone(),
            if worker.alive { "yes" } else { "no" }.to_owned(),
            worker.instances.len().to_string(),
            if worker.has_consumer {
                worker.waiting_pulls.to_string()
            } else {
                "no consumer".to_owned()
            },
        ]);
    }
    if workers.is_empty() {
        text.push_str("no workers\n");
    } else {
        text.push_str(&workers.render());
    }
    text.push_str(&format!(
        "(heartbeats listened for {}; every live worker sends one every 10s)\n",
        humantime::format_duration(wait)
    ));
    text
}

/// `812 B`, `8.1 KiB`, `3.4 MiB`, ...
fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_readable() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(8 * 1024 + 100), "8.1 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn a_worker_is_alive_with_a_waiting_pull_or_a_heartbeat() {
        let consumer = |name: &str, waiting_pulls| ConsumerStatus {
            name: name.to_owned(),
            filter_subject: "tidegate.in.>".to_owned(),
            lag: 0,
            ack_pending: 0,
            redelivered: 0,
            waiting_pulls,
            delivered_sequence: 0,
            ack_floor_sequence: 0,
            last_active: None,
        };
        let heard = BTreeMap::from([
            ("sync".to_owned(), BTreeSet::from(["a".to_owned()])),
            ("inbox".to_owned(), BTreeSet::from(["b".to_owned()])),
        ]);
        let listed = workers(
            &[
                consumer("forward", 1),
                consumer("sync", 0),
                consumer("gone", 0),
            ],
            heard,
        );
        let summary: Vec<(&str, bool, bool)> = listed
            .iter()
            .map(|worker| (worker.name.as_str(), worker.alive, worker.has_consumer))
            .collect();
        assert_eq!(
            summary,
            [
                ("forward", true, true),
                ("gone", false, true),
                ("inbox", true, false),
                ("sync", true, true),
            ]
        );
    }
}
