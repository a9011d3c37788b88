//! tidegate's worker runtime and jobs. A worker binary is a `Job` plus a
//! short `main` that calls [`main_for`]; the runtime consumes the deliveries
//! stream through a durable consumer shared by every replica.

pub mod config;
pub mod health;
pub mod jobs;
pub mod runtime;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use schemas::streams::HEARTBEAT_PREFIX;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::RuntimeConfig;
pub use crate::runtime::{Delivery, Job, Outcome, Report};

/// Metric names (bounded labels: worker and status only).
pub mod metric {
    /// Counter: finished deliveries by `worker` and `status`.
    pub const PROCESSED: &str = "tidegate_worker_processed_total";
    /// Counter: attempts that will be retried.
    pub const RETRIED: &str = "tidegate_worker_retried_total";
    /// Counter: deliveries stored as dead letters.
    pub const DEAD_LETTERED: &str = "tidegate_worker_dead_lettered_total";
    /// Histogram: seconds per attempt.
    pub const DURATION: &str = "tidegate_worker_job_seconds";
    /// Counters: started and finished attempts (in flight = started − finished).
    pub const STARTED: &str = "tidegate_worker_started_total";
    pub const FINISHED: &str = "tidegate_worker_finished_total";
}

/// Connects, prepares streams, buckets and the durable consumer, serves
/// `/healthz` and `/metrics`, and consumes until `shutdown`.
pub async fn run<J: Job>(
    config: RuntimeConfig,
    mut job: J,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("tidegate-{}", config.name))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(&config.nats_url)
        .await
        .with_context(|| format!("connecting to {}", config.nats_url))?;
    // Install the recorder before anything is counted: a counter touched
    // before it exists is lost.
    let metrics = health::metrics_handle();
    let jetstream = async_nats::jetstream::new(client.clone());
    let (consumer, idempotency) =
        wait_for_streams(&jetstream, &config, &mut job, &shutdown).await?;
    if let Some(address) = config.listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("binding {address}"))?;
        tokio::spawn(health::serve(
            listener,
            client.clone(),
            metrics,
            shutdown.clone(),
        ));
    }
    tokio::spawn(heartbeat(
        client.clone(),
        config.name.clone(),
        shutdown.clone(),
    ));
    info!(worker = %config.name, filter = %config.consumer.filter_subject, concurrency = config.consumer.concurrency, "consuming");
    let shared = Arc::new(runtime::consume::Shared {
        config,
        jetstream,
        idempotency,
        job,
    });
    runtime::consume::run(shared, consumer, shutdown).await;
    client.flush().await.ok();
    Ok(())
}

/// The deliveries stream is created by the ingress; a worker started first
/// waits for it (and for the job's own preparation).
async fn wait_for_streams<J: Job>(
    jetstream: &async_nats::jetstream::Context,
    config: &RuntimeConfig,
    job: &mut J,
    shutdown: &CancellationToken,
) -> anyhow::Result<(
    async_nats::jetstream::consumer::PullConsumer,
    Option<async_nats::jetstream::kv::Store>,
)> {
    loop {
        let prepared = match runtime::streams::prepare(jetstream, config).await {
            Ok(prepared) => job.prepare(jetstream).await.map(|()| prepared),
            Err(error) => Err(error),
        };
        match prepared {
            Ok(prepared) => return Ok(prepared),
            Err(error) => {
                tracing::warn!(error = %error, "cannot prepare streams yet; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.cancelled() => anyhow::bail!("stopped before the streams were ready"),
                }
            }
        }
    }
}

/// Announces this process on `tidegate.workers.<worker>.<instance>` every
/// 10 s, so operators can see which workers are alive.
async fn heartbeat(client: async_nats::Client, worker: String, shutdown: CancellationToken) {
    let instance = uuid::Uuid::now_v7().simple().to_string();
    let subject = format!("{HEARTBEAT_PREFIX}.{worker}.{instance}");
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let beat = serde_json::json!({ "worker": worker, "instance": instance, "pid": std::process::id() });
                drop(client.publish(subject.clone(), beat.to_string().into()).await);
            }
            () = shutdown.cancelled() => return,
        }
    }
}

/// Command-line arguments every worker binary takes.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// TOML configuration file; `TIDEGATE_*` variables override it.
    #[arg(long, env = "TIDEGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The whole `main` of a worker binary: parse args, load the runtime
/// settings and the job's `section`, build the job, run until SIGTERM.
pub async fn main_for<C, J>(
    section: &str,
    build: impl FnOnce(C) -> anyhow::Result<J>,
) -> anyhow::Result<()>
where
    C: DeserializeOwned + Default,
    J: Job,
{
    let args = <Args as clap::Parser>::parse();
    let figment = config::figment(args.config.as_deref());
    let (runtime, job_config) = config::load::<C>(&figment, section, section)?;
    health::init_logging(runtime.json_logs);
    let job = build(job_config)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(health::cancel_on_signal(shutdown.clone()));
    run(runtime, job, shutdown).await
}
