//! Per-process `/healthz` and `/metrics`, logging set-up and signals.

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

pub async fn serve(
    listener: TcpListener,
    client: async_nats::Client,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route(
            "/healthz",
            get(move || {
                let connected =
                    client.connection_state() == async_nats::connection::State::Connected;
                async move {
                    let status = if connected {
                        http::StatusCode::OK
                    } else {
                        http::StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, axum::Json(serde_json::json!({ "nats": connected }))).into_response()
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = handle.render();
                async move {
                    (
                        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        text,
                    )
                }
            }),
        );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(error) = served {
        tracing::warn!(error = %error, "health listener stopped");
    }
}

/// Every counter of the runtime, present at 0 from start-up.
pub fn register_metrics(worker: &str) {
    use crate::metric::*;
    let worker = worker.to_owned();
    metrics::describe_counter!(PROCESSED, "Finished deliveries by worker and status");
    metrics::describe_counter!(RETRIED, "Attempts that will be retried");
    metrics::describe_counter!(DEAD_LETTERED, "Deliveries stored as dead letters");
    metrics::describe_histogram!(DURATION, "Seconds per attempt");
    metrics::describe_counter!(STARTED, "Started attempts");
    metrics::describe_counter!(FINISHED, "Finished attempts");
    for status in ["completed", "partial", "skipped", "failed"] {
        metrics::counter!(PROCESSED, "worker" => worker.clone(), "status" => status).absolute(0);
    }
    for name in [RETRIED, DEAD_LETTERED, STARTED, FINISHED] {
        metrics::counter!(name, "worker" => worker.clone()).absolute(0);
    }
}

/// The process-wide Prometheus recorder, installed once.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed (tests).
            drop(metrics::set_global_recorder(recorder));
            handle
        })
        .clone()
}

pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    drop(if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    });
}

pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
