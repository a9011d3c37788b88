//! Streams, buckets and the durable consumer a worker needs, created or
//! updated idempotently at start-up. Never deletes anything.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use schemas::streams::{
    DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, DELIVERIES_STREAM, IDEMPOTENCY_BUCKET, RESULTS_PREFIX,
    RESULTS_STREAM,
};

use crate::config::RuntimeConfig;

/// Dead letters are kept until an operator acts: no age limit.
pub fn dead_letter_stream() -> stream::Config {
    stream::Config {
        name: DEAD_LETTER_STREAM.to_owned(),
        description: Some("tidegate dead letters (dead letter v1)".to_owned()),
        subjects: vec![format!("{DEAD_LETTER_PREFIX}.>")],
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    }
}

/// Results: the last few per delivery and worker, for `max_age`.
pub fn results_stream(max_age: Duration) -> stream::Config {
    stream::Config {
        name: RESULTS_STREAM.to_owned(),
        description: Some("tidegate job results (job result v1)".to_owned()),
        subjects: vec![format!("{RESULTS_PREFIX}.>")],
        storage: stream::StorageType::File,
        max_messages_per_subject: 10,
        max_age,
        allow_direct: true,
        ..Default::default()
    }
}

/// The KV bucket's backing stream, created by hand: async-nats'
/// `create_key_value` cannot parse nats-server 2.9's answer.
pub fn kv_stream(bucket: &str, history: i64, max_age: Duration) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        storage: stream::StorageType::File,
        max_messages_per_subject: history,
        max_age,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// Creates `config`'s stream if missing; otherwise leaves it as it is.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    config: stream::Config,
) -> anyhow::Result<()> {
    let name = config.name.clone();
    match jetstream.get_stream(&name).await {
        Ok(_) => Ok(()),
        Err(_) => {
            jetstream
                .create_stream(config)
                .await
                .map(drop)
                .or_else(|error| {
                    // Another replica may have created it meanwhile.
                    if error.to_string().contains("already in use") {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!("creating stream {name}: {error}"))
                    }
                })
        }
    }
}

/// A KV bucket (creating its stream first).
pub async fn key_value(
    jetstream: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
) -> anyhow::Result<kv::Store> {
    ensure_stream(jetstream, kv_stream(bucket, 1, max_age)).await?;
    Ok(jetstream.get_key_value(bucket).await?)
}

/// Everything the runtime needs; returns the durable consumer and the
/// idempotency bucket (when enabled).
pub async fn prepare(
    jetstream: &jetstream::Context,
    config: &RuntimeConfig,
) -> anyhow::Result<(consumer::PullConsumer, Option<kv::Store>)> {
    ensure_stream(jetstream, dead_letter_stream()).await?;
    ensure_stream(jetstream, results_stream(config.results_max_age)).await?;
    let idempotency = if config.idempotency.enabled {
        Some(key_value(jetstream, IDEMPOTENCY_BUCKET, config.idempotency.ttl).await?)
    } else {
        None
    };
    let deliveries = jetstream
        .get_stream(DELIVERIES_STREAM)
        .await
        .map_err(|error| {
            anyhow::anyhow!("stream {DELIVERIES_STREAM} (start the ingress first): {error}")
        })?;
    let consumer_config = consumer::pull::Config {
        durable_name: Some(config.name.clone()),
        description: Some(format!("tidegate worker {}", config.name)),
        filter_subject: config.consumer.filter_subject.clone(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: config.consumer.ack_wait,
        // One delivery beyond the configured attempts: when it arrives, every
        // attempt ended without an outcome (the worker crashed), and the
        // runtime dead-letters it instead of running it again.
        max_deliver: i64::try_from(config.consumer.max_deliver + 1).unwrap_or(i64::MAX),
        max_ack_pending: 10_000,
        deliver_policy: if config.consumer.deliver_new_only {
            consumer::DeliverPolicy::New
        } else {
            consumer::DeliverPolicy::All
        },
        ..Default::default()
    };
    let consumer = deliveries
        .get_or_create_consumer(&config.name, consumer_config)
        .await
        .map_err(|error| anyhow::anyhow!("consumer {}: {error}", config.name))?;
    Ok((consumer, idempotency))
}
