//! `/healthz` (the process is up), `/readyz` (connected to NATS and the
//! deliveries stream exists) and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::AppState;

pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let connected = state.broker.is_connected();
    let ready = state.broker.is_ready();
    let body = Json(json!({
        "status": if ready { "ready" } else { "unavailable" },
        "nats": if connected { "connected" } else { "disconnected" },
        "stream": ready,
    }));
    if ready {
        body.into_response()
    } else {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        let seconds = state.broker.nats.retry_after.as_secs().max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
