//! The forwarder: delivers each envelope (or the original body with its
//! original headers) to the URL configured for its subject, signed with
//! Standard Webhooks headers. 2xx: done; 408, 429, 5xx, timeouts: retry
//! (honouring `Retry-After`); other 4xx: dead letter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use verify::{Secret, standard_webhooks};

use crate::{Delivery, Job, Outcome, Report};
use broker::settings::SecretSource;

/// `[forward]` in the worker's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Request timeout (default 10 s).
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// NATS subject pattern the delivery's subject must match
    /// (`tidegate.in.github.>`).
    pub subjects: String,
    pub url: String,
    /// `envelope` (default): POST the envelope JSON. `original`: POST the
    /// provider's body with its original headers.
    #[serde(default)]
    pub mode: Option<String>,
    /// Standard Webhooks signing secret (`whsec_<base64>`).
    #[serde(default)]
    pub secret: Option<SecretSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Envelope,
    Original,
}

struct Target {
    pattern: Vec<String>,
    url: reqwest::Url,
    mode: Mode,
    /// The decoded Standard Webhooks key; unsigned without one.
    key: Option<Secret>,
}

pub struct Forward {
    client: reqwest::Client,
    targets: Vec<Target>,
}

/// Headers not copied from the original request in `original` mode.
const NOT_FORWARDED: [&str; 8] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "te",
    "upgrade",
    "expect",
];

impl Forward {
    pub fn new(config: ForwardConfig) -> anyhow::Result<Forward> {
        let timeout = match &config.timeout {
            Some(text) => humantime::parse_duration(text)
                .map_err(|_| anyhow::anyhow!("forward.timeout: `{text}` is not a duration"))?,
            None => Duration::from_secs(10),
        };
        anyhow::ensure!(
            !config.targets.is_empty(),
            "forward.targets: configure at least one target"
        );
        let environment: std::collections::HashMap<String, String> = std::env::vars().collect();
        let mut targets = Vec::new();
        for (index, target) in config.targets.into_iter().enumerate() {
            let key = format!("forward.targets[{index}]");
            let url = reqwest::Url::parse(&target.url)
                .map_err(|error| anyhow::anyhow!("{key}.url: {error}"))?;
            let mode = match target.mode.as_deref() {
                None | Some("envelope") => Mode::Envelope,
                Some("original") => Mode::Original,
                Some(other) => anyhow::bail!("{key}.mode: `{other}` is not envelope or original"),
            };
            let key_bytes = match &target.secret {
                None => None,
                Some(source) => {
                    let secret = source
                        .require(&environment)
                        .map_err(|error| anyhow::anyhow!("{key}.secret: {error}"))?;
                    let decoded = standard_webhooks::decode_key(&secret);
                    Some(decoded.ok_or_else(|| {
                        anyhow::anyhow!("{key}.secret: not a whsec_<base64> secret")
                    })?)
                }
            };
            targets.push(Target {
                pattern: target.subjects.split('.').map(str::to_owned).collect(),
                url,
                mode,
                key: key_bytes,
            });
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Forward { client, targets })
    }
}

impl Job for Forward {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let Some(target) = self
            .targets
            .iter()
            .find(|target| matches(&target.pattern, &delivery.subject))
        else {
            return Outcome::Skip(format!("no target for subject {}", delivery.subject));
        };
        let (body, content_type) = match target.mode {
            Mode::Envelope => (delivery.v1_json(), Some("application/json".to_owned())),
            Mode::Original => (
                delivery.payload.clone(),
                delivery.envelope.content_type.clone(),
            ),
        };
        // One map, set once per name: the stored headers (original mode),
        // then the content type and signature, which replace any stored
        // value instead of being sent beside it.
        let mut headers = http::HeaderMap::new();
        if target.mode == Mode::Original {
            for (name, value) in &delivery.envelope.headers {
                if NOT_FORWARDED.contains(&name.as_str()) || name.starts_with("webhook-") {
                    continue;
                }
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::try_from(name.as_str()),
                    http::HeaderValue::try_from(value.as_str()),
                ) {
                    headers.append(name, value);
                }
            }
        }
        headers.remove(http::header::CONTENT_TYPE);
        if let Some(content_type) = content_type
            .as_deref()
            .and_then(|value| http::HeaderValue::try_from(value).ok())
        {
            headers.insert(http::header::CONTENT_TYPE, content_type);
        }
        let id = &delivery.envelope.id;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        let header_value = |text: &str| {
            http::HeaderValue::try_from(text).expect("ids, numbers and base64 are header text")
        };
        headers.insert(standard_webhooks::ID, header_value(id));
        headers.insert(
            standard_webhooks::TIMESTAMP,
            header_value(&timestamp.to_string()),
        );
        if let Some(key) = &target.key {
            let signature = standard_webhooks::signature(key.expose(), id, timestamp, &body);
            headers.insert(standard_webhooks::SIGNATURE, header_value(&signature));
        }
        let request = self.client.post(target.url.clone()).headers(headers);
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) => return Outcome::retry(format!("POST {} failed: {error}", target.url)),
        };
        classify(
            response.status(),
            retry_after(response.headers()),
            &target.url,
        )
    }
}

fn classify(status: http::StatusCode, after: Option<Duration>, url: &reqwest::Url) -> Outcome {
    let code = status.as_u16();
    if status.is_success() {
        Outcome::Done(
            Report::default()
                .detail("status", code.to_string())
                .detail("url", url.as_str()),
        )
    } else if code == 408 || code == 429 || status.is_server_error() {
        Outcome::Retry {
            error: format!("{url} answered {code}"),
            after,
        }
    } else {
        Outcome::Fail(format!("{url} answered {code}"))
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

/// NATS subject matching: `*` one token, `>` the rest (at least one).
fn matches(pattern: &[String], subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for (index, part) in pattern.iter().enumerate() {
        match part.as_str() {
            ">" => return index < pattern.len() && tokens.next().is_some(),
            "*" => {
                if tokens.next().is_none() {
                    return false;
                }
            }
            literal => {
                if tokens.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Vec<String> {
        text.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn subject_patterns() {
        let check = |text: &str, subject: &str, expected: bool| {
            assert_eq!(
                matches(&pattern(text), subject),
                expected,
                "{text} ~ {subject}"
            );
        };
        check("tidegate.in.>", "tidegate.in.github.push", true);
        check("tidegate.in.>", "tidegate.in", false);
        check("tidegate.in.*.push", "tidegate.in.github.push", true);
        check("tidegate.in.*.push", "tidegate.in.github.ping", false);
        check("tidegate.in.github", "tidegate.in.github.push", false);
        check("tidegate.in.github.push", "tidegate.in.github.push", true);
    }

    #[test]
    fn status_classes() {
        let url = reqwest::Url::parse("http://127.0.0.1/x").expect("valid");
        let check = |code: u16| match classify(
            http::StatusCode::from_u16(code).expect("valid"),
            None,
            &url,
        ) {
            Outcome::Done(_) => "done",
            Outcome::Retry { .. } => "retry",
            Outcome::Fail(_) => "fail",
            Outcome::Skip(_) => "skip",
        };
        for (code, expected) in [
            (200, "done"),
            (204, "done"),
            (408, "retry"),
            (429, "retry"),
            (500, "retry"),
            (503, "retry"),
            (400, "fail"),
            (404, "fail"),
            (410, "fail"),
            (301, "fail"),
        ] {
            assert_eq!(check(code), expected, "{code}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "7".parse().expect("valid"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        headers.insert(
            http::header::RETRY_AFTER,
            httpdate::fmt_http_date(later).parse().expect("valid"),
        );
        let parsed = retry_after(&headers).expect("an HTTP date parses");
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        headers.insert(http::header::RETRY_AFTER, "soon".parse().expect("valid"));
        assert_eq!(retry_after(&headers), None);
    }
}
