//! The `standard_webhooks` verifier: no input panics; a request signed with
//! a configured key verifies when fresh, is stale otherwise, even among
//! other listed signatures or under the `svix-` names; a flipped body byte
//! is refused.
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use ingress::config::Route;
use libfuzzer_sys::fuzz_target;
use tidegate_fuzz::{
    Clock, FuzzHeader, Key, NO_VARS, SECRETS, Timestamp, assert_mismatch, assert_not_open,
    assert_signed_outcome, at, flipped, header_map, header_text, route, set, without,
};
use verify::standard_webhooks;

const HEADERS: [&str; 6] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
];

/// Configured as `whsec_<base64 of the key>`, as Svix writes them.
static ROUTE: LazyLock<Arc<Route>> = LazyLock::new(|| {
    let secrets: Vec<String> = SECRETS
        .iter()
        .map(|key| {
            let encoded = standard_webhooks::encode_key(key.as_bytes());
            format!("{{ value = \"{encoded}\" }}")
        })
        .collect();
    route(&format!(
        "kind = \"standard_webhooks\"\nsecrets = [{}]",
        secrets.join(", ")
    ))
});

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    headers: Vec<FuzzHeader<'a>>,
    body: &'a [u8],
    now: u32,
    signed: Option<Signing<'a>>,
}

/// Replace the fuzzed webhook headers with correct ones.
#[derive(Arbitrary, Debug)]
struct Signing<'a> {
    key: Key,
    id: &'a str,
    timestamp: Timestamp,
    /// Use the `svix-` header names.
    svix: bool,
    /// Listed before the real signature, space-separated.
    others: &'a str,
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
    let id = header_text(signing.id);
    let names = if signing.svix {
        &HEADERS[3..]
    } else {
        &HEADERS[..3]
    };
    let key = signing.key.secret().as_bytes();
    let signature = standard_webhooks::signature(key, &id, clock.signed, input.body);
    let others = header_text(signing.others);
    let mut signed = without(headers, &HEADERS);
    set(&mut signed, names[0], &id);
    set(&mut signed, names[1], &clock.signed.to_string());
    set(&mut signed, names[2], &format!("{others} {signature}"));

    let result = verifier.verify_at(&signed, input.body, &NO_VARS, clock.now);
    assert_signed_outcome(&result, signing.key, clock.fresh);

    if let Some(tampered) = flipped(input.body, signing.flip_at, signing.flip_mask) {
        assert_mismatch(&verifier.verify_at(&signed, &tampered, &NO_VARS, clock.now));
    }
});
