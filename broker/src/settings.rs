//! Settings every binary reads the same way: `[nats]` (servers, client
//! name, timeouts, every auth mode, TLS), `[jetstream]` (replicas of every
//! stream and bucket, and the operator's leave to shrink one) and
//! `[stream]` (the deliveries stream's limits). Raw types deserialize
//! loosely; `compile` turns them into typed values and records every
//! problem, each naming its key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use verify::Secret;

/// How to reach NATS and who to be there.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// One or more `nats://`/`tls://` URLs; the client picks among them and
    /// moves to another when one fails.
    pub servers: Vec<String>,
    /// Client name shown by the server (`nats server report connections`).
    pub name: String,
    pub connect_timeout: Duration,
    /// Longest wait for a PubAck or a JetStream API answer.
    pub publish_timeout: Duration,
    /// A server that misses two pings in a row is given up and another
    /// one tried: this bounds how long a hung server holds the client.
    pub ping_interval: Duration,
    pub max_acks_in_flight: usize,
    pub auth: NatsAuth,
    pub tls: TlsSettings,
}

impl NatsSettings {
    /// Default settings for `url` (servers separated by commas), no auth:
    /// for tools and tests against a server they started themselves.
    pub fn for_url(url: &str, name: &str) -> Result<NatsSettings, String> {
        let raw = RawNats {
            url: RawUrls::One(url.to_owned()),
            name: Some(name.to_owned()),
            ..RawNats::default()
        };
        let mut problems = Vec::new();
        let settings = raw.compile(name, &HashMap::new(), &mut problems);
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems.join("; "))
        }
    }
}

/// One way to authenticate; the server's configuration decides which.
#[derive(Debug, Clone)]
pub enum NatsAuth {
    None,
    Token(Secret),
    UserPassword {
        user: String,
        password: Secret,
    },
    /// An nkey seed (`SU...`): the client signs the server's nonce.
    NKey(Secret),
    /// A credentials file (user JWT and nkey seed), as `nsc` writes it.
    Credentials(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// CA certificates (PEM) that sign the server's certificate, added to
    /// the system roots.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify
    /// clients.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Refuse a server that does not offer TLS, even for `nats://` URLs.
    pub required: bool,
    /// TLS before the server's INFO (servers with `handshake_first`).
    pub first: bool,
}

/// How every stream, KV bucket and object store is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JetStreamSettings {
    pub replicas: Replicas,
    /// Let `ensure` apply a change that drops stored messages (lower
    /// limits than the current usage, a shorter `max_age`, fewer
    /// replicas). Off unless an operator sets it for one start.
    pub allow_shrink: bool,
}

impl Default for JetStreamSettings {
    fn default() -> Self {
        JetStreamSettings {
            replicas: Replicas::Auto,
            allow_shrink: false,
        }
    }
}

/// Replica count of every stream and bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    /// 3 when the server is part of a cluster, else 1.
    Auto,
    Fixed(usize),
}

/// The deliveries stream's limits (the payload bucket follows them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub max_age: Duration,
    /// `None`: unlimited.
    pub max_bytes: Option<u64>,
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_bytes: None,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// Figment layers shared by every binary: the TOML file (optional), then
/// `TIDEGATE_*` variables with `__` for nesting. Only variables whose first
/// key is one of `top_keys` count (others, such as `TIDEGATE_API_TOKEN`,
/// are not configuration); `TIDEGATE_NATS_URL` sets `nats.url`.
pub fn figment(file: Option<&Path>, top_keys: &'static [&'static str]) -> Figment {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment.merge(
        Env::prefixed("TIDEGATE_")
            .map(|key| {
                if key == "nats_url" {
                    "nats.url".into()
                } else {
                    key.into()
                }
            })
            .split("__")
            .filter(move |key| {
                let top = key.as_str().split('.').next().unwrap_or_default();
                top_keys.iter().any(|known| known.eq_ignore_ascii_case(top))
            }),
    )
}

/// A secret's source: exactly one of an environment variable, a file (for
/// container secrets; trailing whitespace dropped) or a literal (tests).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub value: Option<String>,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSource")
            .field("env", &self.env)
            .field("file", &self.file)
            .field("value", &self.value.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SecretSource {
    /// The secret, `Ok(None)` when the variable is unset or empty (the
    /// caller decides whether that is allowed). Errors name the source,
    /// never a value.
    pub fn resolve(&self, env: &HashMap<String, String>) -> Result<Option<Secret>, String> {
        match (&self.env, &self.file, &self.value) {
            (Some(name), None, None) => {
                Ok(env.get(name).and_then(|value| Secret::new(value.as_str())))
            }
            (None, Some(file), None) => {
                let mut bytes = std::fs::read(file)
                    .map_err(|error| format!("cannot read `{}`: {error}", file.display()))?;
                // Secret files usually end with a newline that is not part
                // of the secret.
                while bytes.last().is_some_and(u8::is_ascii_whitespace) {
                    bytes.pop();
                }
                Secret::new(bytes)
                    .map(Some)
                    .ok_or_else(|| format!("`{}` is empty", file.display()))
            }
            (None, None, Some(value)) => Secret::new(value.as_str())
                .map(Some)
                .ok_or_else(|| "value is empty".to_owned()),
            _ => Err("set exactly one of env, file or value".to_owned()),
        }
    }

    /// Like [`resolve`](Self::resolve), but an unset variable is an error.
    pub fn require(&self, env: &HashMap<String, String>) -> Result<Secret, String> {
        self.resolve(env)?.ok_or_else(|| match &self.env {
            Some(name) => format!("environment variable {name} is not set"),
            None => "the secret is empty".to_owned(),
        })
    }
}

/// `url` as written: one string (servers separated by commas) or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawUrls {
    One(String),
    Many(Vec<String>),
}

/// `[nats]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawNats {
    pub url: RawUrls,
    pub name: Option<String>,
    pub connect_timeout: String,
    pub publish_timeout: String,
    pub ping_interval: String,
    pub max_acks_in_flight: usize,
    pub creds: Option<PathBuf>,
    pub nkey: Option<SecretSource>,
    pub token: Option<SecretSource>,
    pub user: Option<String>,
    pub password: Option<SecretSource>,
    pub tls: RawTls,
}

impl Default for RawNats {
    fn default() -> Self {
        RawNats {
            url: RawUrls::One("nats://127.0.0.1:4222".into()),
            name: None,
            connect_timeout: "5s".into(),
            publish_timeout: "5s".into(),
            ping_interval: "2s".into(),
            max_acks_in_flight: 10_000,
            creds: None,
            nkey: None,
            token: None,
            user: None,
            password: None,
            tls: RawTls::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub required: bool,
    pub first: bool,
}

/// `[jetstream]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawJetStream {
    /// `"auto"` or a number from 1 to 5.
    pub replicas: RawReplicas,
    pub allow_shrink: bool,
}

impl Default for RawJetStream {
    fn default() -> Self {
        RawJetStream {
            replicas: RawReplicas::Word("auto".into()),
            allow_shrink: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawReplicas {
    Count(i64),
    Word(String),
}

/// `[stream]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawStream {
    pub max_age: String,
    pub max_bytes: String,
    pub duplicate_window: String,
}

impl Default for RawStream {
    fn default() -> Self {
        RawStream {
            max_age: "30d".into(),
            max_bytes: "unlimited".into(),
            duplicate_window: "2m".into(),
        }
    }
}

impl RawNats {
    /// Typed settings; `default_name` names the client when `name` is
    /// unset. Every problem is pushed as `nats.<key>: why`.
    pub fn compile(
        &self,
        default_name: &str,
        env: &HashMap<String, String>,
        problems: &mut Vec<String>,
    ) -> NatsSettings {
        let servers: Vec<String> = match &self.url {
            RawUrls::One(text) => text.split(',').map(str::trim).map(str::to_owned).collect(),
            RawUrls::Many(list) => list.iter().map(|url| url.trim().to_owned()).collect(),
        };
        let servers: Vec<String> = servers.into_iter().filter(|url| !url.is_empty()).collect();
        if servers.is_empty() {
            problems.push("nats.url: name at least one server".into());
        }
        for url in &servers {
            if let Err(why) = check_url(url) {
                problems.push(format!("nats.url: `{url}` {why}"));
            }
        }
        let mut duration = |key: &str, text: &str| {
            parse_duration(text).unwrap_or_else(|why| {
                problems.push(format!("nats.{key}: {why}"));
                Duration::from_secs(1)
            })
        };
        let connect_timeout = duration("connect_timeout", &self.connect_timeout);
        let publish_timeout = duration("publish_timeout", &self.publish_timeout);
        let ping_interval = duration("ping_interval", &self.ping_interval);
        let auth = self.auth(env, problems);
        let tls = match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                problems.push("nats.tls: set cert and key together".into());
                None
            }
        };
        for path in [&self.tls.ca, &self.tls.cert, &self.tls.key]
            .into_iter()
            .flatten()
        {
            if !path.is_file() {
                problems.push(format!(
                    "nats.tls: `{}` is not a readable file",
                    path.display()
                ));
            }
        }
        NatsSettings {
            servers,
            name: self.name.clone().unwrap_or_else(|| default_name.to_owned()),
            connect_timeout,
            publish_timeout,
            ping_interval,
            max_acks_in_flight: self.max_acks_in_flight.max(1),
            auth,
            tls: TlsSettings {
                ca: self.tls.ca.clone(),
                client: tls,
                required: self.tls.required,
                first: self.tls.first,
            },
        }
    }

    fn auth(&self, env: &HashMap<String, String>, problems: &mut Vec<String>) -> NatsAuth {
        let mut secret = |key: &str, source: &SecretSource| {
            source
                .require(env)
                .map_err(|why| problems.push(format!("nats.{key}: {why}")))
                .ok()
        };
        match (
            &self.creds,
            &self.nkey,
            &self.token,
            &self.user,
            &self.password,
        ) {
            (None, None, None, None, None) => NatsAuth::None,
            (Some(path), None, None, None, None) => {
                if !path.is_file() {
                    problems.push(format!(
                        "nats.creds: `{}` is not a readable file",
                        path.display()
                    ));
                }
                NatsAuth::Credentials(path.clone())
            }
            (None, Some(seed), None, None, None) => {
                secret("nkey", seed).map_or(NatsAuth::None, NatsAuth::NKey)
            }
            (None, None, Some(token), None, None) => {
                secret("token", token).map_or(NatsAuth::None, NatsAuth::Token)
            }
            (None, None, None, Some(user), Some(password)) => {
                secret("password", password).map_or(NatsAuth::None, |password| {
                    NatsAuth::UserPassword {
                        user: user.clone(),
                        password,
                    }
                })
            }
            _ => {
                problems.push("nats: set one of creds, nkey, token, or user with password".into());
                NatsAuth::None
            }
        }
    }
}

impl RawJetStream {
    pub fn compile(&self, problems: &mut Vec<String>) -> JetStreamSettings {
        let replicas = match &self.replicas {
            RawReplicas::Word(word) if word == "auto" => Replicas::Auto,
            RawReplicas::Count(count @ 1..=5) => {
                Replicas::Fixed(usize::try_from(*count).expect("1 to 5 fits"))
            }
            RawReplicas::Word(word) => match word.parse::<usize>() {
                Ok(count @ 1..=5) => Replicas::Fixed(count),
                _ => {
                    problems.push(format!(
                        "jetstream.replicas: `{word}` is not auto or a number from 1 to 5"
                    ));
                    Replicas::Auto
                }
            },
            RawReplicas::Count(other) => {
                problems.push(format!(
                    "jetstream.replicas: {other} is not a number from 1 to 5"
                ));
                Replicas::Auto
            }
        };
        JetStreamSettings {
            replicas,
            allow_shrink: self.allow_shrink,
        }
    }
}

impl RawStream {
    pub fn compile(&self, problems: &mut Vec<String>) -> StreamSettings {
        let mut duration = |key: &str, text: &str| {
            parse_duration(text).unwrap_or_else(|why| {
                problems.push(format!("stream.{key}: {why}"));
                Duration::ZERO
            })
        };
        let max_age = duration("max_age", &self.max_age);
        let duplicate_window = duration("duplicate_window", &self.duplicate_window);
        let max_bytes = parse_size(&self.max_bytes).unwrap_or_else(|why| {
            problems.push(format!("stream.max_bytes: {why}"));
            None
        });
        if duplicate_window.is_zero() {
            problems.push("stream.duplicate_window: must be longer than 0s".into());
        }
        if !max_age.is_zero() && duplicate_window > max_age {
            problems.push("stream.duplicate_window: must not exceed stream.max_age".into());
        }
        StreamSettings {
            max_age,
            max_bytes,
            duplicate_window,
        }
    }
}

fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = ["nats://", "tls://", "ws://", "wss://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .unwrap_or(url);
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    if host_port.is_empty() || host_port.contains(['/', ' ']) {
        return Err("is not a NATS URL such as nats://127.0.0.1:4222");
    }
    if url.contains("://") || host_port.contains(':') {
        Ok(())
    } else {
        Err("is not a NATS URL such as nats://127.0.0.1:4222")
    }
}

/// `30s`, `5m`, `30d` (humantime).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("`{text}` is not a duration such as 30s, 5m or 7d"))
}

/// `25MiB`, `1 MB`, `512KiB`, `1048576`, or `unlimited` (`None`).
pub fn parse_size(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let split = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 25MiB"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .map(Some)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests;
