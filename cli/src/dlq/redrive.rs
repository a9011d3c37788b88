//! `tidegate dlq redrive`: each dead letter's envelope goes back on its
//! original subject as a fresh delivery (new message, attempt count from 1)
//! for its worker only, and the dead letter is deleted after the PubAck.

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::Stream};
use schemas::headers::{DELIVERY_ID, ENVELOPE_VERSION, EVENT, ROUTE};
use schemas::streams::DEAD_LETTER_STREAM;
use schemas::{DeadLetter, Envelope};
use serde_json::json;

use crate::replay::republish::mark;

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("which").required(true).args(["sequences", "all"]),
))]
pub(crate) struct RedriveArgs {
    /// Sequences in TIDEGATE_DLQ (see `dlq list`).
    #[arg(value_name = "SEQ")]
    pub(crate) sequences: Vec<u64>,
    /// Every dead letter (of `--worker`, when given).
    #[arg(long)]
    pub(crate) all: bool,
    /// With `--all`: only this worker's.
    #[arg(long, value_name = "NAME", requires = "all")]
    pub(crate) worker: Option<String>,
}

/// One dead letter put back.
struct Redriven {
    sequence: u64,
    letter: DeadLetter,
    /// The copy's sequence in the deliveries stream.
    new_sequence: u64,
}

pub(crate) async fn run(
    jetstream: &jetstream::Context,
    args: &RedriveArgs,
    json: bool,
) -> anyhow::Result<()> {
    let mut stream = super::stream(jetstream)
        .await?
        .with_context(|| format!("no dead letters: stream {DEAD_LETTER_STREAM} does not exist"))?;
    let config = &stream
        .info()
        .await
        .with_context(|| format!("reading the settings of {DEAD_LETTER_STREAM}"))?
        .config;
    // Deleting by sequence is what makes a redrive final; a stream that
    // denies it would leave every letter in place to be redriven again.
    anyhow::ensure!(
        !config.deny_delete,
        "stream {DEAD_LETTER_STREAM} denies deleting messages (deny_delete); nothing redriven"
    );
    let (mut done, mut failed) = (0_u64, 0_u64);
    let mut outcome = |result: anyhow::Result<Redriven>| match result {
        Ok(redriven) => {
            done += 1;
            print_redriven(&redriven, json);
        }
        Err(error) => {
            failed += 1;
            eprintln!("error: {error:#}");
        }
    };
    if args.all {
        if let Some(mut scan) = super::scan(jetstream, args.worker.as_deref()).await? {
            while let Some(scanned) = scan.next().await? {
                let letter = serde_json::from_slice::<DeadLetter>(&scanned.message.payload)
                    .with_context(|| {
                        format!(
                            "sequence {} of {DEAD_LETTER_STREAM} is not a dead letter v1",
                            scanned.sequence
                        )
                    });
                let result = match letter {
                    Ok(letter) => redrive(jetstream, &stream, scanned.sequence, letter).await,
                    Err(error) => Err(error),
                };
                outcome(result);
            }
        }
    } else {
        for &sequence in &args.sequences {
            let result = match super::get(&stream, sequence).await {
                Ok(letter) => redrive(jetstream, &stream, sequence, letter).await,
                Err(error) => Err(error),
            };
            outcome(result);
        }
    }
    if !json {
        println!("redriven {done} dead letters");
    }
    anyhow::ensure!(failed == 0, "{failed} dead letters were not redriven");
    Ok(())
}

/// Publishes the envelope on its subject, waits for the PubAck, then
/// deletes the dead letter.
async fn redrive(
    jetstream: &jetstream::Context,
    stream: &Stream,
    sequence: u64,
    letter: DeadLetter,
) -> anyhow::Result<Redriven> {
    let envelope: Envelope = serde_json::from_str(letter.envelope.get())
        .with_context(|| format!("dead letter {sequence} holds no envelope v1; not redriven"))?;
    let mut headers = HeaderMap::new();
    headers.insert(ENVELOPE_VERSION, envelope.version.to_string().as_str());
    headers.insert(DELIVERY_ID, envelope.id.as_str());
    headers.insert(ROUTE, envelope.route.as_str());
    if let Some(event) = &envelope.event {
        headers.insert(EVENT, event.as_str());
    }
    // A stable message id: redriving the same letter twice within the
    // duplicate window (say, after a failed delete) stores one copy.
    let message_id = format!("redrive:{}:{sequence}", letter.worker);
    mark(
        &mut headers,
        letter.stream_sequence,
        &message_id,
        Some(&letter.worker),
        true,
    );
    let ack = jetstream
        .publish_with_headers(
            letter.subject.clone(),
            headers,
            letter.envelope.get().as_bytes().to_vec().into(),
        )
        .await
        .with_context(|| format!("publishing dead letter {sequence} to {}", letter.subject))?
        .await
        .with_context(|| format!("no PubAck for dead letter {sequence} on {}", letter.subject))?;
    stream.delete_message(sequence).await.with_context(|| {
        format!(
            "dead letter {sequence} was redriven (deliveries sequence {}) but deleting it failed; delete it by hand",
            ack.sequence
        )
    })?;
    Ok(Redriven {
        sequence,
        letter,
        new_sequence: ack.sequence,
    })
}

fn print_redriven(redriven: &Redriven, json: bool) {
    let letter = &redriven.letter;
    if json {
        let row = json!({
            "sequence": redriven.sequence,
            "worker": letter.worker,
            "delivery_id": letter.delivery_id,
            "subject": letter.subject,
            "redriven_as": redriven.new_sequence,
        });
        println!("{row}");
    } else {
        println!(
            "{:>8}  {:<16}  {:<36}  → {} (sequence {})",
            redriven.sequence,
            letter.worker,
            letter.delivery_id,
            letter.subject,
            redriven.new_sequence
        );
    }
}
