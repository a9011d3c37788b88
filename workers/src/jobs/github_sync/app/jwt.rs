//! GitHub App JWTs: RS256 over `{iat, exp, iss}`, `iat` a minute in the
//! past for clock skew and `exp` nine minutes ahead (GitHub refuses more
//! than ten). The key is checked at start-up by signing one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// How far `iat` is set in the past, for clocks that run ahead of GitHub's.
pub(super) const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// How far `exp` is set ahead of now: `exp - iat` is ten minutes.
pub(super) const LIFETIME: Duration = Duration::from_secs(540);

/// The App's id (or client id): `iss`, a number when configured as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AppId {
    Number(u64),
    Text(String),
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppId::Number(id) => write!(f, "{id}"),
            AppId::Text(id) => f.write_str(id),
        }
    }
}

/// Signs App JWTs with the App's private key.
pub(super) struct Signer {
    iss: AppId,
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("iss", &self.iss)
            .field("key", &"***")
            .finish()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Claims {
    pub(super) iat: u64,
    pub(super) exp: u64,
    pub(super) iss: AppId,
}

impl Signer {
    /// Reads an RSA private key in PEM (PKCS#1, as GitHub issues it, or
    /// PKCS#8) and proves it by signing. Errors never include key bytes.
    pub(super) fn new(iss: AppId, pem: &[u8]) -> Result<Signer, String> {
        let unusable =
            |why: String| format!("not a usable RSA private key in PEM (PKCS#1 or PKCS#8): {why}");
        let key = EncodingKey::from_rsa_pem(pem).map_err(|error| unusable(describe(&error)))?;
        let signer = Signer { iss, key };
        signer.mint(SystemTime::now()).map_err(unusable)?;
        Ok(signer)
    }

    /// A JWT valid from a minute before `now` until nine minutes after.
    pub(super) fn mint(&self, now: SystemTime) -> Result<String, String> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs();
        let claims = Claims {
            iat: now.saturating_sub(CLOCK_SKEW.as_secs()),
            exp: now + LIFETIME.as_secs(),
            iss: self.iss.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|error| describe(&error))
    }
}

/// The error's kind, without anything from the key.
fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidKeyFormat => "invalid key format".to_owned(),
        ErrorKind::InvalidRsaKey(reason) => format!("invalid RSA key ({reason})"),
        ErrorKind::RsaFailedSigning => "RSA signing failed".to_owned(),
        ErrorKind::Base64(_) => "invalid base64 in the PEM".to_owned(),
        _ => "unusable key".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_without_echoing_it() {
        let pem = b"-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END RSA PRIVATE KEY-----\n";
        let error = Signer::new(AppId::Number(1), pem).expect_err("not a key");
        assert!(error.contains("RSA private key"), "{error}");
        assert!(!error.contains("c2VjcmV0"), "{error}");
        let error = Signer::new(AppId::Number(1), b"hello").expect_err("not PEM");
        assert!(!error.contains("hello"), "{error}");
    }
}
