//! Signed timestamps: how providers write them, and whether one is within
//! the tolerance of the caller's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds as providers send them: ASCII digits only, no sign, no
/// fraction.
pub(crate) fn unix_seconds(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Whether `timestamp` lies within `tolerance` of `now`, in the past or the
/// future.
pub(crate) fn is_fresh(timestamp: u64, now: SystemTime, tolerance: Duration) -> bool {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    now.abs_diff(timestamp) <= tolerance.as_secs()
}
