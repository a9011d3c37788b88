//! The configuration file as written: loose types that serde can always
//! read, so that `Config::load` can report every bad value at once instead
//! of stopping at the first.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawConfig {
    pub(super) listen: String,
    pub(super) nats_url: String,
    pub(super) public_url: Option<String>,
    pub(super) nats: RawNats,
    pub(super) stream: RawStream,
    pub(super) http: RawHttp,
    pub(super) log: RawLog,
    pub(super) routes: Vec<RawRoute>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: "127.0.0.1:8080".into(),
            nats_url: "nats://127.0.0.1:4222".into(),
            public_url: None,
            nats: RawNats::default(),
            stream: RawStream::default(),
            http: RawHttp::default(),
            log: RawLog::default(),
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawNats {
    pub(super) name: String,
    pub(super) connect_timeout: String,
    pub(super) publish_timeout: String,
    pub(super) retry_after: String,
    pub(super) max_acks_in_flight: usize,
    pub(super) credentials_file: Option<String>,
    pub(super) token: Option<RawSecretSource>,
    pub(super) user: Option<String>,
    pub(super) password: Option<RawSecretSource>,
}

impl Default for RawNats {
    fn default() -> Self {
        RawNats {
            name: "tidegate-ingress".into(),
            connect_timeout: "5s".into(),
            publish_timeout: "5s".into(),
            retry_after: "5s".into(),
            max_acks_in_flight: 10_000,
            credentials_file: None,
            token: None,
            user: None,
            password: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawStream {
    pub(super) replicas: usize,
    pub(super) max_age: String,
    pub(super) max_bytes: String,
    pub(super) duplicate_window: String,
}

impl Default for RawStream {
    fn default() -> Self {
        RawStream {
            replicas: 1,
            max_age: "30d".into(),
            max_bytes: "unlimited".into(),
            duplicate_window: "2m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(super) struct RawHttp {
    pub(super) header_read_timeout: String,
    pub(super) body_timeout: String,
    pub(super) max_connections: usize,
    pub(super) shutdown_grace: String,
    pub(super) body_limit: String,
    /// Peers whose `CF-Connecting-IP` / `X-Forwarded-For` are believed.
    pub(super) trusted_proxies: Vec<String>,
    /// Rate limits for routes that set none.
    pub(super) rate_limit: Option<RawRateLimit>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            header_read_timeout: "10s".into(),
            body_timeout: "30s".into(),
            max_connections: 10_000,
            shutdown_grace: "30s".into(),
            body_limit: "1MiB".into(),
            trusted_proxies: Vec::new(),
            rate_limit: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawLog {
    pub(super) format: Option<String>,
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
    /// request from path and query values (`WEBHOOK_SECRET_{agentId}_{query.source}`).
    #[serde(default)]
    pub(super) secret_env: Option<String>,
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

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct RawRateLimit {
    /// All clients of the route together.
    #[serde(default)]
    pub(super) per_route: Option<RawRate>,
    /// Each client address (IPv6: each /64).
    #[serde(default)]
    pub(super) per_client: Option<RawRate>,
}

/// Integers are read wide so that a negative one is reported by key.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct RawRate {
    /// `10/s`, `600/m`, `1/10s`.
    pub(super) rate: String,
    /// Requests admitted at once; the rate's count when unset.
    #[serde(default)]
    pub(super) burst: Option<i64>,
    /// per_client only: addresses tracked at once.
    #[serde(default)]
    pub(super) max_clients: Option<i64>,
}

/// Where a secret comes from. Exactly one key is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecretSource {
    #[serde(default)]
    pub(super) env: Option<String>,
    #[serde(default)]
    pub(super) file: Option<String>,
    #[serde(default)]
    pub(super) value: Option<String>,
}

/// Parses `25MiB`, `1 MB`, `512KiB`, `1048576`, or `unlimited` (`None`).
pub(super) fn parse_size(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
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

/// Parses `5s`, `2m`, `30d`, `250ms`.
pub(super) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|error| format!("`{text}` is not a duration such as 5s or 2m: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let check = |text: &str, expected: Result<Option<u64>, ()>| {
            assert_eq!(parse_size(text).map_err(|_| ()), expected, "{text}");
        };
        check("25MiB", Ok(Some(25 << 20)));
        check("1 MB", Ok(Some(1_000_000)));
        check("512", Ok(Some(512)));
        check("unlimited", Ok(None));
        check("12 parsecs", Err(()));
        check("MiB", Err(()));
        check("99999999999999GiB", Err(()));
    }
}
