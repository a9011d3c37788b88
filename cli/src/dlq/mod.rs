//! `tidegate dlq`: list, show, redrive and purge the dead letters workers
//! store in `TIDEGATE_DLQ` (subject `tidegate.dlq.<worker>`, body dead
//! letter v1 with the envelope verbatim).

mod redrive;

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::Context as _;
use async_nats::jetstream::{self, stream::Stream};
use futures::TryStreamExt as _;
use schemas::DeadLetter;
use schemas::streams::{DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM};
use serde_json::json;

use crate::common::Common;
use crate::scan::{Scan, Start};

#[derive(Debug, clap::Args)]
pub(crate) struct DlqArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(subcommand)]
    pub(crate) command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters, oldest first.
    List {
        /// Only this worker's.
        #[arg(long, value_name = "NAME")]
        worker: Option<String>,
    },
    /// Show one dead letter with its envelope.
    Show {
        /// Its sequence in TIDEGATE_DLQ (see `dlq list`).
        sequence: u64,
    },
    /// Put dead letters back on their original subject as fresh deliveries
    /// that only their worker runs (past its idempotency key), then delete
    /// them.
    Redrive(redrive::RedriveArgs),
    /// Delete dead letters for good.
    Purge {
        /// Only this worker's.
        #[arg(long, value_name = "NAME")]
        worker: Option<String>,
        /// Do not ask. Required when stdin is not a terminal.
        #[arg(long)]
        yes: bool,
    },
}

pub(crate) async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let jetstream = args.common.jetstream().await?;
    let json = args.common.json;
    match args.command {
        DlqCommand::List { worker } => list(&jetstream, worker.as_deref(), json).await,
        DlqCommand::Show { sequence } => show(&jetstream, sequence, json).await,
        DlqCommand::Redrive(redrive) => redrive::run(&jetstream, &redrive, json).await,
        DlqCommand::Purge { worker, yes } => purge(&jetstream, worker.as_deref(), yes, json).await,
    }
}

/// The dead-letter stream, or `None` when no worker has created it yet.
async fn stream(jetstream: &jetstream::Context) -> anyhow::Result<Option<Stream>> {
    use async_nats::jetstream::ErrorCode;
    use async_nats::jetstream::context::GetStreamErrorKind;
    match jetstream.get_stream(DEAD_LETTER_STREAM).await {
        Ok(stream) => Ok(Some(stream)),
        Err(error)
            if matches!(error.kind(), GetStreamErrorKind::JetStream(inner)
                if inner.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            Ok(None)
        }
        Err(error) => Err(error).with_context(|| format!("opening stream {DEAD_LETTER_STREAM}")),
    }
}

/// `tidegate.dlq.<worker>`, or every worker's.
fn filter(worker: Option<&str>) -> String {
    format!("{DEAD_LETTER_PREFIX}.{}", worker.unwrap_or(">"))
}

/// Reads every dead letter (of one worker) up to the stream's last
/// sequence now, one at a time.
async fn scan(
    jetstream: &jetstream::Context,
    worker: Option<&str>,
) -> anyhow::Result<Option<Scan>> {
    let Some(mut stream) = stream(jetstream).await? else {
        return Ok(None);
    };
    let last = stream
        .info()
        .await
        .with_context(|| format!("reading the state of {DEAD_LETTER_STREAM}"))?
        .state
        .last_sequence;
    let filter = filter(worker);
    Scan::open(
        jetstream,
        DEAD_LETTER_STREAM,
        Some(&filter),
        Start::First,
        last,
    )
    .await
    .map(Some)
}

async fn list(
    jetstream: &jetstream::Context,
    worker: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let mut count = 0_u64;
    if let Some(mut scan) = scan(jetstream, worker).await? {
        while let Some(scanned) = scan.next().await? {
            if count == 0 && !json {
                println!(
                    "{:>8}  {:<16}  {:<36}  {:>8}  {:<24}  ERROR",
                    "SEQ", "WORKER", "DELIVERY ID", "ATTEMPTS", "FAILED AT"
                );
            }
            count += 1;
            let letter = serde_json::from_slice::<DeadLetter>(&scanned.message.payload);
            let Ok(letter) = letter else {
                eprintln!(
                    "sequence {} on {} is not a dead letter v1",
                    scanned.sequence, scanned.message.subject
                );
                continue;
            };
            if json {
                println!("{}", summary(scanned.sequence, &letter));
            } else {
                println!(
                    "{:>8}  {:<16}  {:<36}  {:>8}  {:<24}  {}",
                    scanned.sequence,
                    letter.worker,
                    letter.delivery_id,
                    letter.attempts,
                    letter.failed_at,
                    one_line(&letter.error, 100)
                );
            }
        }
    }
    if count == 0 && !json {
        println!("no dead letters");
    }
    Ok(())
}

/// A dead letter without its envelope, for lists.
fn summary(sequence: u64, letter: &DeadLetter) -> serde_json::Value {
    json!({
        "sequence": sequence,
        "worker": letter.worker,
        "delivery_id": letter.delivery_id,
        "subject": letter.subject,
        "stream_sequence": letter.stream_sequence,
        "attempts": letter.attempts,
        "error": letter.error,
        "failed_at": letter.failed_at,
    })
}

/// The first line of `text`, at most `limit` characters.
fn one_line(text: &str, limit: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > limit || text.lines().nth(1).is_some() {
        let cut: String = line.chars().take(limit.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

/// One dead letter by its sequence.
async fn get(stream: &Stream, sequence: u64) -> anyhow::Result<DeadLetter> {
    let message = stream.get_raw_message(sequence).await.with_context(|| {
        format!("no dead letter at sequence {sequence} of {DEAD_LETTER_STREAM}")
    })?;
    serde_json::from_slice(&message.payload).with_context(|| {
        format!("sequence {sequence} of {DEAD_LETTER_STREAM} is not a dead letter v1")
    })
}

async fn show(jetstream: &jetstream::Context, sequence: u64, json: bool) -> anyhow::Result<()> {
    let stream = stream(jetstream)
        .await?
        .with_context(|| format!("no dead letters: stream {DEAD_LETTER_STREAM} does not exist"))?;
    let letter = get(&stream, sequence).await?;
    if json {
        let mut document = serde_json::to_value(&letter)?;
        document["sequence"] = json!(sequence);
        println!("{document}");
        return Ok(());
    }
    let envelope = serde_json::from_str::<serde_json::Value>(letter.envelope.get())
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| letter.envelope.get().to_owned());
    println!("sequence     {sequence}");
    println!("worker       {}", letter.worker);
    println!("delivery id  {}", letter.delivery_id);
    println!("subject      {}", letter.subject);
    println!(
        "stream seq   {} (in the deliveries stream)",
        letter.stream_sequence
    );
    println!("attempts     {}", letter.attempts);
    println!("failed at    {}", letter.failed_at);
    println!("error        {}", letter.error);
    println!("envelope\n{envelope}");
    Ok(())
}

async fn purge(
    jetstream: &jetstream::Context,
    worker: Option<&str>,
    yes: bool,
    json: bool,
) -> anyhow::Result<()> {
    let whose = worker.map_or_else(String::new, |worker| format!(" of worker {worker}"));
    let Some(stream) = stream(jetstream).await? else {
        return purged(0, &whose, json);
    };
    let filter = filter(worker);
    let count: u64 = stream
        .info_with_subjects(&filter)
        .await
        .with_context(|| format!("counting dead letters in {DEAD_LETTER_STREAM}"))?
        .try_fold(
            0,
            |total, (_, count)| async move { Ok(total + count as u64) },
        )
        .await
        .with_context(|| format!("counting dead letters in {DEAD_LETTER_STREAM}"))?;
    if count == 0 {
        return purged(0, &whose, json);
    }
    if !yes {
        anyhow::ensure!(
            std::io::stdin().is_terminal(),
            "refusing to purge {count} dead letters{whose} without --yes (stdin is not a terminal)"
        );
        let question = format!("delete {count} dead letters{whose} for good? [y/N] ");
        if !confirm(question).await? {
            anyhow::bail!("nothing purged");
        }
    }
    let response = stream
        .purge()
        .filter(filter)
        .await
        .with_context(|| format!("purging {DEAD_LETTER_STREAM}"))?;
    purged(response.purged, &whose, json)
}

fn purged(count: u64, whose: &str, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", json!({ "purged": count }));
    } else {
        println!("purged {count} dead letters{whose}");
    }
    Ok(())
}

/// Asks on stderr, reads a line from stdin.
async fn confirm(question: String) -> anyhow::Result<bool> {
    let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        eprint!("{question}");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        Ok(answer)
    })
    .await
    .context("reading the answer")?
    .context("reading the answer")?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_to_one_line() {
        let check = |text: &str, expected: &str| assert_eq!(one_line(text, 10), expected);
        check("short", "short");
        check("exactly 10", "exactly 10");
        check("a bit too long", "a bit too…");
        check("two\nlines", "two…");
        check("", "");
    }
}
