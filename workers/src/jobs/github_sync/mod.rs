//! The GitHub connector sync (openwork seed): a push to a tracked branch
//! becomes a sync of the pushed commit into the target's folder, fetched
//! with a GitHub App installation token when `[github_sync.app]` is set;
//! GitHub App lifecycle events update connector state in KV without a
//! sync. Every result of a sync carries the seed's contract
//! (`Job::connector`).
//!
//! One writer per target folder across replicas: a sync holds the folder's
//! lock in KV (`lease.rs`) while it fetches and writes. Targets come from
//! the TOML file and, live, from KV (`live_targets.rs`).

mod app;
mod connector_state;
mod contract;
mod git;
mod lease;
mod live_targets;
mod materialize;
mod push;
mod sync;
mod targets;
#[cfg(test)]
mod test_repo;

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream;
use schemas::{ConnectorSync, Envelope};
use tracing::{info, warn};

use self::app::{App, TokenError};
pub use self::app::{AppConfig, AppId};
pub use self::connector_state::{InstallationState, InstallationStatus, KEY_PREFIX, RepositoryRef};
use self::git::{Git, GitAuth};
use self::lease::Locks;
use self::live_targets::Targets;
use self::push::{Push, PushEvent};
use self::targets::Settings;
pub use self::targets::{DEFAULT_STATE_DIR, GithubSyncConfig, LockConfig};
use crate::{Delivery, Job, Outcome, Report, Setup};

/// The job: typed settings, git, the App's tokens, and the buckets once
/// prepared.
pub struct GithubSync {
    settings: Settings,
    git: Git,
    app: Option<App>,
    targets: Arc<Targets>,
    /// This process in lock records: `<instance>.<pid>`.
    holder: String,
    buckets: Option<Buckets>,
}

/// What `prepare` opens.
struct Buckets {
    connectors: jetstream::kv::Store,
    locks: Locks,
}

impl GithubSync {
    /// Parses `[github_sync]` (secrets from the process environment),
    /// reporting every bad key at once. A private key that cannot sign
    /// fails here, naming `github_sync.app.private_key`.
    pub fn new(config: GithubSyncConfig) -> anyhow::Result<GithubSync> {
        // Non-Unicode variables cannot hold what the config names; skip them.
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        GithubSync::with_env(config, &env)
    }

    /// [`GithubSync::new`] with the environment given.
    pub fn with_env(
        config: GithubSyncConfig,
        env: &HashMap<String, String>,
    ) -> anyhow::Result<GithubSync> {
        let mut settings = Settings::parse(config, env)?;
        let git = Git {
            timeout: settings.git_timeout,
            allow_protocol: settings.protocols.join(":"),
        };
        let app = settings.app.take().map(App::new).transpose()?;
        let targets = Arc::new(Targets::new(
            std::mem::take(&mut settings.targets),
            settings.state_dir.clone(),
        ));
        let holder = format!("{}.{}", uuid::Uuid::now_v7().simple(), std::process::id());
        Ok(GithubSync {
            settings,
            git,
            app,
            targets,
            holder,
            buckets: None,
        })
    }

    async fn push(&self, delivery: &Delivery) -> Outcome {
        let push = match push::parse(&delivery.payload) {
            Ok(PushEvent::Branch(push)) => push,
            Ok(PushEvent::Tag(git_ref)) => return Outcome::Skip(format!("tag push {git_ref}")),
            Ok(PushEvent::Deleted(git_ref)) => {
                return Outcome::Skip(format!("branch deletion {git_ref}"));
            }
            Ok(PushEvent::Other(git_ref)) => {
                return Outcome::Skip(format!("push to {git_ref}, not a branch"));
            }
            Err(error) => return Outcome::Fail(error),
        };
        let Some(target) = self.targets.target_for(&push.full_name, &push.branch) else {
            return Outcome::Skip(format!(
                "{} {} is not tracked by any target",
                push.full_name, push.branch
            ));
        };
        if !target.auto_import {
            return Outcome::Skip(format!("target {}: auto-import is off", target.id));
        }
        let (clone_url, protocol) = match push.clone_url() {
            Ok(url) => (url, push.protocol().unwrap_or_default()),
            Err(error) => return Outcome::Fail(error),
        };
        if !self
            .settings
            .protocols
            .iter()
            .any(|allowed| allowed == protocol)
        {
            return Outcome::Fail(format!(
                "clone URL protocol `{protocol}` is not in github_sync.protocols"
            ));
        }
        let auth = match &self.app {
            Some(app) => match self.app_auth(app, &push, clone_url).await {
                Ok(auth) => Some(auth),
                Err(outcome) => return outcome,
            },
            None => None,
        };
        let Some(buckets) = &self.buckets else {
            return Outcome::retry("the lock bucket is not open");
        };
        sync::locked(self, buckets, delivery, &target, &push, auth.as_ref()).await
    }

    /// The installation token for a push, or how the job ends without
    /// one: no installation, a clone URL the token must not go to, an
    /// installation connector state or GitHub says is suspended or gone.
    async fn app_auth(&self, app: &App, push: &Push, clone_url: &str) -> Result<GitAuth, Outcome> {
        let Some(installation) = push.installation_id else {
            return Err(Outcome::Fail(
                "push has no installation.id: with github_sync.app set, pushes must come from the App's webhook".into(),
            ));
        };
        if !app.covers(clone_url) {
            return Err(Outcome::Fail(format!(
                "clone URL {clone_url} is not under github_sync.app.git_url {}: the installation token is only sent there",
                app.git_url()
            )));
        }
        if let Some(buckets) = &self.buckets {
            match connector_state::status(&buckets.connectors, installation).await {
                Ok(Some(
                    status @ (InstallationStatus::Suspended | InstallationStatus::Deleted),
                )) => {
                    return Err(Outcome::Skip(format!(
                        "installation {installation} is {} (connector state)",
                        status.as_str()
                    )));
                }
                Ok(_) => {}
                Err(error) => {
                    warn!(error = %error, "reading connector state failed; asking GitHub")
                }
            }
        }
        app.git_auth(installation)
            .await
            .map_err(|error| match error {
                TokenError::Skip(reason) => Outcome::Skip(reason),
                TokenError::Fail(error) => Outcome::Fail(error),
                TokenError::Retry { error, after } => Outcome::Retry { error, after },
            })
    }

    async fn lifecycle(&self, kind: connector_state::Lifecycle, delivery: &Delivery) -> Outcome {
        let change = match connector_state::parse(kind, &delivery.payload) {
            Ok(Some(change)) => change,
            Ok(None) => return Outcome::Skip("event without an installation".into()),
            Err(error) => return Outcome::Fail(error),
        };
        let Some(buckets) = &self.buckets else {
            return Outcome::retry("the connectors bucket is not open");
        };
        let envelope = &delivery.envelope;
        match connector_state::record(
            &buckets.connectors,
            &change,
            &envelope.received_at,
            &envelope.id,
        )
        .await
        {
            Ok(state) => Outcome::Done(
                Report::default()
                    .count("repositories", state.repositories.len() as u64)
                    .detail("event", change.event())
                    .detail("installation", change.installation_id.to_string())
                    .detail("status", state.status.as_str())
                    .detail("account", state.account.unwrap_or_default())
                    .detail("key", change.key()),
            ),
            Err(error) => Outcome::retry(error),
        }
    }
}

impl Job for GithubSync {
    /// A push to a tracked branch dedupes on its sync event (target,
    /// repository and head SHA: a redelivery, or a second push of the same
    /// commit, syncs once); everything else on the delivery id.
    fn key(&self, delivery: &Delivery) -> Option<String> {
        if let Some(connector) = self.connector(&delivery.envelope) {
            return Some(format!(
                "{}:{}",
                contract::KEY_PREFIX,
                connector.connector_sync_event_id
            ));
        }
        // A route without GitHub normalization: the payload says the same.
        if event_name(delivery) == Some("push")
            && let Ok(PushEvent::Branch(push)) = push::parse(&delivery.payload)
            && let Some(target) = self.targets.target_for(&push.full_name, &push.branch)
        {
            let event = contract::sync_event_id(&target.id, &push.repository_key(), &push.head_sha);
            return Some(format!("{}:{event}", contract::KEY_PREFIX));
        }
        Some(delivery.envelope.id.clone())
    }

    fn connector(&self, envelope: &Envelope) -> Option<ConnectorSync> {
        contract::connector(&self.targets, envelope)
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let Some(event) = event_name(delivery) else {
            return Outcome::Skip("delivery has no GitHub event name".into());
        };
        if event == "push" {
            return self.push(delivery).await;
        }
        match connector_state::Lifecycle::from_event(event) {
            Some(kind) => self.lifecycle(kind, delivery).await,
            None => Outcome::Skip(format!("{event} events are not synced")),
        }
    }

    async fn prepare(&mut self, setup: &Setup<'_>) -> anyhow::Result<()> {
        let ensure =
            |config| broker::ensure::ensure_key_value(setup.jetstream, config, setup.placement);
        let connectors = ensure(broker::catalog::connectors()).await?;
        let locks = ensure(broker::catalog::sync_locks()).await?;
        let live = ensure(broker::catalog::sync_targets()).await?;
        if self.buckets.is_none() {
            live_targets::watch(live, self.targets.clone()).await?;
        }
        self.buckets = Some(Buckets {
            connectors,
            locks: Locks::new(setup.jetstream.clone(), locks, self.settings.lock),
        });
        info!(app = self.app.is_some(), holder = %self.holder, "github sync ready");
        Ok(())
    }
}

/// The normalized event name, or the route's event header.
fn event_name(delivery: &Delivery) -> Option<&str> {
    let envelope = &delivery.envelope;
    envelope
        .github
        .as_ref()
        .map(|github| github.event.as_str())
        .or(envelope.event.as_deref())
}

#[cfg(test)]
mod tests;
