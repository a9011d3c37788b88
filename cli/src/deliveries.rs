//! `tidegate deliveries list|show`: read stored deliveries from the stream
//! (matched on the ingress's NATS headers, bodies parsed only when a header
//! is missing) and show one with its latest job result per worker.

use std::time::Duration;

use anyhow::{Context as _, bail};
use async_nats::jetstream;
use futures::TryStreamExt as _;
use schemas::headers::{DELIVERY_ID, ENVELOPE_VERSION, EVENT, REPLAY_OF, ROUTE};
use schemas::streams::{DELIVERIES_STREAM, RESULTS_STREAM};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::common::Common;
use crate::pretty_json::pretty;
use crate::scan::{Scan, Scanned, Start, last_sequence, parse_time, rfc3339, to_millis};
use crate::table::Table;

/// List stored deliveries, or show one with its job results.
#[derive(Debug, clap::Args)]
pub(crate) struct DeliveriesArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: DeliveriesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DeliveriesCommand {
    /// Stored deliveries, oldest first, matched on the Tidegate-Route,
    /// Tidegate-Event and Tidegate-Delivery-Id headers.
    List(ListArgs),
    /// One delivery's envelope and the latest job result of each worker.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only this route.
    #[arg(long)]
    route: Option<String>,
    /// Only this subject (wildcards allowed: `tidegate.in.github.>`);
    /// default: every subject of the stream, ignored deliveries included.
    #[arg(long)]
    subject: Option<String>,
    /// Only this event.
    #[arg(long)]
    event: Option<String>,
    /// Only this delivery id (the original and any replayed copies).
    #[arg(long)]
    id: Option<String>,
    /// Stored at or after: RFC 3339 (`2024-05-01T12:00:00Z`) or a duration
    /// ago (`2h`, `30m`).
    #[arg(long, value_parser = parse_time)]
    since: Option<OffsetDateTime>,
    /// Stored at or before: RFC 3339 or a duration ago.
    #[arg(long, value_parser = parse_time)]
    until: Option<OffsetDateTime>,
    /// Stop after this many deliveries; 0 lists every match.
    #[arg(long, default_value_t = 100)]
    limit: u64,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "seq"])))]
struct ShowArgs {
    /// The delivery id (as listed, or as the ingress answered it).
    id: Option<String>,
    /// The stream sequence instead of an id.
    #[arg(long)]
    seq: Option<u64>,
    /// Look for the id only on this subject (faster on a large stream).
    #[arg(long, requires = "id")]
    subject: Option<String>,
    /// Look for the id only from this time on (faster on a large stream).
    #[arg(long, requires = "id", value_parser = parse_time)]
    since: Option<OffsetDateTime>,
}

pub(crate) async fn run(args: DeliveriesArgs) -> anyhow::Result<()> {
    let jetstream = args.common.jetstream().await?;
    match args.command {
        DeliveriesCommand::List(list) => run_list(&jetstream, &list, args.common.json).await,
        DeliveriesCommand::Show(show) => run_show(&jetstream, &show, args.common.json).await,
    }
}

/// What a listing shows of each delivery, read from its headers.
#[derive(Debug, Serialize)]
struct Row {
    sequence: u64,
    stored_at: String,
    subject: String,
    route: Option<String>,
    event: Option<String>,
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_of: Option<u64>,
}

async fn run_list(
    jetstream: &jetstream::Context,
    args: &ListArgs,
    json: bool,
) -> anyhow::Result<()> {
    let last = last_sequence(jetstream).await?;
    let start = args.since.map_or(Start::First, Start::Time);
    let mut scan = Scan::open(
        jetstream,
        DELIVERIES_STREAM,
        args.subject.as_deref(),
        start,
        last,
    )
    .await?;
    if !json {
        println!(
            "{:<8}  {:<24}  {:<12}  {:<24}  {:<40}  SUBJECT",
            "SEQ", "STORED", "ROUTE", "EVENT", "ID"
        );
    }
    let mut shown = 0;
    let mut limited = false;
    while let Some(scanned) = scan.next().await? {
        if args
            .until
            .is_some_and(|until| after(scanned.stored_at, until))
        {
            break;
        }
        let row = row(&scanned);
        let wanted =
            |filter: &Option<String>, value: &Option<String>| filter.is_none() || filter == value;
        if !(wanted(&args.route, &row.route)
            && wanted(&args.event, &row.event)
            && wanted(&args.id, &row.id))
        {
            continue;
        }
        if json {
            println!("{}", serde_json::to_string(&row)?);
        } else {
            let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
            println!(
                "{:<8}  {:<24}  {:<12}  {:<24}  {:<40}  {}",
                row.sequence,
                row.stored_at,
                dash(&row.route),
                dash(&row.event),
                dash(&row.id),
                row.subject
            );
        }
        shown += 1;
        if args.limit != 0 && shown >= args.limit {
            limited = true;
            break;
        }
    }
    // The summary follows the table on stdout, on its own line, so that it
    // can never interleave with the rows.
    if !json {
        let noun = if shown == 1 { "delivery" } else { "deliveries" };
        println!("\n{shown} {noun}");
        if limited {
            println!(
                "stopped at --limit {}: narrow with --since/--until or raise --limit",
                args.limit
            );
        }
    }
    Ok(())
}

/// Whether `stored_at` is after `until`. A time given to the millisecond
/// (as listings print it) covers its whole millisecond, so that `--until`
/// with a row's own printed time keeps that row.
fn after(stored_at: OffsetDateTime, until: OffsetDateTime) -> bool {
    if until.nanosecond().is_multiple_of(1_000_000) {
        to_millis(stored_at) > until
    } else {
        stored_at > until
    }
}

/// The fields of a listing, from the headers the ingress sets; the body is
/// parsed only for a message without them.
fn row(scanned: &Scanned) -> Row {
    let message = &scanned.message;
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
    };
    let mut row = Row {
        sequence: scanned.sequence,
        stored_at: rfc3339(scanned.stored_at),
        subject: message.subject.to_string(),
        route: header(ROUTE),
        event: header(EVENT),
        id: header(DELIVERY_ID),
        replay_of: header(REPLAY_OF).and_then(|sequence| sequence.parse().ok()),
    };
    if row.route.is_none() || row.id.is_none() {
        #[derive(Deserialize)]
        struct Named {
            id: Option<String>,
            route: Option<String>,
            event: Option<String>,
        }
        if let Ok(named) = serde_json::from_slice::<Named>(&message.payload) {
            row.route = row.route.or(named.route);
            row.event = row.event.or(named.event);
            row.id = row.id.or(named.id);
        }
    }
    row
}

/// A delivery as stored, found by id or sequence.
struct Found {
    sequence: u64,
    stored_at: OffsetDateTime,
    subject: String,
    headers: Vec<(String, String)>,
    payload: bytes::Bytes,
}

async fn run_show(
    jetstream: &jetstream::Context,
    args: &ShowArgs,
    json: bool,
) -> anyhow::Result<()> {
    let (found, copies) = match (&args.id, args.seq) {
        (_, Some(sequence)) => (by_sequence(jetstream, sequence).await?, Vec::new()),
        (Some(id), None) => by_id(jetstream, id, args).await?,
        (None, None) => bail!("name a delivery id or --seq"),
    };
    let envelope_id = header_value(&found.headers, DELIVERY_ID).or_else(|| {
        #[derive(Deserialize)]
        struct OnlyId {
            id: String,
        }
        serde_json::from_slice::<OnlyId>(&found.payload)
            .ok()
            .map(|only| only.id)
    });
    let results = match &envelope_id {
        Some(id) => results(jetstream, id).await?,
        None => Vec::new(),
    };
    if json {
        print_show_json(&found, &copies, &results)
    } else {
        print_show(&found, envelope_id.as_deref(), &copies, &results);
        Ok(())
    }
}

async fn by_sequence(jetstream: &jetstream::Context, sequence: u64) -> anyhow::Result<Found> {
    let stream = jetstream
        .get_stream(DELIVERIES_STREAM)
        .await
        .with_context(|| format!("opening stream {DELIVERIES_STREAM}"))?;
    let message = stream
        .get_raw_message(sequence)
        .await
        .with_context(|| format!("reading sequence {sequence} of {DELIVERIES_STREAM}"))?;
    let headers = message
        .headers
        .iter()
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| (name.to_string(), value.to_string()))
        })
        .collect();
    Ok(Found {
        sequence: message.sequence,
        stored_at: message.time,
        subject: message.subject.to_string(),
        headers,
        payload: message.payload,
    })
}

/// Scans for the id; the first match is shown, later ones (replayed copies)
/// are returned by sequence.
async fn by_id(
    jetstream: &jetstream::Context,
    id: &str,
    args: &ShowArgs,
) -> anyhow::Result<(Found, Vec<u64>)> {
    let last = last_sequence(jetstream).await?;
    let start = args.since.map_or(Start::First, Start::Time);
    let mut scan = Scan::open(
        jetstream,
        DELIVERIES_STREAM,
        args.subject.as_deref(),
        start,
        last,
    )
    .await?;
    let mut found = None;
    let mut copies = Vec::new();
    while let Some(scanned) = scan.next().await? {
        if row(&scanned).id.as_deref() != Some(id) {
            continue;
        }
        if found.is_some() {
            copies.push(scanned.sequence);
            continue;
        }
        let message = &scanned.message;
        let headers = message
            .headers
            .iter()
            .flat_map(|headers| headers.iter())
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |value| (name.to_string(), value.to_string()))
            })
            .collect();
        found = Some(Found {
            sequence: scanned.sequence,
            stored_at: scanned.stored_at,
            subject: message.subject.to_string(),
            headers,
            payload: message.payload.clone(),
        });
    }
    match found {
        Some(found) => Ok((found, copies)),
        None => bail!("no delivery with id {id} in {DELIVERIES_STREAM}"),
    }
}

/// Each worker (a durable consumer on the deliveries stream is named after
/// its worker) with its latest result for the delivery, if any.
async fn results(
    jetstream: &jetstream::Context,
    delivery_id: &str,
) -> anyhow::Result<Vec<(String, Option<schemas::JobResult>)>> {
    let stream = jetstream
        .get_stream(DELIVERIES_STREAM)
        .await
        .with_context(|| format!("opening stream {DELIVERIES_STREAM}"))?;
    let mut workers: Vec<String> = stream
        .consumers()
        .try_filter_map(|info| async move { Ok(info.config.durable_name) })
        .try_collect()
        .await
        .with_context(|| format!("listing the consumers of {DELIVERIES_STREAM}"))?;
    workers.sort();
    // Workers create the results stream; without one there are no results.
    if jetstream.get_stream(RESULTS_STREAM).await.is_err() {
        return Ok(workers.into_iter().map(|worker| (worker, None)).collect());
    }
    let mut results = Vec::with_capacity(workers.len());
    for worker in workers {
        let latest = tokio::time::timeout(
            Duration::from_secs(10),
            broker::results::latest(jetstream, &worker, delivery_id),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 10s"))
        .and_then(|result| result.map_err(anyhow::Error::from))
        .with_context(|| format!("reading the latest result of worker {worker}"))?;
        results.push((worker, latest));
    }
    Ok(results)
}

fn print_show(
    found: &Found,
    id: Option<&str>,
    copies: &[u64],
    results: &[(String, Option<schemas::JobResult>)],
) {
    println!("delivery  {}", id.unwrap_or("-"));
    println!("sequence  {}", found.sequence);
    println!("stored    {}", rfc3339(found.stored_at));
    println!("subject   {}", found.subject);
    let mut headers = found.headers.clone();
    headers.sort();
    for (name, value) in &headers {
        println!("header    {name}: {value}");
    }
    if !copies.is_empty() {
        let copies: Vec<String> = copies.iter().map(u64::to_string).collect();
        println!("copies    at sequence {}", copies.join(", "));
    }
    println!();
    match std::str::from_utf8(&found.payload) {
        Ok(text) if serde_json::from_str::<&RawValue>(text).is_ok() => println!("{}", pretty(text)),
        _ => println!("(not JSON: {} bytes)", found.payload.len()),
    }
    println!();
    if results.is_empty() {
        println!("no worker consumes {DELIVERIES_STREAM}, so no job results");
        return;
    }
    let mut table = Table::new(&["WORKER", "STATUS", "ATTEMPTS", "COMPLETED", "DETAIL"]);
    for (worker, result) in results {
        let Some(result) = result else {
            table.row(vec![
                worker.clone(),
                "no result".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                String::new(),
            ]);
            continue;
        };
        table.row(vec![
            worker.clone(),
            serde_json::to_value(result.status)
                .ok()
                .and_then(|status| status.as_str().map(str::to_owned))
                .unwrap_or_default(),
            result.attempts.to_string(),
            result.completed_at.clone(),
            detail(result),
        ]);
    }
    print!("{}", table.render());
}

/// The error, counts and detail of a result on one line.
fn detail(result: &schemas::JobResult) -> String {
    let mut parts = Vec::new();
    if let Some(error) = &result.error {
        parts.push(format!("error: {error}"));
    }
    parts.extend(
        result
            .counts
            .iter()
            .map(|(name, count)| format!("{name}={count}")),
    );
    parts.extend(
        result
            .detail
            .iter()
            .map(|(name, value)| format!("{name}={value}")),
    );
    if !result.failures.is_empty() {
        parts.push(format!("{} failed items", result.failures.len()));
    }
    if let Some(connector) = &result.connector {
        parts.push(format!("sync event {}", connector.connector_sync_event_id));
    }
    parts.join(", ")
}

fn print_show_json(
    found: &Found,
    copies: &[u64],
    results: &[(String, Option<schemas::JobResult>)],
) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Shown<'a> {
        sequence: u64,
        stored_at: String,
        subject: &'a str,
        headers: std::collections::BTreeMap<&'a str, &'a str>,
        copies: &'a [u64],
        /// The delivery as one envelope v1 document: rendered from the
        /// headers and body of an envelope v2, else the stored body
        /// verbatim when it is JSON, else a string.
        envelope: serde_json::Value,
        results: std::collections::BTreeMap<&'a str, &'a Option<schemas::JobResult>>,
    }
    let pairs = || {
        found
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    };
    let v1 = match header_value(&found.headers, ENVELOPE_VERSION).as_deref() {
        Some("2") => schemas::envelope::v2::read_headers(pairs(), &found.subject)
            .map(|envelope| schemas::envelope::v2::to_v1_json(&envelope, &found.payload))
            .ok(),
        _ => None,
    };
    let stored = v1.as_deref().unwrap_or(&found.payload);
    let envelope = serde_json::from_slice(stored).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(stored).into_owned())
    });
    let shown = Shown {
        sequence: found.sequence,
        stored_at: rfc3339(found.stored_at),
        subject: &found.subject,
        headers: found
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect(),
        copies,
        envelope,
        results: results
            .iter()
            .map(|(worker, result)| (worker.as_str(), result))
            .collect(),
    };
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.clone())
}
