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
pub use crate::runtime::{Delivery, Job, Outcome, Report, Setup};

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
    /// Counter: plugin commands run by `tidegate-exec`, by `mode` (sync or
    /// queued) and `outcome`.
    pub const EXEC_COMMANDS: &str = "tidegate_exec_commands_total";
}

/// Connects, prepares streams, buckets and the durable consumer, serves
/// `/healthz` and `/metrics`, and consumes until `shutdown`. Ends with an
/// error when the broker cannot be used at all (a server too old, a stream
/// change that would drop data).
pub async fn run<J: Job>(
    config: RuntimeConfig,
    mut job: J,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Install the recorder before anything is counted: a counter touched
    // before it exists is lost.
    let metrics = health::metrics_handle();
    health::register_metrics(&config.name);
    let connection = broker::Connection::start(&config.nats).await?;
    wait_connected(&connection, &shutdown).await?;
    let server = connection.client.server_info();
    let placement = config.jetstream.placement(&server);
    info!(version = %server.version, server = %server.server_name, replicas = placement.replicas, "nats server");
    let client = connection.client.clone();
    let jetstream = connection.jetstream.clone();
    let setup = Setup {
        jetstream: &jetstream,
        placement,
        shutdown: shutdown.clone(),
    };
    let prepared = wait_for_streams(&setup, &config, &mut job, &shutdown).await?;
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
    let background = job.background(&shutdown);
    info!(worker = %config.name, filter = %config.consumer.filter_subjects.join(" "), concurrency = config.consumer.concurrency, "consuming");
    // A few PubAcks per job slot: enough that results never wait on the
    // broker while it keeps up.
    let reporter = runtime::report::Reporter::new(config.consumer.concurrency * 4);
    let lookups = prepared.idempotency.as_ref().map(|_| {
        runtime::lookups::Lookups::start(
            client.clone(),
            &config.name,
            config.nats.publish_timeout,
            config.consumer.concurrency,
        )
    });
    let shared = Arc::new(runtime::consume::Shared {
        config,
        jetstream,
        placement,
        idempotency: prepared.idempotency,
        lookups,
        reporter,
        job,
    });
    runtime::consume::run(shared.clone(), prepared.consumer, shutdown).await;
    shared.job.finish().await;
    for task in background {
        if let Err(error) = task.await {
            tracing::warn!(error = %error, "a background task failed");
        }
    }
    client.flush().await.ok();
    Ok(())
}

/// Waits until connected to a supported server; a server too old ends the
/// worker with the reason.
async fn wait_connected(
    connection: &broker::Connection,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let ready = tokio::select! {
            ready = connection.ready(Duration::from_secs(5)) => ready,
            () = shutdown.cancelled() => anyhow::bail!("stopped before nats was reachable"),
        };
        match ready {
            Ok(()) => return Ok(()),
            Err(error @ broker::ConnectError::Unreachable { .. }) => {
                tracing::warn!(error = %error, "waiting for nats");
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// The deliveries stream is created by the ingress; a worker started first
/// waits for it (and for the job's own preparation). A change that would
/// drop data is not retried.
async fn wait_for_streams<J: Job>(
    setup: &Setup<'_>,
    config: &RuntimeConfig,
    job: &mut J,
    shutdown: &CancellationToken,
) -> anyhow::Result<runtime::streams::Prepared> {
    loop {
        let prepared =
            match runtime::streams::prepare(setup.jetstream, config, setup.placement).await {
                Ok(prepared) => job.prepare(setup).await.map(|()| prepared),
                Err(error) => Err(error),
            };
        match prepared {
            Ok(prepared) => return Ok(prepared),
            Err(error) if is_fatal(&error) => return Err(error),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "cannot prepare streams yet; retrying"
                );
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.cancelled() => anyhow::bail!("stopped before the streams were ready"),
                }
            }
        }
    }
}

/// Errors an operator must fix; retrying cannot.
fn is_fatal(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<broker::EnsureError>(),
            Some(broker::EnsureError::WouldDropData { .. } | broker::EnsureError::Storage { .. })
        )
    })
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
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let (runtime, job_config) = config::load::<C>(&figment, section, section, &env)?;
    health::init_logging(runtime.json_logs);
    let job = build(job_config)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(health::cancel_on_signal(shutdown.clone()));
    run(runtime, job, shutdown).await
}
