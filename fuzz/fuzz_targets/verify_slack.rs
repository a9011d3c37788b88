//! The `slack` verifier: no input panics; a request signed with a
//! configured secret verifies when fresh and is stale otherwise; a flipped
//! body byte is refused.
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use ingress::config::Route;
use libfuzzer_sys::fuzz_target;
use tidegate_fuzz::{
    Clock, FuzzHeader, Key, NO_VARS, SECRETS, Timestamp, assert_mismatch, assert_not_open,
    assert_signed_outcome, at, flipped, header_map, route, secrets_toml, set, without,
};
use verify::slack;

const SIGNATURE: &str = "x-slack-signature";
const TIMESTAMP: &str = "x-slack-request-timestamp";
const HEADERS: [&str; 2] = [SIGNATURE, TIMESTAMP];

static ROUTE: LazyLock<Arc<Route>> =
    LazyLock::new(|| route(&format!("kind = \"slack\"\n{}", secrets_toml(&SECRETS))));

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    headers: Vec<FuzzHeader<'a>>,
    body: &'a [u8],
    now: u32,
    signed: Option<Signing>,
}

/// Replace the fuzzed Slack headers with correct ones.
#[derive(Arbitrary, Debug)]
struct Signing {
    key: Key,
    timestamp: Timestamp,
    flip_at: usize,
    flip_mask: u8,
}

fuzz_target!(|input: Input<'_>| {
    let verifier = &ROUTE.verifier;
    let headers = header_map(&HEADERS, &input.headers);
    let now = at(u64::from(input.now));
    assert_not_open(&verifier.verify_at(&headers, input.body, &NO_VARS, now));
    let Some(signing) = input.signed else {
        return;
    };
    let tolerance = verifier
        .scheme
        .tolerance()
        .expect("the scheme signs a timestamp");
    let clock = Clock::new(input.now, signing.timestamp, tolerance);
    let signature = slack::signature(signing.key.secret().as_bytes(), clock.signed, input.body);
    let mut signed = without(headers, &HEADERS);
    set(&mut signed, SIGNATURE, &signature);
    set(&mut signed, TIMESTAMP, &clock.signed.to_string());

    let result = verifier.verify_at(&signed, input.body, &NO_VARS, clock.now);
    assert_signed_outcome(&result, signing.key, clock.fresh);

    if let Some(tampered) = flipped(input.body, signing.flip_at, signing.flip_mask) {
        assert_mismatch(&verifier.verify_at(&signed, &tampered, &NO_VARS, clock.now));
    }
});
