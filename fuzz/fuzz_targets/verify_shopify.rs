//! The `shopify` verifier: no input panics; a request signed with a
//! configured secret verifies; a flipped body byte is refused.
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use ingress::config::Route;
use libfuzzer_sys::fuzz_target;
use tidegate_fuzz::{
    FuzzHeader, Key, NO_VARS, SECRETS, assert_mismatch, assert_not_open, assert_signed_outcome,
    flipped, header_map, route, secrets_toml, set, without,
};
use verify::shopify;

const HEADER: &str = "x-shopify-hmac-sha256";

static ROUTE: LazyLock<Arc<Route>> =
    LazyLock::new(|| route(&format!("kind = \"shopify\"\n{}", secrets_toml(&SECRETS))));

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    headers: Vec<FuzzHeader<'a>>,
    body: &'a [u8],
    signed: Option<Signing>,
}

/// Replace the fuzzed `X-Shopify-Hmac-Sha256` with a correct one.
#[derive(Arbitrary, Debug)]
struct Signing {
    key: Key,
    flip_at: usize,
    flip_mask: u8,
}

fuzz_target!(|input: Input<'_>| {
    let verifier = &ROUTE.verifier;
    let headers = header_map(&[HEADER], &input.headers);
    assert_not_open(&verifier.verify(&headers, input.body, &NO_VARS));
    let Some(signing) = input.signed else {
        return;
    };
    let mut signed = without(headers, &[HEADER]);
    set(
        &mut signed,
        HEADER,
        &shopify::signature(signing.key.secret().as_bytes(), input.body),
    );

    let result = verifier.verify(&signed, input.body, &NO_VARS);
    assert_signed_outcome(&result, signing.key, true);

    if let Some(tampered) = flipped(input.body, signing.flip_at, signing.flip_mask) {
        assert_mismatch(&verifier.verify(&signed, &tampered, &NO_VARS));
    }
});
