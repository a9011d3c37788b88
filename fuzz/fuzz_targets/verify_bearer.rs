//! The `bearer` verifier (`Authorization: Bearer <token>`): no input
//! panics; a configured token verifies under any casing of the scheme name,
//! whatever the body, and one changed byte of it is refused.
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use ingress::config::Route;
use libfuzzer_sys::fuzz_target;
use tidegate_fuzz::{
    FuzzHeader, NO_VARS, Presenting, SECRETS, assert_not_open, assert_token_outcomes, header_map,
    route, secrets_toml,
};

const HEADER: &str = "authorization";

static ROUTE: LazyLock<Arc<Route>> =
    LazyLock::new(|| route(&format!("kind = \"bearer\"\n{}", secrets_toml(&SECRETS))));

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    headers: Vec<FuzzHeader<'a>>,
    body: &'a [u8],
    presenting: Option<Presenting>,
    /// Bit `i` upper-cases letter `i` of `bearer`.
    casing: u8,
}

fuzz_target!(|input: Input<'_>| {
    let verifier = &ROUTE.verifier;
    let headers = header_map(&[HEADER], &input.headers);
    assert_not_open(&verifier.verify(&headers, input.body, &NO_VARS));
    if let Some(presenting) = &input.presenting {
        let mut prefix = b"bearer ".to_vec();
        for (index, letter) in prefix.iter_mut().take(6).enumerate() {
            if input.casing & (1 << index) != 0 {
                letter.make_ascii_uppercase();
            }
        }
        assert_token_outcomes(verifier, headers, HEADER, &prefix, presenting, input.body);
    }
});
