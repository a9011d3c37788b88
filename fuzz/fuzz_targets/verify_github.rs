//! The `github` verifier, with and without the SHA-1 opt-in: no input
//! panics, a correctly signed request verifies, any flipped body byte is
//! refused, and a wrong SHA-256 signature never falls back to SHA-1.
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use http::HeaderName;
use ingress::config::Route;
use libfuzzer_sys::fuzz_target;
use tidegate_fuzz::{
    FuzzHeader, Key, NO_VARS, SECRETS, assert_mismatch, assert_not_open, assert_signed_outcome,
    flipped, header_map, header_text, route, secrets_toml, set, without,
};
use verify::{VerifyError, github};

const SHA256_HEADER: &str = "x-hub-signature-256";
const SHA1_HEADER: &str = "x-hub-signature";
const HEADERS: [&str; 2] = [SHA256_HEADER, SHA1_HEADER];

static SHA256_ONLY: LazyLock<Arc<Route>> =
    LazyLock::new(|| route(&format!("kind = \"github\"\n{}", secrets_toml(&SECRETS))));
static WITH_SHA1: LazyLock<Arc<Route>> = LazyLock::new(|| {
    route(&format!(
        "kind = \"github\"\nallow_sha1 = true\n{}",
        secrets_toml(&SECRETS)
    ))
});

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    headers: Vec<FuzzHeader<'a>>,
    body: &'a [u8],
    signed: Option<Signing<'a>>,
}

/// Replace the fuzzed signature headers with correct ones.
#[derive(Arbitrary, Debug)]
struct Signing<'a> {
    key: Key,
    algorithm: Algorithm<'a>,
    flip_at: usize,
    flip_mask: u8,
}

#[derive(Arbitrary, Debug)]
enum Algorithm<'a> {
    Sha256,
    Sha1,
    /// A correct SHA-1 signature next to a fuzzed SHA-256 one.
    Sha1WithDecoy(&'a str),
}

fuzz_target!(|input: Input<'_>| {
    let headers = header_map(&HEADERS, &input.headers);
    for route in [&*SHA256_ONLY, &*WITH_SHA1] {
        assert_not_open(&route.verifier.verify(&headers, input.body, &NO_VARS));
    }
    let Some(signing) = input.signed else {
        return;
    };
    let key = signing.key;
    let secret = key.secret().as_bytes();
    let mut signed = without(headers, &HEADERS);
    match &signing.algorithm {
        Algorithm::Sha256 => set(
            &mut signed,
            SHA256_HEADER,
            &github::signature(secret, input.body),
        ),
        Algorithm::Sha1 => set(
            &mut signed,
            SHA1_HEADER,
            &github::sha1_signature(secret, input.body),
        ),
        Algorithm::Sha1WithDecoy(decoy) => {
            set(&mut signed, SHA256_HEADER, &header_text(decoy));
            set(
                &mut signed,
                SHA1_HEADER,
                &github::sha1_signature(secret, input.body),
            );
        }
    }

    for (route, allow_sha1) in [(&*SHA256_ONLY, false), (&*WITH_SHA1, true)] {
        let result = route.verifier.verify(&signed, input.body, &NO_VARS);
        match &signing.algorithm {
            Algorithm::Sha256 => assert_signed_outcome(&result, key, true),
            Algorithm::Sha1 if allow_sha1 => assert_signed_outcome(&result, key, true),
            Algorithm::Sha1 => assert_eq!(
                result,
                Err(VerifyError::Missing {
                    header: HeaderName::from_static(SHA256_HEADER)
                })
            ),
            Algorithm::Sha1WithDecoy(decoy) => {
                // Only a decoy that is itself the right SHA-256 signature
                // (hex in either case) may pass; SHA-1 is never consulted.
                let right = github::signature(secret, input.body);
                let decoy = header_text(decoy);
                let decoy_is_right = decoy.len() == right.len()
                    && decoy.starts_with("sha256=")
                    && decoy.eq_ignore_ascii_case(&right);
                if decoy_is_right {
                    assert_signed_outcome(&result, key, true);
                } else {
                    assert_mismatch(&result);
                }
            }
        }

        // The signature covers every byte of the body.
        if let Some(tampered) = flipped(input.body, signing.flip_at, signing.flip_mask) {
            let result = route.verifier.verify(&signed, &tampered, &NO_VARS);
            assert!(result.is_err(), "a tampered body verified: {result:?}");
        }
    }
});
