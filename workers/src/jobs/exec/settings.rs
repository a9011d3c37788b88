//! `[exec]` in the worker's configuration: the plugins and data folders,
//! limits, and per-plugin environment and config, parsed once at start-up
//! (secrets resolved, every problem reported at once).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use broker::settings::{SecretSource, parse_duration, parse_size};
use serde::Deserialize;
use verify::Secret;

/// `[exec]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// One folder per plugin: `<plugins_dir>/<plugin>/manifest.yaml`.
    #[serde(default)]
    pub plugins_dir: Option<PathBuf>,
    /// Each plugin gets `<data_dir>/<plugin>/`, created on first use.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Longest a command may run (default 20 s); keep it below the
    /// route's `timeout` so callers get the executor's own 504.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Most bytes a command may print on stdout (default 512 KiB; a sync
    /// reply must fit in one NATS message).
    #[serde(default)]
    pub max_output: Option<String>,
    /// Most stderr bytes logged per command (default 64 KiB).
    #[serde(default)]
    pub max_log: Option<String>,
    /// Synchronous commands run at once in this process (default 8).
    #[serde(default)]
    pub sync_concurrency: Option<usize>,
    /// How often the plugins folder is scanned for changes (default 5 s;
    /// `0s`: only on SIGHUP).
    #[serde(default)]
    pub reload_interval: Option<String>,
    /// `PATH` of every plugin (default `/usr/local/bin:/usr/bin:/bin`).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub plugins: BTreeMap<String, RawPluginSettings>,
}

/// `[exec.plugins.<name>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginSettings {
    /// Variables set for the plugin: a plain value, or `{ env = ... }`,
    /// `{ file = ... }`, `{ value = ... }` for secrets.
    #[serde(default)]
    pub env: BTreeMap<String, RawEnvValue>,
    /// Passed to the plugin as the request's `config`.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Replaces `exec.timeout` for this plugin.
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawEnvValue {
    Plain(String),
    Source(SecretSource),
}

/// `[exec]`, checked.
#[derive(Debug)]
pub struct Settings {
    pub plugins_dir: PathBuf,
    pub data_dir: PathBuf,
    pub timeout: Duration,
    pub max_output: usize,
    pub max_log: usize,
    pub sync_concurrency: usize,
    pub reload_interval: Duration,
    pub path: String,
    pub plugins: BTreeMap<String, PluginSettings>,
}

#[derive(Debug, Default)]
pub struct PluginSettings {
    /// Resolved values; secrets stay redacted in `Debug`.
    pub env: Vec<(String, Secret)>,
    pub config: serde_json::Value,
    pub timeout: Option<Duration>,
}

impl Settings {
    /// Checks `[exec]`; `env` is where `{ env = ... }` values are read.
    pub fn compile(raw: ExecConfig, env: &HashMap<String, String>) -> anyhow::Result<Settings> {
        let mut problems = Vec::new();
        let mut duration = |key: &str, text: Option<&str>, default: Duration| match text {
            None => default,
            Some(text) => parse_duration(text).unwrap_or_else(|why| {
                problems.push(format!("{key}: {why}"));
                default
            }),
        };
        let timeout = duration(
            "exec.timeout",
            raw.timeout.as_deref(),
            Duration::from_secs(20),
        );
        let reload_interval = duration(
            "exec.reload_interval",
            raw.reload_interval.as_deref(),
            Duration::from_secs(5),
        );
        let mut size = |key: &str, text: Option<&str>, default: usize| match text {
            None => default,
            Some(text) => match parse_size(text) {
                Ok(Some(bytes)) => usize::try_from(bytes).unwrap_or(usize::MAX),
                Ok(None) => {
                    problems.push(format!("{key}: must be a finite size"));
                    default
                }
                Err(why) => {
                    problems.push(format!("{key}: {why}"));
                    default
                }
            },
        };
        let max_output = size("exec.max_output", raw.max_output.as_deref(), 512 << 10);
        let max_log = size("exec.max_log", raw.max_log.as_deref(), 64 << 10);
        let sync_concurrency = raw.sync_concurrency.unwrap_or(8);
        if sync_concurrency == 0 {
            problems.push("exec.sync_concurrency: must be at least 1".into());
        }
        if timeout.is_zero() {
            problems.push("exec.timeout: must be more than 0s".into());
        }
        let plugins_dir = raw.plugins_dir.unwrap_or_else(|| {
            problems.push("exec.plugins_dir: required (the folder of plugin folders)".into());
            PathBuf::new()
        });
        let data_dir = raw.data_dir.unwrap_or_else(|| {
            problems.push("exec.data_dir: required (each plugin gets a folder inside)".into());
            PathBuf::new()
        });
        let mut plugins = BTreeMap::new();
        for (name, plugin) in raw.plugins {
            let key = format!("exec.plugins.{name}");
            let mut resolved = Vec::new();
            for (variable, value) in plugin.env {
                let secret = match value {
                    RawEnvValue::Plain(text) => {
                        Secret::new(text).ok_or_else(|| "is empty".to_owned())
                    }
                    RawEnvValue::Source(source) => source.require(env),
                };
                match secret {
                    Ok(secret) => resolved.push((variable, secret)),
                    Err(why) => problems.push(format!("{key}.env.{variable}: {why}")),
                }
            }
            let config = match plugin.config {
                None => serde_json::Value::Object(Default::default()),
                Some(config @ serde_json::Value::Object(_)) => config,
                Some(_) => {
                    problems.push(format!("{key}.config: must be a table"));
                    serde_json::Value::Null
                }
            };
            let timeout = plugin.timeout.as_deref().and_then(|text| {
                parse_duration(text)
                    .map_err(|why| problems.push(format!("{key}.timeout: {why}")))
                    .ok()
            });
            plugins.insert(
                name,
                PluginSettings {
                    env: resolved,
                    config,
                    timeout,
                },
            );
        }
        if !problems.is_empty() {
            anyhow::bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
        }
        Ok(Settings {
            plugins_dir,
            data_dir,
            timeout,
            max_output,
            max_log,
            sync_concurrency,
            reload_interval,
            path: raw
                .path
                .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            plugins,
        })
    }
}
