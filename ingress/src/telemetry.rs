//! Logging and metrics set-up, and the metric names (one place, bounded
//! labels: route, status, reason; never a delivery or agent id).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

pub mod metric {
    /// Counter: requests by `route` and `status`.
    pub const REQUESTS: &str = "tidegate_ingress_requests_total";
    /// Counter: verification failures by `route` and `reason`.
    pub const VERIFY_FAILURES: &str = "tidegate_ingress_verification_failures_total";
    /// Histogram: seconds from publish to PubAck, by `route`.
    pub const PUBLISH_SECONDS: &str = "tidegate_ingress_publish_seconds";
    /// Counter: failed publishes by `route` and `reason`.
    pub const PUBLISH_FAILURES: &str = "tidegate_ingress_publish_failures_total";
    /// Counter: deliveries stored, by `route` and `outcome` (stored,
    /// duplicate, ignored).
    pub const DELIVERIES: &str = "tidegate_ingress_deliveries_total";
    /// Counter: bodies kept in the payload bucket, by `route` and `outcome`
    /// (uploaded, present: an identical object was already stored).
    pub const PAYLOAD_OBJECTS: &str = "tidegate_ingress_payload_objects_total";
    /// Counter: requests admitted without a per-client bucket because the
    /// route's client table was full of active clients, by `route`.
    pub const RATE_LIMIT_UNTRACKED: &str = "tidegate_ingress_rate_limit_untracked_total";
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A second init (tests running several ingresses) keeps the first.
    drop(result);
}

/// Installs the process-wide Prometheus recorder once and returns a handle
/// that renders it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Only fails if another recorder is installed, in which case
            // this handle renders an empty registry: acceptable in tests.
            drop(metrics::set_global_recorder(recorder));
            handle
        })
        .clone()
}
