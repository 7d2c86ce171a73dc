//! The clocks a fleet replica keeps: freshness measured on the monotonic
//! clock, and this host's wall clock against the fleet database's, which
//! lockouts, sessions and codes written by one host and read by all depend
//! on.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// How far a host's clock may be from the fleet database's before the
/// sidecar stops deciding. Lockouts, sessions and codes are timed by each
/// host's clock and shared by all: a host whose clock is a few minutes
/// slow writes locks that have ended for every other host (the red team
/// got 14 wrong guesses verified where 5 are promised, and none locked when
/// every fifth guess went to the slow host).
pub const MAX_CLOCK_SKEW_MS: u64 = 2_000;

/// Milliseconds on a monotonic clock, from the process's first call: what
/// freshness is measured in, so a wall clock set forward and back again
/// cannot leave the replica "heard from" in the future (the red team had a
/// host answer from a frozen replica for an hour after its clock ran an
/// hour fast for two seconds).
pub(super) fn mono_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u64::try_from(
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// The wall clock's lead over the monotonic one, in ms: constant while
/// nobody sets the wall clock, so a change between two heartbeats shows at
/// the next decision rather than at the next heartbeat.
fn wall_lead_ms() -> i64 {
    let wall = i64::try_from(crate::now_ms()).unwrap_or(i64::MAX);
    wall.saturating_sub(i64::try_from(mono_ms()).unwrap_or(i64::MAX))
}

/// How much the wall clock may move against the monotonic one between two
/// heartbeats before the last measure of skew no longer holds (NTP slews
/// far less than this in a few seconds).
const MAX_CLOCK_DRIFT_MS: u64 = 500;

/// The last heartbeat's measure of this host's clock against the
/// database's: the skew, and the wall clock's lead over the monotonic one
/// when it was taken.
pub(super) struct Clock {
    skew_ms: AtomicU64,
    lead_ms: AtomicI64,
}

impl Clock {
    pub(super) fn new() -> Self {
        Self {
            skew_ms: AtomicU64::new(0),
            lead_ms: AtomicI64::new(wall_lead_ms()),
        }
    }

    pub(super) fn measured(&self, skew_ms: u64) -> u64 {
        self.lead_ms.store(wall_lead_ms(), Ordering::Release);
        self.skew_ms.swap(skew_ms, Ordering::AcqRel)
    }

    /// The skew measured, plus how far the wall clock moved since: a clock
    /// set between two heartbeats is off by that much more at once.
    pub(super) fn skew_ms(&self) -> u64 {
        let moved = wall_lead_ms().abs_diff(self.lead_ms.load(Ordering::Acquire));
        let skew = self.skew_ms.load(Ordering::Acquire);
        if moved > MAX_CLOCK_DRIFT_MS {
            skew.saturating_add(moved)
        } else {
            skew
        }
    }
}
