//! From configuration to a verified request: each kind compiles with its
//! settings, bad settings are reported by key, secrets are resolved once
//! (per-request ones from the environment), and the compiled verifier
//! accepts what the provider sends.

use std::time::{SystemTime, UNIX_EPOCH};

use ::verify::{DEFAULT_TOLERANCE, VerifyError, github, shopify, slack, standard_webhooks, stripe};
use http::HeaderMap;

use super::*;
use crate::config::Config;
use crate::subject::Vars;
use crate::verify::Verified;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::try_from(*name).expect("valid header name"),
                value.parse().expect("valid header value"),
            )
        })
        .collect()
}

fn at(unix_seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_seconds)
}

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

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn kinds_compile_with_their_settings() {
    let minutes = |count: u64| Duration::from_secs(count * 60);
    let check = |verifier: &str, expected: Scheme| {
        let config = load(verifier, &[]).expect("valid verifier");
        assert_eq!(config.routes[0].verifier.scheme, expected, "{verifier}");
    };
    let secret = "secrets = [{ value = \"s3cret\" }]";
    let whsec = format!("secrets = [{{ value = \"{WHSEC}\" }}]");
    check(
        &format!("kind = \"github\"\n{secret}"),
        Scheme::Github { allow_sha1: false },
    );
    check(
        &format!("kind = \"github\"\nallow_sha1 = true\n{secret}"),
        Scheme::Github { allow_sha1: true },
    );
    check(
        &format!("kind = \"standard_webhooks\"\n{whsec}"),
        Scheme::StandardWebhooks {
            tolerance: DEFAULT_TOLERANCE,
        },
    );
    check(
        &format!("kind = \"standard_webhooks\"\ntolerance = \"10m\"\n{whsec}"),
        Scheme::StandardWebhooks {
            tolerance: minutes(10),
        },
    );
    check(
        &format!("kind = \"stripe\"\ntolerance = \"90s\"\n{secret}"),
        Scheme::Stripe {
            tolerance: Duration::from_secs(90),
        },
    );
    check(
        &format!("kind = \"slack\"\n{secret}"),
        Scheme::Slack {
            tolerance: minutes(5),
        },
    );
    check(&format!("kind = \"shopify\"\n{secret}"), Scheme::Shopify);
    check(&format!("kind = \"gitlab\"\n{secret}"), Scheme::Gitlab);

    let gitlab = load(&format!("kind = \"gitlab\"\n{secret}"), &[]).expect("valid");
    assert!(
        gitlab.routes[0]
            .drop_headers
            .contains(&HeaderName::from_static("x-gitlab-token"))
    );
}

#[test]
fn bad_settings_are_reported_by_key() {
    let check = |verifier: &str, env: &[(&str, &str)], prefix: &str| {
        let problems = load(verifier, env).err().unwrap_or_default();
        assert!(
            problems
                .iter()
                .any(|problem| problem.starts_with(&format!("routes[0] (r).verifier{prefix}"))),
            "no problem for {prefix:?} in {problems:#?}"
        );
        assert!(
            !problems.iter().any(|problem| problem.contains("base64!")),
            "a secret leaked into {problems:#?}"
        );
    };
    let secret = "secrets = [{ value = \"s3cret\" }]";
    check(
        &format!("kind = \"shopify\"\ntolerance = \"5m\"\n{secret}"),
        &[],
        ".tolerance: kind shopify signs no timestamp",
    );
    check(
        &format!("kind = \"stripe\"\ntolerance = \"soon\"\n{secret}"),
        &[],
        ".tolerance:",
    );
    check(
        &format!("kind = \"slack\"\ntolerance = \"0s\"\n{secret}"),
        &[],
        ".tolerance: must be at least 1s",
    );
    check(
        &format!("kind = \"slack\"\nallow_sha1 = true\n{secret}"),
        &[],
        ".allow_sha1:",
    );
    check(
        "kind = \"standard_webhooks\"\nsecrets = [{ value = \"whsec_not base64!\" }]",
        &[],
        ".secrets[0]: is not a Standard Webhooks secret",
    );
    check(
        "kind = \"standard_webhooks\"\nsecret_env = \"WH_{query.source}\"",
        &[("WH_shop", "whsec_not base64!")],
        ".secret_env (WH_shop): is not a Standard Webhooks secret",
    );
    check("kind = \"paypal\"", &[], ".kind: `paypal` is not one of");
}

/// Runs a request through the verifier compiled from `verifier`.
fn verify_with(
    verifier: &str,
    pairs: &[(&str, &str)],
    body: &[u8],
    now: u64,
) -> Result<Verified, VerifyError> {
    let config = load(verifier, &[]).expect("valid verifier");
    let vars = Vars {
        params: &[],
        query: &[],
        event: None,
        route: "r",
    };
    config.routes[0]
        .verifier
        .verify_at(&headers(pairs), body, &vars, at(now))
}

#[test]
fn compiled_verifiers_accept_what_providers_send() {
    let now = 1_700_000_000;
    let body = br#"{"id":"evt_1"}"#;
    let two = |kind: &str| {
        format!("kind = \"{kind}\"\nsecrets = [{{ value = \"old\" }}, {{ value = \"new\" }}]")
    };
    let check = |verifier: &str, pairs: &[(&str, &str)]| {
        assert_eq!(
            verify_with(verifier, pairs, body, now),
            Ok(Verified::Signed),
            "{verifier} {pairs:?}"
        );
    };

    let key = standard_webhooks::decode_key(&Secret::new(WHSEC).expect("non-empty"))
        .expect("valid secret");
    let signature = standard_webhooks::signature(key.expose(), "msg_1", now, body);
    check(
        &format!("kind = \"standard_webhooks\"\nsecrets = [{{ value = \"{WHSEC}\" }}]"),
        &[
            ("svix-id", "msg_1"),
            ("svix-timestamp", &now.to_string()),
            ("svix-signature", &signature),
        ],
    );
    check(
        &two("stripe"),
        &[("stripe-signature", &stripe::signature(b"new", now, body))],
    );
    check(
        &two("slack"),
        &[
            ("x-slack-signature", &slack::signature(b"new", now, body)),
            ("x-slack-request-timestamp", &now.to_string()),
        ],
    );
    check(
        &two("shopify"),
        &[("x-shopify-hmac-sha256", &shopify::signature(b"new", body))],
    );
    check(&two("gitlab"), &[("x-gitlab-token", "new")]);
    check(
        &two("github"),
        &[("x-hub-signature-256", &github::signature(b"new", body))],
    );
    check(
        &format!("{}\nallow_sha1 = true", two("github")),
        &[("x-hub-signature", &github::sha1_signature(b"new", body))],
    );
    // Without the opt-in, a SHA-1 signature is a missing SHA-256 one.
    assert_eq!(
        verify_with(
            &two("github"),
            &[("x-hub-signature", &github::sha1_signature(b"new", body))],
            body,
            now
        ),
        Err(VerifyError::Missing {
            header: HeaderName::from_static("x-hub-signature-256")
        })
    );
}

#[test]
fn the_route_tolerance_applies() {
    let now = 1_700_000_000;
    let verifier = "kind = \"stripe\"\ntolerance = \"1m\"\nsecrets = [{ value = \"s\" }]";
    let signed = stripe::signature(b"s", now, b"{}");
    let pairs = [("stripe-signature", signed.as_str())];
    assert_eq!(
        verify_with(verifier, &pairs, b"{}", now + 60),
        Ok(Verified::Signed)
    );
    let stale = verify_with(verifier, &pairs, b"{}", now + 61);
    assert_eq!(
        stale,
        Err(VerifyError::stale(HeaderName::from_static(
            "stripe-signature"
        )))
    );
    assert_eq!(stale.err().map(|error| error.reason()), Some("stale"));
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
