//! What every operator command shares: where the configuration is, how to
//! reach NATS, and whether to print tables or JSON.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use broker::settings::{RawJetStream, RawNats, RawUrls};
use broker::{Connection, JetStreamSettings, NatsSettings};
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

    /// The `[nats]` and `[jetstream]` settings of the configuration file
    /// (every auth mode, read as every binary reads them), with
    /// `--nats-url` / `TIDEGATE_NATS_URL` replacing the servers. Without the
    /// file, the defaults and `TIDEGATE_*` variables.
    pub(crate) fn nats_settings(&self) -> anyhow::Result<(NatsSettings, JetStreamSettings)> {
        let file = self.config.is_file().then_some(self.config.as_path());
        let figment = Config::figment(file);
        let read = |section: &str| -> anyhow::Result<_> {
            Ok(figment
                .find_value(section)
                .is_ok()
                .then(|| figment.focus(section)))
        };
        let mut nats: RawNats = match read("nats")? {
            Some(section) => section
                .extract()
                .with_context(|| format!("reading [nats] from {}", self.config.display()))?,
            None => RawNats::default(),
        };
        let jetstream: RawJetStream = match read("jetstream")? {
            Some(section) => section
                .extract()
                .with_context(|| format!("reading [jetstream] from {}", self.config.display()))?,
            None => RawJetStream::default(),
        };
        if let Some(url) = &self.nats_url {
            nats.url = RawUrls::One(url.clone());
        }
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let mut problems = Vec::new();
        let settings = nats.compile("tidegate-cli", &env, &mut problems);
        let jetstream = jetstream.compile(&mut problems);
        anyhow::ensure!(
            problems.is_empty(),
            "invalid nats settings in {}:\n  - {}",
            self.config.display(),
            problems.join("\n  - ")
        );
        Ok((settings, jetstream))
    }

    /// A connection to a supported server, or an error within
    /// `nats.connect_timeout`.
    pub(crate) async fn connection(&self) -> anyhow::Result<(Connection, JetStreamSettings)> {
        let (settings, jetstream) = self.nats_settings()?;
        let connection = Connection::open(&settings).await?;
        Ok((connection, jetstream))
    }

    pub(crate) async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        Ok(self.connection().await?.0.jetstream)
    }
}
