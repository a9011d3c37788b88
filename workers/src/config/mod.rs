//! Worker configuration: figment layers (TOML file, then `TIDEGATE_*`
//! variables, `TIDEGATE_NATS_URL` included) parsed into the runtime's typed
//! settings. `[nats]` and `[jetstream]` are read as every tidegate binary
//! reads them (`broker::settings`); each binary reads its own section from
//! the same figment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use broker::settings::{RawJetStream, RawNats};
use broker::{JetStreamSettings, NatsSettings};
use figment::Figment;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Top-level keys that `TIDEGATE_*` variables may set; other `TIDEGATE_`
/// variables are not configuration. `TIDEGATE_NATS_URL` sets `nats.url`.
const ENV_KEYS: [&str; 8] = [
    "nats",
    "jetstream",
    "name",
    "listen",
    "consumer",
    "idempotency",
    "results",
    "log",
];

/// The runtime's settings, shared by every worker binary.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub nats: NatsSettings,
    pub jetstream: JetStreamSettings,
    /// Worker kind: durable consumer name, dead-letter and result subjects.
    pub name: String,
    /// `/healthz` and `/metrics`; `None` disables the listener.
    pub listen: Option<SocketAddr>,
    pub consumer: ConsumerConfig,
    pub idempotency: IdempotencyConfig,
    pub results_max_age: Duration,
    pub json_logs: bool,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Subjects the durable consumer filters on (several become
    /// `filter_subjects`).
    pub filter_subjects: Vec<String>,
    /// Jobs run at once in this process.
    pub concurrency: usize,
    /// Redelivery after this long without an ack or a progress signal.
    pub ack_wait: Duration,
    /// Attempts before a delivery is dead-lettered.
    pub max_deliver: u64,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// New consumers start at the beginning of the stream (`all`) or with
    /// deliveries published from now on (`new`).
    pub deliver_new_only: bool,
    /// How long shutdown waits for jobs in flight before releasing them.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    pub enabled: bool,
    /// How long a completed key is remembered.
    pub ttl: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Raw {
    nats: RawNats,
    jetstream: RawJetStream,
    name: Option<String>,
    listen: Option<String>,
    consumer: RawConsumer,
    idempotency: RawIdempotency,
    results: RawResults,
    log: RawLog,
}

/// One subject, or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSubjects {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawConsumer {
    filter_subjects: RawSubjects,
    concurrency: usize,
    ack_wait: String,
    max_deliver: u64,
    backoff_base: String,
    backoff_max: String,
    start: String,
    shutdown_grace: String,
}

impl Default for RawConsumer {
    fn default() -> Self {
        RawConsumer {
            filter_subjects: RawSubjects::One("tidegate.in.>".into()),
            concurrency: 16,
            ack_wait: "30s".into(),
            max_deliver: 5,
            backoff_base: "1s".into(),
            backoff_max: "5m".into(),
            start: "all".into(),
            shutdown_grace: "30s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawIdempotency {
    enabled: bool,
    ttl: String,
}

impl Default for RawIdempotency {
    fn default() -> Self {
        RawIdempotency {
            enabled: true,
            ttl: "30d".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawResults {
    max_age: String,
}

impl Default for RawResults {
    fn default() -> Self {
        RawResults {
            max_age: "30d".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLog {
    format: Option<String>,
}

/// Every problem found, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Figment layers for a file (optional) and the environment.
pub fn figment(file: Option<&Path>) -> Figment {
    broker::settings::figment(file, &ENV_KEYS)
}

/// The runtime settings, plus the job's own section (`section` key) with
/// `default_name` as the worker name when none is configured. `env` is
/// where NATS secrets named by `{ env = ... }` are looked up.
pub fn load<J: DeserializeOwned + Default>(
    figment: &Figment,
    section: &str,
    default_name: &str,
    env: &HashMap<String, String>,
) -> Result<(RuntimeConfig, J), ConfigError> {
    let mut problems = Vec::new();
    let value: figment::value::Value = figment.extract().map_err(|error| ConfigError {
        problems: error.into_iter().map(|error| error.to_string()).collect(),
    })?;
    let raw: Raw = serde_ignored::deserialize(&value, |path| {
        let path = path.to_string();
        if path == "nats_url" {
            problems.push(
                "nats_url: moved to [nats] url (TIDEGATE_NATS_URL still sets it)".to_owned(),
            );
        } else if path == "consumer.filter_subject" {
            problems.push("consumer.filter_subject: renamed to consumer.filter_subjects (one subject or a list)".to_owned());
        } else if path.split('.').next() != Some(section) {
            problems.push(format!("{path}: unknown key"));
        }
    })
    .map_err(|error| ConfigError {
        problems: vec![error.to_string()],
    })?;
    let job: J = match figment.find_value(section) {
        Ok(_) => figment.extract_inner(section).unwrap_or_else(|error| {
            problems.extend(error.into_iter().map(|error| format!("{section}: {error}")));
            J::default()
        }),
        Err(_) => J::default(),
    };
    let filter_subjects = match &raw.consumer.filter_subjects {
        RawSubjects::One(subject) => vec![subject.clone()],
        RawSubjects::Many(subjects) => subjects.clone(),
    };
    if filter_subjects.is_empty()
        || filter_subjects
            .iter()
            .any(|subject| subject.trim().is_empty() || subject.contains(char::is_whitespace))
    {
        problems.push("consumer.filter_subjects: name one or more subjects without spaces".into());
    }
    let mut duration = |key: &str, text: &str| match humantime::parse_duration(text) {
        Ok(duration) => duration,
        Err(_) => {
            problems.push(format!("{key}: `{text}` is not a duration such as 30s"));
            Duration::ZERO
        }
    };
    let consumer = ConsumerConfig {
        filter_subjects,
        concurrency: raw.consumer.concurrency,
        ack_wait: duration("consumer.ack_wait", &raw.consumer.ack_wait),
        max_deliver: raw.consumer.max_deliver,
        backoff_base: duration("consumer.backoff_base", &raw.consumer.backoff_base),
        backoff_max: duration("consumer.backoff_max", &raw.consumer.backoff_max),
        deliver_new_only: raw.consumer.start == "new",
        shutdown_grace: duration("consumer.shutdown_grace", &raw.consumer.shutdown_grace),
    };
    let idempotency = IdempotencyConfig {
        enabled: raw.idempotency.enabled,
        ttl: duration("idempotency.ttl", &raw.idempotency.ttl),
    };
    let results_max_age = duration("results.max_age", &raw.results.max_age);
    if !["all", "new"].contains(&raw.consumer.start.as_str()) {
        problems.push(format!(
            "consumer.start: `{}` is not all or new",
            raw.consumer.start
        ));
    }
    if raw.consumer.concurrency == 0 {
        problems.push("consumer.concurrency: must be at least 1".into());
    }
    if raw.consumer.max_deliver == 0 {
        problems.push("consumer.max_deliver: must be at least 1".into());
    }
    if consumer.ack_wait < Duration::from_secs(1) {
        problems.push("consumer.ack_wait: must be at least 1s".into());
    }
    let name = raw.name.clone().unwrap_or_else(|| default_name.to_owned());
    let nats = raw
        .nats
        .compile(&format!("tidegate-{name}"), env, &mut problems);
    let jetstream = raw.jetstream.compile(&mut problems);
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.push(format!("name: `{name}` must be letters, digits, - or _"));
    }
    let listen = match raw.listen.as_deref() {
        None => None,
        Some(text) => match text.parse() {
            Ok(address) => Some(address),
            Err(_) => {
                problems.push(format!(
                    "listen: `{text}` is not an address such as 127.0.0.1:9101"
                ));
                None
            }
        },
    };
    let json_logs = match raw.log.format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            problems.push(format!("log.format: `{other}` is not text or json"));
            false
        }
    };
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok((
        RuntimeConfig {
            nats,
            jetstream,
            name,
            listen,
            consumer,
            idempotency,
            results_max_age,
            json_logs,
        },
        job,
    ))
}

#[cfg(test)]
mod tests;
