//! From configuration to a verified request: each kind compiles with its
//! settings, bad settings are reported by key, and the compiled verifier
//! accepts what the provider sends.

use std::collections::HashMap;

use super::test_support::{at, headers};
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

    let key = decode_standard_webhooks_secret(&Secret::new(WHSEC).expect("non-empty"))
        .expect("valid secret");
    let signature = sign_standard_webhooks(key.expose(), "msg_1", now, body);
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
        &[("stripe-signature", &sign_stripe(b"new", now, body))],
    );
    check(
        &two("slack"),
        &[
            ("x-slack-signature", &sign_slack(b"new", now, body)),
            ("x-slack-request-timestamp", &now.to_string()),
        ],
    );
    check(
        &two("shopify"),
        &[("x-shopify-hmac-sha256", &sign_shopify(b"new", body))],
    );
    check(&two("gitlab"), &[("x-gitlab-token", "new")]);
    check(
        &two("github"),
        &[("x-hub-signature-256", &sign_github(b"new", body))],
    );
    check(
        &format!("{}\nallow_sha1 = true", two("github")),
        &[("x-hub-signature", &sign_github_sha1(b"new", body))],
    );
    // Without the opt-in, a SHA-1 signature is a missing SHA-256 one.
    assert_eq!(
        verify_with(
            &two("github"),
            &[("x-hub-signature", &sign_github_sha1(b"new", body))],
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
    let signed = sign_stripe(b"s", now, b"{}");
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

#[test]
fn timestamps_and_freshness() {
    let check = |text: &str, expected: Option<u64>| {
        assert_eq!(unix_seconds(text.as_bytes()), expected, "{text:?}");
    };
    check("1531420618", Some(1_531_420_618));
    check("0", Some(0));
    check("", None);
    check("-5", None);
    check("+5", None);
    check("15.5", None);
    check(" 15", None);
    check("99999999999999999999999", None);

    let now = at(1_000);
    let tolerance = Duration::from_secs(300);
    assert!(is_fresh(1_000, now, tolerance));
    assert!(is_fresh(700, now, tolerance));
    assert!(is_fresh(1_300, now, tolerance));
    assert!(!is_fresh(699, now, tolerance));
    assert!(!is_fresh(1_301, now, tolerance));
}

#[test]
fn reasons_are_distinct() {
    let header = HeaderName::from_static("x-test");
    assert_eq!(VerifyError::invalid(header.clone()).reason(), "invalid");
    assert_eq!(VerifyError::stale(header.clone()).reason(), "stale");
    assert_eq!(
        VerifyError::invalid(header.clone()).to_string(),
        "invalid x-test header"
    );
    assert_eq!(
        VerifyError::stale(header).to_string(),
        "stale x-test header"
    );
}
