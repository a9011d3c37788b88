//! A route's verification, before anything parses the body: which secrets
//! a request is checked against (a fixed list, or one per request from the
//! environment), and whether a route without one is open. The signature
//! checks themselves are the `verify` crate's; the status codes, `error.rs`'s.

use std::collections::HashMap;
use std::time::SystemTime;

use ::verify::{Scheme, Secret, VerifyError};
use http::{HeaderMap, StatusCode};

use crate::subject::{Template, Vars};

/// A route's verification: the scheme, where its secrets come from, and
/// the status for a wrong credential.
#[derive(Debug)]
pub struct Verifier {
    pub scheme: Scheme,
    /// The keys as the scheme takes them (`Scheme::key`): for
    /// `StandardWebhooks`, decoded (no `whsec_` prefix, no base64); for
    /// every other scheme, the secrets as configured.
    pub secrets: Secrets,
    /// Accept requests when no secret is configured (for the route, or for
    /// this request's agent/source). Only ever set by an explicit
    /// `if_unset = "open"`.
    pub open_when_unset: bool,
    /// 403 unless the route asks for 401 (the openwork connector does).
    pub invalid_status: StatusCode,
}

/// Where a route's secrets come from.
#[derive(Debug)]
pub enum Secrets {
    /// A fixed list (several for rotation); empty only when the verifier is
    /// open when unset, or in a lenient load (`Config::load_lenient`).
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
        let secrets = self.secrets_for(vars);
        if secrets.is_empty() {
            return if self.open_when_unset {
                Ok(Verified::Open)
            } else {
                Err(VerifyError::NoSecret)
            };
        }
        self.scheme
            .verify(secrets, headers, body, now)
            .map(|()| Verified::Signed)
    }

    /// The secrets this request is checked against; none when a per-request
    /// variable is not set.
    fn secrets_for(&self, vars: &Vars<'_>) -> &[Secret] {
        match &self.secrets {
            Secrets::Fixed(secrets) => secrets,
            // A request whose values cannot name a variable has no secret;
            // the route's open/closed rule decides.
            Secrets::PerRequest { env_name, known } => {
                match env_name.render(vars).ok().and_then(|name| known.get(&name)) {
                    Some(secret) => std::slice::from_ref(secret),
                    None => &[],
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(params: &'a [(String, String)]) -> Vars<'a> {
        Vars {
            params,
            query: &[],
            event: None,
            route: "r",
        }
    }

    fn token(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-gitlab-token", value.parse().expect("header text"));
        headers
    }

    fn secret(value: &str) -> Secret {
        Secret::new(value).expect("non-empty")
    }

    #[test]
    fn fixed_secrets_open_when_unset_and_none() {
        let verifier = |secrets: Vec<Secret>, open_when_unset: bool| Verifier {
            scheme: Scheme::Gitlab,
            secrets: Secrets::Fixed(secrets),
            open_when_unset,
            invalid_status: StatusCode::FORBIDDEN,
        };
        let check = |verifier: &Verifier, presented: &str| {
            verifier.verify(&token(presented), b"{}", &vars(&[]))
        };
        let rotated = verifier(vec![secret("old"), secret("new")], false);
        assert_eq!(check(&rotated, "new"), Ok(Verified::Signed));
        assert_eq!(check(&rotated, "old"), Ok(Verified::Signed));
        assert!(check(&rotated, "other").is_err());
        assert_eq!(
            check(&verifier(Vec::new(), false), "new"),
            Err(VerifyError::NoSecret)
        );
        assert_eq!(
            check(&verifier(Vec::new(), true), "new"),
            Ok(Verified::Open)
        );
        // A configured secret is required even when the route would be
        // open without one.
        assert!(check(&verifier(vec![secret("new")], true), "other").is_err());
        let none = Verifier {
            scheme: Scheme::None,
            ..verifier(Vec::new(), false)
        };
        assert_eq!(check(&none, "anything"), Ok(Verified::Open));
    }

    #[test]
    fn per_request_secrets_come_from_the_named_variable() {
        let verifier = |open_when_unset: bool| Verifier {
            scheme: Scheme::Gitlab,
            secrets: Secrets::PerRequest {
                env_name: Template::parse("SECRET_{agent}").expect("valid template"),
                known: HashMap::from([("SECRET_a1".to_owned(), secret("a1-secret"))]),
            },
            open_when_unset,
            invalid_status: StatusCode::FORBIDDEN,
        };
        let check = |verifier: &Verifier, agent: &str, presented: &str| {
            let params = [("agent".to_owned(), agent.to_owned())];
            verifier.verify(&token(presented), b"{}", &vars(&params))
        };
        let closed = verifier(false);
        assert_eq!(check(&closed, "a1", "a1-secret"), Ok(Verified::Signed));
        assert!(check(&closed, "a1", "a2-secret").is_err());
        assert_eq!(
            check(&closed, "a2", "a1-secret"),
            Err(VerifyError::NoSecret)
        );
        // A value that cannot be a token names no variable.
        assert_eq!(
            check(&closed, "a.1", "a1-secret"),
            Err(VerifyError::NoSecret)
        );
        assert_eq!(check(&verifier(true), "a2", "anything"), Ok(Verified::Open));
    }
}
