//! How a running replay shows progress: a bar with rate and ETA when stdout
//! is a terminal, otherwise a quiet line every few seconds. Both go to
//! stderr, so stdout keeps only the result (a table line or JSON).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the line reporter prints.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// How often the bar is refreshed.
const UPDATE_EVERY: Duration = Duration::from_millis(100);

pub(crate) struct Progress {
    id: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    last_update: Instant,
    /// Replayed before this run (a resumed replay), for the totals.
    replayed_before: u64,
}

/// Counters the replay loop reports.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) scanned: u64,
    pub(crate) replayed: u64,
    pub(crate) position: u64,
}

impl Progress {
    /// `expected`: how many messages the scan may read (the bar's length).
    pub(crate) fn start(id: &str, expected: u64, replayed_before: u64) -> Progress {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(expected);
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} read · {msg} · ETA {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let now = Instant::now();
        Progress {
            id: id.to_owned(),
            bar,
            started: now,
            last_line: now,
            last_update: now,
            replayed_before,
        }
    }

    /// Called for every message; cheap unless it is time to draw or print.
    pub(crate) fn update(&mut self, counts: Counts) {
        if self.last_update.elapsed() < UPDATE_EVERY {
            return;
        }
        self.last_update = Instant::now();
        self.draw(counts);
    }

    fn draw(&mut self, counts: Counts) {
        let rate = self.rate(counts.replayed);
        match &self.bar {
            Some(bar) => {
                bar.set_position(counts.scanned);
                bar.set_message(format!(
                    "{} replayed ({rate:.0}/s)",
                    self.replayed_before + counts.replayed
                ));
            }
            None => {
                if self.last_line.elapsed() >= LINE_EVERY {
                    self.last_line = Instant::now();
                    eprintln!(
                        "replay {}: {} read, {} replayed ({rate:.0}/s), through sequence {}",
                        self.id,
                        counts.scanned,
                        self.replayed_before + counts.replayed,
                        counts.position
                    );
                }
            }
        }
    }

    /// Replayed per second in this run.
    pub(crate) fn rate(&self, replayed: u64) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        if seconds > 0.0 {
            replayed as f64 / seconds
        } else {
            0.0
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The last update, whatever the time, then the bar goes away.
    pub(crate) fn finish(&mut self, counts: Counts) {
        if self.bar.is_some() {
            self.draw(counts);
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
