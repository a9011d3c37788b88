//! What the fuzz targets share: routes compiled from TOML with fixed
//! secrets (through the public `Config::from_toml`), header maps built from
//! fuzzed pairs, fuzzed clocks, and the outcomes a signed request must have.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue};
use ingress::config::{Config, Route};
use ingress::subject::Vars;
use ingress::verify::Verified;
use verify::{Fault, VerifyError};

/// The two configured secrets of every fixed-secret route, as during a
/// rotation. They differ in more than one byte, so flipping one byte of
/// either never yields the other.
pub const SECRETS: [&str; 2] = ["fuzz-secret-old", "fuzz-secret-new"];

/// A secret no route is configured with.
pub const STRANGER: &str = "fuzz-stranger-secret";

/// Request values for routes whose secrets do not depend on the request.
pub const NO_VARS: Vars<'static> = Vars {
    params: &[],
    query: &[],
    event: None,
    route: "fuzz",
};

/// Seconds added to every fuzzed clock, so that a signed timestamp a few
/// hours before "now" is still after the epoch.
const EPOCH_OFFSET: u64 = 1_700_000_000;

/// The only route of a config made of `route_toml` (a whole `[[routes]]`
/// table) and the environment `env`. Panics when the config is invalid: the
/// targets' configs are fixed, so that is a bug in the target.
pub fn route_from(route_toml: &str, env: &[(&str, &str)]) -> Arc<Route> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let config = Config::from_toml(route_toml, &env)
        .unwrap_or_else(|error| panic!("the fuzz route is valid: {error}"));
    config.routes[0].clone()
}

/// A route at `/fuzz` whose `[routes.verifier]` table holds `verifier`.
pub fn route(verifier: &str) -> Arc<Route> {
    route_from(
        &format!(
            "[[routes]]\nname = \"fuzz\"\npath = \"/fuzz\"\nsubject = \"fuzz\"\n\
             [routes.verifier]\n{verifier}\n"
        ),
        &[],
    )
}

/// `secrets = [{ value = .. }, ..]` for the given values.
pub fn secrets_toml(values: &[&str]) -> String {
    let entries: Vec<String> = values
        .iter()
        .map(|value| format!("{{ value = \"{value}\" }}"))
        .collect();
    format!("secrets = [{}]", entries.join(", "))
}

/// Which secret a fuzzed request is signed with.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Old,
    New,
    Stranger,
}

impl Key {
    pub fn secret(self) -> &'static str {
        match self {
            Key::Old => SECRETS[0],
            Key::New => SECRETS[1],
            Key::Stranger => STRANGER,
        }
    }

    pub fn is_configured(self) -> bool {
        self != Key::Stranger
    }
}

/// A header as the fuzzer writes it.
#[derive(Arbitrary, Debug)]
pub struct FuzzHeader<'a> {
    pub name: FuzzName<'a>,
    pub value: &'a [u8],
}

/// A header name: one the target cares about (by index), or any text.
#[derive(Arbitrary, Debug)]
pub enum FuzzName<'a> {
    Known(u8),
    Other(&'a str),
}

impl FuzzName<'_> {
    /// The name itself; `known` must not be empty.
    pub fn resolve<'k>(&'k self, known: &[&'k str]) -> &'k str {
        match self {
            FuzzName::Known(index) => known[usize::from(*index) % known.len()],
            FuzzName::Other(name) => name,
        }
    }
}

/// The fuzzed headers, in order, minus the pairs HTTP could not carry (an
/// invalid name or value).
pub fn header_map(known: &[&str], headers: &[FuzzHeader<'_>]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for header in headers {
        let name = HeaderName::try_from(header.name.resolve(known));
        let value = HeaderValue::from_bytes(header.value);
        if let (Ok(name), Ok(value)) = (name, value) {
            map.append(name, value);
        }
    }
    map
}

/// `headers` without any value for `names`.
pub fn without(mut headers: HeaderMap, names: &[&str]) -> HeaderMap {
    for name in names {
        headers.remove(*name);
    }
    headers
}

/// Sets `name` to `value`, which the caller has made valid header text.
pub fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    let value = HeaderValue::from_str(value).expect("the target built valid header text");
    headers.insert(HeaderName::from_static(name), value);
}

/// `text` without the characters a header value cannot hold.
pub fn header_text(text: &str) -> String {
    text.chars()
        .filter(|c| *c == '\t' || !c.is_control())
        .collect()
}

/// A copy of `bytes` with one byte changed, or `None` when there is no
/// byte to change.
pub fn flipped(bytes: &[u8], index: usize, mask: u8) -> Option<Vec<u8>> {
    if bytes.is_empty() {
        return None;
    }
    let mut flipped = bytes.to_vec();
    flipped[index % bytes.len()] ^= mask.max(1);
    Some(flipped)
}

/// When a fuzzed request was signed, relative to the fuzzed "now".
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Timestamp {
    /// Seconds from now, either way: around the tolerance's edges.
    Relative(i16),
    /// Any unix time, including ones no clock reaches.
    Absolute(u64),
}

/// A fuzzed receive time and the signed timestamp that goes with it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: SystemTime,
    pub signed: u64,
    /// Whether `signed` is within `tolerance` of `now`.
    pub fresh: bool,
}

impl Clock {
    pub fn new(now: u32, timestamp: Timestamp, tolerance: Duration) -> Clock {
        let now = EPOCH_OFFSET + u64::from(now);
        let signed = match timestamp {
            Timestamp::Relative(offset) => now
                .checked_add_signed(i64::from(offset))
                .expect("the epoch offset exceeds any i16"),
            Timestamp::Absolute(signed) => signed,
        };
        Clock {
            now: at(now),
            signed,
            fresh: now.abs_diff(signed) <= tolerance.as_secs(),
        }
    }
}

/// `unix_seconds` as a `SystemTime`.
pub fn at(unix_seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_seconds)
}

/// The one correct outcome for a request signed with `key` whose timestamp
/// is `fresh` (or that has none): accepted with a configured key, else
/// refused as a mismatch; a genuine but stale signature is called stale.
pub fn assert_signed_outcome(result: &Result<Verified, VerifyError>, key: Key, fresh: bool) {
    match (key.is_configured(), fresh) {
        (true, true) => assert_eq!(result, &Ok(Verified::Signed), "{key:?}"),
        (true, false) => assert!(
            matches!(
                result,
                Err(VerifyError::Invalid {
                    fault: Fault::Stale,
                    ..
                })
            ),
            "stale but genuine: {result:?}"
        ),
        (false, _) => assert_mismatch(result),
    }
}

/// A refusal for a credential that is present but wrong.
pub fn assert_mismatch(result: &Result<Verified, VerifyError>) {
    assert!(
        matches!(
            result,
            Err(VerifyError::Invalid {
                fault: Fault::Mismatch,
                ..
            })
        ),
        "expected a mismatch: {result:?}"
    );
}

/// Routes with fixed secrets never accept a request as open.
pub fn assert_not_open(result: &Result<Verified, VerifyError>) {
    assert_ne!(result, &Ok(Verified::Open));
}

/// A credential sent as is, for the schemes whose header carries the
/// secret itself (gitlab, shared_secret, bearer).
#[derive(Arbitrary, Debug)]
pub struct Presenting {
    pub key: Key,
    pub flip_at: usize,
    pub flip_mask: u8,
}

/// Sends `prefix` and the presented key in `header` (replacing whatever the
/// fuzzer put there): a configured key verifies and a stranger's does not;
/// the body is not signed, so changing it changes nothing; and one changed
/// byte of the token is a mismatch.
pub fn assert_token_outcomes(
    verifier: &ingress::verify::Verifier,
    mut headers: HeaderMap,
    header: &'static str,
    prefix: &[u8],
    presenting: &Presenting,
    body: &[u8],
) {
    let token = presenting.key.secret().as_bytes();
    let value = HeaderValue::from_bytes(&[prefix, token].concat()).expect("valid header text");
    headers.insert(HeaderName::from_static(header), value);
    let result = verifier.verify(&headers, body, &NO_VARS);
    assert_signed_outcome(&result, presenting.key, true);

    if let Some(other_body) = flipped(body, presenting.flip_at, presenting.flip_mask) {
        assert_eq!(verifier.verify(&headers, &other_body, &NO_VARS), result);
    }

    let wrong =
        flipped(token, presenting.flip_at, presenting.flip_mask).expect("keys are not empty");
    if let Ok(value) = HeaderValue::from_bytes(&[prefix, &wrong].concat()) {
        headers.insert(HeaderName::from_static(header), value);
        assert_mismatch(&verifier.verify(&headers, body, &NO_VARS));
    }
}
