//! Logging and metrics set-up, the `[log]` settings, and the metric names
//! (one place, bounded labels: route, status, reason; never a delivery or
//! agent id).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawLog {
    pub format: Option<String>,
}

impl RawLog {
    pub(crate) fn compile(&self, problems: &mut Vec<String>) -> LogConfig {
        let format = match self.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                problems.push(format!("log.format: `{other}` is not text or json"));
                LogFormat::Text
            }
        };
        LogConfig { format }
    }
}

pub(crate) mod metric {
    /// Counter: requests by `route` and `status`.
    pub(crate) const REQUESTS: &str = "tidegate_ingress_requests_total";
    /// Counter: verification failures by `route` and `reason`.
    pub(crate) const VERIFY_FAILURES: &str = "tidegate_ingress_verification_failures_total";
    /// Histogram: seconds from publish to PubAck, by `route`.
    pub(crate) const PUBLISH_SECONDS: &str = "tidegate_ingress_publish_seconds";
    /// Counter: failed publishes by `route` and `reason`.
    pub(crate) const PUBLISH_FAILURES: &str = "tidegate_ingress_publish_failures_total";
    /// Counter: deliveries stored, by `route` and `outcome` (stored,
    /// duplicate, ignored).
    pub(crate) const DELIVERIES: &str = "tidegate_ingress_deliveries_total";
    /// Counter: bodies kept in the payload bucket, by `route` and `outcome`
    /// (uploaded, present: an identical object was already stored).
    pub(crate) const PAYLOAD_OBJECTS: &str = "tidegate_ingress_payload_objects_total";
    /// Counter: requests admitted without a per-client bucket because the
    /// route's client table was full of active clients, by `route`.
    pub(crate) const RATE_LIMIT_UNTRACKED: &str = "tidegate_ingress_rate_limit_untracked_total";
    /// Counter: checks that found the deliveries stream gone while running.
    pub(crate) const STREAM_MISSING: &str = "tidegate_ingress_stream_missing_total";
}

/// Every counter, present at 0 from start-up with the labels each route
/// will use, so that dashboards and alerts see series before the first
/// request (and a rate over a counter that appears later is not lost).
pub(crate) fn register_metrics(routes: &[&str]) {
    use metric::*;
    metrics::describe_counter!(REQUESTS, "Requests by route and status");
    metrics::describe_counter!(VERIFY_FAILURES, "Verification failures by route and reason");
    metrics::describe_histogram!(PUBLISH_SECONDS, "Seconds from publish to PubAck, by route");
    metrics::describe_counter!(PUBLISH_FAILURES, "Failed publishes by route and reason");
    metrics::describe_counter!(DELIVERIES, "Deliveries stored, by route and outcome");
    metrics::describe_counter!(PAYLOAD_OBJECTS, "Bodies kept in the payload bucket");
    metrics::describe_counter!(
        RATE_LIMIT_UNTRACKED,
        "Requests admitted untracked (client table full)"
    );
    metrics::describe_counter!(
        STREAM_MISSING,
        "Checks that found the deliveries stream gone"
    );
    metrics::counter!(STREAM_MISSING).absolute(0);
    for &route in routes {
        let route = route.to_owned();
        for status in [
            "200", "202", "400", "401", "403", "404", "413", "429", "503",
        ] {
            metrics::counter!(REQUESTS, "route" => route.clone(), "status" => status).absolute(0);
        }
        for reason in ["missing", "invalid", "stale", "no_secret"] {
            metrics::counter!(VERIFY_FAILURES, "route" => route.clone(), "reason" => reason)
                .absolute(0);
        }
        for reason in [
            "not_connected",
            "no_stream",
            "timeout",
            "stream_full",
            "too_large",
            "rejected",
            "failed",
            "payload_unavailable",
            "payload_failed",
        ] {
            metrics::counter!(PUBLISH_FAILURES, "route" => route.clone(), "reason" => reason)
                .absolute(0);
        }
        for outcome in ["stored", "duplicate", "ignored"] {
            metrics::counter!(DELIVERIES, "route" => route.clone(), "outcome" => outcome)
                .absolute(0);
        }
        for outcome in ["uploaded", "present"] {
            metrics::counter!(PAYLOAD_OBJECTS, "route" => route.clone(), "outcome" => outcome)
                .absolute(0);
        }
        metrics::counter!(RATE_LIMIT_UNTRACKED, "route" => route.clone()).absolute(0);
    }
}

/// At most one log line per second for a kind of event, however often it
/// happens; the next line says how many were left out. Metrics count them
/// all.
#[derive(Debug)]
pub struct LogLimiter {
    started: Instant,
    /// Milliseconds after `started` of the last line, plus one second.
    next_at: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter {
            started: Instant::now(),
            next_at: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl LogLimiter {
    /// `Some(left out since the last line)` when a line may be logged now.
    pub fn allow(&self) -> Option<u64> {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_at.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_at
                .compare_exchange(next, now + 1_000, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
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
pub(crate) fn metrics_handle() -> PrometheusHandle {
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
