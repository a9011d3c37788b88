//! Retry timing: exponential back-off with jitter, or the job's own delay,
//! both capped.

use std::time::Duration;

/// The delay before attempt `attempt + 1`, after `attempt` failed.
///
/// Exponential from `base` (1st retry: base, 2nd: 2×base, ...), capped at
/// `max`, with "equal jitter": a random point in the upper half, so
/// replicas that failed together don't retry together. A job's own
/// `requested` delay (e.g. `Retry-After`) wins, capped at `max`.
pub fn delay(attempt: u64, base: Duration, max: Duration, requested: Option<Duration>) -> Duration {
    if let Some(requested) = requested {
        return requested.min(max);
    }
    let exponent = attempt.saturating_sub(1).min(32) as u32;
    let full = base.saturating_mul(2u32.saturating_pow(exponent)).min(max);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn grows_exponentially_within_jitter_bounds() {
        let check = |attempt: u64, low: u64, high: u64| {
            for _ in 0..200 {
                let delay = delay(attempt, BASE, MAX, None);
                assert!(
                    delay >= Duration::from_millis(low) && delay <= Duration::from_millis(high),
                    "attempt {attempt}: {delay:?} outside {low}..={high} ms"
                );
            }
        };
        check(1, 500, 1_000);
        check(2, 1_000, 2_000);
        check(3, 2_000, 4_000);
        check(7, 30_000, 60_000);
        check(40, 30_000, 60_000);
    }

    #[test]
    fn a_requested_delay_wins_but_is_capped() {
        assert_eq!(
            delay(1, BASE, MAX, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(delay(1, BASE, MAX, Some(Duration::from_secs(3_600))), MAX);
    }
}
