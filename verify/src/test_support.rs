//! Builders shared by the scheme tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use crate::Secret;

pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                http::HeaderName::try_from(*name).expect("valid header name"),
                value.parse().expect("valid header value"),
            )
        })
        .collect()
}

pub(crate) fn secrets(values: &[&str]) -> Vec<Secret> {
    values
        .iter()
        .map(|value| Secret::new(*value).expect("non-empty"))
        .collect()
}

pub(crate) fn at(unix_seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_seconds)
}
