//! Readiness as `/readyz` reports it: a delivery would be stored now. Real
//! publishes keep it current (one atomic store per PubAck); when none
//! happened lately, `broker.rs` probes. It is unready when not connected,
//! when the last publishes or probes failed (timeouts, no stream, no
//! leader), and while the stream is full.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use broker::{PublishError, Stored};

/// How long one success keeps the ingress ready without another.
const FRESH_FOR: Duration = Duration::from_millis(2_500);

/// Why the ingress is not ready; shown by `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unready {
    #[error("not connected to nats")]
    NotConnected,
    #[error("connected; ensuring the deliveries stream")]
    Starting,
    #[error("the deliveries stream does not exist")]
    StreamMissing,
    #[error("the deliveries stream is full: {0}")]
    Full(String),
    #[error("no PubAck lately: {0}")]
    NoPubAck(String),
}

#[derive(Debug)]
pub(crate) struct Readiness {
    started: Instant,
    /// Milliseconds after `started` of the last PubAck or good probe, plus
    /// one (0: never).
    last_ok: AtomicU64,
    timeouts: AtomicU32,
    /// Set with any failure, so that a success only takes the lock when
    /// there is something to clear.
    failing: AtomicBool,
    failures: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    last: Option<String>,
    no_stream: bool,
    stream_missing: bool,
    full: Option<String>,
}

impl Readiness {
    pub(crate) fn new() -> Readiness {
        Readiness {
            started: Instant::now(),
            last_ok: AtomicU64::new(0),
            timeouts: AtomicU32::new(0),
            failing: AtomicBool::new(false),
            failures: Mutex::new(Failures::default()),
        }
    }

    pub(crate) fn status(&self) -> Result<(), Unready> {
        let failures = self.lock();
        if failures.stream_missing {
            return Err(Unready::StreamMissing);
        }
        if let Some(full) = &failures.full {
            return Err(Unready::Full(full.clone()));
        }
        if self.recently_ok(FRESH_FOR) {
            return Ok(());
        }
        Err(Unready::NoPubAck(
            failures
                .last
                .clone()
                .unwrap_or_else(|| "nothing published yet".to_owned()),
        ))
    }

    /// Records a real publish's outcome.
    pub(crate) fn record(&self, result: &Result<Stored, PublishError>) {
        match result {
            Ok(_) => self.ok(),
            Err(error) => self.failed(error),
        }
    }

    pub(crate) fn record_probe(&self, result: &Result<(), PublishError>) {
        match result {
            Ok(()) => self.ok(),
            Err(error) => self.failed(error),
        }
    }

    fn ok(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        self.last_ok.store(now, Ordering::Relaxed);
        if self.timeouts.load(Ordering::Relaxed) != 0 {
            self.timeouts.store(0, Ordering::Relaxed);
        }
        if self.failing.swap(false, Ordering::Relaxed) {
            let mut failures = self.lock();
            failures.no_stream = false;
            failures.full = None;
            failures.stream_missing = false;
        }
    }

    fn failed(&self, error: &PublishError) {
        // No answer, or no stream answering on this server: both are what a
        // hung server, or one cut off from its cluster, looks like.
        if matches!(error, PublishError::TimedOut(_) | PublishError::NoStream) {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        let mut failures = self.lock();
        self.failing.store(true, Ordering::Relaxed);
        failures.last = Some(error.to_string());
        match error {
            PublishError::NoStream => failures.no_stream = true,
            PublishError::Full(why) => failures.full = Some(why.clone()),
            _ => {}
        }
    }

    /// A success within `window`.
    pub(crate) fn recently_ok(&self, window: Duration) -> bool {
        let last = self.last_ok.load(Ordering::Relaxed);
        if last == 0 {
            return false;
        }
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(last - 1) <= u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
    }

    /// Publishes and probes in a row that got no answer, or no stream
    /// answering.
    pub(crate) fn consecutive_unanswered(&self) -> u32 {
        self.timeouts.load(Ordering::Relaxed)
    }

    pub(crate) fn reset_timeouts(&self) {
        self.timeouts.store(0, Ordering::Relaxed);
    }

    pub(crate) fn saw_no_stream(&self) -> bool {
        let failures = self.lock();
        failures.no_stream || failures.stream_missing
    }

    /// Returns whether the state changed.
    pub(crate) fn set_stream_missing(&self, missing: bool) -> bool {
        let mut failures = self.lock();
        let changed = failures.stream_missing != missing;
        failures.stream_missing = missing;
        if missing {
            self.failing.store(true, Ordering::Relaxed);
        }
        if !missing {
            failures.no_stream = false;
        }
        changed
    }

    pub(crate) fn is_full(&self) -> bool {
        self.lock().full.is_some()
    }

    pub(crate) fn clear_full(&self) {
        self.lock().full = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        // A panic while holding this lock cannot leave it inconsistent:
        // every field is valid on its own.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_publishes_and_probes() {
        let readiness = Readiness::new();
        assert!(matches!(readiness.status(), Err(Unready::NoPubAck(_))));
        readiness.record_probe(&Ok(()));
        assert_eq!(readiness.status(), Ok(()));

        readiness.record(&Err(PublishError::Full("maximum bytes exceeded".into())));
        assert_eq!(
            readiness.status(),
            Err(Unready::Full("maximum bytes exceeded".into()))
        );
        readiness.record(&Ok(Stored {
            sequence: 1,
            duplicate: false,
        }));
        assert_eq!(readiness.status(), Ok(()));

        for _ in 0..3 {
            readiness.record(&Err(PublishError::TimedOut(Duration::from_secs(5))));
        }
        assert_eq!(readiness.consecutive_unanswered(), 3);
        readiness.record_probe(&Ok(()));
        assert_eq!(readiness.consecutive_unanswered(), 0);

        readiness.record(&Err(PublishError::NoStream));
        assert!(readiness.saw_no_stream());
        assert!(readiness.set_stream_missing(true));
        assert_eq!(readiness.status(), Err(Unready::StreamMissing));
        assert!(readiness.set_stream_missing(false));
        assert!(!readiness.saw_no_stream());
    }
}
