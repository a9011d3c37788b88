//! Signature and credential checks over the raw request bytes, before
//! anything parses the body. One file per scheme, each a pure function; this
//! module picks the secrets for a request and dispatches.

mod bearer;
mod github;
mod shared_secret;

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, StatusCode};

use crate::secret::Secret;
use crate::subject::{Template, Vars};

pub use github::sign as sign_github;

/// A route's verification: the scheme, where its secrets come from, and
/// the status for a wrong credential.
#[derive(Debug)]
pub struct Verifier {
    pub scheme: Scheme,
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
    /// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    Github,
    /// A header that carries the secret itself (`X-Webhook-Secret`).
    SharedSecret { header: HeaderName },
    /// `Authorization: Bearer <token>`.
    Bearer,
}

impl Scheme {
    pub fn kind(&self) -> &'static str {
        match self {
            Scheme::None => "none",
            Scheme::Github => "github",
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
            Scheme::None | Scheme::Github => None,
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
    #[error("missing {header} header")]
    Missing { header: HeaderName },
    #[error("invalid {header} header")]
    Invalid { header: HeaderName },
    #[error("no secret is configured for this request")]
    NoSecret,
}

impl VerifyError {
    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Missing { .. } => "missing",
            VerifyError::Invalid { .. } => "invalid",
            VerifyError::NoSecret => "no_secret",
        }
    }
}

impl Verifier {
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        vars: &Vars<'_>,
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
            Scheme::Github => github::verify(secrets, headers, body),
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
