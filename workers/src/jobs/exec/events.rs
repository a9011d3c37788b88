//! Events a command emits, stored for other workers: each becomes an
//! envelope v1 on `tidegate.in.events.<plugin>.<type>` with
//! `Nats-Msg-Id: event:<delivery id>:<index>`, so a retried command does not
//! store its events twice (within the stream's duplicate window).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use schemas::streams::{PLUGIN_EVENTS_PREFIX, is_subject_token};
use schemas::{Envelope, PayloadEncoding, PluginEvent, headers};
use serde_json::value::RawValue;

use super::Inner;
use super::invoke::Invocation;

/// Most events one command may emit.
pub const MAX_EVENTS: usize = 100;
/// Longest wait for one event's PubAck.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// The envelope method of a plugin event (it came from no HTTP request).
pub const EVENT_METHOD: &str = "EVENT";

/// One event ready to publish.
#[derive(Debug)]
pub struct Prepared {
    subject: String,
    msg_id: String,
    id: String,
    route: String,
    event: String,
    body: Bytes,
}

/// Checks every event before any is published: a bad type refuses them all.
pub fn prepare(call: &Invocation<'_>, events: &[PluginEvent]) -> Result<Vec<Prepared>, String> {
    if events.len() > MAX_EVENTS {
        return Err(format!(
            "it emitted {} events; at most {MAX_EVENTS}",
            events.len()
        ));
    }
    let origin = call.envelope;
    let received_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut prepared = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let tokens: Vec<&str> = event.event_type.split('.').collect();
        if tokens.len() > 16 || !tokens.iter().all(|token| is_subject_token(token)) {
            return Err(format!(
                "event type `{}` must be 1 to 16 dot-separated tokens of A-Z a-z 0-9 - _ ~ @ + = :",
                event.event_type
            ));
        }
        let subject = format!(
            "{PLUGIN_EVENTS_PREFIX}.{}.{}",
            call.plugin, event.event_type
        );
        let id = event_id(&origin.id, index);
        let payload = match &event.payload {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(
                serde_json::value::to_raw_value(value).expect("a JSON value always serializes"),
            ),
        };
        let envelope: Envelope<Box<RawValue>> = Envelope {
            version: schemas::envelope::VERSION,
            id: id.clone(),
            route: origin.route.clone(),
            source: call.plugin.to_owned(),
            agent: None,
            event: Some(event.event_type.clone()),
            subject: subject.clone(),
            received_at: received_at.clone(),
            method: EVENT_METHOD.to_owned(),
            path: format!("/webhook/{}/{}", call.plugin, call.command),
            params: [
                ("plugin".to_owned(), call.plugin.to_owned()),
                ("command".to_owned(), call.command.to_owned()),
            ]
            .into(),
            query: Default::default(),
            raw_query: None,
            headers: Default::default(),
            content_type: payload.as_ref().map(|_| "application/json".to_owned()),
            payload_encoding: if payload.is_some() {
                PayloadEncoding::Json
            } else {
                PayloadEncoding::Empty
            },
            payload,
            payload_ref: None,
            github: None,
        };
        prepared.push(Prepared {
            subject,
            msg_id: format!("event:{}:{index}", origin.id),
            id,
            route: origin.route.clone(),
            event: event.event_type.clone(),
            body: serde_json::to_vec(&envelope)
                .expect("an envelope always serializes")
                .into(),
        });
    }
    Ok(prepared)
}

/// Publishes in order and waits for each PubAck.
pub async fn publish(inner: &Inner, events: Vec<Prepared>) -> Result<(), String> {
    if events.is_empty() {
        return Ok(());
    }
    let jetstream = inner
        .jetstream
        .get()
        .ok_or_else(|| "not connected to jetstream yet".to_owned())?;
    for event in events {
        let mut nats_headers = async_nats::HeaderMap::new();
        nats_headers.insert(headers::MSG_ID, event.msg_id.as_str());
        nats_headers.insert(headers::ENVELOPE_VERSION, "1");
        nats_headers.insert(headers::DELIVERY_ID, event.id.as_str());
        nats_headers.insert(headers::ROUTE, event.route.as_str());
        nats_headers.insert(headers::EVENT, event.event.as_str());
        broker::publish::publish(
            jetstream,
            event.subject.clone(),
            nats_headers,
            event.body,
            PUBLISH_TIMEOUT,
        )
        .await
        .map_err(|error| format!("{}: {error}", event.subject))?;
    }
    Ok(())
}

/// `<origin id>:<index>`, or a digest of the origin id when that would
/// exceed the 200 characters an id may have.
fn event_id(origin: &str, index: usize) -> String {
    let id = format!("{origin}:{index}");
    if id.len() <= 200 {
        return id;
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(origin.as_bytes());
    format!("event-{}:{index}", hex::encode(&digest[..16]))
}
