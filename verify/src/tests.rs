//! Across schemes: kind names, the headers `sign` makes, timestamps, error
//! labels, and the round trip `verify(sign(message)) == Ok` for every scheme,
//! body and key (proptest).

use std::time::Duration;

use http::{HeaderMap, HeaderName};
use proptest::prelude::*;

use crate::test_support::at;
use crate::timestamp::{is_fresh, unix_seconds};
use crate::{Fault, Message, Scheme, Secret, SignError, VerifyError, standard_webhooks};

#[test]
fn every_kind_parses_back_to_its_scheme() {
    for scheme in Scheme::ALL {
        assert_eq!(scheme.kind().parse::<Scheme>(), Ok(scheme.clone()));
    }
    let error = "paypal".parse::<Scheme>().expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "`paypal` is not one of none, github, standard_webhooks, stripe, slack, shopify, \
         gitlab, shared_secret, bearer"
    );
    assert!("GitHub".parse::<Scheme>().is_err());
    assert!("".parse::<Scheme>().is_err());
}

#[test]
fn defaults_and_credential_headers() {
    let parse = |kind: &str| kind.parse::<Scheme>().expect("known kind");
    assert_eq!(parse("github"), Scheme::Github { allow_sha1: false });
    assert_eq!(
        parse("slack").tolerance(),
        Some(Duration::from_secs(5 * 60))
    );
    assert_eq!(parse("shopify").tolerance(), None);
    let credential = |kind: &str| {
        parse(kind)
            .credential_header()
            .map(|header| header.as_str().to_owned())
    };
    assert_eq!(
        credential("shared_secret").as_deref(),
        Some("x-webhook-secret")
    );
    assert_eq!(credential("gitlab").as_deref(), Some("x-gitlab-token"));
    assert_eq!(credential("bearer").as_deref(), Some("authorization"));
    assert_eq!(credential("github"), None);
}

/// The header names and values each scheme sends, for one message.
#[test]
fn sign_makes_the_providers_headers() {
    let message = Message {
        body: b"{}",
        id: "msg_1",
        timestamp: 1_700_000_000,
    };
    let key = Secret::new("k3y").expect("non-empty");
    let check = |kind: &str, expected: &[(&str, &str)]| {
        let headers = kind
            .parse::<Scheme>()
            .expect("known kind")
            .sign(&key, &message)
            .expect("signs");
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        let mut expected_names: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
        expected_names.sort_unstable();
        assert_eq!(names, expected_names, "{kind}");
        for (name, value) in expected {
            assert_eq!(headers[*name], *value, "{kind} {name}");
        }
    };
    check("none", &[]);
    check(
        "github",
        &[(
            "x-hub-signature-256",
            &crate::github::signature(b"k3y", b"{}"),
        )],
    );
    check(
        "standard_webhooks",
        &[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1700000000"),
            (
                "webhook-signature",
                &standard_webhooks::signature(b"k3y", "msg_1", 1_700_000_000, b"{}"),
            ),
        ],
    );
    check(
        "stripe",
        &[(
            "stripe-signature",
            &crate::stripe::signature(b"k3y", 1_700_000_000, b"{}"),
        )],
    );
    check(
        "slack",
        &[
            ("x-slack-request-timestamp", "1700000000"),
            (
                "x-slack-signature",
                &crate::slack::signature(b"k3y", 1_700_000_000, b"{}"),
            ),
        ],
    );
    check(
        "shopify",
        &[(
            "x-shopify-hmac-sha256",
            &crate::shopify::signature(b"k3y", b"{}"),
        )],
    );
    check("gitlab", &[("x-gitlab-token", "k3y")]);
    check("shared_secret", &[("x-webhook-secret", "k3y")]);
    check("bearer", &[("authorization", "Bearer k3y")]);

    // Credentials sent as is are sensitive; signatures are not.
    let bearer = Scheme::Bearer.sign(&key, &message).expect("signs");
    assert!(bearer["authorization"].is_sensitive());
    let github = Scheme::Github { allow_sha1: false }
        .sign(&key, &message)
        .expect("signs");
    assert!(!github["x-hub-signature-256"].is_sensitive());
}

#[test]
fn values_a_header_cannot_carry_are_refused() {
    let message = Message {
        body: b"{}",
        id: "line\nbreak",
        timestamp: 1,
    };
    let key = Secret::new("k3y").expect("non-empty");
    let scheme = Scheme::StandardWebhooks {
        tolerance: Duration::from_secs(300),
    };
    assert_eq!(
        scheme.sign(&key, &message),
        Err(SignError::NotHeaderText {
            header: standard_webhooks::ID
        })
    );
    let newline = Secret::new("a\nb").expect("non-empty");
    assert!(Scheme::Gitlab.sign(&newline, &message).is_err());
}

#[test]
fn keys_come_from_secrets_as_configured() {
    let configured = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("non-empty");
    let standard = "standard_webhooks".parse::<Scheme>().expect("known");
    let key = standard.key(configured.clone()).expect("valid secret");
    assert_eq!(key.expose().len(), 24);
    assert_eq!(Scheme::Shopify.key(configured.clone()), Some(configured));
    let not_base64 = Secret::new("whsec_not base64!").expect("non-empty");
    assert_eq!(standard.key(not_base64), None);
}

#[test]
fn without_keys_only_none_accepts() {
    let headers = HeaderMap::new();
    for scheme in Scheme::ALL {
        let result = scheme.verify(&[], &headers, b"{}", at(0));
        if scheme == Scheme::None {
            assert_eq!(result, Ok(()));
        } else {
            assert_eq!(result, Err(VerifyError::NoSecret), "{}", scheme.kind());
        }
    }
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
    assert_eq!(VerifyError::NoSecret.reason(), "no_secret");
    assert_eq!(
        VerifyError::Missing {
            header: header.clone()
        }
        .reason(),
        "missing"
    );
    assert_eq!(
        VerifyError::invalid(header.clone()).to_string(),
        "invalid x-test header"
    );
    assert_eq!(
        VerifyError::stale(header).to_string(),
        "stale x-test header"
    );
}

/// Every scheme, with both GitHub settings and a custom shared-secret
/// header.
fn schemes() -> Vec<Scheme> {
    let mut schemes = Scheme::ALL.to_vec();
    schemes.push(Scheme::Github { allow_sha1: true });
    schemes.push(Scheme::SharedSecret {
        header: HeaderName::from_static("x-api-key"),
    });
    schemes
}

/// Bytes an HTTP header value can carry (no controls but tab).
fn is_header_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|byte| *byte == b'\t' || (*byte >= 0x20 && *byte != 0x7f))
}

const TOLERANCE: u64 = 5 * 60;

proptest! {
    /// Whatever the body and key, what `sign` makes verifies with that key,
    /// also among rotated keys, within the tolerance; a stale timestamp is
    /// `Stale`, a flipped body byte breaks every signature, and a stranger's
    /// key is a mismatch.
    #[test]
    fn verify_accepts_what_sign_makes(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        key in proptest::collection::vec(any::<u8>(), 1..64),
        id in "[!-~]{0,40}",
        timestamp in 0u64..(1 << 40),
        offset in -(2 * TOLERANCE as i64)..=(2 * TOLERANCE as i64),
        flip in any::<(usize, u8)>(),
    ) {
        let key = Secret::new(key).expect("non-empty");
        let stranger = Secret::new([key.expose(), b"-stranger"].concat()).expect("non-empty");
        let message = Message { body: &body, id: &id, timestamp };
        let now_seconds = timestamp.saturating_add_signed(offset);
        let now = at(now_seconds);
        let fresh = now_seconds.abs_diff(timestamp) <= TOLERANCE;
        for scheme in schemes() {
            let headers = match scheme.sign(&key, &message) {
                Ok(headers) => headers,
                Err(SignError::NotHeaderText { .. }) => {
                    // Only a key sent as is can fail, and only when a
                    // header cannot carry it.
                    prop_assert!(scheme.credential_header().is_some());
                    prop_assert!(!is_header_text(key.expose()));
                    continue;
                }
            };
            let rotated = [stranger.clone(), key.clone()];
            let result = scheme.verify(&rotated, &headers, &body, now);
            match scheme.tolerance() {
                Some(_) if !fresh => prop_assert!(
                    matches!(result, Err(VerifyError::Invalid { fault: Fault::Stale, .. })),
                    "{} {result:?}", scheme.kind()
                ),
                _ => prop_assert_eq!(&result, &Ok(()), "{}", scheme.kind()),
            }
            if scheme == Scheme::None {
                continue;
            }
            let refused = scheme.verify(std::slice::from_ref(&stranger), &headers, &body, now);
            prop_assert!(
                matches!(refused, Err(VerifyError::Invalid { fault: Fault::Mismatch, .. })),
                "{} {refused:?}", scheme.kind()
            );
            if scheme.credential_header().is_none() && !body.is_empty() {
                let mut tampered = body.clone();
                tampered[flip.0 % body.len()] ^= flip.1.max(1);
                let result = scheme.verify(&rotated, &headers, &tampered, now);
                prop_assert!(
                    matches!(result, Err(VerifyError::Invalid { fault: Fault::Mismatch, .. })),
                    "{} {result:?}", scheme.kind()
                );
            }
        }
    }

    /// `whsec_` secrets written by `encode_key` decode to their key.
    #[test]
    fn standard_webhooks_keys_round_trip(key in proptest::collection::vec(any::<u8>(), 1..64)) {
        let configured = Secret::new(standard_webhooks::encode_key(&key)).expect("non-empty");
        let decoded = standard_webhooks::decode_key(&configured).expect("valid secret");
        prop_assert_eq!(decoded.expose(), &key[..]);
    }
}
