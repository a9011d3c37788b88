//! Synchronous routes: the envelope goes out as a NATS request on
//! `tidegate.sync.<subject>` and the worker's `SyncReply` becomes the HTTP
//! response. Nothing is stored; the reply is the acknowledgement.

use std::str::FromStr;

use async_nats::RequestErrorKind;
use async_nats::client::Request;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use schemas::SyncReply;
use tracing::warn;

use crate::AppState;
use crate::config::Route;
use crate::error::IngressError;

/// Sends the envelope and waits for a worker's reply, at most the route's
/// timeout.
pub(crate) async fn request(
    state: &AppState,
    route: &Route,
    subject: String,
    headers: async_nats::HeaderMap,
    envelope: Bytes,
) -> Result<Response, IngressError> {
    let retry_after = state.http.retry_after;
    if !state.broker.is_connected() {
        return Err(IngressError::Unavailable {
            retry_after,
            detail: "not connected to nats".into(),
        });
    }
    let request = Request::new()
        .payload(envelope)
        .headers(headers)
        .timeout(Some(route.timeout));
    let reply = state
        .broker
        .connection
        .client
        .send_request(subject, request)
        .await
        .map_err(|error| match error.kind() {
            RequestErrorKind::NoResponders => IngressError::NoResponders { retry_after },
            RequestErrorKind::TimedOut => IngressError::GatewayTimeout,
            _ => IngressError::Unavailable {
                retry_after,
                detail: error.to_string(),
            },
        })?;
    let reply: SyncReply = serde_json::from_slice(&reply.payload).map_err(|error| {
        warn!(route = %route.name, error = %error, "worker reply is not a sync reply v1");
        IngressError::BadReply
    })?;
    into_response(route, reply)
}

fn into_response(route: &Route, reply: SyncReply) -> Result<Response, IngressError> {
    let status = StatusCode::from_u16(reply.status)
        .ok()
        .filter(|status| status.as_u16() >= 200)
        .ok_or_else(|| {
            warn!(route = %route.name, status = reply.status, "worker replied with an invalid status");
            IngressError::BadReply
        })?;
    let content_type = reply
        .content_type
        .clone()
        .unwrap_or_else(|| "application/json".to_owned());
    let json = content_type.starts_with("application/json") || content_type.contains("+json");
    let body = match &reply.body {
        None => Body::empty(),
        Some(raw) if json => Body::from(raw.get().to_owned()),
        Some(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(text) => Body::from(text),
            Err(_) => {
                warn!(route = %route.name, "worker reply body must be a string for a non-JSON media type");
                return Err(IngressError::BadReply);
            }
        },
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if reply.body.is_some() {
        let value = HeaderValue::from_str(&content_type).map_err(|_| IngressError::BadReply)?;
        headers.insert(header::CONTENT_TYPE, value);
    }
    for (name, value) in &reply.headers {
        let (Ok(name), Ok(value)) = (HeaderName::from_str(name), HeaderValue::from_str(value))
        else {
            warn!(route = %route.name, "worker reply has an invalid header");
            return Err(IngressError::BadReply);
        };
        headers.insert(name, value);
    }
    Ok(response)
}
