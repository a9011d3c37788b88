//! `/healthz` (the process is up), `/readyz` (a delivery would be stored
//! now: a PubAck or a readiness probe answered lately, see `readiness.rs`)
//! and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::AppState;

pub(crate) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let connected = state.broker.is_connected();
    let ready = state.broker.ready();
    let body = Json(json!({
        "status": if ready.is_ok() { "ready" } else { "unavailable" },
        "nats": if connected { "connected" } else { "disconnected" },
        "reason": ready.as_ref().err().map(ToString::to_string),
    }));
    if ready.is_ok() {
        body.into_response()
    } else {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        let seconds = state.http.retry_after.as_secs().max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
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
