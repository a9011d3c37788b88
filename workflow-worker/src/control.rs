//! The decision side: approvals and rejections arrive on
//! `tidegate.workflow.control.<run key>` (published by `tidegate approvals`
//! or the ingress's admin API) and are consumed through one durable
//! consumer shared by every replica, so whichever replica gets a decision
//! runs the rest of the run. Bounded by `workflow.control_concurrency`;
//! progress acks keep a long run from being redelivered.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message, consumer::PullConsumer};
use futures::StreamExt;
use schemas::RunDecision;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use workflows::run_key;

use crate::gate::Decided;
use crate::runner::Runner;

/// The consumer is `<prefix>-control`.
pub const CONSUMER_PREFIX: &str = "workflow";
/// Redelivery after this long without an ack or progress.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// A decision for a run still reaching its gate waits this long.
const NOT_YET_DELAY: Duration = Duration::from_secs(1);

pub async fn run(runner: Arc<Runner>, consumer: PullConsumer, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(runner.settings.control_concurrency));
    let mut tasks = JoinSet::new();
    while !shutdown.is_cancelled() {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let batch = consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                warn!(error = %error, "fetching workflow decisions failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let Some(message) = batch.next().await else {
            continue;
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                warn!(error = %error, "receiving a workflow decision failed");
                continue;
            }
        };
        let runner = runner.clone();
        tasks.spawn(async move {
            handle(&runner, message).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    // Decisions in flight finish: each is a few steps at most, and a
    // half-applied one is safe anyway (the run record says where it is).
    while tasks.join_next().await.is_some() {}
    info!("workflow decisions stopped");
}

async fn handle(runner: &Runner, message: Message) {
    let decision: RunDecision = match serde_json::from_slice(&message.payload) {
        Ok(decision) => decision,
        Err(error) => {
            warn!(error = %error, "a workflow decision is not a run decision v1; dropped");
            ack(&message, AckKind::Term).await;
            return;
        }
    };
    let key = run_key(&decision.run_id);
    let work = runner.decide(&key, &decision);
    tokio::pin!(work);
    let mut progress =
        tokio::time::interval_at(tokio::time::Instant::now() + ACK_WAIT / 3, ACK_WAIT / 3);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            _ = progress.tick() => ack(&message, AckKind::Progress).await,
        }
    };
    match result {
        Ok(Decided::Applied(_)) => ack(&message, AckKind::Ack).await,
        Ok(Decided::Moot(why)) => {
            info!(run_id = %decision.run_id, why = %why, "decision has nothing to decide");
            ack(&message, AckKind::Ack).await;
        }
        Ok(Decided::NotYet) => ack(&message, AckKind::Nak(Some(NOT_YET_DELAY))).await,
        Err(error) if error.is_transient() => {
            warn!(run_id = %decision.run_id, error = %error, "applying the decision failed; retrying");
            ack(&message, AckKind::Nak(Some(Duration::from_secs(2)))).await;
        }
        Err(error) => {
            warn!(run_id = %decision.run_id, error = %error, "the decision cannot be applied");
            ack(&message, AckKind::Term).await;
        }
    }
}

async fn ack(message: &Message, kind: AckKind) {
    if let Err(error) = message.ack_with(kind).await {
        warn!(error = %error, "acknowledging a workflow decision failed");
    }
}
