//! From configuration to a verifier: secrets are resolved once
//! (per-request ones from the environment), and bad settings are reported
//! by key.

use super::*;
use crate::config::Config;

fn route(verifier: &str) -> String {
    format!(
        "[[routes]]\nname = \"r\"\npath = \"/r\"\nsubject = \"r\"\n[routes.verifier]\n{verifier}\n"
    )
}

fn load(verifier: &str, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    Config::from_toml(&route(verifier), &env).map_err(|error| error.problems)
}

fn example() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/examples/tidegate.toml"
    );
    std::fs::read_to_string(path).expect("example config is readable")
}

/// `deploy/examples/tidegate.toml` loaded with `env`.
fn load_example(env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    Config::from_toml(&example(), &env).map_err(|error| error.problems)
}

#[test]
fn none_must_be_explicit_and_takes_no_secret() {
    assert!(load("kind = \"none\"", &[]).is_ok());
    assert!(load("kind = \"none\"\nsecrets = [{ value = \"x\" }]", &[]).is_err());
    assert!(load("kind = \"github\"", &[]).is_err());
    assert!(load("kind = \"github\"\nif_unset = \"open\"", &[]).is_ok());
    assert!(load("kind = \"github\"\nsecrets = [{ value = \"\" }]", &[]).is_err());
}

#[test]
fn per_agent_secrets_are_read_from_the_environment() {
    let config = load_example(&[
        ("GITHUB_WEBHOOK_SECRET", "s"),
        ("TIDEGATE_API_TOKEN", "t"),
        ("WEBHOOK_SECRET_flickclaw_putio", "abc123"),
        ("UNRELATED", "x"),
    ])
    .expect("valid");
    let Secrets::PerRequest { known, .. } = &config.routes[1].verifier.secrets else {
        panic!("agent route resolves secrets per request");
    };
    assert_eq!(known.len(), 1);
    assert!(known.contains_key("WEBHOOK_SECRET_flickclaw_putio"));
}

#[test]
fn ambiguous_per_agent_secret_names_fail_at_start_up() {
    let ambiguous = load_example(&[
        ("GITHUB_WEBHOOK_SECRET", "s"),
        ("TIDEGATE_API_TOKEN", "t"),
        ("WEBHOOK_SECRET_flickclaw_putio", "fine"),
        ("WEBHOOK_SECRET_a_b_c", "either a_b/c or a/b_c"),
    ])
    .err()
    .unwrap_or_default();
    assert_eq!(ambiguous.len(), 1, "{ambiguous:#?}");
    assert!(
        ambiguous[0].contains("WEBHOOK_SECRET_a_b_c"),
        "{ambiguous:#?}"
    );
    assert!(
        !ambiguous[0].contains("either"),
        "the secret's value was printed"
    );
}
