//! `[consumer_api]` compiled into an `ApiConfig`: the bearer tokens (the
//! `verify` crate's bearer scheme, resolved like any route's secrets), the
//! visibility timeout, the largest batch and the agents it serves.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::Deserialize;

use super::raw::{RawSecretSource, RawVerifier};
use super::verifier::{SecretPolicy, compile_verifier};
use crate::consumer_api::{Agents, ApiConfig, DELETE_PATH, PENDING_PATH};
use crate::subject::check_token;
use broker::settings::parse_duration;

/// `[consumer_api]` as written. Present means enabled.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsumerApi {
    /// Bearer tokens; any may be presented (rotation).
    #[serde(default)]
    tokens: Vec<RawSecretSource>,
    /// How long an item handed out stays invisible to other pollers.
    #[serde(default)]
    visibility_timeout: Option<String>,
    /// Largest `limit` a GET may ask for, and what it gets without one.
    #[serde(default)]
    max_items: Option<u64>,
    /// Agents served; `["*"]` (the default) is every agent.
    #[serde(default)]
    agents: Option<Vec<String>>,
    /// Agents never served (those `tidegate-inbox` owns).
    #[serde(default)]
    exclude_agents: Vec<String>,
}

const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DEFAULT_MAX_ITEMS: u64 = 100;
/// Bounds one response (and the fetches behind it).
const MAX_ITEMS_LIMIT: u64 = 1000;

pub(super) fn compile(
    raw: RawConsumerApi,
    route_paths: &[&str],
    env: &HashMap<String, String>,
    policy: SecretPolicy,
    problems: &mut Vec<String>,
) -> Option<ApiConfig> {
    let before = problems.len();
    let key = "consumer_api";
    if raw.tokens.is_empty() {
        problems.push(format!(
            "{key}.tokens: name at least one, e.g. [{{ env = \"TIDEGATE_API_TOKEN\" }}]; the consumer API is never open"
        ));
    }
    let verifier = compile_verifier(
        &format!("{key}.tokens"),
        RawVerifier {
            kind: "bearer".to_owned(),
            secrets: raw.tokens,
            secret_env: None,
            header: None,
            if_unset: None,
            invalid_status: None,
            tolerance: None,
            allow_sha1: None,
        },
        &[],
        env,
        policy,
        problems,
    );
    let visibility_timeout = match raw.visibility_timeout.as_deref().map(parse_duration) {
        None => DEFAULT_VISIBILITY_TIMEOUT,
        Some(Ok(timeout)) if timeout >= Duration::from_secs(1) => timeout,
        Some(Ok(_)) => {
            problems.push(format!("{key}.visibility_timeout: must be at least 1s"));
            DEFAULT_VISIBILITY_TIMEOUT
        }
        Some(Err(why)) => {
            problems.push(format!("{key}.visibility_timeout: {why}"));
            DEFAULT_VISIBILITY_TIMEOUT
        }
    };
    let max_items = raw.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
    if !(1..=MAX_ITEMS_LIMIT).contains(&max_items) {
        problems.push(format!(
            "{key}.max_items: {max_items} is not between 1 and {MAX_ITEMS_LIMIT}"
        ));
    }
    let mut tokens = |field: &str, names: &[String]| -> BTreeSet<String> {
        names
            .iter()
            .filter(|name| {
                let valid = check_token(name);
                if let Err(why) = &valid {
                    problems.push(format!("{key}.{field}: `{name}` {why}"));
                }
                valid.is_ok()
            })
            .cloned()
            .collect()
    };
    let agents = match raw.agents.as_deref() {
        None => Agents::All,
        Some([all]) if all == "*" => Agents::All,
        Some(names) => Agents::Only(tokens("agents", names)),
    };
    let excluded = tokens("exclude_agents", &raw.exclude_agents);
    for path in [PENDING_PATH, DELETE_PATH] {
        if route_paths.contains(&path) {
            problems.push(format!(
                "{key}: a route uses {path}, which the consumer API serves"
            ));
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(ApiConfig {
        verifier: verifier?,
        visibility_timeout,
        max_items: usize::try_from(max_items).expect("at most 1000"),
        agents,
        excluded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::verify::Secrets;

    const ROUTE: &str = "[[routes]]\nname = \"agent\"\npath = \"/api/webhook/{agentId}\"\nsubject = \"agent.{agentId}\"\n[routes.verifier]\nkind = \"none\"\n";

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Config::from_toml(text, &env).map_err(|error| error.problems)
    }

    #[test]
    fn the_api_serves_the_agents_it_is_given() {
        let text = format!(
            "{ROUTE}[consumer_api]\ntokens = [{{ env = \"T\" }}]\nvisibility_timeout = \"30s\"\nmax_items = 10\nagents = [\"a\", \"b\"]\nexclude_agents = [\"b\"]\n"
        );
        let config = load(&text, &[("T", "t0ken")]).expect("valid");
        let api = config.consumer_api.expect("configured");
        assert_eq!(api.visibility_timeout, Duration::from_secs(30));
        assert_eq!(api.max_items, 10);
        assert!(api.serves("a"));
        assert!(!api.serves("b"), "excluded");
        assert!(!api.serves("c"), "not listed");
        let defaults = load(
            &format!("{ROUTE}[consumer_api]\ntokens = [{{ env = \"T\" }}]\n"),
            &[("T", "t0ken")],
        )
        .expect("valid")
        .consumer_api
        .expect("configured");
        assert_eq!(defaults.visibility_timeout, DEFAULT_VISIBILITY_TIMEOUT);
        assert_eq!(defaults.max_items, 100);
        assert!(defaults.serves("anyone"));
        assert!(load(ROUTE, &[]).expect("valid").consumer_api.is_none());
    }

    #[test]
    fn every_bad_key_is_reported_and_the_api_is_never_open() {
        let text = format!(
            "{ROUTE}[consumer_api]\nvisibility_timeout = \"0s\"\nmax_items = 0\nagents = [\"a.b\"]\n"
        );
        let problems = load(&text, &[]).expect_err("invalid").join("\n");
        for expected in [
            "consumer_api.tokens: name at least one",
            "consumer_api.visibility_timeout: must be at least 1s",
            "consumer_api.max_items: 0 is not between 1 and 1000",
            "consumer_api.agents: `a.b`",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} missing from {problems}"
            );
        }
        let unset = load(
            &format!("{ROUTE}[consumer_api]\ntokens = [{{ env = \"T\" }}]\n"),
            &[],
        )
        .expect_err("no token set")
        .join("\n");
        assert!(
            unset.contains("consumer_api.tokens.secrets: no secret is set"),
            "{unset}"
        );
        let taken = "[[routes]]\nname = \"p\"\npath = \"/api/webhook/pending\"\nsubject = \"p\"\n[routes.verifier]\nkind = \"none\"\n[consumer_api]\ntokens = [{ value = \"t\" }]\n";
        let problems = load(taken, &[]).expect_err("path taken").join("\n");
        assert!(
            problems.contains("a route uses /api/webhook/pending"),
            "{problems}"
        );
    }

    #[test]
    fn the_example_stores_bodies_as_is_and_keeps_flickclaw_for_the_inbox() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/tidegate.toml"
        );
        let text = std::fs::read_to_string(path).expect("example config is readable");
        let config = load(
            &text,
            &[
                ("GITHUB_WEBHOOK_SECRET", "s"),
                ("TIDEGATE_API_TOKEN", "t"),
                ("WEBHOOK_SECRET_flickclaw_putio", "abc123"),
                ("WEBHOOK_SECRET_stewardclaw", "agent-wide"),
                ("WEBHOOK_SECRET_a_b_c", "ambiguous"),
            ],
        )
        .expect_err("an ambiguous variable")
        .join("\n");
        assert!(config.contains("WEBHOOK_SECRET_a_b_c"), "{config}");
        assert!(
            !config.contains("WEBHOOK_SECRET_flickclaw_putio"),
            "{config}"
        );
        let config = load(
            &text,
            &[
                ("GITHUB_WEBHOOK_SECRET", "s"),
                ("TIDEGATE_API_TOKEN", "t"),
                ("WEBHOOK_SECRET_flickclaw_putio", "abc123"),
                ("WEBHOOK_SECRET_stewardclaw", "agent-wide"),
            ],
        )
        .expect("valid");
        let agent = &config.routes[1];
        assert!(!agent.validate_json);
        let Secrets::PerRequest { env_names, known } = &agent.verifier.secrets else {
            panic!("the agent route reads its secrets per request");
        };
        assert_eq!(env_names.len(), 2);
        assert_eq!(known.len(), 2);
        let api = config.consumer_api.expect("the example enables the API");
        assert!(!api.serves("flickclaw"));
        assert!(api.serves("stewardclaw"));
        assert!(
            config
                .routes
                .iter()
                .all(|route| route.validate_json || route.name == "agent")
        );
    }
}
