//! The one handler for every configured route: route checks, body, verify,
//! envelope, subject, then publish (async routes) or request (sync routes,
//! in `sync.rs`). No 2xx leaves here without a PubAck or a worker's reply.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use schemas::headers as nats_headers;
use schemas::streams::{DELIVERIES_PREFIX, IGNORED_PREFIX, SYNC_PREFIX};
use serde::Serialize;
use tracing::{Instrument, debug, error, info_span, warn};

use crate::AppState;
use crate::config::{Mode, Route};
use crate::envelope::{self, Incoming};
use crate::error::IngressError;
use crate::subject::{Vars, check_token};
use crate::telemetry::metric;
use crate::verify::Verified;
use broker::PublishError;
use broker::payload::PayloadError;

/// Body of a 202/200 answer.
#[derive(Debug, Serialize)]
struct Accepted<'a> {
    id: &'a str,
    duplicate: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ignored: bool,
}

/// Entry point for a configured route: runs the pipeline inside a span and
/// counts the outcome.
pub(crate) async fn handle(state: Arc<AppState>, route: Arc<Route>, request: Request) -> Response {
    let span = info_span!("delivery", route = %route.name, delivery_id = tracing::field::Empty);
    let response = async {
        match run(&state, &route, request).await {
            Ok(response) => response,
            Err(error) => {
                log_refusal(&state, &route, &error);
                error.into_response()
            }
        }
    }
    .instrument(span)
    .await;
    metrics::counter!(
        metric::REQUESTS,
        "route" => route.name.clone(),
        "status" => response.status().as_str().to_owned()
    )
    .increment(1);
    response
}

/// Server-side refusals are logged at WARN, at most one line a second
/// (under load a broker outage would otherwise write one per request);
/// the metrics count every one.
fn log_refusal(state: &AppState, route: &Route, error: &IngressError) {
    let status = error.status();
    if status.is_server_error() {
        if let Some(suppressed) = state.refusals.allow() {
            warn!(route = %route.name, status = status.as_u16(), error = %error, suppressed, "delivery not accepted");
        }
    } else {
        debug!(route = %route.name, status = status.as_u16(), error = %error, "delivery refused");
    }
}

async fn run(state: &AppState, route: &Route, request: Request) -> Result<Response, IngressError> {
    let received_at = SystemTime::now();
    if !route.enabled {
        return Err(IngressError::Disabled);
    }
    let (mut parts, body) = request.into_parts();
    // Allowlist and rate limits come before anything else reads the
    // request, so that a refused flood costs little.
    if let Some(admission) = &route.admission {
        admission.check(&route.name, &parts, &state.http.trusted_proxies)?;
    }
    let Path(params): Path<Vec<(String, String)>> = axum::RequestPartsExt::extract(&mut parts)
        .await
        .map_err(|_| IngressError::BadRequest("path parameters are not valid UTF-8".into()))?;
    // Every path parameter is a subject token, used or not: a hostile
    // `agentId` is refused before anything else looks at the request.
    for (name, value) in &params {
        check_token(value)
            .map_err(|why| IngressError::BadRequest(format!("path parameter `{name}` {why}")))?;
    }
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    check_media_type(route, &parts.headers)?;
    let body = read_body(state, route, &parts.headers, body).await?;

    let vars = Vars {
        params: &params,
        query: &query,
        event: None,
        route: &route.name,
    };
    let verified = route
        .verifier
        .verify(&parts.headers, &body, &vars)
        .map_err(|error| {
            metrics::counter!(
                metric::VERIFY_FAILURES,
                "route" => route.name.clone(),
                "reason" => error.reason()
            )
            .increment(1);
            IngressError::from_verify(error, route.verifier.invalid_status)
        })?;
    if verified == Verified::Open && route.verifier.scheme != ::verify::Scheme::None {
        debug!(route = %route.name, "no secret configured; accepted unsigned");
    }
    // Only after the signature: an unsigned caller learns nothing about
    // which workflows exist.
    let workflow = match &route.workflows {
        Some(workflows) => Some(crate::workflow::find(state, workflows, &params)?),
        None => None,
    };

    // Only now, after verification, does anything read the body.
    let incoming = Incoming {
        route,
        method: &parts.method,
        path: parts.uri.path(),
        params: &params,
        query: &query,
        raw_query: parts.uri.query().filter(|query| !query.is_empty()),
        headers: &parts.headers,
        body: &body,
        received_at,
    };
    let event = envelope::event(&incoming)?;
    let vars = Vars {
        event: event.as_deref(),
        ..vars
    };
    let id = envelope::delivery_id(route, &parts.headers, &body)?;
    tracing::Span::current().record("delivery_id", id.as_str());
    let ignored = route
        .events
        .as_ref()
        .is_some_and(|events| !event.as_ref().is_some_and(|event| events.contains(event)));
    let subject = subject_for(route, &vars, event.as_deref(), ignored)?;
    let render = |template: &crate::subject::Template| {
        template
            .render(&vars)
            .map_err(|error| IngressError::BadRequest(error.to_string()))
    };
    let source = render(&route.source)?;
    let agent = route.agent.as_ref().map(render).transpose()?;
    // Async bodies too large for one message go to the object store; sync
    // requests are never stored, so they stay inline.
    let max_inline = (route.mode == Mode::Async).then(|| {
        state
            .broker
            .max_payload()
            .saturating_sub(envelope::ENVELOPE_HEADROOM)
    });
    let built = envelope::build_within(
        &incoming,
        &id,
        event.as_deref(),
        source,
        agent,
        &subject,
        max_inline,
    )?;

    let envelope::Built {
        mut headers,
        data,
        payload_ref,
        ..
    } = built;

    if route.mode == Mode::Sync {
        return crate::sync::request(state, route, subject, headers, data).await;
    }

    // The object first: an envelope must never point at a body that is not
    // stored. A redelivery finds the identical object and skips the upload.
    if let Some(reference) = &payload_ref {
        state
            .broker
            .store_payload(&route.name, reference, &body)
            .await
            .map_err(|error| payload_error(state, &error))?;
    }
    // Nothing below reads the request again: free the head now rather
    // than hold it for the PubAck round trip (memory per in-flight request
    // is what many connections multiply). The body lives on as the data.
    drop(body);
    drop(parts);
    // Scoped by route so that two sources can never collide on an id.
    headers.insert(
        nats_headers::MSG_ID,
        format!("{}:{id}", route.name).as_str(),
    );
    if let Some(loaded) = &workflow {
        let run = crate::workflow::Run {
            route,
            loaded,
            id: &id,
        };
        return crate::workflow::deliver(state, &run, subject, headers, data).await;
    }
    let published = state
        .broker
        .publish(&route.name, subject.into(), headers, data)
        .await
        .map_err(|error| publish_error(state, &error))?;
    let (status, duplicate, outcome) = match published.duplicate {
        false if ignored => (StatusCode::OK, false, "ignored"),
        false => (StatusCode::ACCEPTED, false, "stored"),
        true => (StatusCode::OK, true, "duplicate"),
    };
    metrics::counter!(metric::DELIVERIES, "route" => route.name.clone(), "outcome" => outcome)
        .increment(1);
    debug!(delivery_id = %id, outcome, "delivery acknowledged by jetstream");
    let body = Accepted {
        id: &id,
        duplicate,
        ignored,
    };
    Ok((status, Json(body)).into_response())
}

fn subject_for(
    route: &Route,
    vars: &Vars<'_>,
    event: Option<&str>,
    ignored: bool,
) -> Result<String, IngressError> {
    let mut subject = String::with_capacity(64);
    if ignored {
        subject.push_str(IGNORED_PREFIX);
        subject.push('.');
        subject.push_str(&route.name);
        subject.push('.');
        // The event was not checked by any template: one that cannot be a
        // single token (Shopify's `orders/create`) is filed under `_`.
        match event {
            Some(event) if check_token(event).is_ok() => subject.push_str(event),
            Some(_) => subject.push('_'),
            None => subject.push_str("none"),
        }
        return Ok(subject);
    }
    subject.push_str(if route.mode == Mode::Sync {
        SYNC_PREFIX
    } else {
        DELIVERIES_PREFIX
    });
    subject.push('.');
    route
        .subject
        .render_into(&mut subject, vars)
        .map_err(|error| IngressError::BadRequest(error.to_string()))?;
    Ok(subject)
}

/// Every publish failure but an oversized envelope is transient: 503 with
/// `Retry-After`, and a message that says what happened.
pub(crate) fn publish_error(state: &AppState, error: &PublishError) -> IngressError {
    let retry_after = state.http.retry_after;
    match error {
        // Not transient: retrying the same body cannot succeed.
        PublishError::TooLarge { size, max } => {
            error!(size, max, "envelope exceeds the broker's max_payload");
            IngressError::TooLarge { limit: *max as u64 }
        }
        PublishError::Full(why) => {
            let limits = &state.broker.config.stream;
            let max_bytes = limits
                .max_bytes
                .map_or_else(|| "unlimited".to_owned(), |bytes| format!("{bytes} bytes"));
            IngressError::StreamFull {
                retry_after,
                detail: format!("{why}; stream.max_bytes is {max_bytes}"),
            }
        }
        other => IngressError::Unavailable {
            retry_after,
            detail: other.to_string(),
        },
    }
}

fn payload_error(state: &AppState, error: &PayloadError) -> IngressError {
    IngressError::Unavailable {
        retry_after: state.http.retry_after,
        detail: format!("the payload bucket: {error}"),
    }
}

fn check_media_type(route: &Route, headers: &HeaderMap) -> Result<(), IngressError> {
    let Some(accepted) = &route.content_types else {
        return Ok(());
    };
    let media = envelope::media_type(headers);
    let ok = match &media {
        Some(media) => accepted.iter().any(|allowed| allowed == media),
        // A request without a body needs no media type.
        None => headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0"),
    };
    if ok {
        Ok(())
    } else {
        Err(IngressError::UnsupportedMediaType {
            accepted: accepted.join(", "),
        })
    }
}

/// Reads the whole body within the route's limit and the body timeout.
async fn read_body(
    state: &AppState,
    route: &Route,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, IngressError> {
    let limit = route.body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(IngressError::TooLarge { limit });
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let started = Instant::now();
    match tokio::time::timeout(state.http.body_timeout, limited.collect()).await {
        Err(_) => {
            debug!(elapsed = ?started.elapsed(), "body timeout");
            Err(IngressError::BodyTimeout)
        }
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(IngressError::TooLarge { limit }),
        Ok(Err(_)) => Err(IngressError::BadRequest(
            "the request body could not be read".into(),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
