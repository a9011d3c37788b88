//! The streams, buckets and durable consumer a worker needs, ensured at
//! start-up from the one declaration of each in `broker::catalog`.

use async_nats::jetstream::{self, consumer, kv};
use broker::Placement;
use broker::catalog::{self, WorkerConsumer};
use broker::ensure::{ensure_consumer, ensure_key_value, ensure_stream};
use schemas::streams::DELIVERIES_STREAM;

use crate::config::RuntimeConfig;

/// What the runtime consumes and writes.
pub struct Prepared {
    pub consumer: consumer::PullConsumer,
    /// The idempotency bucket, when enabled.
    pub idempotency: Option<kv::Store>,
}

/// Ensures the dead-letter and results streams, the idempotency bucket and
/// the worker's durable consumer. The deliveries stream itself belongs to
/// the ingress: a worker started first waits for it.
pub async fn prepare(
    jetstream: &jetstream::Context,
    config: &RuntimeConfig,
    placement: Placement,
) -> anyhow::Result<Prepared> {
    ensure_stream(jetstream, catalog::dead_letters(), placement).await?;
    ensure_stream(
        jetstream,
        catalog::results(results_max_age(config)),
        placement,
    )
    .await?;
    let idempotency = if config.idempotency.enabled {
        Some(ensure_key_value(jetstream, catalog::idempotency(), placement).await?)
    } else {
        None
    };
    let deliveries = jetstream
        .get_stream(DELIVERIES_STREAM)
        .await
        .map_err(|error| {
            anyhow::anyhow!("stream {DELIVERIES_STREAM} (start the ingress first): {error}")
        })?;
    let consumer = ensure_consumer(
        &deliveries,
        catalog::worker(&WorkerConsumer {
            name: config.name.clone(),
            filter_subjects: config.consumer.filter_subjects.clone(),
            ack_wait: config.consumer.ack_wait,
            max_deliver: config.consumer.max_deliver,
            deliver_new_only: config.consumer.deliver_new_only,
        }),
    )
    .await?;
    Ok(Prepared {
        consumer,
        idempotency,
    })
}

/// How long the results stream keeps messages: `results.max_age`, or
/// `idempotency.ttl` when longer, because a delivery-id key's completion
/// is recorded in its result (`dedupe.rs`) and must live that long — a
/// longer `Nats-TTL` on the message would not outlive the stream's
/// `max_age`.
fn results_max_age(config: &RuntimeConfig) -> std::time::Duration {
    if config.idempotency.enabled {
        config.results_max_age.max(config.idempotency.ttl)
    } else {
        config.results_max_age
    }
}
