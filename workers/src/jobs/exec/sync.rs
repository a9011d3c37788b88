//! Synchronous commands: a core NATS queue-group subscription on
//! `tidegate.sync.plugin.>` shared by every executor replica; each request
//! (an envelope) gets a `SyncReply` the ingress turns into the response.

use std::sync::Arc;

use async_nats::Client;
use futures::StreamExt as _;
use schemas::SyncReply;
use schemas::plugin::InvocationMode;
use schemas::streams::PLUGIN_SYNC_PREFIX;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::invoke::{Failure, Invocation, invoke};
use super::{Inner, count, plugin_and_command};
use crate::runtime::delivery;

/// `Retry-After` of a 503 for events that could not be stored.
const RETRY_AFTER_SECONDS: &str = "5";

/// Serves requests until `shutdown`, then unsubscribes (new requests go to
/// other replicas) and lets the ones in flight finish. A subscription that
/// cannot be made yet is tried again every second.
pub async fn serve(
    inner: Arc<Inner>,
    client: Client,
    queue_group: String,
    shutdown: CancellationToken,
) {
    let subject = format!("{PLUGIN_SYNC_PREFIX}.>");
    let requests = loop {
        let subscribed = match client
            .queue_subscribe(subject.clone(), queue_group.clone())
            .await
        {
            // The subscription is registered once the server has seen it.
            Ok(requests) => client
                .flush()
                .await
                .map(|()| requests)
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match subscribed {
            Ok(requests) => break requests,
            Err(error) => warn!(error = %error, "cannot subscribe for sync commands yet; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return,
        }
    };
    info!(subject = %subject, queue_group = %queue_group, concurrency = inner.settings.sync_concurrency, "serving sync commands");
    run(inner, client, requests, shutdown).await;
}

async fn run(
    inner: Arc<Inner>,
    client: Client,
    mut requests: async_nats::Subscriber,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(inner.settings.sync_concurrency));
    let mut tasks = JoinSet::new();
    loop {
        let message = tokio::select! {
            message = requests.next() => match message {
                Some(message) => message,
                None => break,
            },
            () = shutdown.cancelled() => break,
        };
        // Bounded: at most `sync_concurrency` commands run; later requests
        // wait in the subscription's (bounded) buffer.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => {
                let mut stopping = error_reply(503, "executor_stopping", "the executor is shutting down");
                stopping.headers.insert("retry-after".into(), RETRY_AFTER_SECONDS.into());
                send(&client, message.reply.clone(), &stopping).await;
                break;
            }
        };
        let (inner, client) = (inner.clone(), client.clone());
        let span =
            info_span!("sync", subject = %message.subject, delivery_id = tracing::field::Empty);
        tasks.spawn(
            async move {
                let reply = respond(
                    &inner,
                    message.subject.as_str(),
                    message.headers.as_ref(),
                    &message.payload,
                )
                .await;
                send(&client, message.reply.clone(), &reply).await;
                drop(permit);
            }
            .instrument(span),
        );
        while tasks.try_join_next().is_some() {}
    }
    drop(requests.unsubscribe().await);
    info!(
        in_flight = tasks.len(),
        "sync commands: stopped taking requests"
    );
    while tasks.join_next().await.is_some() {}
    client.flush().await.ok();
}

/// Publishes the reply; one too large for the broker becomes a 502.
async fn send(client: &Client, reply_to: Option<async_nats::Subject>, reply: &SyncReply) {
    let Some(reply_to) = reply_to else {
        debug!("a sync request without a reply subject; not answered");
        return;
    };
    let mut body = serde_json::to_vec(reply).expect("a reply always serializes");
    if body.len() > client.server_info().max_payload {
        warn!(
            size = body.len(),
            "the reply exceeds the broker's max_payload"
        );
        let too_large = error_reply(
            502,
            "reply_too_large",
            "the plugin's response is larger than a NATS message; lower exec.max_output",
        );
        body = serde_json::to_vec(&too_large).expect("a reply always serializes");
    }
    if let Err(error) = client.publish(reply_to, body.into()).await {
        warn!(error = %error, "sending the reply failed");
    }
}

/// The reply to one request; never fails (every problem is a status).
pub async fn respond(
    inner: &Inner,
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    payload: &bytes::Bytes,
) -> SyncReply {
    let Some((plugin, command)) = plugin_and_command(subject, PLUGIN_SYNC_PREFIX) else {
        return error_reply(404, "unknown_command", "not a plugin command subject");
    };
    let read = match delivery::parse(subject, headers, payload) {
        Ok(read) => read,
        Err(error) => return error_reply(400, "bad_request", &error.to_string()),
    };
    let envelope = read.envelope;
    tracing::Span::current().record("delivery_id", envelope.id.as_str());
    let Some(body) = read.body else {
        return error_reply(400, "bad_request", "a sync request carries its body inline");
    };
    let call = Invocation {
        plugin,
        command,
        envelope: &envelope,
        body: &body,
        mode: InvocationMode::Sync,
        attempt: 1,
    };
    let result = invoke(inner, &call).await;
    count(InvocationMode::Sync, &result);
    match result {
        Ok(response) => json_reply(200, &response),
        Err(failure) => failure_reply(&failure),
    }
}

/// The status table of sync plugin commands (README, "Plugin commands").
fn failure_reply(failure: &Failure) -> SyncReply {
    let message = failure.to_string();
    match failure {
        Failure::UnknownPlugin(_) => error_reply(404, "unknown_plugin", &message),
        Failure::UnknownCommand { .. } => error_reply(404, "unknown_command", &message),
        Failure::NotCallable { .. } => error_reply(403, "command_not_callable", &message),
        Failure::InvalidInput(_) => error_reply(400, "invalid_input", &message),
        // The plugin's own error JSON, as it wrote it.
        Failure::Plugin(response) => {
            warn!(error = %message, "plugin error");
            json_reply(502, response)
        }
        Failure::Broken(_) => {
            warn!(error = %message, "plugin failed");
            error_reply(502, "plugin_failed", &message)
        }
        Failure::TimedOut(_) => {
            warn!(error = %message, "plugin timed out");
            error_reply(504, "plugin_timeout", &message)
        }
        Failure::Events(_) => {
            warn!(error = %message, "events not stored");
            let mut reply = error_reply(503, "events_not_stored", &message);
            reply
                .headers
                .insert("retry-after".into(), RETRY_AFTER_SECONDS.into());
            reply
        }
    }
}

fn error_reply(status: u16, code: &str, message: &str) -> SyncReply {
    json_reply(status, &json!({ "error": code, "message": message }))
}

fn json_reply(status: u16, body: &impl serde::Serialize) -> SyncReply {
    let body: Value = serde_json::to_value(body).expect("replies always serialize");
    SyncReply {
        status,
        headers: Default::default(),
        content_type: None,
        body: Some(serde_json::value::to_raw_value(&body).expect("a JSON value serializes")),
    }
}
