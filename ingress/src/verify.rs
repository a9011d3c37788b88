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
    /// One secret per request, from the first environment variable that is
    /// set among the names rendered from the request
    /// (`WEBHOOK_SECRET_{agentId}_{query.source}`, then
    /// `WEBHOOK_SECRET_{agentId}`): the most specific wins. The environment
    /// is read once at start-up.
    PerRequest {
        env_names: Vec<EnvName>,
        known: HashMap<String, Secret>,
    },
}

/// A `secret_env` template. Its literal text after the first placeholder
/// separates values with `_`, so a value containing `_` could make two
/// requests name one variable (`a_b` + `c` and `a` + `b_c`): such a value
/// names no variable with this template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvName {
    pub template: Template,
    /// The literal text before the first placeholder (`WEBHOOK_SECRET_`).
    prefix: String,
    /// `_` in the literal text after the prefix.
    separators: usize,
}

impl EnvName {
    pub fn parse(text: &str) -> Result<EnvName, String> {
        let template = Template::parse(text)?;
        let prefix = text.split('{').next().unwrap_or_default().to_owned();
        let mut separators = 0;
        let mut inside = false;
        for character in text[prefix.len()..].chars() {
            match character {
                '{' => inside = true,
                '}' => inside = false,
                '_' if !inside => separators += 1,
                _ => {}
            }
        }
        Ok(EnvName {
            template,
            prefix,
            separators,
        })
    }

    /// The literal text every name this template renders starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this template can name `variable` from values without `_`:
    /// it has the prefix and no more `_` after it than the separators.
    pub fn can_name(&self, variable: &str) -> bool {
        variable
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.matches('_').count() <= self.separators)
    }

    /// The variable this request names; `None` when a value is missing,
    /// cannot be a token, or contains `_`.
    pub fn render(&self, vars: &Vars<'_>) -> Option<String> {
        let name = self.template.render(vars).ok()?;
        let rest = &name[self.prefix.len()..];
        (rest.matches('_').count() == self.separators).then_some(name)
    }
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
            // The first template naming a variable that is set wins (the
            // pair before the agent). A request whose values name none has
            // no secret; the route's open/closed rule decides.
            Secrets::PerRequest { env_names, known } => env_names
                .iter()
                .find_map(|env_name| known.get(&env_name.render(vars)?))
                .map_or(&[], std::slice::from_ref),
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
                env_names: vec![EnvName::parse("SECRET_{agent}").expect("valid template")],
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

    #[test]
    fn the_pair_secret_wins_over_the_agent_secret() {
        let verifier = |open_when_unset: bool| Verifier {
            scheme: Scheme::Gitlab,
            secrets: Secrets::PerRequest {
                env_names: vec![
                    EnvName::parse("S_{agent}_{query.source}").expect("valid template"),
                    EnvName::parse("S_{agent}").expect("valid template"),
                ],
                known: HashMap::from([
                    ("S_a_p".to_owned(), secret("pair")),
                    ("S_a".to_owned(), secret("agent")),
                    ("S_x_y".to_owned(), secret("x-y")),
                ]),
            },
            open_when_unset,
            invalid_status: StatusCode::FORBIDDEN,
        };
        let check = |verifier: &Verifier, agent: &str, source: &str, presented: &str| {
            let params = [("agent".to_owned(), agent.to_owned())];
            let query = [("source".to_owned(), source.to_owned())];
            let vars = Vars {
                params: &params,
                query: &query,
                event: None,
                route: "r",
            };
            verifier.verify(&token(presented), b"{}", &vars)
        };
        let open = verifier(true);
        assert_eq!(check(&open, "a", "p", "pair"), Ok(Verified::Signed));
        assert!(check(&open, "a", "p", "agent").is_err(), "pair wins");
        assert_eq!(check(&open, "a", "other", "agent"), Ok(Verified::Signed));
        assert!(check(&open, "a", "other", "pair").is_err());
        assert_eq!(check(&open, "b", "p", "anything"), Ok(Verified::Open));
        // Agent `x_y` renders `S_x_y` with the agent template: that is the
        // pair x/y's variable, so it must name nothing.
        assert_eq!(check(&open, "x_y", "z", "x-y"), Ok(Verified::Open));
        assert_eq!(
            check(&verifier(false), "x_y", "z", "x-y"),
            Err(VerifyError::NoSecret)
        );
        // A source with `_` skips the pair template; the agent secret holds.
        assert_eq!(check(&open, "a", "p_q", "agent"), Ok(Verified::Signed));
        assert!(check(&open, "a", "p_q", "wrong").is_err());
    }
}
