//! The nexus seed's consumer API, for pollers that cannot speak NATS:
//! `GET /api/webhook/pending` leases pending agent items and `DELETE
//! /api/webhook/items` marks them processed. Every lease lives in JetStream
//! (`leases.rs`): any replica answers any request, and a restart loses none.

mod items;
mod leases;
mod pending;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use http::{HeaderMap, HeaderValue};

use crate::AppState;
use crate::error::IngressError;
use crate::subject::Vars;
use crate::telemetry::metric;
use crate::verify::Verifier;

pub(crate) use leases::Leases;

/// Where pollers find pending items.
pub(crate) const PENDING_PATH: &str = "/api/webhook/pending";
/// Where pollers mark items processed.
pub(crate) const DELETE_PATH: &str = "/api/webhook/items";
/// The `route` label of the API's requests in the metrics.
pub(crate) const METRIC_ROUTE: &str = "consumer_api";
/// Counter: items leased, deleted, or asked to be deleted but unknown.
pub(crate) const ITEMS_METRIC: &str = "tidegate_ingress_api_items_total";

/// `[consumer_api]`, validated.
#[derive(Debug)]
pub struct ApiConfig {
    /// `Authorization: Bearer <token>`: the `verify` crate's bearer scheme.
    pub verifier: Verifier,
    /// How long an item handed out stays invisible to other pollers: the
    /// `ack_wait` of the API's consumers.
    pub visibility_timeout: Duration,
    /// Largest batch; also the batch when a GET names no `limit`.
    pub max_items: usize,
    pub agents: Agents,
    /// Never served, whatever `agents` says.
    pub excluded: BTreeSet<String>,
}

/// The agents the API serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agents {
    All,
    Only(BTreeSet<String>),
}

impl ApiConfig {
    pub fn serves(&self, agent: &str) -> bool {
        let listed = match &self.agents {
            Agents::All => true,
            Agents::Only(agents) => agents.contains(agent),
        };
        listed && !self.excluded.contains(agent)
    }
}

/// The API's configuration and the lease machinery it shares across
/// requests.
#[derive(Debug)]
pub struct ConsumerApi {
    pub config: ApiConfig,
    pub leases: Leases,
}

impl ConsumerApi {
    pub fn new(config: ApiConfig) -> ConsumerApi {
        ConsumerApi {
            config,
            leases: Leases::default(),
        }
    }
}

/// Adds the two endpoints; other methods answer 405 with `Allow`.
pub(crate) fn mount(app: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    app.route(
        PENDING_PATH,
        get(pending::handle).fallback(|| async { not_allowed("GET") }),
    )
    .route(
        DELETE_PATH,
        delete(items::handle).fallback(|| async { not_allowed("DELETE") }),
    )
}

fn not_allowed(allow: &'static str) -> IngressError {
    IngressError::MethodNotAllowed {
        allow: HeaderValue::from_static(allow),
    }
}

/// The API of this ingress; 404 when it is not configured (the router
/// only mounts it when it is).
fn api(state: &AppState) -> Result<&ConsumerApi, IngressError> {
    state.consumer_api.as_ref().ok_or(IngressError::NotFound)
}

/// The bearer token, checked in constant time against every configured
/// one: missing → 401, wrong → 403.
fn authenticate(api: &ConsumerApi, headers: &HeaderMap) -> Result<(), IngressError> {
    let vars = Vars {
        params: &[],
        query: &[],
        event: None,
        route: METRIC_ROUTE,
    };
    api.config
        .verifier
        .verify(headers, b"", &vars)
        .map(drop)
        .map_err(|error| IngressError::from_verify(error, api.config.verifier.invalid_status))
}

/// Counts the request like a route's and logs refusals.
fn finish(result: Result<Response, IngressError>) -> Response {
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            let status = error.status();
            if status.is_server_error() {
                tracing::warn!(status = status.as_u16(), error = %error, "consumer API request failed");
            } else {
                tracing::debug!(status = status.as_u16(), error = %error, "consumer API request refused");
            }
            error.into_response()
        }
    };
    metrics::counter!(
        metric::REQUESTS,
        "route" => METRIC_ROUTE,
        "status" => response.status().as_str().to_owned()
    )
    .increment(1);
    response
}

/// Registers the item counter at 0.
pub(crate) fn register_metrics() {
    metrics::describe_counter!(
        ITEMS_METRIC,
        "Consumer API items by outcome: leased, deleted, unknown"
    );
    for outcome in ["leased", "deleted", "unknown"] {
        metrics::counter!(ITEMS_METRIC, "outcome" => outcome).absolute(0);
    }
}

/// The 503 for a broker that cannot serve the API right now.
fn unavailable(state: &AppState, detail: impl std::fmt::Display) -> IngressError {
    IngressError::Unavailable {
        retry_after: state.http.retry_after,
        detail: detail.to_string(),
    }
}
