//! What templates see: the webhook that started the run (read again from
//! `TIDEGATE_DELIVERIES` when a run resumes, so run records stay small)
//! and the outputs of the steps so far.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use minijinja::value::Value as JinjaValue;
use schemas::streams::DELIVERIES_STREAM;
use schemas::{Envelope, RunTrigger, StepStatus, WorkflowRun};
use serde_json::{Value, json};
use verify::Secret;

/// The webhook's parts a template can use.
#[derive(Debug, Clone)]
pub struct TriggerData {
    /// The body parsed as JSON, or its text when it is not JSON.
    pub payload: Value,
    pub headers: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    pub event: Option<String>,
}

impl TriggerData {
    pub fn new(envelope: &Envelope, payload: &[u8]) -> TriggerData {
        let payload = serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
        TriggerData {
            payload,
            headers: envelope.headers.clone(),
            query: envelope.query.clone(),
            event: envelope.event.clone(),
        }
    }
}

/// Why the starting webhook could not be read again.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("reading the webhook that started the run: {0}")]
    Unavailable(String),
    #[error("the webhook that started the run is gone: {0}")]
    Gone(String),
}

/// Reads the starting delivery by its stream sequence.
pub async fn fetch(
    jetstream: &jetstream::Context,
    trigger: &RunTrigger,
    timeout: Duration,
) -> Result<TriggerData, TriggerError> {
    let read = async {
        let stream = jetstream
            .get_stream(DELIVERIES_STREAM)
            .await
            .map_err(|error| TriggerError::Unavailable(error.to_string()))?;
        let message = stream
            .get_raw_message(trigger.stream_sequence)
            .await
            .map_err(|error| match error.kind() {
                jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                    TriggerError::Gone(format!(
                        "sequence {} is no longer in {DELIVERIES_STREAM} (past its max_age?)",
                        trigger.stream_sequence
                    ))
                }
                _ => TriggerError::Unavailable(error.to_string()),
            })?;
        let read = workers::runtime::delivery::parse(
            message.subject.as_str(),
            Some(&message.headers),
            &message.payload,
        )
        .map_err(|error| TriggerError::Gone(error.to_string()))?;
        if read.envelope.id != trigger.delivery_id {
            return Err(TriggerError::Gone(format!(
                "sequence {} holds another delivery",
                trigger.stream_sequence
            )));
        }
        let payload = workers::runtime::delivery::body(jetstream, &read)
            .await
            .map_err(|error| {
                if error.is_transient() {
                    TriggerError::Unavailable(error.to_string())
                } else {
                    TriggerError::Gone(error.to_string())
                }
            })?;
        let envelope = read.envelope;
        Ok(TriggerData::new(&envelope, &payload))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| TriggerError::Unavailable(format!("no answer within {timeout:?}")))?
}

/// The template context for step `index` of `run`.
pub fn for_step(
    run: &WorkflowRun,
    trigger: &TriggerData,
    secrets: &BTreeMap<String, Secret>,
    index: usize,
) -> JinjaValue {
    let mut steps = serde_json::Map::new();
    let mut previous_output = String::new();
    for step in &run.steps[..index.min(run.steps.len())] {
        if !matches!(step.status, StepStatus::Success | StepStatus::Failed) {
            continue;
        }
        let output = step.output.clone().unwrap_or_default();
        previous_output.clone_from(&output);
        steps.insert(
            step.name.clone(),
            json!({
                "output": output,
                "status": step.status.as_str(),
                "error": step.error,
                "exit_code": step.exit_code,
                "http_status": step.http_status,
            }),
        );
    }
    let secrets: serde_json::Map<String, Value> = secrets
        .iter()
        .map(|(name, secret)| {
            let text = String::from_utf8_lossy(secret.expose()).into_owned();
            (name.clone(), Value::String(text))
        })
        .collect();
    JinjaValue::from_serialize(json!({
        "payload": trigger.payload,
        "headers": trigger.headers,
        "query": trigger.query,
        "event": trigger.event,
        "previous_output": previous_output,
        "steps": steps,
        "workflow": run.workflow,
        "run_id": run.run_id,
        "secrets": secrets,
    }))
}

/// `text` with every secret's value written `***`.
pub fn redact(mut text: String, secrets: &BTreeMap<String, Secret>) -> String {
    for secret in secrets.values() {
        let value = String::from_utf8_lossy(secret.expose());
        if value.len() >= 4 && text.contains(value.as_ref()) {
            text = text.replace(value.as_ref(), "***");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_stay_in_stored_text() {
        let secrets = BTreeMap::from([
            (
                "TOKEN".to_owned(),
                Secret::new("tok-123456").expect("non-empty"),
            ),
            ("SHORT".to_owned(), Secret::new("ab").expect("non-empty")),
        ]);
        assert_eq!(
            redact("sent tok-123456 twice: tok-123456, ab".into(), &secrets),
            "sent *** twice: ***, ab"
        );
    }
}
