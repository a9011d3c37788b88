//! `GET /api/webhook/pending[?agent=..][&source=..][&limit=..]`: leases up
//! to `limit` pending items and answers them grouped by agent id, with full
//! payloads. Nothing is handed out unless its lease is recorded.

use std::sync::Arc;
use std::time::SystemTime;

use async_nats::jetstream::{AckKind, Message};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use broker::item::item_payload;
use broker::payload::PayloadError;
use http::{HeaderMap, Uri};
use schemas::{PendingItem, PendingItems};

use super::leases::{Pair, pair_of};
use super::{ConsumerApi, ITEMS_METRIC, api, authenticate, finish, unavailable};
use crate::AppState;
use crate::error::IngressError;
use crate::subject::check_token;

pub(super) async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    finish(run(&state, &headers, &uri).await)
}

/// What the poller asked for.
#[derive(Debug, PartialEq, Eq)]
struct Filters {
    agent: Option<String>,
    source: Option<String>,
    limit: usize,
}

async fn run(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Response, IngressError> {
    let api = api(state)?;
    authenticate(api, headers)?;
    let filters = Filters::parse(uri.query(), api.config.max_items)?;
    if let Some(agent) = &filters.agent
        && !api.config.serves(agent)
    {
        return Err(IngressError::AgentNotServed(agent.clone()));
    }
    if !state.broker.is_connected() {
        return Err(unavailable(state, "not connected to nats"));
    }
    let broker = &state.broker;
    let mut pairs: Vec<Pair> = api
        .leases
        .pairs(broker, filters.agent.as_deref(), filters.source.as_deref())
        .await
        .map_err(|error| unavailable(state, error))?
        .into_iter()
        .filter(|pair| api.config.serves(&pair.agent))
        .collect();
    // Start at a different pair each time, so that one busy agent does not
    // take every batch.
    if !pairs.is_empty() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let start = usize::try_from(nanos).unwrap_or(0) % pairs.len();
        pairs.rotate_left(start);
    }

    let mut leased: Vec<Message> = Vec::new();
    let mut failure = None;
    for pair in &pairs {
        let remaining = filters.limit - leased.len();
        if remaining == 0 {
            break;
        }
        let fetched = match api
            .leases
            .consumer(broker, pair, api.config.visibility_timeout)
            .await
        {
            Ok(consumer) => api.leases.fetch(broker, &consumer, remaining).await,
            Err(error) => Err(error),
        };
        match fetched {
            Ok(messages) => leased.extend(messages),
            // One pair's trouble (its consumer deleted, a leader election)
            // does not hold up the others; it is ensured again next time.
            Err(error) => {
                tracing::warn!(agent = %pair.agent, source = %pair.source, error = %error, "leasing items failed");
                api.leases.forget(pair);
                failure = Some(error);
            }
        }
    }
    if let Some(error) = failure
        && leased.is_empty()
    {
        return Err(unavailable(state, error));
    }
    respond(state, api, leased).await
}

/// Turns the leased messages into items, records their leases, answers.
async fn respond(
    state: &AppState,
    api: &ConsumerApi,
    leased: Vec<Message>,
) -> Result<Response, IngressError> {
    let lease_expires_at =
        humantime::format_rfc3339_millis(SystemTime::now() + api.config.visibility_timeout)
            .to_string();
    let mut items: PendingItems = PendingItems::new();
    let mut records = Vec::with_capacity(leased.len());
    let mut handed_out = Vec::with_capacity(leased.len());
    let mut leased = leased.into_iter();
    while let Some(message) = leased.next() {
        match item_of(state, &message, &lease_expires_at).await {
            Ok((sequence, ack_subject, item)) => {
                records.push((sequence, ack_subject));
                items.entry(item.agent_id.clone()).or_default().push(item);
                handed_out.push(message);
            }
            Err(Unusable::Permanently(why)) => {
                // Left in the stream for operators; never handed out again.
                tracing::error!(subject = %message.subject, error = %why, "an agent item cannot be served; the consumer API skips it");
                if let Err(error) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(error = %error, "terminating an unusable item failed");
                }
            }
            Err(Unusable::ForNow(why)) => {
                handed_out.push(message);
                handed_out.extend(leased);
                api.leases.release(&handed_out).await;
                return Err(unavailable(state, why));
            }
        }
    }
    if let Err(error) = api.leases.record(&state.broker, &records).await {
        api.leases.release(&handed_out).await;
        return Err(unavailable(state, error));
    }
    metrics::counter!(ITEMS_METRIC, "outcome" => "leased").increment(records.len() as u64);
    // Each group oldest first, as JetStream delivered them within a pair.
    for group in items.values_mut() {
        group.sort_by_key(|item| item.id.parse::<u64>().unwrap_or(u64::MAX));
    }
    Ok(Json(items).into_response())
}

/// Why a leased message is not returned.
enum Unusable {
    /// Not an agent item, or its body is gone: skip it for good.
    Permanently(String),
    /// The body could not be fetched now: release everything, answer 503.
    ForNow(String),
}

/// The item for a leased message, with its stream sequence and ack subject.
async fn item_of(
    state: &AppState,
    message: &Message,
    lease_expires_at: &str,
) -> Result<(u64, String, PendingItem), Unusable> {
    let info = message
        .info()
        .map_err(|error| Unusable::Permanently(format!("no JetStream metadata: {error}")))?;
    let (sequence, deliveries) = (info.stream_sequence, info.delivered.max(1) as u64);
    let ack_subject = message
        .reply
        .as_ref()
        .map(ToString::to_string)
        .ok_or_else(|| Unusable::Permanently("no ack subject".into()))?;
    let read = broker::envelope::read(
        message.subject.as_str(),
        message.headers.as_ref(),
        &message.payload,
    )
    .map_err(|error| Unusable::Permanently(error.to_string()))?;
    let body = match (&read.body, &read.envelope.payload_ref) {
        (Some(body), _) => body.clone(),
        (None, Some(reference)) => {
            broker::payload::fetch(&state.broker.connection.jetstream, reference)
                .await
                .map_err(|error| match error {
                    PayloadError::Missing { .. }
                    | PayloadError::SizeMismatch { .. }
                    | PayloadError::DigestMismatch { .. } => {
                        Unusable::Permanently(error.to_string())
                    }
                    other => Unusable::ForNow(format!("fetching a payload: {other}")),
                })?
        }
        (None, None) => {
            return Err(Unusable::Permanently(
                "object payload without payload_ref".into(),
            ));
        }
    };
    let envelope = read.envelope;
    let payload = item_payload(&envelope, &body);
    let Pair { agent, source } = pair_of(&message.subject)
        .ok_or_else(|| Unusable::Permanently("not an agent subject".into()))?;
    let item = PendingItem {
        id: sequence.to_string(),
        delivery_id: envelope.id,
        agent_id: agent,
        source,
        received_at: envelope.received_at,
        headers: envelope.headers,
        content_type: envelope.content_type,
        encoding: payload.encoding,
        payload: payload.payload,
        deliveries,
        lease_expires_at: lease_expires_at.to_owned(),
    };
    Ok((sequence, ack_subject, item))
}

impl Filters {
    /// `agent` and `source` are subject tokens; `limit` is 1 to `max`
    /// (default `max`). Other parameters are ignored.
    fn parse(query: Option<&str>, max: usize) -> Result<Filters, IngressError> {
        let mut filters = Filters {
            agent: None,
            source: None,
            limit: max,
        };
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "agent" | "agentId" | "source" => {
                    check_token(&value).map_err(|why| {
                        IngressError::BadRequest(format!("query parameter `{name}` {why}"))
                    })?;
                    let slot = if name == "source" {
                        &mut filters.source
                    } else {
                        &mut filters.agent
                    };
                    *slot = Some(value.into_owned());
                }
                "limit" => {
                    filters.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|limit| (1..=max).contains(limit))
                        .ok_or_else(|| {
                            IngressError::BadRequest(format!(
                                "query parameter `limit` must be a number from 1 to {max}"
                            ))
                        })?;
                }
                _ => {}
            }
        }
        Ok(filters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_tokens_and_limits_are_bounded() {
        let parse = |query: &str| Filters::parse(Some(query), 100);
        assert_eq!(
            parse("agent=flickclaw&source=putio&limit=5").expect("valid"),
            Filters {
                agent: Some("flickclaw".into()),
                source: Some("putio".into()),
                limit: 5,
            }
        );
        assert_eq!(Filters::parse(None, 100).expect("valid").limit, 100);
        assert_eq!(
            parse("agentId=a").expect("valid").agent.as_deref(),
            Some("a")
        );
        for bad in [
            "agent=a.b",
            "agent=%3E",
            "source=*",
            "agent=",
            "limit=0",
            "limit=101",
            "limit=x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
