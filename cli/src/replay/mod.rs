//! `tidegate replay`: publish stored deliveries again, as new messages on
//! their original subjects, for the workers to run once more. Resumable:
//! every replay has an id and a checkpoint in the KV bucket `tidegate_replays`.

mod checkpoint;
mod progress;
pub(crate) mod republish;
mod select;

use anyhow::Context as _;
use async_nats::jetstream;
use schemas::streams::DELIVERIES_STREAM;
use serde_json::json;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use self::checkpoint::{Checkpoint, Status, Stored, Target};
use self::republish::{Ending, Totals};
use self::select::{DEFAULT_SUBJECT, Selection, Verdict};
use crate::common::Common;
use crate::scan::{Scan, last_sequence, rfc3339};

/// Publish stored deliveries again. Workers skip a copy whose idempotency
/// key already completed unless `--force` is given.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("selection")
        .required(true)
        .multiple(true)
        .args(["ids", "subject", "since", "until", "from_seq", "to_seq", "resume"]),
))]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Only the delivery with this id (repeatable). The selected range is
    /// read in full to find them.
    #[arg(long = "id", value_name = "DELIVERY_ID")]
    pub(crate) ids: Vec<String>,
    /// Only subjects matching this filter (NATS wildcards), e.g.
    /// `tidegate.in.github.>`. Default: the `--worker`'s filter, else
    /// `tidegate.in.>` (ignored deliveries only when named).
    #[arg(long, value_name = "FILTER")]
    pub(crate) subject: Option<String>,
    /// Stored at or after this time: RFC 3339 or a duration ago (`2h`).
    #[arg(long, value_name = "TIME", value_parser = crate::scan::parse_time)]
    pub(crate) since: Option<OffsetDateTime>,
    /// Stored before this time: RFC 3339 or a duration ago (`30m`).
    #[arg(long, value_name = "TIME", value_parser = crate::scan::parse_time)]
    pub(crate) until: Option<OffsetDateTime>,
    /// From this stream sequence (inclusive).
    #[arg(long, value_name = "SEQ")]
    pub(crate) from_seq: Option<u64>,
    /// To this stream sequence (inclusive).
    #[arg(long, value_name = "SEQ")]
    pub(crate) to_seq: Option<u64>,
    /// Only this worker runs the copies (`Tidegate-Replay-For`); the others
    /// acknowledge and ignore them.
    #[arg(long, value_name = "NAME")]
    pub(crate) worker: Option<String>,
    /// At most this many messages per second.
    #[arg(long, value_name = "PER_SECOND", value_parser = parse_rate)]
    pub(crate) rate: Option<f64>,
    /// List what would be replayed (sequence, id, subject, received time);
    /// publish nothing.
    #[arg(long, conflicts_with = "resume")]
    pub(crate) dry_run: bool,
    /// Run the jobs even where their idempotency key already completed
    /// (`Tidegate-Replay-Force`). Without it, workers skip those copies.
    #[arg(long)]
    pub(crate) force: bool,
    /// Also replay messages that are themselves replays.
    #[arg(long)]
    pub(crate) include_replays: bool,
    /// Continue an interrupted replay with its stored selection and target.
    #[arg(
        long,
        value_name = "REPLAY_ID",
        conflicts_with_all = ["ids", "subject", "since", "until", "from_seq", "to_seq", "worker", "force", "include_replays"]
    )]
    pub(crate) resume: Option<String>,
    /// PubAcks awaited at once.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) window: u32,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let (connection, jetstream_settings) = args.common.connection().await?;
    let jetstream = connection.jetstream.clone();
    if args.dry_run {
        let selection = resolve(&jetstream, &args).await?;
        return dry_run(&jetstream, &selection, args.common.json).await;
    }
    let placement = jetstream_settings.placement(&connection.client.server_info());
    let store = checkpoint::bucket(&jetstream, placement).await?;
    let mut stored = match &args.resume {
        Some(id) => {
            let mut stored = Stored::load(&store, id).await?;
            if stored.checkpoint.status == Status::Done {
                eprintln!("replay {id} already finished");
                return report(&stored.checkpoint, &Totals::default(), args.common.json);
            }
            if args.rate.is_some() {
                stored.checkpoint.rate = args.rate;
            }
            stored
        }
        None => Stored::create(&store, plan(&jetstream, &args).await?).await?,
    };
    announce(&stored.checkpoint, args.resume.is_some());
    let shutdown = on_signal();
    let (ending, totals) = republish::run(republish::Run {
        jetstream: &jetstream,
        store: &store,
        stored: &mut stored,
        window: args.window as usize,
        shutdown: &shutdown,
    })
    .await?;
    report(&stored.checkpoint, &totals, args.common.json)?;
    let id = &stored.checkpoint.id;
    match ending {
        Ending::Done => Ok(()),
        Ending::Interrupted => Err(anyhow::anyhow!(
            "interrupted; progress saved, continue with `tidegate replay --resume {id}`"
        )),
        Ending::Failed(error) => Err(error.context(format!(
            "replay {id} stopped; progress saved, continue with `tidegate replay --resume {id}`"
        ))),
    }
}

/// A new replay: the selection resolved, the end fixed at the stream's
/// last sequence now.
async fn plan(jetstream: &jetstream::Context, args: &ReplayArgs) -> anyhow::Result<Checkpoint> {
    let selection = resolve(jetstream, args).await?;
    let last = last_sequence(jetstream).await?;
    let now = OffsetDateTime::now_utc();
    Ok(Checkpoint {
        version: 1,
        id: checkpoint::new_id(),
        end_sequence: selection.end(last),
        selection,
        target: Target {
            worker: args.worker.clone(),
            force: args.force,
        },
        rate: args.rate,
        done_through: 0,
        replayed: 0,
        duplicates: 0,
        status: Status::Running,
        started_at: now,
        updated_at: now,
        error: None,
    })
}

/// The command line as a [`Selection`], checked for contradictions.
async fn resolve(jetstream: &jetstream::Context, args: &ReplayArgs) -> anyhow::Result<Selection> {
    if let (Some(from), Some(to)) = (args.from_seq, args.to_seq) {
        anyhow::ensure!(from <= to, "--from-seq {from} is after --to-seq {to}");
    }
    if let (Some(since), Some(until)) = (args.since, args.until) {
        anyhow::ensure!(since < until, "--since is not before --until");
    }
    let subject = match (&args.subject, &args.worker) {
        (Some(subject), _) => subject.clone(),
        (None, Some(worker)) => worker_filter(jetstream, worker)
            .await?
            .unwrap_or_else(|| DEFAULT_SUBJECT.to_owned()),
        (None, None) => DEFAULT_SUBJECT.to_owned(),
    };
    Ok(Selection {
        ids: args.ids.clone(),
        subject,
        since: args.since,
        until: args.until,
        from_sequence: args.from_seq,
        to_sequence: args.to_seq,
        include_replays: args.include_replays,
    })
}

/// The worker's subject filter; fails if no such worker consumes the stream.
async fn worker_filter(
    jetstream: &jetstream::Context,
    worker: &str,
) -> anyhow::Result<Option<String>> {
    let stream = jetstream
        .get_stream(DELIVERIES_STREAM)
        .await
        .with_context(|| format!("opening stream {DELIVERIES_STREAM}"))?;
    let info = stream.consumer_info(worker).await.with_context(|| {
        format!("no worker {worker}: stream {DELIVERIES_STREAM} has no consumer of that name")
    })?;
    let filter = info.config.filter_subject;
    Ok((!filter.is_empty()).then_some(filter))
}

/// Lists the selection without publishing: one row (or JSON line) per
/// delivery, printed as it is read.
async fn dry_run(
    jetstream: &jetstream::Context,
    selection: &Selection,
    json: bool,
) -> anyhow::Result<()> {
    let end = selection.end(last_sequence(jetstream).await?);
    let mut scan = Scan::open(
        jetstream,
        DELIVERIES_STREAM,
        Some(&selection.subject),
        selection.start(0),
        end,
    )
    .await?;
    let matcher = selection.matcher();
    let (mut read, mut selected) = (0_u64, 0_u64);
    if !json {
        println!(
            "{:>10}  {:<36}  {:<32}  RECEIVED",
            "SEQ", "DELIVERY ID", "SUBJECT"
        );
    }
    while let Some(scanned) = scan.next().await? {
        read += 1;
        match matcher.verdict(&scanned) {
            Verdict::Stop => break,
            Verdict::Skip => continue,
            Verdict::Take => selected += 1,
        }
        let id = select::delivery_id(&scanned).unwrap_or_default();
        let received = rfc3339(scanned.stored_at);
        if json {
            let row = json!({
                "sequence": scanned.sequence,
                "delivery_id": id,
                "subject": scanned.message.subject.as_str(),
                "received_at": received,
            });
            println!("{row}");
        } else {
            println!(
                "{:>10}  {id:<36}  {:<32}  {received}",
                scanned.sequence,
                scanned.message.subject.as_str()
            );
        }
    }
    eprintln!(
        "dry run: {selected} deliveries would be replayed ({read} read up to sequence {end}); nothing was published"
    );
    Ok(())
}

/// The start line, on stderr: what is replayed, and how to resume.
fn announce(checkpoint: &Checkpoint, resumed: bool) {
    let selection = &checkpoint.selection;
    let mut what = vec![format!("subject {}", selection.subject)];
    if !selection.ids.is_empty() {
        what.push(format!("{} delivery ids", selection.ids.len()));
    }
    if let Some(since) = selection.since {
        what.push(format!("since {}", rfc3339(since)));
    }
    if let Some(until) = selection.until {
        what.push(format!("until {}", rfc3339(until)));
    }
    if let Some(worker) = &checkpoint.target.worker {
        what.push(format!("for worker {worker} only"));
    }
    if checkpoint.target.force {
        what.push("forced past idempotency keys".to_owned());
    }
    if let Some(rate) = checkpoint.rate {
        what.push(format!("at most {rate}/s"));
    }
    let from = selection
        .start(checkpoint.done_through)
        .describe()
        .unwrap_or_else(|| "the first sequence".to_owned());
    eprintln!(
        "replay {id}{resumed}: {what}; reading {DELIVERIES_STREAM} from {from} through sequence {end}",
        id = checkpoint.id,
        resumed = if resumed { " (resumed)" } else { "" },
        what = what.join(", "),
        end = checkpoint.end_sequence,
    );
    eprintln!(
        "replay {id}: to continue after an interruption: tidegate replay --resume {id}",
        id = checkpoint.id
    );
}

/// The result, on stdout: one line, or one JSON document.
fn report(checkpoint: &Checkpoint, totals: &Totals, json: bool) -> anyhow::Result<()> {
    let seconds = totals.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        totals.replayed as f64 / seconds
    } else {
        0.0
    };
    if json {
        let mut document = serde_json::to_value(checkpoint)?;
        document["run"] = json!({
            "read": totals.scanned,
            "replayed": totals.replayed,
            "duplicates": totals.duplicates,
            "seconds": seconds,
            "per_second": rate,
        });
        println!("{document}");
        return Ok(());
    }
    let status = match checkpoint.status {
        Status::Done => "done",
        Status::Interrupted => "interrupted",
        Status::Failed => "failed",
        Status::Running => "running",
    };
    println!(
        "replay {id} {status}: {replayed} replayed in total ({duplicates} already stored), \
         through sequence {through} of {end}; this run: {read} read, {run_replayed} replayed in {seconds:.1} s ({rate:.0}/s)",
        id = checkpoint.id,
        replayed = checkpoint.replayed,
        duplicates = checkpoint.duplicates,
        through = checkpoint.done_through,
        end = checkpoint.end_sequence,
        read = totals.scanned,
        run_replayed = totals.replayed,
    );
    Ok(())
}

/// Cancelled on Ctrl-C or SIGTERM: the replay stops reading, waits for the
/// PubAcks in flight and checkpoints before exiting.
fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match terminate.as_mut() {
                Some(terminate) => {
                    terminate.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminated => {}
        }
        cancel.cancel();
    });
    token
}
