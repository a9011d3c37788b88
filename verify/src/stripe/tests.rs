//! Stripe signatures: round trips, several `v1` entries, the time window,
//! rotation and malformed headers.

use super::*;
use crate::test_support::{at, headers, secrets};

const SECRET: &str = "whsec_test_secret";
const NOW: u64 = 1_492_774_577;
const BODY: &[u8] = br#"{"id": "evt_test_webhook", "object": "event"}"#;
const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn check(value: Option<&str>, body: &[u8], now: u64, expected: Result<(), VerifyError>) {
    let headers = match value {
        Some(value) => headers(&[("stripe-signature", value)]),
        None => HeaderMap::new(),
    };
    assert_eq!(
        verify(&secrets(&[SECRET]), &headers, body, at(now), FIVE_MINUTES),
        expected,
        "{value:?} at {now}"
    );
}

fn v1(secret: &str, timestamp: u64, body: &[u8]) -> String {
    hex::encode(hmac_sha256(
        secret.as_bytes(),
        &[timestamp.to_string().as_bytes(), b".", body],
    ))
}

#[test]
fn round_trip_and_header_shapes() {
    let good = v1(SECRET, NOW, BODY);
    let other = v1("another", NOW, BODY);
    let ok = |value: &str| check(Some(value), BODY, NOW, Ok(()));
    ok(&signature(SECRET.as_bytes(), NOW, BODY));
    ok(&format!("t={NOW},v1={good}"));
    ok(&format!("t={NOW},v1={other},v1={good}"));
    ok(&format!("v1={good},t={NOW}"));
    ok(&format!("t={NOW},v1={good},v0={other}"));
    ok(&format!("t={NOW}, v1={good}"));
    ok(&format!("t={NOW},v1=zz,v1={good}"));
    ok(&format!("t={NOW},v1={}", good.to_uppercase()));
}

#[test]
fn refusals() {
    let good = v1(SECRET, NOW, BODY);
    let invalid = || Err(VerifyError::invalid(HEADER));
    let header = format!("t={NOW},v1={good}");
    check(
        None,
        BODY,
        NOW,
        Err(VerifyError::Missing { header: HEADER }),
    );
    check(Some(&header), b"{}", NOW, invalid());
    check(Some(""), BODY, NOW, invalid());
    check(Some(&format!("v1={good}")), BODY, NOW, invalid());
    check(Some(&format!("t={NOW}")), BODY, NOW, invalid());
    check(Some(&format!("t={NOW},v0={good}")), BODY, NOW, invalid());
    check(
        Some(&format!("t={NOW},v1={}", &good[2..])),
        BODY,
        NOW,
        invalid(),
    );
    check(
        Some(&format!("t={},v1={good}", NOW + 1)),
        BODY,
        NOW,
        invalid(),
    );
    check(Some(&format!("t=now,v1={good}")), BODY, NOW, invalid());
    check(
        Some(&format!("t={NOW},t={NOW},v1={good}")),
        BODY,
        NOW,
        invalid(),
    );
    check(Some(&format!("{NOW},{good}")), BODY, NOW, invalid());
}

#[test]
fn the_timestamp_must_be_recent() {
    let header = signature(SECRET.as_bytes(), NOW, BODY);
    check(Some(&header), BODY, NOW + 300, Ok(()));
    check(Some(&header), BODY, NOW - 300, Ok(()));
    check(
        Some(&header),
        BODY,
        NOW + 301,
        Err(VerifyError::stale(HEADER)),
    );
    check(
        Some(&header),
        BODY,
        NOW - 301,
        Err(VerifyError::stale(HEADER)),
    );
    // A stale request with a wrong signature is simply invalid.
    check(
        Some(&header),
        b"{}",
        NOW + 3600,
        Err(VerifyError::invalid(HEADER)),
    );
}

#[test]
fn any_rotated_secret_matches() {
    let keys = secrets(&["whsec_old", "whsec_new"]);
    let header = headers(&[("stripe-signature", &signature(b"whsec_new", NOW, BODY))]);
    assert_eq!(verify(&keys, &header, BODY, at(NOW), FIVE_MINUTES), Ok(()));
    assert_eq!(
        verify(&keys[..1], &header, BODY, at(NOW), FIVE_MINUTES),
        Err(VerifyError::invalid(HEADER))
    );
}
