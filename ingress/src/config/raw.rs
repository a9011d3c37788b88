//! The configuration file as written: loose types that serde can always
//! read, so that `Config::load` can report every bad value at once instead
//! of stopping at the first.

use serde::Deserialize;

use crate::limit::RawRateLimit;
use crate::serve::RawHttp;
use crate::telemetry::RawLog;

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawConfig {
    pub(super) listen: String,
    pub(super) public_url: Option<String>,
    pub(super) nats: broker::settings::RawNats,
    pub(super) jetstream: broker::settings::RawJetStream,
    pub(super) stream: broker::settings::RawStream,
    pub(super) http: RawHttp,
    pub(super) log: RawLog,
    pub(super) routes: Vec<RawRoute>,
    pub(super) consumer_api: Option<super::consumer_api::RawConsumerApi>,
    pub(super) admin: Option<RawAdmin>,
}

/// `[admin]`: the token of the admin API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) token: RawSecretSource,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            nats: broker::settings::RawNats::default(),
            jetstream: broker::settings::RawJetStream::default(),
            stream: broker::settings::RawStream::default(),
            http: RawHttp::default(),
            log: RawLog::default(),
            routes: Vec::new(),
            consumer_api: None,
            admin: None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RawRoute {
    pub(super) name: String,
    pub(super) path: String,
    #[serde(default = "default_methods")]
    pub(super) methods: Vec<String>,
    #[serde(default)]
    pub(super) mode: Option<String>,
    pub(super) subject: String,
    #[serde(default)]
    pub(super) source: Option<String>,
    #[serde(default)]
    pub(super) agent: Option<String>,
    #[serde(default)]
    pub(super) delivery_id: Option<String>,
    #[serde(default)]
    pub(super) event: Option<String>,
    #[serde(default)]
    pub(super) events: Option<Vec<String>>,
    #[serde(default)]
    pub(super) normalize: Option<String>,
    #[serde(default)]
    pub(super) body_limit: Option<String>,
    #[serde(default)]
    pub(super) content_types: Option<Vec<String>>,
    #[serde(default = "default_true")]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) timeout: Option<String>,
    #[serde(default)]
    pub(super) drop_headers: Vec<String>,
    /// Networks allowed to use the route; every address when unset.
    #[serde(default)]
    pub(super) allow_ips: Option<Vec<String>>,
    /// Replaces `http.rate_limit` for this route; `{}` turns limits off.
    #[serde(default)]
    pub(super) rate_limit: Option<RawRateLimit>,
    pub(super) verifier: Option<RawVerifier>,
    /// `false`: a body sent as JSON that does not parse is stored as is
    /// (base64) instead of answering 400.
    #[serde(default)]
    pub(super) validate_json: Option<bool>,
    /// A folder of workflow files: the route's `{workflow}` parameter names
    /// one (unknown → 404, disabled → 409, folder unreadable → 503).
    #[serde(default)]
    pub(super) workflows: Option<String>,
    /// An environment variable that, when set (`true`/`false`), overrides
    /// `enabled` (the assistant seed's `ASSISTANT_WEBHOOK_ENABLED`).
    #[serde(default)]
    pub(super) enabled_env: Option<String>,
}

fn default_methods() -> Vec<String> {
    vec!["POST".into()]
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub(super) struct RawVerifier {
    pub(super) kind: String,
    #[serde(default)]
    pub(super) secrets: Vec<RawSecretSource>,
    /// Name of the environment variable holding the secret, rendered per
    /// request from path and query values (`WEBHOOK_SECRET_{agentId}_{query.source}`),
    /// or a list tried in order: the first variable that is set wins.
    #[serde(default)]
    pub(super) secret_env: Option<RawEnvNames>,
    #[serde(default)]
    pub(super) header: Option<String>,
    /// `reject` (default) or `open`: what to do when no secret is configured.
    #[serde(default)]
    pub(super) if_unset: Option<String>,
    /// Status for a present but wrong credential: 403 (default) or 401.
    #[serde(default)]
    pub(super) invalid_status: Option<u16>,
    /// How far a signed timestamp may be from now, either way (`5m` unless
    /// set); only for kinds that sign one (standard_webhooks, stripe, slack).
    #[serde(default)]
    pub(super) tolerance: Option<String>,
    /// Kind github only: also accept the legacy `X-Hub-Signature` (SHA-1)
    /// when `X-Hub-Signature-256` is absent.
    #[serde(default)]
    pub(super) allow_sha1: Option<bool>,
}

/// `secret_env`: one template or several, most specific first.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawEnvNames {
    One(String),
    Many(Vec<String>),
}

impl RawEnvNames {
    pub(super) fn templates(&self) -> &[String] {
        match self {
            RawEnvNames::One(one) => std::slice::from_ref(one),
            RawEnvNames::Many(many) => many,
        }
    }
}

/// Where a secret comes from (env, file or value), read the same way by
/// every binary.
pub(super) use broker::settings::SecretSource as RawSecretSource;
