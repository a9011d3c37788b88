//! Loading a configuration whose route secrets may be missing: operator
//! tools list routes (`tidegate routes`) on machines that hold no secrets.
//! Everything else is validated exactly as `Config::load` does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use figment::Figment;

use super::raw::{RawConfig, RawSecretSource};
use super::{Config, ConfigError, compile, parse_raw};
use crate::verify::Secrets;

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
        let mut raw = parse_raw(figment, &mut problems)?;
        let unset = stand_in_for_unset(&mut raw, env);
        let mut config = compile(raw, env, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        for route in &mut config.routes {
            if unset.contains_key(&route.name) {
                let route = Arc::get_mut(route).expect("routes are not shared before load returns");
                route.verifier.secrets = Secrets::Fixed(Vec::new());
            }
        }
        Ok(Lenient { config, unset })
    }
}

/// A stand-in that compiles for every scheme (a Standard Webhooks key is
/// base64 after `whsec_`); removed again once the route is compiled.
const STAND_IN: &str = "whsec_c3RhbmQtaW4=";

/// Drops unavailable secret sources; a route left with none (and not open
/// when unset) gets a stand-in and is returned with what it lacks.
fn stand_in_for_unset(
    raw: &mut RawConfig,
    env: &HashMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let mut unset = BTreeMap::new();
    for route in &mut raw.routes {
        let Some(verifier) = route.verifier.as_mut() else {
            continue;
        };
        if verifier.kind == "none" || verifier.secret_env.is_some() {
            continue;
        }
        let (available, missing): (Vec<_>, Vec<_>) = std::mem::take(&mut verifier.secrets)
            .into_iter()
            .partition(|source| is_available(source, env));
        verifier.secrets = available;
        if verifier.secrets.is_empty()
            && !missing.is_empty()
            && verifier.if_unset.as_deref() != Some("open")
        {
            unset.insert(route.name.clone(), missing.iter().map(describe).collect());
            verifier.secrets.push(RawSecretSource {
                env: None,
                file: None,
                value: Some(STAND_IN.to_owned()),
            });
        }
    }
    unset
}

/// Whether `source` resolves to a secret. Malformed sources count as
/// available, so that the load reports them.
fn is_available(source: &RawSecretSource, env: &HashMap<String, String>) -> bool {
    match (&source.env, &source.file, &source.value) {
        (Some(name), None, None) => env.get(name).is_some_and(|value| !value.is_empty()),
        (None, Some(file), None) => std::fs::read(file)
            .is_ok_and(|bytes| bytes.iter().any(|byte| !byte.is_ascii_whitespace())),
        _ => true,
    }
}

fn describe(source: &RawSecretSource) -> String {
    match (&source.env, &source.file) {
        (Some(name), _) => format!("env {name}"),
        (None, Some(file)) => format!("file {file}"),
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
        assert_eq!(loaded.config.routes.len(), 4);
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
            ]
        );
        // The stand-in never survives: these verifiers hold nothing.
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
}
