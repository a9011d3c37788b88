//! Slack signatures: the documented example, the time window, rotation and
//! malformed headers.

use super::*;
use crate::test_support::{at, headers, secrets};

/// The worked example from Slack's "Verifying requests from Slack" page.
const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const DOC_TIMESTAMP: u64 = 1_531_420_618;
const DOC_BODY: &[u8] = concat!(
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow",
    "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA",
    "&user_name=roadrunner&command=%2Fwebhook-collect&text=",
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F",
    "397700885554%2F96rGlfmibIGlgcZRskXaIFfN",
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
)
.as_bytes();
const DOC_SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn check(
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: u64,
    expected: Result<(), VerifyError>,
) {
    let mut pairs = Vec::new();
    if let Some(signature) = signature {
        pairs.push(("x-slack-signature", signature));
    }
    if let Some(timestamp) = timestamp {
        pairs.push(("x-slack-request-timestamp", timestamp));
    }
    assert_eq!(
        verify(
            &secrets(&[DOC_SECRET]),
            &headers(&pairs),
            body,
            at(now),
            FIVE_MINUTES
        ),
        expected,
        "{pairs:?} at {now}"
    );
}

#[test]
fn documented_example() {
    assert_eq!(
        signature(DOC_SECRET.as_bytes(), DOC_TIMESTAMP, DOC_BODY),
        DOC_SIGNATURE
    );
    let timestamp = DOC_TIMESTAMP.to_string();
    check(
        Some(DOC_SIGNATURE),
        Some(&timestamp),
        DOC_BODY,
        DOC_TIMESTAMP,
        Ok(()),
    );
}

#[test]
fn refusals() {
    let timestamp = DOC_TIMESTAMP.to_string();
    let ts = Some(timestamp.as_str());
    let invalid = || Err(VerifyError::invalid(SIGNATURE));
    let now = DOC_TIMESTAMP;
    check(
        None,
        ts,
        DOC_BODY,
        now,
        Err(VerifyError::Missing { header: SIGNATURE }),
    );
    check(
        Some(DOC_SIGNATURE),
        None,
        DOC_BODY,
        now,
        Err(VerifyError::Missing { header: TIMESTAMP }),
    );
    check(Some(DOC_SIGNATURE), ts, b"token=tampered", now, invalid());
    check(Some(""), ts, DOC_BODY, now, invalid());
    check(Some("v0="), ts, DOC_BODY, now, invalid());
    check(Some(&DOC_SIGNATURE[3..]), ts, DOC_BODY, now, invalid());
    check(
        Some(&DOC_SIGNATURE.replace("v0=", "v1=")),
        ts,
        DOC_BODY,
        now,
        invalid(),
    );
    check(Some(&DOC_SIGNATURE[..40]), ts, DOC_BODY, now, invalid());
    let next = (DOC_TIMESTAMP + 1).to_string();
    check(Some(DOC_SIGNATURE), Some(&next), DOC_BODY, now, invalid());
    for malformed in ["", "yesterday", "1531420618.0", "-1"] {
        check(
            Some(DOC_SIGNATURE),
            Some(malformed),
            DOC_BODY,
            now,
            Err(VerifyError::invalid(TIMESTAMP)),
        );
    }
}

#[test]
fn the_timestamp_must_be_recent() {
    let timestamp = DOC_TIMESTAMP.to_string();
    let ts = Some(timestamp.as_str());
    let stale = || Err(VerifyError::stale(TIMESTAMP));
    check(
        Some(DOC_SIGNATURE),
        ts,
        DOC_BODY,
        DOC_TIMESTAMP + 300,
        Ok(()),
    );
    check(
        Some(DOC_SIGNATURE),
        ts,
        DOC_BODY,
        DOC_TIMESTAMP - 300,
        Ok(()),
    );
    check(
        Some(DOC_SIGNATURE),
        ts,
        DOC_BODY,
        DOC_TIMESTAMP + 301,
        stale(),
    );
    check(
        Some(DOC_SIGNATURE),
        ts,
        DOC_BODY,
        DOC_TIMESTAMP - 301,
        stale(),
    );
}

#[test]
fn any_rotated_secret_matches() {
    let keys = secrets(&["old-signing-secret", DOC_SECRET]);
    let headers = headers(&[
        ("x-slack-signature", DOC_SIGNATURE),
        ("x-slack-request-timestamp", &DOC_TIMESTAMP.to_string()),
    ]);
    assert_eq!(
        verify(&keys, &headers, DOC_BODY, at(DOC_TIMESTAMP), FIVE_MINUTES),
        Ok(())
    );
    assert_eq!(
        verify(
            &keys[..1],
            &headers,
            DOC_BODY,
            at(DOC_TIMESTAMP),
            FIVE_MINUTES
        ),
        Err(VerifyError::invalid(SIGNATURE))
    );
}
