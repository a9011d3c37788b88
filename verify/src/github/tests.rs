//! GitHub signatures: the documented vector, refusals, rotation and the
//! opt-in legacy SHA-1 header.

use super::*;
use crate::test_support::{headers, secrets};

/// The example from GitHub's "Validating webhook deliveries" page.
const DOC_SECRET: &str = "It's a Secret to Everybody";
const DOC_BODY: &[u8] = b"Hello, World!";
const DOC_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

fn sha256(value: Option<&str>) -> HeaderMap {
    match value {
        Some(value) => headers(&[("x-hub-signature-256", value)]),
        None => HeaderMap::new(),
    }
}

#[test]
fn documented_vector_verifies() {
    assert_eq!(signature(DOC_SECRET.as_bytes(), DOC_BODY), DOC_SIGNATURE);
    let result = verify(
        &secrets(&[DOC_SECRET]),
        &sha256(Some(DOC_SIGNATURE)),
        DOC_BODY,
        false,
    );
    assert_eq!(result, Ok(()));
}

#[test]
fn refusals() {
    let invalid = Err(VerifyError::invalid(HEADER));
    let keys = secrets(&[DOC_SECRET]);
    let check = |header: Option<&str>, body: &[u8], expected: &Result<(), VerifyError>| {
        assert_eq!(
            &verify(&keys, &sha256(header), body, false),
            expected,
            "{header:?}"
        );
    };
    check(
        None,
        DOC_BODY,
        &Err(VerifyError::Missing { header: HEADER }),
    );
    check(Some(DOC_SIGNATURE), b"Hello, World?", &invalid);
    check(Some(""), DOC_BODY, &invalid);
    check(Some("sha256="), DOC_BODY, &invalid);
    check(
        Some(&DOC_SIGNATURE.replace("sha256=", "sha1=")),
        DOC_BODY,
        &invalid,
    );
    check(Some(&DOC_SIGNATURE.to_uppercase()), DOC_BODY, &invalid);
    check(
        Some(&DOC_SIGNATURE[..DOC_SIGNATURE.len() - 2]),
        DOC_BODY,
        &invalid,
    );
}

#[test]
fn any_rotated_secret_matches() {
    let keys = secrets(&["old-secret", "new-secret"]);
    for secret in ["old-secret", "new-secret"] {
        let signed = signature(secret.as_bytes(), b"{}");
        assert_eq!(verify(&keys, &sha256(Some(&signed)), b"{}", false), Ok(()));
    }
    let stranger = signature(b"another", b"{}");
    assert!(verify(&keys, &sha256(Some(&stranger)), b"{}", false).is_err());
}

/// RFC 2202 test case 2 for HMAC-SHA1.
const RFC_KEY: &str = "Jefe";
const RFC_DATA: &[u8] = b"what do ya want for nothing?";
const RFC_SHA1: &str = "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79";

#[test]
fn sha1_matches_the_rfc_vector() {
    assert_eq!(sha1_signature(RFC_KEY.as_bytes(), RFC_DATA), RFC_SHA1);
}

#[test]
fn sha1_only_when_the_route_opts_in() {
    let keys = secrets(&["old-secret", RFC_KEY]);
    let missing = Err(VerifyError::Missing { header: HEADER });
    let sha1_invalid = Err(VerifyError::invalid(SHA1_HEADER));
    let sha256_invalid = Err(VerifyError::invalid(HEADER));
    let good_sha256 = signature(RFC_KEY.as_bytes(), RFC_DATA);
    let check = |pairs: &[(&str, &str)],
                 body: &[u8],
                 allow_sha1: bool,
                 expected: &Result<(), VerifyError>| {
        assert_eq!(
            &verify(&keys, &headers(pairs), body, allow_sha1),
            expected,
            "{pairs:?} allow_sha1={allow_sha1}"
        );
    };
    let sha1_only = [("x-hub-signature", RFC_SHA1)];
    check(&sha1_only, RFC_DATA, true, &Ok(()));
    check(&sha1_only, RFC_DATA, false, &missing);
    check(&sha1_only, b"tampered", true, &sha1_invalid);
    check(&[("x-hub-signature", "")], RFC_DATA, true, &sha1_invalid);
    check(
        &[("x-hub-signature", "sha1=effcdf")],
        RFC_DATA,
        true,
        &sha1_invalid,
    );
    check(
        &[("x-hub-signature", &good_sha256)],
        RFC_DATA,
        true,
        &sha1_invalid,
    );
    // SHA-256 wins when both are present, and a wrong one does not fall
    // back to SHA-1.
    check(
        &[
            ("x-hub-signature-256", &good_sha256),
            ("x-hub-signature", "junk"),
        ],
        RFC_DATA,
        true,
        &Ok(()),
    );
    check(
        &[
            ("x-hub-signature-256", "sha256=00"),
            ("x-hub-signature", RFC_SHA1),
        ],
        RFC_DATA,
        true,
        &sha256_invalid,
    );
    check(&[], RFC_DATA, true, &missing);
}
