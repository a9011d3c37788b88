//! One command invocation, shared by sync requests and queued deliveries:
//! find the plugin and command, build and check the payload, run the
//! executable, read its response and publish its events.

use std::os::unix::fs::DirBuilderExt as _;
use std::time::Duration;

use schemas::plugin::{InvocationMode, PROTOCOL, PluginContext, PluginRequest};
use schemas::{Envelope, PayloadEncoding, PluginResponse, PluginStatus};
use serde_json::Value;
use tracing::debug;

use super::process::{self, RunError, Spawn};
use super::{Inner, events, input};

/// What is being invoked, and from which request.
#[derive(Debug)]
pub struct Invocation<'a> {
    pub plugin: &'a str,
    pub command: &'a str,
    pub envelope: &'a Envelope,
    /// The request body as received (empty for a GET).
    pub body: &'a [u8],
    pub mode: InvocationMode,
    pub attempt: u64,
}

/// Why an invocation did not produce an `ok` response with its events
/// stored. Each maps to one HTTP status (sync) and one outcome (queued).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("no plugin named `{0}`")]
    UnknownPlugin(String),
    #[error("plugin `{plugin}` has no command `{command}`")]
    UnknownCommand { plugin: String, command: String },
    #[error("`{command}` is a lifecycle command of `{plugin}`, not callable by a request")]
    NotCallable { plugin: String, command: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The plugin answered `status: error`.
    #[error("the plugin reported an error: {}", .0.error.as_deref().unwrap_or("(no message)"))]
    Plugin(PluginResponse),
    #[error("the plugin {0}")]
    TimedOut(String),
    /// It could not start, crashed, or printed no valid response.
    #[error("the plugin failed: {0}")]
    Broken(String),
    #[error("the command ran, but its events were not stored: {0}")]
    Events(String),
}

/// Runs the command; `Ok` is a `status: ok` response whose events are
/// stored.
pub async fn invoke(inner: &Inner, call: &Invocation<'_>) -> Result<PluginResponse, Failure> {
    let plugin = inner
        .registry
        .get(call.plugin)
        .ok_or_else(|| Failure::UnknownPlugin(call.plugin.to_owned()))?;
    let command = plugin
        .commands
        .get(call.command)
        .ok_or_else(|| Failure::UnknownCommand {
            plugin: call.plugin.to_owned(),
            command: call.command.to_owned(),
        })?;
    if !command.callable() {
        return Err(Failure::NotCallable {
            plugin: call.plugin.to_owned(),
            command: call.command.to_owned(),
        });
    }
    let payload = payload(call.envelope, call.body).map_err(Failure::InvalidInput)?;
    if let Some(schema) = &command.input {
        schema.check(&payload).map_err(Failure::InvalidInput)?;
    }

    let settings = inner.settings.plugins.get(&plugin.name);
    let data_dir = inner.settings.data_dir.join(&plugin.name);
    // Only the executor's user may read what plugins keep (tokens).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&data_dir)
        .map_err(|error| {
            Failure::Broken(format!("cannot create {}: {error}", data_dir.display()))
        })?;
    let request = PluginRequest {
        protocol: PROTOCOL,
        command: command.name.clone(),
        payload,
        config: settings.map_or_else(|| Value::Object(Default::default()), |s| s.config.clone()),
        context: PluginContext {
            delivery_id: call.envelope.id.clone(),
            plugin: plugin.name.clone(),
            command: command.name.clone(),
            mode: call.mode,
            route: call.envelope.route.clone(),
            received_at: call.envelope.received_at.clone(),
            attempt: call.attempt,
            data_dir: data_dir.display().to_string(),
            raw_query: call.envelope.raw_query.clone(),
        },
    };
    let stdin = serde_json::to_vec(&request).expect("a request always serializes");
    let mut env = vec![
        ("PATH".to_owned(), inner.settings.path.clone()),
        ("HOME".to_owned(), data_dir.display().to_string()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ("TIDEGATE_PLUGIN".to_owned(), plugin.name.clone()),
        ("TIDEGATE_COMMAND".to_owned(), command.name.clone()),
        ("TIDEGATE_DELIVERY_ID".to_owned(), call.envelope.id.clone()),
        (
            "TIDEGATE_PLUGIN_DIR".to_owned(),
            plugin.dir.display().to_string(),
        ),
        (
            "TIDEGATE_PLUGIN_DATA".to_owned(),
            data_dir.display().to_string(),
        ),
    ];
    for name in &plugin.env {
        if let Some(value) = inner.environment.get(name) {
            env.push((name.clone(), value.clone()));
        }
    }
    if let Some(settings) = settings {
        for (name, secret) in &settings.env {
            env.retain(|(existing, _)| existing != name);
            env.push((
                name.clone(),
                String::from_utf8_lossy(secret.expose()).into_owned(),
            ));
        }
    }
    let timeout: Duration = settings
        .and_then(|s| s.timeout)
        .unwrap_or(inner.settings.timeout);
    debug!(plugin = %plugin.name, command = %command.name, "running");
    let finished = process::run(Spawn {
        program: &plugin.entrypoint,
        cwd: &data_dir,
        env,
        stdin,
        timeout,
        max_output: inner.settings.max_output,
        max_log: inner.settings.max_log,
        plugin: &plugin.name,
        command: &command.name,
    })
    .await
    .map_err(|error| match error {
        RunError::TimedOut(_) => Failure::TimedOut(error.to_string()),
        other => Failure::Broken(other.to_string()),
    })?;
    let response: PluginResponse = serde_json::from_slice(&finished.stdout).map_err(|error| {
        let exited = if finished.status.success() {
            String::new()
        } else {
            format!(" (it exited with {})", finished.status)
        };
        Failure::Broken(format!(
            "stdout is not a plugin response v1{exited}: {error}"
        ))
    })?;
    if response.status == PluginStatus::Error {
        return Err(Failure::Plugin(response));
    }
    if !finished.status.success() {
        return Err(Failure::Broken(format!(
            "it answered ok but exited with {}",
            finished.status
        )));
    }
    let prepared = events::prepare(call, &response.events).map_err(Failure::Broken)?;
    events::publish(inner, prepared)
        .await
        .map_err(Failure::Events)?;
    Ok(response)
}

/// The command's input: a JSON body as it is; without a body, the query
/// as an object (see [`input::query_payload`]).
fn payload(envelope: &Envelope, body: &[u8]) -> Result<Value, String> {
    match envelope.payload_encoding {
        PayloadEncoding::Empty => Ok(match &envelope.raw_query {
            Some(raw) => input::query_payload(raw),
            None => Value::Object(
                envelope
                    .query
                    .iter()
                    .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
                    .collect(),
            ),
        }),
        PayloadEncoding::Json => {
            serde_json::from_slice(body).map_err(|error| format!("the body is not JSON: {error}"))
        }
        // A JSON body too large for one message, fetched from the store.
        PayloadEncoding::Object if is_json(envelope.content_type.as_deref()) => {
            serde_json::from_slice(body).map_err(|error| format!("the body is not JSON: {error}"))
        }
        PayloadEncoding::Base64 | PayloadEncoding::Object => Err(format!(
            "the body must be JSON (application/json), not {}",
            envelope.content_type.as_deref().unwrap_or("untyped bytes")
        )),
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    let essence = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    essence == "application/json" || essence.ends_with("+json")
}
