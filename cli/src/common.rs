//! What every operator command shares: where the configuration is, how to
//! reach NATS, and whether to print tables or JSON.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use ingress::config::{Config, Lenient};

/// Options accepted by every command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Common {
    /// The ingress configuration (routes, NATS URL).
    #[arg(
        long,
        env = "TIDEGATE_CONFIG",
        default_value = "deploy/examples/tidegate.toml",
        global = true
    )]
    pub(crate) config: PathBuf,
    /// NATS URL; overrides the configuration's `nats_url`.
    #[arg(long, env = "TIDEGATE_NATS_URL", global = true)]
    pub(crate) nats_url: Option<String>,
    /// Print JSON (one document, or one object per line for lists) instead
    /// of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl Common {
    /// The ingress configuration without requiring route secrets: routes
    /// whose secret is unset are listed in `unset` instead of failing.
    pub(crate) fn ingress_config_lenient(&self) -> anyhow::Result<Lenient> {
        // Non-Unicode variables cannot be secrets the config names; skip them.
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        Config::load_lenient(&Config::figment(Some(&self.config)), &env)
            .with_context(|| format!("loading {}", self.config.display()))
    }

    /// The NATS URL: `--nats-url`, `TIDEGATE_NATS_URL`, the configuration
    /// file, or the default.
    pub(crate) fn nats_url(&self) -> String {
        if let Some(url) = &self.nats_url {
            return url.clone();
        }
        #[derive(serde::Deserialize)]
        struct OnlyUrl {
            nats_url: Option<String>,
        }
        Config::figment(Some(&self.config))
            .extract::<OnlyUrl>()
            .ok()
            .and_then(|only| only.nats_url)
            .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned())
    }

    pub(crate) async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        let url = self.nats_url();
        let client = async_nats::ConnectOptions::new()
            .name("tidegate-cli")
            .connection_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        Ok(async_nats::jetstream::new(client))
    }
}
