//! Why a request was refused, why a message could not be signed, and why a
//! kind name was not understood. The HTTP status for each is the caller's
//! decision (the ingress maps them in `error.rs`).

use std::fmt;

use http::HeaderName;

use crate::Scheme;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The credential header is absent (401).
    #[error("missing {header} header")]
    Missing { header: HeaderName },
    /// The credential is present but refused (the route's invalid status).
    #[error("{fault} {header} header")]
    Invalid { header: HeaderName, fault: Fault },
    /// There is no secret to check the request against.
    #[error("no secret is configured for this request")]
    NoSecret,
}

/// What was wrong with a credential that was present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Malformed, or made with none of the configured secrets.
    Mismatch,
    /// Correctly signed, but its timestamp is further from now than the
    /// tolerance: a replay, or a clock far off.
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

/// Why [`Scheme::sign`] made no headers. The message never includes the
/// value, which may be the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The value (a secret sent as is, or a message id) holds bytes an HTTP
    /// header cannot carry.
    #[error("the {header} header cannot carry this value")]
    NotHeaderText { header: HeaderName },
}

/// A kind name that is not one of [`Scheme::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not one of {kinds}", kinds = KindList)]
pub struct UnknownKind(pub String);

/// Every kind name, comma-separated, in [`Scheme::ALL`]'s order.
struct KindList;

impl fmt::Display for KindList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, scheme) in Scheme::ALL.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(scheme.kind())?;
        }
        Ok(())
    }
}
