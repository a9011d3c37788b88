//! The closed set of schemes, their kind names (listed once, here), and the
//! two operations every scheme has: `verify` a request, `sign` a message.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{
    Secret, SignError, UnknownKind, VerifyError, bearer, github, gitlab, shared_secret, shopify,
    slack, standard_webhooks, stripe,
};

/// How far a signed timestamp may be from the clock, in either direction,
/// unless configured otherwise: five minutes, as Standard Webhooks, Stripe
/// and Slack recommend.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The header a `shared_secret` scheme reads unless configured otherwise.
const DEFAULT_SHARED_SECRET_HEADER: HeaderName = HeaderName::from_static("x-webhook-secret");

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

/// What a sender signs: the body, and for the schemes that sign them, a
/// message id and a timestamp.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The raw body, exactly as sent.
    pub body: &'a [u8],
    /// Standard Webhooks' `webhook-id`; the other schemes sign no id.
    pub id: &'a str,
    /// Unix seconds; signed by Standard Webhooks, Stripe and Slack.
    pub timestamp: u64,
}

impl Scheme {
    /// Every scheme, with its default settings, in the order the kinds are
    /// listed to people.
    pub const ALL: [Scheme; 9] = [
        Scheme::None,
        Scheme::Github { allow_sha1: false },
        Scheme::StandardWebhooks {
            tolerance: DEFAULT_TOLERANCE,
        },
        Scheme::Stripe {
            tolerance: DEFAULT_TOLERANCE,
        },
        Scheme::Slack {
            tolerance: DEFAULT_TOLERANCE,
        },
        Scheme::Shopify,
        Scheme::Gitlab,
        Scheme::SharedSecret {
            header: DEFAULT_SHARED_SECRET_HEADER,
        },
        Scheme::Bearer,
    ];

    /// The kind name, as configured (`kind = "standard_webhooks"`).
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
            Scheme::Bearer => Some(&bearer::HEADER),
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

    /// The key that [`sign`](Self::sign) and [`verify`](Self::verify) take
    /// for a secret as configured: a Standard Webhooks secret
    /// (`whsec_<base64>`) is decoded by [`standard_webhooks::decode_key`];
    /// every other scheme keys with the secret itself. `None` when the
    /// secret is not valid for the scheme.
    pub fn key(&self, secret: Secret) -> Option<Secret> {
        match self {
            Scheme::StandardWebhooks { .. } => standard_webhooks::decode_key(&secret),
            _ => Some(secret),
        }
    }

    /// Checks a request's credential on its raw `body` and `headers`, as
    /// received at `now`, against every one of `keys` (several during a
    /// rotation; see [`key`](Self::key)). `None` accepts everything; any
    /// other scheme refuses everything without a key ([`VerifyError::NoSecret`]).
    ///
    /// Schemes that sign a timestamp check the signature first, so a
    /// [`Fault::Stale`](crate::Fault::Stale) refusal always describes a
    /// genuine message.
    pub fn verify(
        &self,
        keys: &[Secret],
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        if *self == Scheme::None {
            return Ok(());
        }
        if keys.is_empty() {
            return Err(VerifyError::NoSecret);
        }
        match self {
            Scheme::None => Ok(()),
            Scheme::Github { allow_sha1 } => github::verify(keys, headers, body, *allow_sha1),
            Scheme::StandardWebhooks { tolerance } => {
                standard_webhooks::verify(keys, headers, body, now, *tolerance)
            }
            Scheme::Stripe { tolerance } => stripe::verify(keys, headers, body, now, *tolerance),
            Scheme::Slack { tolerance } => slack::verify(keys, headers, body, now, *tolerance),
            Scheme::Shopify => shopify::verify(keys, headers, body),
            Scheme::Gitlab => gitlab::verify(keys, headers),
            Scheme::SharedSecret { header } => shared_secret::verify(keys, headers, header),
            Scheme::Bearer => bearer::verify(keys, headers),
        }
    }

    /// The headers the provider would send with `message`, signed with
    /// `key` (see [`key`](Self::key)). Headers that carry the key itself
    /// are marked sensitive. `None` sends no headers.
    pub fn sign(&self, key: &Secret, message: &Message<'_>) -> Result<HeaderMap, SignError> {
        let mut headers = HeaderMap::new();
        let key = key.expose();
        match self {
            Scheme::None => {}
            Scheme::Github { .. } => github::sign(key, message, &mut headers),
            Scheme::StandardWebhooks { .. } => {
                standard_webhooks::sign(key, message, &mut headers)?;
            }
            Scheme::Stripe { .. } => stripe::sign(key, message, &mut headers),
            Scheme::Slack { .. } => slack::sign(key, message, &mut headers),
            Scheme::Shopify => shopify::sign(key, message, &mut headers),
            Scheme::Gitlab => gitlab::sign(key, &mut headers)?,
            Scheme::SharedSecret { header } => shared_secret::sign(key, header, &mut headers)?,
            Scheme::Bearer => bearer::sign(key, &mut headers)?,
        }
        Ok(headers)
    }
}

impl FromStr for Scheme {
    type Err = UnknownKind;

    /// The scheme named `kind`, with its default settings.
    fn from_str(kind: &str) -> Result<Scheme, UnknownKind> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.kind() == kind)
            .ok_or_else(|| UnknownKind(kind.to_owned()))
    }
}

/// Adds `value` under `name`; `sensitive` for a value that is a secret.
pub(crate) fn insert(
    headers: &mut HeaderMap,
    name: &HeaderName,
    value: &[u8],
    sensitive: bool,
) -> Result<(), SignError> {
    let mut value = HeaderValue::from_bytes(value).map_err(|_| SignError::NotHeaderText {
        header: name.clone(),
    })?;
    value.set_sensitive(sensitive);
    headers.insert(name.clone(), value);
    Ok(())
}

/// Adds a value made of hex, base64 and ASCII digits, which every header
/// can carry.
pub(crate) fn insert_text(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    insert(headers, name, value.as_bytes(), false).expect("signatures are header text");
}
