//! Standard Webhooks: the specification's published vector, header
//! fallbacks, several signatures, the time window and malformed headers.

use super::*;
use crate::test_support::{at, headers, secrets};

/// The example published with the Standard Webhooks specification and used
/// by the Svix libraries' tests.
const DOC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DOC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const DOC_TIMESTAMP: u64 = 1_614_265_330;
const DOC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const DOC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn keys(values: &[&str]) -> Vec<Secret> {
    secrets(values)
        .iter()
        .map(|secret| decode_key(secret).expect("valid secret"))
        .collect()
}

/// Headers with the given names for id, timestamp and signature.
fn signed(names: [&str; 3], timestamp: &str, signature: &str) -> HeaderMap {
    headers(&[
        (names[0], DOC_ID),
        (names[1], timestamp),
        (names[2], signature),
    ])
}

const UNBRANDED: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];
const SVIX: [&str; 3] = ["svix-id", "svix-timestamp", "svix-signature"];

fn check(headers: &HeaderMap, body: &[u8], now: u64, expected: Result<(), VerifyError>) {
    let keys = keys(&[DOC_SECRET]);
    assert_eq!(
        verify(&keys, headers, body, at(now), FIVE_MINUTES),
        expected,
        "{headers:?} at {now}"
    );
}

#[test]
fn documented_vector() {
    let key = decode_key(&secrets(&[DOC_SECRET])[0]).expect("valid secret");
    assert_eq!(
        signature(key.expose(), DOC_ID, DOC_TIMESTAMP, DOC_BODY),
        DOC_SIGNATURE
    );
    let timestamp = DOC_TIMESTAMP.to_string();
    for names in [UNBRANDED, SVIX] {
        check(
            &signed(names, &timestamp, DOC_SIGNATURE),
            DOC_BODY,
            DOC_TIMESTAMP,
            Ok(()),
        );
    }
}

#[test]
fn several_signatures_and_versions() {
    let timestamp = DOC_TIMESTAMP.to_string();
    let ok = |signature: &str| {
        check(
            &signed(UNBRANDED, &timestamp, signature),
            DOC_BODY,
            DOC_TIMESTAMP,
            Ok(()),
        );
    };
    let refused = |signature: &str| {
        check(
            &signed(UNBRANDED, &timestamp, signature),
            DOC_BODY,
            DOC_TIMESTAMP,
            Err(VerifyError::invalid(SIGNATURE)),
        );
    };
    ok(&format!("v1,bm9wZQ== {DOC_SIGNATURE}"));
    ok(&format!("{DOC_SIGNATURE} v1,bm9wZQ=="));
    ok(&format!("v1a,c2lnbmVk  {DOC_SIGNATURE}"));
    refused(&DOC_SIGNATURE.replace("v1,", "v2,"));
    refused(&DOC_SIGNATURE.replace("v1,", "v1a,"));
    refused(&DOC_SIGNATURE.replace("v1,", ""));
    refused("v1,bm9wZQ==");
    refused("v1,not base64!");
    refused("v1,");
    refused("");
}

#[test]
fn refusals() {
    let timestamp = DOC_TIMESTAMP.to_string();
    let good = signed(UNBRANDED, &timestamp, DOC_SIGNATURE);
    // A tampered body.
    check(
        &good,
        br#"{"test": 2432232315}"#,
        DOC_TIMESTAMP,
        Err(VerifyError::invalid(SIGNATURE)),
    );
    // Stale and future timestamps, with the window's edges accepted.
    check(&good, DOC_BODY, DOC_TIMESTAMP + 300, Ok(()));
    check(&good, DOC_BODY, DOC_TIMESTAMP - 300, Ok(()));
    check(
        &good,
        DOC_BODY,
        DOC_TIMESTAMP + 301,
        Err(VerifyError::stale(TIMESTAMP)),
    );
    check(
        &good,
        DOC_BODY,
        DOC_TIMESTAMP - 301,
        Err(VerifyError::stale(TIMESTAMP)),
    );
    check(
        &signed(SVIX, &timestamp, DOC_SIGNATURE),
        DOC_BODY,
        DOC_TIMESTAMP + 3600,
        Err(VerifyError::stale(SVIX_TIMESTAMP)),
    );
    // A timestamp that is not the signed one.
    check(
        &signed(UNBRANDED, &(DOC_TIMESTAMP + 1).to_string(), DOC_SIGNATURE),
        DOC_BODY,
        DOC_TIMESTAMP,
        Err(VerifyError::invalid(SIGNATURE)),
    );
    // Malformed timestamps.
    for malformed in ["", "soon", "1614265330.5", "-1614265330"] {
        check(
            &signed(UNBRANDED, malformed, DOC_SIGNATURE),
            DOC_BODY,
            DOC_TIMESTAMP,
            Err(VerifyError::invalid(TIMESTAMP)),
        );
    }
}

#[test]
fn missing_headers() {
    let timestamp = DOC_TIMESTAMP.to_string();
    let all = [
        ("webhook-id", DOC_ID),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", DOC_SIGNATURE),
    ];
    for (skip, expected) in [(0, ID), (1, TIMESTAMP), (2, SIGNATURE)] {
        let mut pairs = all.to_vec();
        pairs.remove(skip);
        check(
            &headers(&pairs),
            DOC_BODY,
            DOC_TIMESTAMP,
            Err(VerifyError::Missing { header: expected }),
        );
    }
    // Names may be mixed, each falling back on its own.
    check(
        &signed(
            ["svix-id", "webhook-timestamp", "svix-signature"],
            &timestamp,
            DOC_SIGNATURE,
        ),
        DOC_BODY,
        DOC_TIMESTAMP,
        Ok(()),
    );
}

#[test]
fn any_rotated_secret_matches() {
    let old = "whsec_b2xkLXNlY3JldC1rZXk=";
    let new = "whsec_bmV3LXNlY3JldC1rZXk=";
    let keys = keys(&[old, new]);
    let now = 1_700_000_000;
    let signed = signature(keys[1].expose(), "msg_1", now, b"{}");
    let headers = headers(&[
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", &now.to_string()),
        ("webhook-signature", &signed),
    ]);
    assert_eq!(
        verify(&keys, &headers, b"{}", at(now), FIVE_MINUTES),
        Ok(())
    );
    assert_eq!(
        verify(&keys[..1], &headers, b"{}", at(now), FIVE_MINUTES),
        Err(VerifyError::invalid(SIGNATURE))
    );
}

#[test]
fn secrets_decode_with_or_without_the_prefix() {
    let decode = |text: &str| decode_key(&secrets(&[text])[0]).map(|key| key.expose().to_vec());
    let bare = DOC_SECRET.trim_start_matches("whsec_");
    assert_eq!(decode(DOC_SECRET), decode(bare));
    assert_eq!(decode(DOC_SECRET).map(|key| key.len()), Some(24));
    assert_eq!(decode("whsec_not base64!"), None);
    assert_eq!(decode("whsec_"), None);
    // Encoding is the inverse, prefix included.
    let key = decode(DOC_SECRET).expect("valid secret");
    assert_eq!(encode_key(&key), DOC_SECRET);
}
