//! Progress of a long import: a plain line on stderr every few seconds
//! (records so far, rate), so that a million-record import is not silent
//! and a log file of it stays readable (no terminal control codes).

use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(3);

pub struct Progress {
    enabled: bool,
    phase: &'static str,
    started: Instant,
    last: Instant,
    count: u64,
    /// Whether a line was printed in this phase: then its end is too.
    spoke: bool,
}

impl Progress {
    /// `enabled`: print at all (the CLI); the server's demo seeding is quiet.
    pub fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Self {
            enabled,
            phase: "",
            started: now,
            last: now,
            count: 0,
            spoke: false,
        }
    }

    pub fn phase(&mut self, phase: &'static str) {
        self.end();
        let now = Instant::now();
        (self.phase, self.started, self.last, self.count, self.spoke) = (phase, now, now, 0, false);
    }

    /// `n` more records done.
    pub fn add(&mut self, n: u64) {
        self.count += n;
        // Reading the clock every record would cost more than counting.
        if !self.enabled || self.count % 4096 >= n {
            return;
        }
        if self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            self.print("");
        }
    }

    /// Ends the phase: its total, if it printed progress.
    pub fn end(&mut self) {
        if self.spoke {
            self.print(" (done)");
            self.spoke = false;
        }
    }

    fn print(&mut self, suffix: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = self.count as f64 / secs.max(1e-3);
        eprintln!(
            "import: {} {} records in {secs:.1} s ({rate:.0}/s){suffix}",
            self.phase, self.count
        );
        self.spoke = true;
    }
}
