//! The `gitlab` verifier (`X-Gitlab-Token`): no input panics; a configured
//! token verifies whatever the body, and one changed byte is refused.
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use ingress::config::Route;
use libfuzzer_sys::fuzz_target;
use tidegate_fuzz::{
    FuzzHeader, NO_VARS, Presenting, SECRETS, assert_not_open, assert_token_outcomes, header_map,
    route, secrets_toml,
};

const HEADER: &str = "x-gitlab-token";

static ROUTE: LazyLock<Arc<Route>> =
    LazyLock::new(|| route(&format!("kind = \"gitlab\"\n{}", secrets_toml(&SECRETS))));

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    headers: Vec<FuzzHeader<'a>>,
    body: &'a [u8],
    presenting: Option<Presenting>,
}

fuzz_target!(|input: Input<'_>| {
    let verifier = &ROUTE.verifier;
    let headers = header_map(&[HEADER], &input.headers);
    assert_not_open(&verifier.verify(&headers, input.body, &NO_VARS));
    if let Some(presenting) = &input.presenting {
        assert_token_outcomes(verifier, headers, HEADER, b"", presenting, input.body);
    }
});
