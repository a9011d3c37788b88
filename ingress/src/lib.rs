//! tidegate's HTTP ingress: verify each webhook on its raw bytes, wrap it in
//! an envelope, publish it to JetStream and answer only after the PubAck.
//! `run` and `router` are the seams the binary and the tests use.

mod admin;
mod client_ip;
pub mod config;
mod consumer_api;
mod deliver;
pub mod envelope;
pub mod error;
mod health;
mod limit;
mod nats;
mod normalize;
mod publish;
mod readiness;
mod serve;
pub mod subject;
mod sync;
mod telemetry;
pub mod verify;
mod workflow;

// What `Config` exposes, and what the binary needs: the rest of the crate
// is private to it.
pub use crate::client_ip::IpList;
pub use crate::consumer_api::ApiConfig;
pub use crate::limit::Admission;
pub use crate::nats::{Broker, BrokerConfig};
pub use crate::serve::HttpConfig;
pub use crate::telemetry::{LogConfig, LogFormat, init_logging};

/// The serde_json reading of a GitHub payload that the one-pass scan
/// replaced; `None` where it refuses the body. The `github_scan` fuzz
/// target's oracle.
#[cfg(fuzzing)]
pub fn github_fields_oracle(
    headers: &http::HeaderMap,
    json: &[u8],
) -> Option<schemas::GithubFields> {
    normalize::github::oracle::normalize(headers, json).ok()
}

use std::sync::Arc;

use ::verify::Scheme;
use axum::Router;
use axum::extract::Request;
use axum::routing::{MethodFilter, MethodRouter, get};
use http::HeaderValue;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, Route};
use crate::error::IngressError;
use crate::verify::Secrets;

/// What every request handler shares. Holds no per-delivery state.
#[derive(Debug)]
pub struct AppState {
    pub broker: Arc<Broker>,
    pub http: HttpConfig,
    pub metrics: PrometheusHandle,
    /// Bounds the WARN lines for refused deliveries (metrics count each).
    pub refusals: telemetry::LogLimiter,
    /// `GET /api/webhook/pending`, `DELETE /api/webhook/items`, when
    /// configured.
    pub consumer_api: Option<consumer_api::ConsumerApi>,
}

/// Connects to NATS, keeps the stream present, and serves until `shutdown`
/// is cancelled, then drains in-flight requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = telemetry::metrics_handle();
    let mut route_names: Vec<&str> = config
        .routes
        .iter()
        .map(|route| route.name.as_str())
        .collect();
    if config.consumer_api.is_some() {
        route_names.push(consumer_api::METRIC_ROUTE);
        consumer_api::register_metrics();
    }
    telemetry::register_metrics(&route_names);
    let broker = Broker::start(config.broker.clone()).await?;
    // The maintainer ends the ingress when the broker cannot be used at
    // all (a server too old, a stream change that would drop data).
    let fatal = CancellationToken::new();
    let maintainer = tokio::spawn({
        let (broker, shutdown, fatal) = (broker.clone(), shutdown.clone(), fatal.clone());
        async move {
            let result = broker.maintain(shutdown).await;
            if result.is_err() {
                fatal.cancel();
            }
            result
        }
    });
    warn_about_open_routes(&config.routes);
    if let Some(api) = &config.consumer_api {
        info!(
            pending = consumer_api::PENDING_PATH,
            items = consumer_api::DELETE_PATH,
            visibility_timeout = ?api.visibility_timeout,
            "consumer API enabled"
        );
    }
    for route in &config.routes {
        if let Some(workflows) = &route.workflows {
            tokio::spawn(::workflows::watch::watch(
                workflows.registry.clone(),
                ::workflows::watch::DEFAULT_INTERVAL,
                shutdown.clone(),
            ));
        }
    }
    let state = Arc::new(AppState {
        broker: broker.clone(),
        http: config.http.clone(),
        metrics,
        refusals: telemetry::LogLimiter::default(),
        consumer_api: config.consumer_api.map(consumer_api::ConsumerApi::new),
    });
    let mut app = router(state.clone(), &config.routes);
    if let Some(admin) = &config.admin {
        app = app.merge(admin::router(state, admin.token.clone()));
    }
    info!(address = %listener.local_addr()?, routes = config.routes.len(), "listening");
    let stop = shutdown.clone();
    tokio::spawn({
        let (fatal, stop) = (fatal.clone(), stop.clone());
        async move {
            fatal.cancelled().await;
            stop.cancel();
        }
    });
    serve::serve(listener, app, &config.http, shutdown.clone()).await;
    shutdown.cancel();
    let maintained = maintainer.await;
    // Requests are drained; flush what is left in the client buffer, but
    // don't wait forever for a broker that is down.
    let client = &broker.connection.client;
    match tokio::time::timeout(config.broker.nats.publish_timeout, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(error = %error, "flushing the nats connection failed"),
        Err(_) => warn!("nats is unreachable; stopping without a final flush"),
    }
    info!("stopped");
    match maintained {
        Ok(result) => result,
        Err(error) => Err(error.into()),
    }
}

/// One axum route per configured path (routes sharing a path have
/// disjoint methods), plus health and metrics.
pub fn router(state: Arc<AppState>, routes: &[Arc<Route>]) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    let mut paths: Vec<&str> = Vec::new();
    for route in routes {
        if !paths.contains(&route.path.as_str()) {
            paths.push(&route.path);
        }
    }
    for path in paths {
        let on_path: Vec<&Arc<Route>> = routes.iter().filter(|route| route.path == path).collect();
        let allow = on_path
            .iter()
            .flat_map(|route| route.methods.iter().map(|method| method.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let allow = HeaderValue::from_str(&allow).expect("method names are valid header text");
        let mut methods = MethodRouter::new().fallback(move || {
            let allow = allow.clone();
            async move { IngressError::MethodNotAllowed { allow } }
        });
        for route in on_path {
            for method in &route.methods {
                let filter = MethodFilter::try_from(method.clone())
                    .expect("config accepts only routable methods");
                let (state, route) = (state.clone(), route.clone());
                methods = methods.on(filter, move |request: Request| {
                    deliver::handle(state.clone(), route.clone(), request)
                });
            }
        }
        app = app.route(path, methods);
    }
    if state.consumer_api.is_some() {
        app = consumer_api::mount(app);
    }
    app.fallback(|| async { IngressError::NotFound })
        .with_state(state)
}

/// The assistant seed's documented behaviour: no secret, no verification,
/// and a warning nobody can miss.
fn warn_about_open_routes(routes: &[Arc<Route>]) {
    for route in routes {
        let verifier = &route.verifier;
        let unsigned = match (&verifier.scheme, &verifier.secrets) {
            (Scheme::None, _) => true,
            (_, Secrets::Fixed(secrets)) => secrets.is_empty() && verifier.open_when_unset,
            (_, Secrets::PerRequest { known, .. }) => {
                if verifier.open_when_unset {
                    warn!(
                        route = %route.name,
                        path = %route.path,
                        secrets_set = known.len(),
                        "ROUTE ACCEPTS UNSIGNED REQUESTS wherever no secret variable is set for the request's values"
                    );
                }
                false
            }
        };
        if unsigned {
            warn!(
                route = %route.name,
                path = %route.path,
                "ROUTE ACCEPTS UNSIGNED REQUESTS: no secret is configured; anyone who can reach it can publish"
            );
        }
    }
}
