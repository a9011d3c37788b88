//! `tidegate-exec`, the plugin command executor (the ductile seed): plugins
//! are folders with a `manifest.yaml` and an executable in any language.
//! Sync commands arrive as NATS requests (`sync.rs`); queued ones as stored
//! deliveries through the worker runtime (`handle` below).

pub mod events;
pub mod input;
pub mod invoke;
pub mod manifest;
pub mod process;
pub mod registry;
pub mod settings;
pub mod sync;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_nats::jetstream;
use schemas::PluginResponse;
use schemas::plugin::InvocationMode;
use schemas::streams::PLUGIN_QUEUED_PREFIX;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{Delivery, Job, Outcome, Report, Setup};
use invoke::{Failure, Invocation, invoke};
use registry::Registry;
pub use settings::ExecConfig;
use settings::Settings;

/// Longest `result` kept in a queued command's job result.
const MAX_RESULT_DETAIL: usize = 4096;

/// Queue group of the sync subscription: every replica shares requests.
pub const QUEUE_GROUP: &str = "tidegate-exec";

/// What sync requests and queued deliveries share.
#[derive(Debug)]
pub struct Inner {
    pub settings: Settings,
    pub registry: Arc<Registry>,
    /// The executor's environment, for the variables manifests declare.
    pub environment: Environment,
    /// Set by `prepare`, before anything is invoked.
    pub jetstream: OnceLock<jetstream::Context>,
}

/// The executor's environment; `Debug` shows no values (it holds secrets).
pub struct Environment(HashMap<String, String>);

impl Environment {
    pub fn get(&self, name: &str) -> Option<&String> {
        self.0.get(name)
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Environment({} variables)", self.0.len())
    }
}

pub struct Exec {
    inner: Arc<Inner>,
    /// Taken by `prepare` to start the reload watcher.
    hangup: Option<Signal>,
    /// Cancelled once the sync server has stopped (set when it starts).
    sync_stopped: Option<CancellationToken>,
}

impl Exec {
    pub fn new(config: ExecConfig) -> anyhow::Result<Exec> {
        let environment: HashMap<String, String> = std::env::vars().collect();
        let settings = Settings::compile(config, &environment)?;
        // Installed first: SIGHUP would otherwise end the process.
        let hangup = signal(SignalKind::hangup())?;
        let registry = Arc::new(Registry::open(&settings.plugins_dir)?);
        let names = registry.names();
        if names.is_empty() {
            warn!(dir = %settings.plugins_dir.display(), "no plugin loaded");
        } else {
            info!(dir = %settings.plugins_dir.display(), plugins = %names.join(" "), "plugins");
        }
        for configured in settings.plugins.keys() {
            if !names.contains(configured) {
                warn!(plugin = %configured, "[exec.plugins] names a plugin that is not loaded");
            }
        }
        Ok(Exec {
            inner: Arc::new(Inner {
                settings,
                registry,
                environment: Environment(environment),
                jetstream: OnceLock::new(),
            }),
            hangup: Some(hangup),
            sync_stopped: None,
        })
    }
}

impl Job for Exec {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let Some((plugin, command)) = plugin_and_command(&delivery.subject, PLUGIN_QUEUED_PREFIX)
        else {
            return Outcome::Skip(format!(
                "{} is not a plugin command subject ({PLUGIN_QUEUED_PREFIX}.<plugin>.<command>)",
                delivery.subject
            ));
        };
        let call = Invocation {
            plugin,
            command,
            envelope: &delivery.envelope,
            body: &delivery.payload,
            mode: InvocationMode::Queued,
            attempt: delivery.attempt,
        };
        let result = invoke(&self.inner, &call).await;
        count(InvocationMode::Queued, &result);
        match result {
            Ok(response) => Outcome::Done(report(plugin, command, &response)),
            Err(failure) => outcome(failure),
        }
    }

    async fn prepare(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        drop(self.inner.jetstream.set(setup.jetstream.clone()));
        if let Some(hangup) = self.hangup.take() {
            tokio::spawn(self.inner.registry.clone().watch(
                hangup,
                self.inner.settings.reload_interval,
                setup.shutdown.clone(),
            ));
        }
        if self.sync_stopped.is_none() {
            let (inner, client, shutdown) = (
                self.inner.clone(),
                setup.jetstream.client(),
                setup.shutdown.clone(),
            );
            let stopped = CancellationToken::new();
            self.sync_stopped = Some(stopped.clone());
            tokio::spawn(async move {
                sync::serve(inner, client, QUEUE_GROUP.into(), shutdown).await;
                stopped.cancel();
            });
        }
        Ok(())
    }

    async fn finish(&self) {
        if let Some(stopped) = &self.sync_stopped {
            stopped.cancelled().await;
        }
    }
}

/// How a queued command's failure is handled: input and manifest problems
/// are permanent (dead letter); a timeout, a crash, events not stored and a
/// plugin error with `retry: true` are tried again.
fn outcome(failure: Failure) -> Outcome {
    let message = failure.to_string();
    match failure {
        Failure::UnknownPlugin(_)
        | Failure::UnknownCommand { .. }
        | Failure::NotCallable { .. }
        | Failure::InvalidInput(_) => Outcome::Fail(message),
        Failure::Plugin(response) if response.retry == Some(true) => Outcome::retry(message),
        Failure::Plugin(_) => Outcome::Fail(message),
        Failure::TimedOut(_) | Failure::Broken(_) | Failure::Events(_) => Outcome::retry(message),
    }
}

fn report(plugin: &str, command: &str, response: &PluginResponse) -> Report {
    let mut result = response
        .result
        .as_ref()
        .map(|result| result.to_string())
        .unwrap_or_default();
    if result.len() > MAX_RESULT_DETAIL {
        let mut cut = MAX_RESULT_DETAIL;
        while !result.is_char_boundary(cut) {
            cut -= 1;
        }
        result.truncate(cut);
        result.push_str("...");
    }
    let events: Vec<&str> = response
        .events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    Report::default()
        .count("events", response.events.len() as u64)
        .detail("plugin", plugin)
        .detail("command", command)
        .detail("result", result)
        .detail("events", events.join(" "))
}

/// `<prefix>.<plugin>.<command>` → (plugin, command).
pub fn plugin_and_command<'a>(subject: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let (plugin, command) = rest.split_once('.')?;
    (!plugin.is_empty() && !command.is_empty() && !command.contains('.'))
        .then_some((plugin, command))
}

/// Counts an invocation by mode and outcome (bounded labels).
pub fn count(mode: InvocationMode, result: &Result<PluginResponse, Failure>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(Failure::UnknownPlugin(_) | Failure::UnknownCommand { .. }) => "unknown",
        Err(Failure::NotCallable { .. }) => "not_callable",
        Err(Failure::InvalidInput(_)) => "invalid_input",
        Err(Failure::Plugin(_)) => "plugin_error",
        Err(Failure::TimedOut(_)) => "timeout",
        Err(Failure::Broken(_)) => "failed",
        Err(Failure::Events(_)) => "events_not_stored",
    };
    let mode = match mode {
        InvocationMode::Sync => "sync",
        InvocationMode::Queued => "queued",
    };
    metrics::counter!(crate::metric::EXEC_COMMANDS, "mode" => mode, "outcome" => outcome)
        .increment(1);
}

#[cfg(test)]
mod tests;
