//! Loading a configuration whose route secrets may be missing: operator
//! tools list routes (`tidegate routes`) on machines that hold no secrets.
//! Everything else is validated exactly as `Config::load` does.

use std::collections::{BTreeMap, HashMap};

use ::verify::Scheme;
use figment::Figment;

use super::raw::{RawConfig, RawSecretSource};
use super::verifier::SecretPolicy;
use super::{Config, ConfigError, compile, parse_raw};
use crate::verify::{Secrets, Verifier};

/// A configuration in which some routes may lack their secret.
#[derive(Debug)]
pub struct Lenient {
    pub config: Config,
    /// Routes whose required secret is not set, by name, each with where
    /// the secret is looked for (`env GITHUB_WEBHOOK_SECRET`, `file
    /// /run/secrets/x`). Their verifiers hold no secret and refuse every
    /// request: serve nothing with them.
    pub unset: BTreeMap<String, Vec<String>>,
}

impl Config {
    /// Like [`Config::load`], except that a secret that is not available (an
    /// unset or empty variable, an unreadable or empty file) is no problem:
    /// routes left without any secret are listed in [`Lenient::unset`]
    /// instead of failing the load. Routes that are open when unset stay
    /// open, as with `load`.
    pub fn load_lenient(
        figment: &Figment,
        env: &HashMap<String, String>,
    ) -> Result<Lenient, ConfigError> {
        let mut problems = Vec::new();
        let raw = parse_raw(figment, &mut problems)?;
        let mut sources = secret_sources(&raw);
        let config = compile(raw, env, SecretPolicy::Lenient, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let unset = config
            .routes
            .iter()
            .filter(|route| lacks_its_secret(&route.verifier))
            .map(|route| {
                let looked_in = sources.remove(&route.name).unwrap_or_default();
                (route.name.clone(), looked_in)
            })
            .collect();
        Ok(Lenient { config, unset })
    }
}

/// Whether a verifier needs a secret and has none: only a lenient load
/// compiles one.
fn lacks_its_secret(verifier: &Verifier) -> bool {
    verifier.scheme != Scheme::None
        && !verifier.open_when_unset
        && matches!(&verifier.secrets, Secrets::Fixed(secrets) if secrets.is_empty())
}

/// Where each route's fixed secrets are looked for, by route name.
fn secret_sources(raw: &RawConfig) -> HashMap<String, Vec<String>> {
    raw.routes
        .iter()
        .filter_map(|route| {
            let verifier = route.verifier.as_ref()?;
            Some((
                route.name.clone(),
                verifier.secrets.iter().map(describe).collect(),
            ))
        })
        .collect()
}

fn describe(source: &RawSecretSource) -> String {
    match (&source.env, &source.file) {
        (Some(name), _) => format!("env {name}"),
        (None, Some(file)) => format!("file {}", file.display()),
        (None, None) => "value".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Toml};

    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/examples/tidegate.toml");

    fn lenient(text: &str, env: &[(&str, &str)]) -> Result<Lenient, ConfigError> {
        let env = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Config::load_lenient(&Figment::from(Toml::string(text)), &env)
    }

    fn secret_count(config: &Config, route: &str) -> usize {
        let route = config
            .routes
            .iter()
            .find(|candidate| candidate.name == route)
            .expect("route exists");
        match &route.verifier.secrets {
            Secrets::Fixed(secrets) => secrets.len(),
            Secrets::PerRequest { known, .. } => known.len(),
        }
    }

    #[test]
    fn routes_without_their_secret_are_reported_not_refused() {
        assert!(Config::from_toml(EXAMPLE, &HashMap::new()).is_err());
        let loaded = lenient(EXAMPLE, &[]).expect("loads without secrets");
        assert_eq!(loaded.config.routes.len(), 7);
        let unset: Vec<(&str, &[String])> = loaded
            .unset
            .iter()
            .map(|(route, sources)| (route.as_str(), sources.as_slice()))
            .collect();
        assert_eq!(
            unset,
            [
                ("github", &["env GITHUB_WEBHOOK_SECRET".to_owned()][..]),
                ("plugin", &["env TIDEGATE_API_TOKEN".to_owned()][..]),
                ("plugin-queued", &["env TIDEGATE_API_TOKEN".to_owned()][..]),
            ]
        );
        // Nothing stands in for the missing secrets: these verifiers hold
        // none.
        assert_eq!(secret_count(&loaded.config, "github"), 0);
        assert_eq!(secret_count(&loaded.config, "plugin"), 0);
    }

    #[test]
    fn set_secrets_load_as_usual() {
        let env = [
            ("GITHUB_WEBHOOK_SECRET", "s3cret"),
            ("TIDEGATE_API_TOKEN", "t0ken"),
        ];
        let loaded = lenient(EXAMPLE, &env).expect("loads");
        assert!(loaded.unset.is_empty());
        assert_eq!(secret_count(&loaded.config, "github"), 1);
        assert_eq!(secret_count(&loaded.config, "plugin"), 1);
    }

    #[test]
    fn files_rotation_and_standard_webhooks_keys() {
        let text = r#"
[[routes]]
name = "svix"
path = "/svix"
subject = "svix"
[routes.verifier]
kind = "standard_webhooks"
secrets = [{ env = "SVIX_SECRET" }]

[[routes]]
name = "rotated"
path = "/rotated"
subject = "rotated"
[routes.verifier]
kind = "shared_secret"
secrets = [{ file = "/nonexistent/tidegate-secret" }, { env = "NEXT_SECRET" }]
"#;
        let loaded = lenient(text, &[("NEXT_SECRET", "next")]).expect("loads");
        assert_eq!(loaded.unset.keys().collect::<Vec<_>>(), ["svix"]);
        assert_eq!(secret_count(&loaded.config, "rotated"), 1);

        let loaded = lenient(text, &[]).expect("loads");
        assert_eq!(
            loaded.unset["rotated"],
            ["file /nonexistent/tidegate-secret", "env NEXT_SECRET"]
        );
    }

    #[test]
    fn other_problems_still_fail() {
        let text = r#"
[[routes]]
name = "bad"
path = "/bad"
subject = "bad"
methods = ["NOT A METHOD"]
[routes.verifier]
kind = "github"
secrets = [{ env = "UNSET" }]
"#;
        let error = lenient(text, &[]).expect_err("invalid method");
        assert!(
            error
                .problems
                .iter()
                .all(|problem| problem.contains(".methods:")),
            "{:?}",
            error.problems
        );
    }

    #[test]
    fn a_route_that_names_no_secret_still_fails() {
        let text = r#"
[[routes]]
name = "nameless"
path = "/nameless"
subject = "nameless"
[routes.verifier]
kind = "github"
"#;
        let error = lenient(text, &[]).expect_err("no secret source");
        assert!(
            error.problems[0].contains("(nameless).verifier.secrets: no secret is set"),
            "{:?}",
            error.problems
        );
    }
}
