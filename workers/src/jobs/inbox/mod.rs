//! The agent inbox (nexus seed): each delivery routed to an agent is
//! written as a JSON file to `<workspace>/inbox/webhooks/`, then the
//! agent's notify command runs (the seed's `sessions_spawn`), then the
//! runtime acks and reports.
//!
//! Exactly one file per stored delivery: its name is deterministic, an
//! existing file is never rewritten, and the progress kept in KV
//! (`progress.rs`) stops a redelivery from writing again after the agent
//! archived the file. The notify command runs at least once: a crash
//! before its success is recorded runs it again.

mod config;
mod file;
mod notify;
mod progress;

use std::collections::HashMap;
use std::path::Path;

use async_nats::jetstream::kv;
use broker::catalog;
use broker::ensure::ensure_key_value;
use tracing::{info, warn};

use self::config::{Agent, Settings};
pub use self::config::{AgentConfig, InboxConfig};
use self::file::Written;
use self::notify::Values;
use self::progress::Step;
use crate::{Delivery, Job, Outcome, Report, Setup};

/// The job: agents and their workspaces, and the progress bucket once
/// prepared.
pub struct Inbox {
    settings: Settings,
    progress: Option<kv::Store>,
}

impl Inbox {
    /// Parses `[inbox]`, reporting every bad key at once.
    pub fn new(config: InboxConfig) -> anyhow::Result<Inbox> {
        let environment: HashMap<String, String> = std::env::vars().collect();
        let settings = Settings::parse(config, &environment)?;
        for (agent, settings) in &settings.agents {
            if !settings.workspace.is_dir() {
                warn!(agent = %agent, workspace = %settings.workspace.display(), "the workspace does not exist (yet); its deliveries are dead-lettered until it does");
            }
        }
        Ok(Inbox {
            settings,
            progress: None,
        })
    }
}

impl Job for Inbox {
    async fn prepare(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        let bucket =
            ensure_key_value(setup.jetstream, catalog::inbox_progress(), setup.placement).await?;
        self.progress = Some(bucket);
        info!(agents = self.settings.agents.len(), "inbox ready");
        Ok(())
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let Some(agent) = agent_of(delivery) else {
            return Outcome::Fail(format!(
                "delivery on {} names no agent (the route sets no `agent`)",
                delivery.subject
            ));
        };
        let Some(settings) = self.settings.agents.get(agent) else {
            return Outcome::Fail(format!(
                "no workspace is configured for agent {agent}: add [inbox.agents.{agent}] or leave it to the consumer API"
            ));
        };
        if !settings.workspace.is_dir() {
            return Outcome::Fail(format!(
                "the workspace of agent {agent}, {}, does not exist or is not a folder",
                settings.workspace.display()
            ));
        }
        let Some(bucket) = &self.progress else {
            return Outcome::retry("the progress bucket is not ready");
        };
        self.deliver(delivery, agent, settings, bucket).await
    }
}

impl Inbox {
    /// Write (unless done before), notify (unless done before), report.
    async fn deliver(
        &self,
        delivery: &Delivery,
        agent: &str,
        settings: &Agent,
        bucket: &kv::Store,
    ) -> Outcome {
        let sequence = delivery.stream_sequence;
        let dir = file::inbox_dir(&settings.workspace);
        let name = file::file_name(&delivery.envelope);
        let path = dir.join(&name);
        let path_text = path.display().to_string();
        let report = Report::default()
            .detail("agent", agent)
            .detail("file", &path_text);
        let step = match progress::load(bucket, sequence).await {
            Ok(step) => step,
            Err(error) => return Outcome::retry(error),
        };
        let report = match step {
            Some(Step::Notified) => {
                return Outcome::Done(report.count("written", 0).count("notified", 0).detail(
                    "note",
                    "file and notification were done by an earlier attempt",
                ));
            }
            // Written before: the agent may have taken the file already;
            // it is not written again, but the notification still runs.
            Some(Step::Written) => report.count("written", 0),
            None => {
                let bytes = match file::render(delivery, agent) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        return Outcome::Fail(format!("building the inbox file: {error}"));
                    }
                };
                let written = {
                    let (dir, name) = (dir.clone(), name.clone());
                    tokio::task::spawn_blocking(move || file::write(&dir, &name, &bytes)).await
                };
                let written = match written {
                    Ok(Ok(written)) => written,
                    Ok(Err(error)) => {
                        return Outcome::retry(format!("writing {path_text}: {error}"));
                    }
                    Err(error) => return Outcome::retry(format!("writing {path_text}: {error}")),
                };
                if written == Written::Differs {
                    warn!(file = %path_text, "a different file with this name is in the inbox; left as it is");
                }
                if let Err(error) =
                    progress::save(bucket, sequence, Step::Written, &path_text).await
                {
                    return Outcome::retry(error);
                }
                report.count("written", u64::from(written == Written::Created))
            }
        };
        let Some(notify) = &settings.notify else {
            self.finish(bucket, sequence, &path_text).await;
            return Outcome::Done(report.count("notified", 0));
        };
        let values = Values {
            pairs: [
                ("agent", agent),
                ("source", delivery.envelope.source.as_str()),
                ("id", delivery.envelope.id.as_str()),
                ("file", path_text.as_str()),
                ("filename", name.as_str()),
                ("inbox", path_str(&dir)),
                ("workspace", path_str(&settings.workspace)),
                ("received_at", delivery.envelope.received_at.as_str()),
            ],
        };
        if let Err(error) = notify.run(&settings.workspace, &values).await {
            return Outcome::retry(error.to_string());
        }
        self.finish(bucket, sequence, &path_text).await;
        Outcome::Done(report.count("notified", 1))
    }

    /// Records the notification. Losing this record costs at most one
    /// more notification, if the delivery comes back.
    async fn finish(&self, bucket: &kv::Store, sequence: u64, file: &str) {
        if let Err(error) = progress::save(bucket, sequence, Step::Notified, file).await {
            warn!(error = %error, "recording the notification failed");
        }
    }
}

/// The envelope's agent, else the agent token of
/// `tidegate.in.agent.<agent>.<source>`.
fn agent_of(delivery: &Delivery) -> Option<&str> {
    delivery.envelope.agent.as_deref().or_else(|| {
        delivery
            .subject
            .strip_prefix(schemas::streams::AGENT_PREFIX)?
            .strip_prefix('.')?
            .split('.')
            .next()
    })
}

/// Workspaces come from the configuration as UTF-8 text.
fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

#[cfg(test)]
mod tests;
