//! Signature and credential checks over the raw request bytes, before
//! anything parses the body. One file per scheme, each a pure function; this
//! module picks the secrets for a request and dispatches.

mod bearer;
mod github;
mod gitlab;
mod shared_secret;
mod shopify;
mod slack;
mod standard_webhooks;
mod stripe;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, StatusCode};
use sha2::Sha256;

use crate::secret::Secret;
use crate::subject::{Template, Vars};

pub use github::{sign as sign_github, sign_sha1 as sign_github_sha1};
pub use shopify::sign as sign_shopify;
pub use slack::sign as sign_slack;
pub(crate) use standard_webhooks::decode_secret as decode_standard_webhooks_secret;
pub use standard_webhooks::sign as sign_standard_webhooks;
pub use stripe::sign as sign_stripe;

/// How far a signed timestamp may be from the clock, in either direction,
/// unless the route sets `tolerance`.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A route's verification: the scheme, where its secrets come from, and
/// the status for a wrong credential.
#[derive(Debug)]
pub struct Verifier {
    pub scheme: Scheme,
    /// For `StandardWebhooks`, the decoded keys (no `whsec_` prefix, no
    /// base64); for every other scheme, the secrets as configured.
    pub secrets: Secrets,
    /// Accept requests when no secret is configured (for the route, or for
    /// this request's agent/source). Only ever set by an explicit
    /// `if_unset = "open"`.
    pub open_when_unset: bool,
    /// 403 unless the route asks for 401 (the openwork connector does).
    pub invalid_status: StatusCode,
}

/// The closed set of schemes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// No verification; only when written explicitly as `kind = "none"`.
    None,
    /// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. With
    /// `allow_sha1`, a request without it may instead carry the legacy
    /// `X-Hub-Signature: sha1=<hex HMAC-SHA1>`.
    Github { allow_sha1: bool },
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`, or their `svix-` names).
    StandardWebhooks { tolerance: Duration },
    /// `Stripe-Signature: t=<unix>,v1=<hex>`.
    Stripe { tolerance: Duration },
    /// `X-Slack-Signature: v0=<hex>` with `X-Slack-Request-Timestamp`.
    Slack { tolerance: Duration },
    /// `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>`.
    Shopify,
    /// `X-Gitlab-Token` carries the secret itself.
    Gitlab,
    /// A header that carries the secret itself (`X-Webhook-Secret`).
    SharedSecret { header: HeaderName },
    /// `Authorization: Bearer <token>`.
    Bearer,
}

impl Scheme {
    pub fn kind(&self) -> &'static str {
        match self {
            Scheme::None => "none",
            Scheme::Github { .. } => "github",
            Scheme::StandardWebhooks { .. } => "standard_webhooks",
            Scheme::Stripe { .. } => "stripe",
            Scheme::Slack { .. } => "slack",
            Scheme::Shopify => "shopify",
            Scheme::Gitlab => "gitlab",
            Scheme::SharedSecret { .. } => "shared_secret",
            Scheme::Bearer => "bearer",
        }
    }

    /// The header that carries a credential itself (never copied into an
    /// envelope).
    pub fn credential_header(&self) -> Option<&HeaderName> {
        match self {
            Scheme::SharedSecret { header } => Some(header),
            Scheme::Bearer => Some(&http::header::AUTHORIZATION),
            Scheme::Gitlab => Some(&gitlab::HEADER),
            Scheme::None
            | Scheme::Github { .. }
            | Scheme::StandardWebhooks { .. }
            | Scheme::Stripe { .. }
            | Scheme::Slack { .. }
            | Scheme::Shopify => None,
        }
    }

    /// How far a signed timestamp may be from now, for schemes that sign one.
    pub fn tolerance(&self) -> Option<Duration> {
        match self {
            Scheme::StandardWebhooks { tolerance }
            | Scheme::Stripe { tolerance }
            | Scheme::Slack { tolerance } => Some(*tolerance),
            _ => None,
        }
    }
}

/// Where a route's secrets come from.
#[derive(Debug)]
pub enum Secrets {
    /// A fixed list (several for rotation); may be empty only when the
    /// verifier is open when unset.
    Fixed(Vec<Secret>),
    /// One secret per request, from an environment variable whose name is
    /// rendered from the request (`WEBHOOK_SECRET_{agentId}_{query.source}`).
    /// The environment is read once at start-up.
    PerRequest {
        env_name: Template,
        known: HashMap<String, Secret>,
    },
}

/// What verification concluded for an accepted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// A configured secret matched.
    Signed,
    /// No secret is configured and the route is open when unset (or the
    /// scheme is `none`).
    Open,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The credential header is absent (401).
    #[error("missing {header} header")]
    Missing { header: HeaderName },
    /// The credential is present but refused (the route's invalid status).
    #[error("{fault} {header} header")]
    Invalid { header: HeaderName, fault: Fault },
    #[error("no secret is configured for this request")]
    NoSecret,
}

/// What was wrong with a credential that was present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Malformed, or made with none of the configured secrets.
    Mismatch,
    /// Correctly signed, but its timestamp is further from now than the
    /// route's tolerance: a replay, or a clock far off.
    Stale,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Mismatch => "invalid",
            Fault::Stale => "stale",
        })
    }
}

impl VerifyError {
    /// A malformed or unmatched credential in `header`.
    pub fn invalid(header: HeaderName) -> Self {
        VerifyError::Invalid {
            header,
            fault: Fault::Mismatch,
        }
    }

    /// A correctly signed request whose timestamp (in `header`) is outside
    /// the tolerance.
    pub fn stale(header: HeaderName) -> Self {
        VerifyError::Invalid {
            header,
            fault: Fault::Stale,
        }
    }

    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Missing { .. } => "missing",
            VerifyError::Invalid {
                fault: Fault::Mismatch,
                ..
            } => "invalid",
            VerifyError::Invalid {
                fault: Fault::Stale,
                ..
            } => "stale",
            VerifyError::NoSecret => "no_secret",
        }
    }
}

impl Verifier {
    /// Verifies a request against the wall clock.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        vars: &Vars<'_>,
    ) -> Result<Verified, VerifyError> {
        self.verify_at(headers, body, vars, SystemTime::now())
    }

    /// Verifies a request as if received at `now` (the timestamped schemes
    /// compare their signed time with it).
    pub fn verify_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        vars: &Vars<'_>,
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        if self.scheme == Scheme::None {
            return Ok(Verified::Open);
        }
        let single;
        let secrets: &[Secret] = match &self.secrets {
            Secrets::Fixed(secrets) => secrets,
            Secrets::PerRequest { env_name, known } => {
                // A request whose values cannot name a variable has no
                // secret; the route's open/closed rule decides.
                match env_name.render(vars).ok().and_then(|name| known.get(&name)) {
                    Some(secret) => {
                        single = [secret.clone()];
                        &single
                    }
                    None => &[],
                }
            }
        };
        if secrets.is_empty() {
            return if self.open_when_unset {
                Ok(Verified::Open)
            } else {
                Err(VerifyError::NoSecret)
            };
        }
        match &self.scheme {
            Scheme::None => Ok(()),
            Scheme::Github { allow_sha1 } => github::verify(secrets, headers, body, *allow_sha1),
            Scheme::StandardWebhooks { tolerance } => {
                standard_webhooks::verify(secrets, headers, body, now, *tolerance)
            }
            Scheme::Stripe { tolerance } => stripe::verify(secrets, headers, body, now, *tolerance),
            Scheme::Slack { tolerance } => slack::verify(secrets, headers, body, now, *tolerance),
            Scheme::Shopify => shopify::verify(secrets, headers, body),
            Scheme::Gitlab => gitlab::verify(secrets, headers),
            Scheme::SharedSecret { header } => shared_secret::verify(secrets, headers, header),
            Scheme::Bearer => bearer::verify(secrets, headers),
        }
        .map(|()| Verified::Signed)
    }
}

/// Constant-time equality for secrets of possibly different lengths. The
/// length comparison leaks only the length, which is not secret material.
pub(crate) fn equal(left: &[u8], right: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    left.len() == right.len() && bool::from(left.ct_eq(right))
}

/// An HMAC-SHA256 tag.
type Tag = [u8; 32];

/// HMAC-SHA256 over `parts` (concatenated), keyed with `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Tag {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether any secret's tag over `signed` equals any of the `presented`
/// tags. Each secret's tag is computed once, and every comparison is
/// constant-time.
fn any_tag_matches(secrets: &[Secret], signed: &[&[u8]], presented: &[Tag]) -> bool {
    secrets.iter().any(|secret| {
        let expected = hmac_sha256(secret.expose(), signed);
        presented.iter().any(|tag| equal(&expected, tag))
    })
}

/// A tag written as lower- or upper-case hex.
fn hex_tag(text: &[u8]) -> Option<Tag> {
    let mut tag = [0u8; 32];
    hex::decode_to_slice(text, &mut tag).ok().map(|()| tag)
}

/// A tag written as standard (padded) base64.
fn base64_tag(text: &[u8]) -> Option<Tag> {
    // Larger than a tag, so that longer input fails as a length mismatch
    // rather than as a short buffer.
    let mut buffer = [0u8; 48];
    let written = base64::engine::general_purpose::STANDARD
        .decode_slice(text, &mut buffer)
        .ok()?;
    buffer[..written].try_into().ok()
}

/// Unix seconds as providers send them: ASCII digits only, no sign, no
/// fraction.
fn unix_seconds(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Whether `timestamp` lies within `tolerance` of `now`, in the past or the
/// future.
fn is_fresh(timestamp: u64, now: SystemTime, tolerance: Duration) -> bool {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    now.abs_diff(timestamp) <= tolerance.as_secs()
}

#[cfg(test)]
mod test_support {
    //! Builders shared by the scheme tests.

    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use http::HeaderMap;

    use crate::secret::Secret;

    pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::try_from(*name).expect("valid header name"),
                    value.parse().expect("valid header value"),
                )
            })
            .collect()
    }

    pub(super) fn secrets(values: &[&str]) -> Vec<Secret> {
        values
            .iter()
            .map(|value| Secret::new(*value).expect("non-empty"))
            .collect()
    }

    pub(super) fn at(unix_seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }
}

#[cfg(test)]
mod tests;
