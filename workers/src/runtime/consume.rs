//! The fetch loop: pull as many deliveries as there are free slots, run
//! each in its own task under a span carrying the delivery id, keep long
//! jobs alive with progress acks, and on shutdown finish or release what is
//! in flight.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, AckKind, Message, consumer::PullConsumer};
use futures::StreamExt;
use schemas::headers::{REPLAY_FOR, REPLAY_FORCE};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::dedupe::Record;
use super::delivery::{self, Delivery};
use super::lookups::Lookups;
use super::outcome::{self, Context};
use super::report::{Attempt, Reporter};
use super::{Job, Outcome};
use crate::config::RuntimeConfig;
use crate::metric;

/// Shared by every task of one worker process.
pub struct Shared<J> {
    pub config: RuntimeConfig,
    pub jetstream: jetstream::Context,
    pub placement: broker::Placement,
    pub idempotency: Option<jetstream::kv::Store>,
    /// Batched lookups in the idempotency bucket, when enabled.
    pub lookups: Option<Lookups>,
    /// Results whose PubAck is still awaited.
    pub reporter: Reporter,
    pub job: J,
}

/// Consumes until `shutdown`, then waits up to the grace period for jobs in
/// flight and releases (naks) the rest.
pub async fn run<J: Job>(
    shared: Arc<Shared<J>>,
    mut consumer: PullConsumer,
    shutdown: CancellationToken,
) {
    // Fetches that failed in a row; past a few, the consumer is ensured
    // again (its stream may have been deleted and recreated).
    let mut failed_fetches = 0u32;
    let concurrency = shared.config.consumer.concurrency;
    let slots = Arc::new(Semaphore::new(concurrency));
    // Cancelled when the grace period is over: jobs still running release
    // their delivery.
    let release = CancellationToken::new();
    let mut tasks = JoinSet::new();
    while !shutdown.is_cancelled() {
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let mut permits = gather(&slots, first, concurrency).await;
        // Ask for exactly as many deliveries as there are free slots, so
        // nothing waits in a client buffer while its ack_wait runs.
        let batch = consumer
            .batch()
            .max_messages(permits.len())
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => {
                failed_fetches = 0;
                batch
            }
            Err(error) => {
                failed_fetches += 1;
                warn!(error = %error, "fetching deliveries failed; retrying");
                if failed_fetches.is_multiple_of(5) {
                    match super::streams::prepare(
                        &shared.jetstream,
                        &shared.config,
                        shared.placement,
                    )
                    .await
                    {
                        Ok(prepared) => {
                            info!("consumer ensured again");
                            consumer = prepared.consumer;
                        }
                        Err(error) => {
                            warn!(error = format!("{error:#}"), "cannot ensure the consumer")
                        }
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        while let Some(message) = batch.next().await {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    warn!(error = %error, "receiving a delivery failed");
                    continue;
                }
            };
            if shutdown.is_cancelled() {
                // Arrived after shutdown began: hand it straight back.
                outcome::ack(&message, AckKind::Nak(None)).await;
                continue;
            }
            let Some(permit) = permits.pop() else {
                outcome::ack(&message, AckKind::Nak(None)).await;
                continue;
            };
            let shared = shared.clone();
            let release = release.clone();
            // Boxed: the task moves a pointer, not the whole job's state.
            tasks.spawn(Box::pin(async move {
                process(&shared, message, release).await;
                drop(permit);
            }));
        }
        while tasks.try_join_next().is_some() {}
    }
    info!(in_flight = tasks.len(), grace = ?shared.config.consumer.shutdown_grace, "stopping: finishing jobs in flight");
    let drained = tokio::time::timeout(shared.config.consumer.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            in_flight = tasks.len(),
            "grace period over; releasing deliveries still running"
        );
        release.cancel();
        while tasks.join_next().await.is_some() {}
    }
    shared
        .reporter
        .finish(shared.config.nats.publish_timeout)
        .await;
    info!("stopped");
}

async fn process<J: Job>(shared: &Shared<J>, message: Message, release: CancellationToken) {
    let started_at = SystemTime::now();
    let clock = std::time::Instant::now();
    let worker = shared.config.name.clone();
    let (attempt, stream_sequence) = match message.info() {
        Ok(info) => (
            u64::try_from(info.delivered).unwrap_or(1),
            info.stream_sequence,
        ),
        Err(error) => {
            warn!(error = %error, "message without JetStream metadata");
            return;
        }
    };
    let subject = message.subject.to_string();
    let parsed = delivery::parse(&subject, message.headers.as_ref(), &message.payload);
    let delivery_id = parsed
        .as_ref()
        .map(|read| read.envelope.id.clone())
        .unwrap_or_else(|_| format!("seq-{stream_sequence}"));
    // The connector contract comes from the envelope alone, so every
    // result below — even a payload that cannot be read — carries it.
    let connector = parsed
        .as_ref()
        .ok()
        .and_then(|read| shared.job.connector(&read.envelope));
    let span = info_span!("job", worker = %worker, delivery_id = %delivery_id, stream_seq = stream_sequence, attempt);
    async {
        metrics::counter!(metric::STARTED, "worker" => worker.clone()).increment(1);
        let mut context = Context {
            config: &shared.config,
            jetstream: &shared.jetstream,
            idempotency: shared.idempotency.as_ref(),
            reporter: &shared.reporter,
            message: &message,
            attempt: Attempt {
                worker: &worker,
                delivery_id: &delivery_id,
                key: None,
                attempt,
                started_at,
                connector: connector.as_ref(),
            },
            subject: &subject,
            stream_sequence,
            completed_before: false,
        };
        let read = match parsed {
            Ok(read) => read,
            Err(error) => {
                outcome::give_up(&context, &error.to_string()).await;
                return;
            }
        };
        if attempt > shared.config.consumer.max_deliver {
            context.completed_before = completed_before(shared, &delivery_id).await;
            let reason = format!(
                "{} deliveries ended without an outcome (the worker may have crashed on it)",
                shared.config.consumer.max_deliver
            );
            outcome::give_up(&context, &reason).await;
            return;
        }
        let payload = delivery::body(&shared.jetstream, &read).await;
        let payload = match payload {
            Ok(payload) => payload,
            Err(error) if error.is_transient() => {
                context.completed_before = completed_before(shared, &delivery_id).await;
                outcome::apply(&context, Outcome::retry(error.to_string())).await;
                return;
            }
            Err(error) => {
                context.completed_before = completed_before(shared, &delivery_id).await;
                outcome::give_up(&context, &error.to_string()).await;
                return;
            }
        };
        let delivery = Delivery {
            envelope: read.envelope,
            payload,
            v1_document: read.v1_document,
            subject: subject.clone(),
            stream_sequence,
            attempt,
        };
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str().to_owned())
        };
        if let Some(target) = header(REPLAY_FOR)
            && target != worker
        {
            // A replay aimed at another worker: not ours to run or report.
            outcome::ack(&message, AckKind::Ack).await;
            return;
        }
        let forced = header(REPLAY_FORCE).is_some();
        let job_key = shared.job.key(&delivery);
        context.attempt.key = job_key.as_deref();
        if let (Some(lookups), Some(key)) = (&shared.lookups, &job_key) {
            // A forced replay runs anyway; it looks a delivery-id key up
            // only so that its results carry an earlier completion forward.
            let wanted = !forced || Record::of(key, &delivery_id) == Record::Result;
            context.completed_before = wanted && lookups.is_completed(key, &delivery_id).await;
            if context.completed_before && !forced {
                outcome::apply(
                    &context,
                    Outcome::Skip(format!("idempotency key {key} already completed")),
                )
                .await;
                return;
            }
        }
        let outcome = run_with_progress(shared, &message, &delivery, &release).await;
        match outcome {
            Some(outcome) => outcome::apply(&context, outcome).await,
            None => {
                info!("released at shutdown");
                outcome::ack(&message, AckKind::Nak(None)).await;
            }
        }
        metrics::histogram!(metric::DURATION, "worker" => worker.clone())
            .record(clock.elapsed().as_secs_f64());
        metrics::counter!(metric::FINISHED, "worker" => worker.clone()).increment(1);
    }
    .instrument(span)
    .await;
}

/// Whether the delivery's last result records a completion, for a result
/// published before its job's key is known (the payload unreadable, the
/// attempts used up): that result becomes the delivery's last, so it
/// carries the completion forward. Only on these rare paths.
async fn completed_before<J: Job>(shared: &Shared<J>, delivery_id: &str) -> bool {
    match &shared.lookups {
        Some(lookups) => lookups.is_completed(delivery_id, delivery_id).await,
        None => false,
    }
}

/// How long a fetch waits for more free slots, and for how many (a
/// quarter of `concurrency`): one pull request then brings several
/// deliveries instead of one each, which costs the broker and the worker
/// less per delivery.
const GATHER_WAIT: Duration = Duration::from_millis(2);

/// `first` and every slot that frees within `GATHER_WAIT`, until a
/// quarter of `concurrency` are free.
async fn gather(
    slots: &Arc<Semaphore>,
    first: OwnedSemaphorePermit,
    concurrency: usize,
) -> Vec<OwnedSemaphorePermit> {
    let wanted = (concurrency / 4).max(1);
    let deadline = tokio::time::Instant::now() + GATHER_WAIT;
    let mut permits = vec![first];
    loop {
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        if permits.len() >= wanted {
            return permits;
        }
        match tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await {
            Ok(permit) => permits.push(permit.expect("the semaphore is never closed")),
            Err(_) => return permits,
        }
    }
}

/// Runs the job, sending progress acks every third of `ack_wait` so a long
/// job is not redelivered. `None` when released at shutdown.
async fn run_with_progress<J: Job>(
    shared: &Shared<J>,
    message: &Message,
    delivery: &Delivery,
    release: &CancellationToken,
) -> Option<Outcome> {
    let interval = (shared.config.consumer.ack_wait / 3).max(Duration::from_millis(100));
    // Boxed: a job's future (an HTTP request in flight) is large, and
    // the task holding it is moved several times.
    let mut job = Box::pin(shared.job.handle(delivery));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            outcome = &mut job => return Some(outcome),
            _ = ticker.tick() => {
                if let Err(error) = message.ack_with(AckKind::Progress).await {
                    warn!(error = %error, "progress ack failed");
                }
            }
            () = release.cancelled() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fetch_takes_every_free_slot() {
        let slots = Arc::new(Semaphore::new(8));
        let first = slots.clone().acquire_owned().await.unwrap();
        let permits = gather(&slots, first, 8).await;
        assert_eq!(permits.len(), 8);
    }

    #[tokio::test]
    async fn a_fetch_waits_briefly_for_a_quarter_of_the_slots() {
        let slots = Arc::new(Semaphore::new(8));
        let busy = slots.clone().acquire_many_owned(7).await.unwrap();
        let first = slots.clone().acquire_owned().await.unwrap();
        // Nothing frees: the one free slot goes alone, within the wait.
        let started = std::time::Instant::now();
        let permits = gather(&slots, first, 8).await;
        assert_eq!(permits.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(permits);
        // One slot frees during the wait: both go in one fetch.
        let first = slots.clone().acquire_owned().await.unwrap();
        let mut busy = busy;
        let freed = busy.split(1).unwrap();
        let release = tokio::spawn(async move { drop(freed) });
        let permits = gather(&slots, first, 8).await;
        release.await.unwrap();
        assert_eq!(permits.len(), 2);
    }
}
