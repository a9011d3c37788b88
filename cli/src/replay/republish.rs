//! The replay loop: read the selection in order, publish each selected
//! message again on its own subject as a new message, keep a bounded window
//! of PubAcks in flight, pace to the rate limit and checkpoint regularly.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, kv};
use futures::stream::FuturesOrdered;
use futures::{FutureExt as _, StreamExt as _};
use schemas::headers::{MSG_ID, REPLAY_FOR, REPLAY_FORCE, REPLAY_OF};
use schemas::streams::DELIVERIES_STREAM;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{Checkpoint, Status, Stored, Target};
use super::progress::{Counts, Progress};
use super::select::Verdict;
use crate::scan::{Scan, Scanned};

/// How often progress is written to the KV bucket.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How a run ended.
pub(crate) enum Ending {
    /// The selection is exhausted.
    Done,
    /// Stopped by a signal after checkpointing.
    Interrupted,
    /// A broker error; checkpointed up to the last PubAck before it.
    Failed(anyhow::Error),
}

/// What one run needs.
pub(crate) struct Run<'a> {
    pub(crate) jetstream: &'a jetstream::Context,
    pub(crate) store: &'a kv::Store,
    pub(crate) stored: &'a mut Stored,
    /// PubAcks awaited at once.
    pub(crate) window: usize,
    pub(crate) shutdown: &'a CancellationToken,
}

/// This run's numbers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub(crate) scanned: u64,
    pub(crate) replayed: u64,
    pub(crate) duplicates: u64,
    pub(crate) elapsed: Duration,
}

/// Marks a copy as a replay: `Tidegate-Replay-Of`, the target worker, the
/// force flag and its own `Nats-Msg-Id`. Shared with the DLQ redrive.
pub(crate) fn mark(
    headers: &mut HeaderMap,
    original_sequence: u64,
    message_id: &str,
    worker: Option<&str>,
    force: bool,
) {
    headers.insert(REPLAY_OF, original_sequence.to_string().as_str());
    headers.insert(MSG_ID, message_id);
    if let Some(worker) = worker {
        headers.insert(REPLAY_FOR, worker);
    }
    if force {
        headers.insert(REPLAY_FORCE, "1");
    }
}

/// Runs until the selection is exhausted, a signal arrives or the broker
/// fails, then checkpoints (status included) and says which.
pub(crate) async fn run(run: Run<'_>) -> anyhow::Result<(Ending, Totals)> {
    let Run {
        jetstream,
        store,
        stored,
        window,
        shutdown,
    } = run;
    let selection = stored.checkpoint.selection.clone();
    let target = stored.checkpoint.target.clone();
    let id = stored.checkpoint.id.clone();
    let matcher = selection.matcher();
    let mut scan = Scan::open(
        jetstream,
        DELIVERIES_STREAM,
        Some(&selection.subject),
        selection.start(stored.checkpoint.done_through),
        stored.checkpoint.end_sequence,
    )
    .await?;
    let mut progress = Progress::start(&id, scan.expected(), stored.checkpoint.replayed);
    let mut acks = Acks::default();
    let mut pacer = Pacer::new(stored.checkpoint.rate);
    let mut totals = Totals::default();
    let mut last_scanned = stored.checkpoint.done_through;
    let mut last_save = Instant::now();
    let mut ending = Ending::Done;
    stored.checkpoint.status = Status::Running;
    stored.save(store).await?;
    loop {
        while acks.len() >= window.max(1) {
            acks.settle_one(&mut stored.checkpoint, &mut totals).await;
        }
        if acks.failure.is_some() {
            break;
        }
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                ending = Ending::Interrupted;
                break;
            }
            next = scan.next() => next,
        };
        let scanned = match next {
            Ok(Some(scanned)) => scanned,
            Ok(None) => break,
            Err(error) => {
                ending = Ending::Failed(error);
                break;
            }
        };
        totals.scanned += 1;
        match matcher.verdict(&scanned) {
            Verdict::Stop => break,
            Verdict::Skip => {}
            Verdict::Take => {
                if !pacer.wait(shutdown).await {
                    ending = Ending::Interrupted;
                    break;
                }
                let message_id = format!("replay:{id}:{}", scanned.sequence);
                let headers = copy_headers(&scanned, &message_id, &target);
                let subject = scanned.message.subject.clone();
                let payload = scanned.message.payload.clone();
                match jetstream
                    .publish_with_headers(subject, headers, payload)
                    .await
                {
                    Ok(ack) => acks.push(scanned.sequence, ack),
                    Err(error) => {
                        ending = Ending::Failed(anyhow::anyhow!(
                            "publishing the copy of sequence {}: {error}",
                            scanned.sequence
                        ));
                        break;
                    }
                }
            }
        }
        last_scanned = scanned.sequence;
        acks.settle_ready(&mut stored.checkpoint, &mut totals);
        acks.advance(&mut stored.checkpoint, last_scanned);
        progress.update(counts(&totals, stored.checkpoint.done_through));
        if last_save.elapsed() >= CHECKPOINT_EVERY {
            last_save = Instant::now();
            if let Err(error) = stored.save(store).await {
                ending = Ending::Failed(error);
                break;
            }
        }
    }
    // Whatever was published gets its PubAck before the final checkpoint.
    while !acks.is_empty() {
        acks.settle_one(&mut stored.checkpoint, &mut totals).await;
    }
    acks.advance(&mut stored.checkpoint, last_scanned);
    if let (Some(error), Ending::Done | Ending::Interrupted) = (acks.failure.take(), &ending) {
        ending = Ending::Failed(error);
    }
    if let Ending::Done = ending {
        // Nothing selected is left, whatever came after the last match.
        stored.checkpoint.done_through = stored.checkpoint.end_sequence;
    }
    progress.finish(counts(&totals, stored.checkpoint.done_through));
    totals.elapsed = progress.elapsed();
    stored.checkpoint.status = match &ending {
        Ending::Done => Status::Done,
        Ending::Interrupted => Status::Interrupted,
        Ending::Failed(_) => Status::Failed,
    };
    stored.checkpoint.error = match &ending {
        Ending::Failed(error) => Some(format!("{error:#}")),
        _ => None,
    };
    stored.save(store).await?;
    Ok((ending, totals))
}

fn counts(totals: &Totals, position: u64) -> Counts {
    Counts {
        scanned: totals.scanned,
        replayed: totals.replayed,
        position,
    }
}

/// The original's `Tidegate-*` headers (envelope version, delivery id,
/// route, event), then the replay marks. A replayed replay gets fresh marks.
fn copy_headers(scanned: &Scanned, message_id: &str, target: &Target) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(original) = &scanned.message.headers {
        for (name, values) in original.iter() {
            let name: &str = name.as_ref();
            let is_tidegate = name
                .get(..9)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("tidegate-"));
            let is_mark = [REPLAY_OF, REPLAY_FOR, REPLAY_FORCE]
                .iter()
                .any(|mark| mark.eq_ignore_ascii_case(name));
            if is_tidegate && !is_mark {
                for value in values {
                    headers.append(name, value.as_str());
                }
            }
        }
    }
    mark(
        &mut headers,
        scanned.sequence,
        message_id,
        target.worker.as_deref(),
        target.force,
    );
    headers
}

type AckFuture = <PublishAckFuture as IntoFuture>::IntoFuture;

/// PubAcks in flight, settled in publish order, so the checkpoint only ever
/// passes sequences whose copies are stored.
#[derive(Default)]
struct Acks {
    futures: FuturesOrdered<AckFuture>,
    sequences: VecDeque<u64>,
    /// The first failed PubAck: the checkpoint stops before it.
    failure: Option<anyhow::Error>,
    failed_at: Option<u64>,
}

impl Acks {
    fn len(&self) -> usize {
        self.sequences.len()
    }

    fn is_empty(&self) -> bool {
        self.sequences.is_empty()
    }

    fn push(&mut self, sequence: u64, ack: PublishAckFuture) {
        self.futures.push_back(ack.into_future());
        self.sequences.push_back(sequence);
    }

    /// Waits for the oldest PubAck and counts it.
    async fn settle_one(&mut self, checkpoint: &mut Checkpoint, totals: &mut Totals) {
        if let Some(result) = self.futures.next().await {
            self.settle(result, checkpoint, totals);
        }
    }

    /// Counts the PubAcks that have already arrived, without waiting.
    fn settle_ready(&mut self, checkpoint: &mut Checkpoint, totals: &mut Totals) {
        while let Some(Some(result)) = self.futures.next().now_or_never() {
            self.settle(result, checkpoint, totals);
        }
    }

    fn settle(
        &mut self,
        result: Result<PublishAck, PublishError>,
        checkpoint: &mut Checkpoint,
        totals: &mut Totals,
    ) {
        let Some(sequence) = self.sequences.pop_front() else {
            return;
        };
        match result {
            Ok(ack) if ack.duplicate => {
                totals.duplicates += 1;
                checkpoint.duplicates += 1;
            }
            Ok(_) => {
                totals.replayed += 1;
                checkpoint.replayed += 1;
            }
            Err(error) => {
                if self.failure.is_none() {
                    self.failure = Some(anyhow::anyhow!(
                        "no PubAck for the copy of sequence {sequence}: {error}"
                    ));
                    self.failed_at = Some(sequence);
                }
            }
        }
    }

    /// Moves `done_through` as far as it safely goes: everything before the
    /// oldest unsettled copy (or up to the last scanned message when none is
    /// in flight), never past a failed one.
    fn advance(&self, checkpoint: &mut Checkpoint, last_scanned: u64) {
        let mut position = self
            .sequences
            .front()
            .map_or(last_scanned, |oldest| oldest - 1);
        if let Some(failed) = self.failed_at {
            position = position.min(failed - 1);
        }
        checkpoint.done_through = checkpoint.done_through.max(position);
    }
}

/// How far behind schedule the pacer may catch up at full speed.
const BURST: Duration = Duration::from_millis(100);

/// Spaces publishes to at most `rate` per second.
struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(rate: Option<f64>) -> Pacer {
        Pacer {
            interval: rate
                .filter(|rate| *rate > 0.0)
                .map(|rate| Duration::from_secs_f64(1.0 / rate)),
            next: Instant::now(),
        }
    }

    /// Waits for the next slot; false if interrupted meanwhile.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let now = Instant::now();
        // Timer overshoot is made up for, but a long pause (a slow broker)
        // earns a burst of at most this much.
        let floor = now.checked_sub(BURST).unwrap_or(now);
        let slot = self.next.max(floor);
        self.next = slot + interval;
        if slot <= now {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep_until(slot.into()) => true,
            () = shutdown.cancelled() => false,
        }
    }
}
