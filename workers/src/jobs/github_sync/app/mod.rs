//! GitHub App authentication: `[github_sync.app]` (App id, private key,
//! API and git base URLs), installation access tokens minted with an App
//! JWT and cached per installation until shortly before they expire, and
//! the git credentials made from them. The cache only saves requests: a
//! replica without it mints its own token.

mod api;
mod jwt;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use broker::settings::SecretSource;
use serde::Deserialize;
use verify::Secret;

pub use self::jwt::AppId;
use self::jwt::Signer;
use super::git::GitAuth;
use super::targets::{duration, secret};

/// GitHub's REST API.
const DEFAULT_API_URL: &str = "https://api.github.com";
const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(10);
/// A cached token is replaced this long before it expires.
const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// `[github_sync.app]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The App's id (a number) or client id: the JWT's `iss`.
    pub id: AppId,
    /// The App's private key, PEM (`{ file = ... }` or `{ env = ... }`).
    pub private_key: SecretSource,
    /// REST API base (default `https://api.github.com`; GitHub Enterprise
    /// Server: `https://<host>/api/v3`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Where repositories are cloned from; the token is only sent to URLs
    /// under it (default `https://github.com`, or the GHES host).
    #[serde(default)]
    pub git_url: Option<String>,
    /// Longest API request (default 10s).
    #[serde(default)]
    pub api_timeout: Option<String>,
    /// A token is renewed this long before it expires (default 5m).
    #[serde(default)]
    pub token_refresh_margin: Option<String>,
}

/// The parsed `[github_sync.app]`.
#[derive(Debug)]
pub(super) struct AppSettings {
    signer: Signer,
    /// Without a trailing `/`.
    api_url: String,
    /// With a trailing `/`.
    pub(super) git_url: String,
    api_timeout: Duration,
    refresh_margin: Duration,
}

impl AppSettings {
    /// Reads and checks the section; a key that cannot sign is a problem
    /// naming `github_sync.app.private_key`, never showing it.
    pub(super) fn parse(
        config: AppConfig,
        env: &HashMap<String, String>,
        problems: &mut Vec<String>,
    ) -> Option<AppSettings> {
        let before = problems.len();
        match &config.id {
            AppId::Number(0) => {
                problems.push("github_sync.app.id: `0` is not a GitHub App id".into())
            }
            AppId::Text(text)
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                problems.push(format!(
                    "github_sync.app.id: `{text}` is not a GitHub App id or client id"
                ));
            }
            _ => {}
        }
        let api_url = base_url(
            problems,
            "github_sync.app.api_url",
            config.api_url.as_deref().unwrap_or(DEFAULT_API_URL),
        );
        let git_url = match (config.git_url.as_deref(), api_url.as_deref()) {
            (Some(git_url), _) => base_url(problems, "github_sync.app.git_url", git_url),
            (None, Some(DEFAULT_API_URL)) => Some("https://github.com".to_owned()),
            (None, Some(api)) => {
                match api.strip_suffix("/api/v3") {
                    Some(host) => Some(host.to_owned()),
                    None => {
                        problems.push(format!("github_sync.app.git_url: set it; it cannot be derived from api_url `{api}`"));
                        None
                    }
                }
            }
            (None, None) => None,
        };
        let api_timeout = duration(
            problems,
            "github_sync.app.api_timeout",
            config.api_timeout.as_deref(),
            DEFAULT_API_TIMEOUT,
        );
        let refresh_margin = duration(
            problems,
            "github_sync.app.token_refresh_margin",
            config.token_refresh_margin.as_deref(),
            DEFAULT_REFRESH_MARGIN,
        );
        let signer = secret(
            problems,
            "github_sync.app.private_key",
            &config.private_key,
            env,
        )
        .and_then(|pem| {
            Signer::new(config.id.clone(), &pem_text(&pem))
                .map_err(|why| problems.push(format!("github_sync.app.private_key: {why}")))
                .ok()
        });
        if problems.len() > before {
            return None;
        }
        Some(AppSettings {
            signer: signer?,
            api_url: api_url?,
            git_url: format!("{}/", git_url?),
            api_timeout,
            refresh_margin,
        })
    }
}

/// A PEM from an environment variable often has its newlines written
/// `\n`; those become newlines again.
fn pem_text(secret: &Secret) -> Vec<u8> {
    let bytes = secret.expose();
    if bytes.contains(&b'\n') {
        return bytes.to_vec();
    }
    String::from_utf8_lossy(bytes)
        .replace("\\n", "\n")
        .into_bytes()
}

/// An `http(s)://host[:port][/path]` base, without a trailing `/`.
fn base_url(problems: &mut Vec<String>, key: &str, text: &str) -> Option<String> {
    match reqwest::Url::parse(text) {
        Ok(url)
            if matches!(url.scheme(), "https" | "http")
                && url.host_str().is_some()
                && url.query().is_none()
                && url.username().is_empty() =>
        {
            Some(text.trim_end_matches('/').to_owned())
        }
        _ => {
            problems.push(format!(
                "{key}: `{text}` is not an http(s) base URL such as https://api.github.com"
            ));
            None
        }
    }
}

/// Why no token: how the job should end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenError {
    /// The installation cannot sync (suspended, deleted): skip.
    Skip(String),
    /// Retrying cannot help until an operator acts (the JWT is refused).
    Fail(String),
    /// Transient (timeouts, 5xx, rate limits).
    Retry {
        error: String,
        after: Option<Duration>,
    },
}

/// A token in the cache.
struct Cached {
    token: Secret,
    /// When to mint a new one: the margin before it expires.
    renew_at: Instant,
}

/// Installation tokens for one App.
pub(super) struct App {
    settings: AppSettings,
    client: reqwest::Client,
    cache: Mutex<HashMap<u64, Cached>>,
}

impl App {
    pub(super) fn new(settings: AppSettings) -> anyhow::Result<App> {
        let client = reqwest::Client::builder()
            .timeout(settings.api_timeout)
            .connect_timeout(settings.api_timeout)
            // A redirect would carry the JWT elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(App {
            settings,
            client,
            cache: Mutex::default(),
        })
    }

    /// Whether `clone_url` is under `git_url`, the only place the token
    /// goes.
    pub(super) fn covers(&self, clone_url: &str) -> bool {
        clone_url.starts_with(&self.settings.git_url)
    }

    pub(super) fn git_url(&self) -> &str {
        &self.settings.git_url
    }

    /// git credentials for `installation`: a cached token, or a new one.
    pub(super) async fn git_auth(&self, installation: u64) -> Result<GitAuth, TokenError> {
        let token = self.token(installation).await?;
        Ok(GitAuth::new(&self.settings.git_url, &token))
    }

    /// Drops a cached token git was refused with (revoked, or the
    /// installation lost the repository), so the next attempt mints one.
    pub(super) fn forget(&self, installation: u64) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&installation);
    }

    async fn token(&self, installation: u64) -> Result<Secret, TokenError> {
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(cached) = cache.get(&installation)
                && Instant::now() < cached.renew_at
            {
                return Ok(cached.token.clone());
            }
        }
        let jwt = self
            .settings
            .signer
            .mint(SystemTime::now())
            .map_err(|why| TokenError::Fail(format!("signing the App JWT: {why}")))?;
        let issued =
            api::access_token(&self.client, &self.settings.api_url, &jwt, installation).await?;
        let lifetime = issued
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let renew_at = Instant::now() + lifetime.saturating_sub(self.settings.refresh_margin);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                installation,
                Cached {
                    token: issued.token.clone(),
                    renew_at,
                },
            );
        Ok(issued.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_and_derived_git_urls() {
        let mut problems = Vec::new();
        assert_eq!(
            base_url(&mut problems, "k", "https://ghe.example.com/api/v3/"),
            Some("https://ghe.example.com/api/v3".to_owned())
        );
        assert_eq!(
            base_url(&mut problems, "k", "http://127.0.0.1:8080"),
            Some("http://127.0.0.1:8080".to_owned())
        );
        assert!(problems.is_empty());
        for bad in ["ftp://x", "https://user@x", "not a url", "https://x/?a=1"] {
            assert_eq!(base_url(&mut problems, "k", bad), None, "{bad}");
        }
        assert_eq!(problems.len(), 4);
    }

    #[test]
    fn escaped_newlines_in_a_pem_are_restored() {
        let escaped = Secret::new("-----BEGIN X-----\\nabc\\n-----END X-----").expect("non-empty");
        assert_eq!(
            pem_text(&escaped),
            b"-----BEGIN X-----\nabc\n-----END X-----"
        );
        let plain = Secret::new("a\\nb\nc").expect("non-empty");
        assert_eq!(pem_text(&plain), b"a\\nb\nc");
    }
}
