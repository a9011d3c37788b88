//! `tidegate routes`: every configured route with its full URL, methods,
//! verifier kind, mode and state. Needs no secrets and never prints one.

use http::Method;
use ingress::config::{Config, Lenient, Mode, Route};
use ingress::verify::Secrets;
use serde::Serialize;
use verify::Scheme;

use crate::common::Common;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub(crate) struct RoutesArgs {
    #[command(flatten)]
    common: Common,
}

pub(crate) fn run(args: RoutesArgs) -> anyhow::Result<()> {
    let loaded = args.common.ingress_config_lenient()?;
    let listed = list(&loaded);
    if args.common.json {
        for route in &listed {
            println!("{}", serde_json::to_string(route)?);
        }
    } else {
        print!("{}", table(&listed).render());
    }
    for (route, sources) in &loaded.unset {
        eprintln!(
            "note: route {route} has no secret ({} unset): the ingress will not start and \
             `tidegate send {route}` cannot sign until it is set",
            sources.join(", ")
        );
    }
    Ok(())
}

/// One route as listed. Holds no secret material by construction.
#[derive(Debug, Serialize)]
pub(crate) struct Listed<'a> {
    name: &'a str,
    url: String,
    methods: Vec<&'a str>,
    verifier: &'static str,
    secret: SecretState,
    /// Where an unset secret is looked for (`env NAME`, `file PATH`).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    secret_sources: &'a [String],
    mode: &'static str,
    enabled: bool,
}

/// Whether a route's verifier has what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SecretState {
    /// At least one secret is configured.
    Set,
    /// None is: the ingress will not start (`Lenient::unset`).
    Unset,
    /// None is, and the route accepts unsigned requests (`if_unset = "open"`).
    Open,
    /// Looked up per request from a variable named by the request.
    PerRequest,
    /// `kind = "none"`.
    None,
}

impl SecretState {
    pub(crate) fn of(route: &Route, lenient: &Lenient) -> SecretState {
        let verifier = &route.verifier;
        match &verifier.secrets {
            _ if verifier.scheme == Scheme::None => SecretState::None,
            _ if lenient.unset.contains_key(&route.name) => SecretState::Unset,
            Secrets::PerRequest { .. } => SecretState::PerRequest,
            Secrets::Fixed(secrets) if !secrets.is_empty() => SecretState::Set,
            Secrets::Fixed(_) if verifier.open_when_unset => SecretState::Open,
            Secrets::Fixed(_) => SecretState::Unset,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            SecretState::Set => "set",
            SecretState::Unset => "unset",
            SecretState::Open => "unset: open",
            SecretState::PerRequest => "per request",
            SecretState::None => "-",
        }
    }
}

pub(crate) fn list(loaded: &Lenient) -> Vec<Listed<'_>> {
    let config: &Config = &loaded.config;
    config
        .routes
        .iter()
        .map(|route| Listed {
            name: &route.name,
            url: format!("{}{}", config.public_url, route.path),
            methods: route.methods.iter().map(Method::as_str).collect(),
            verifier: route.verifier.scheme.kind(),
            secret: SecretState::of(route, loaded),
            secret_sources: loaded.unset.get(&route.name).map_or(&[][..], Vec::as_slice),
            mode: match route.mode {
                Mode::Async => "async",
                Mode::Sync => "sync",
            },
            enabled: route.enabled,
        })
        .collect()
}

fn table(listed: &[Listed<'_>]) -> Table {
    let mut table = Table::new(&[
        "ROUTE", "METHODS", "URL", "VERIFIER", "SECRET", "MODE", "STATE",
    ]);
    for route in listed {
        table.row(vec![
            route.name.to_owned(),
            route.methods.join(","),
            route.url.clone(),
            route.verifier.to_owned(),
            route.secret.describe().to_owned(),
            route.mode.to_owned(),
            if route.enabled { "enabled" } else { "disabled" }.to_owned(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;

    const EXAMPLE: &str = include_str!("../../deploy/examples/tidegate.toml");

    fn load(env: &[(&str, &str)]) -> Lenient {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Config::load_lenient(&Figment::from(Toml::string(EXAMPLE)), &env).expect("example loads")
    }

    #[test]
    fn lists_the_example_without_secrets() {
        let loaded = load(&[]);
        let text = table(&list(&loaded)).render();
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|line| {
                line.split("  ")
                    .map(str::trim)
                    .filter(|cell| !cell.is_empty())
                    .collect()
            })
            .collect();
        let url = |path: &str| format!("http://127.0.0.1:8080{path}");
        let github = url("/v1/webhooks/connectors/github");
        let agent = url("/api/webhook/{agentId}");
        let workflow = url("/webhooks/{workflow}");
        let plugin = url("/webhook/{plugin}/{command}");
        let callback = url("/webhook/withings/oauth_callback");
        let redirect = url("/api/withings/");
        let expected: [&[&str]; 8] = [
            &[
                "ROUTE", "METHODS", "URL", "VERIFIER", "SECRET", "MODE", "STATE",
            ],
            &[
                "github", "POST", &github, "github", "unset", "async", "enabled",
            ],
            &[
                "agent",
                "POST",
                &agent,
                "shared_secret",
                "per request",
                "async",
                "enabled",
            ],
            &[
                "workflow",
                "POST",
                &workflow,
                "github",
                "unset: open",
                "async",
                "enabled",
            ],
            &[
                "plugin", "GET", &plugin, "bearer", "unset", "sync", "enabled",
            ],
            &[
                "plugin-queued",
                "POST",
                &plugin,
                "bearer",
                "unset",
                "async",
                "enabled",
            ],
            &[
                "withings-callback",
                "GET",
                &callback,
                "none",
                "-",
                "sync",
                "enabled",
            ],
            &[
                "withings-redirect",
                "GET",
                &redirect,
                "none",
                "-",
                "sync",
                "enabled",
            ],
        ];
        assert_eq!(rows, expected, "{text}");
    }

    #[test]
    fn json_names_the_missing_variable_but_never_a_value() {
        let loaded = load(&[("TIDEGATE_API_TOKEN", "t0ken-value")]);
        let json: Vec<String> = list(&loaded)
            .iter()
            .map(|route| serde_json::to_string(route).expect("serializes"))
            .collect();
        assert!(
            json[0].contains(r#""secret":"unset","secret_sources":["env GITHUB_WEBHOOK_SECRET"]"#)
        );
        assert!(json[3].contains(r#""secret":"set""#), "{}", json[3]);
        assert!(json.iter().all(|line| !line.contains("t0ken-value")));
    }
}
