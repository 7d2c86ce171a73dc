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
    ClockReading::now().lead_ms()
}

/// Both clocks read at one instant.
#[derive(Debug, Clone, Copy)]
pub struct ClockReading {
    wall_ms: u64,
    mono_ms: u64,
}

impl ClockReading {
    pub fn now() -> Self {
        Self {
            wall_ms: crate::now_ms(),
            mono_ms: mono_ms(),
        }
    }

    fn lead_ms(self) -> i64 {
        let wall = i64::try_from(self.wall_ms).unwrap_or(i64::MAX);
        wall.saturating_sub(i64::try_from(self.mono_ms).unwrap_or(i64::MAX))
    }
}

/// One comparison with the database's clock: this host's clocks read just
/// before the question was sent and just after the answer came, and the
/// database's time in the answer (read by a statement that waits on
/// nothing, so it falls inside the round trip).
#[derive(Debug, Clone, Copy)]
pub struct ClockSample {
    pub sent: ClockReading,
    pub answered: ClockReading,
    pub database_ms: u64,
}

impl ClockSample {
    /// Half the round trip, on the monotonic clock (a wall clock set during
    /// the trip must not shorten or hide it).
    fn half_trip_ms(&self) -> u64 {
        self.answered
            .mono_ms
            .saturating_sub(self.sent.mono_ms)
            .div_ceil(2)
    }

    /// How far this host's wall clock may be from the database's, at
    /// worst: the database read its clock somewhere within the round trip,
    /// so the distance from the trip's middle is widened by half the trip,
    /// never narrowed (a slow answer must not hide a skew).
    fn worst_skew_ms(&self) -> u64 {
        let half = self.half_trip_ms();
        let middle = self.sent.wall_ms.saturating_add(half);
        self.database_ms.abs_diff(middle).saturating_add(half)
    }
}

/// Half the longest round trip whose comparison counts: a longer one says
/// too little about the clocks.
const MAX_HALF_TRIP_MS: u64 = 250;

/// How much the wall clock may move against the monotonic one between two
/// heartbeats before the last measure of skew no longer holds (NTP slews
/// far less than this in a few seconds).
const MAX_CLOCK_DRIFT_MS: u64 = 500;

/// How long a measure holds at least: a host whose heartbeats fail or are
/// too slow to measure (its row locked, the database away) cannot tell
/// whether its clock is right, and stops deciding once its last measure is
/// this old (or older than the replica's staleness bound, if that is
/// longer: the database being away is the bound's business).
const MIN_MEASURE_LIFE_MS: u64 = 6_000;

/// The last accepted measure of this host's clock against the database's:
/// the skew at worst, the wall clock's lead over the monotonic one at the
/// instant it was taken, and when (monotonic).
pub(super) struct Clock {
    skew_ms: AtomicU64,
    lead_ms: AtomicI64,
    measured_ms: AtomicU64,
    life_ms: u64,
}

/// Where a host's clock stands against the database's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockStanding {
    /// The skew at worst: the last measure's, plus how far the wall clock
    /// moved since when that is more than drift.
    pub skew_ms: u64,
    /// How old the last measure is.
    pub measure_age_ms: u64,
    /// How old a measure may be.
    pub measure_life_ms: u64,
}

impl ClockStanding {
    pub fn is_skewed(&self) -> bool {
        self.skew_ms > MAX_CLOCK_SKEW_MS
    }

    pub fn is_unknown(&self) -> bool {
        self.measure_age_ms > self.measure_life_ms
    }
}

impl Clock {
    /// A clock taken as right until the first heartbeat, which runs at once.
    pub(super) fn new(max_stale_ms: u64) -> Self {
        Self {
            skew_ms: AtomicU64::new(0),
            lead_ms: AtomicI64::new(wall_lead_ms()),
            measured_ms: AtomicU64::new(mono_ms()),
            life_ms: max_stale_ms.max(MIN_MEASURE_LIFE_MS),
        }
    }

    /// Takes `sample` as the clock's measure, unless its round trip was too
    /// long to say anything; answers the skew before and after.
    pub(super) fn measured(&self, sample: &ClockSample) -> Option<(u64, u64)> {
        if sample.half_trip_ms() > MAX_HALF_TRIP_MS {
            return None;
        }
        let skew = sample.worst_skew_ms();
        self.lead_ms.store(sample.sent.lead_ms(), Ordering::Release);
        self.measured_ms
            .store(sample.answered.mono_ms, Ordering::Release);
        Some((self.skew_ms.swap(skew, Ordering::AcqRel), skew))
    }

    pub(super) fn standing(&self) -> ClockStanding {
        let now = ClockReading::now();
        let moved = now.lead_ms().abs_diff(self.lead_ms.load(Ordering::Acquire));
        let skew = self.skew_ms.load(Ordering::Acquire);
        ClockStanding {
            skew_ms: if moved > MAX_CLOCK_DRIFT_MS {
                skew.saturating_add(moved)
            } else {
                skew
            },
            measure_age_ms: now
                .mono_ms
                .saturating_sub(self.measured_ms.load(Ordering::Acquire)),
            measure_life_ms: self.life_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(wall_ms: u64, mono_ms: u64) -> ClockReading {
        ClockReading { wall_ms, mono_ms }
    }

    #[test]
    fn a_slow_answer_widens_the_skew_and_never_hides_it() {
        // The host is 2,300 ms behind; the answer took 900 ms, and the
        // database read its clock at the very end of it (after waiting on
        // a lock, as the red team arranged).
        let slow = ClockSample {
            sent: reading(1_000_000, 10_000),
            answered: reading(1_000_900, 10_900),
            database_ms: 1_000_900 + 2_300,
        };
        assert!(slow.worst_skew_ms() >= 2_300, "{}", slow.worst_skew_ms());
        // Too slow to say anything: not taken.
        let clock = Clock::new(0);
        assert_eq!(clock.measured(&slow), None);
        // A quick answer is taken, half its trip counted against the host.
        let quick = ClockSample {
            sent: reading(1_000_000, 10_000),
            answered: reading(1_000_010, 10_010),
            database_ms: 1_000_005 + 1_000,
        };
        assert_eq!(clock.measured(&quick), Some((0, 1_005)));
    }

    #[test]
    fn a_wall_clock_set_during_the_trip_is_seen_at_once() {
        // Set an hour ahead between sending and the answer: the monotonic
        // trip is short, the reference is the clocks at sending, so the
        // next look sees the jump.
        let clock = Clock::new(0);
        let now = ClockReading::now();
        let sample = ClockSample {
            sent: now,
            answered: reading(now.wall_ms + 3_600_000, now.mono_ms + 2),
            database_ms: now.wall_ms + 1,
        };
        assert!(clock.measured(&sample).is_some());
        assert!(!clock.standing().is_skewed());
        clock
            .lead_ms
            .store(now.lead_ms() - 3_600_000, Ordering::Release);
        assert!(clock.standing().is_skewed());
    }

    #[test]
    fn a_measure_past_its_life_leaves_the_clock_unknown() {
        let clock = Clock {
            life_ms: 5,
            ..Clock::new(0)
        };
        assert!(!clock.standing().is_unknown());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.standing().is_unknown());
        // A longer staleness bound lengthens the life.
        assert_eq!(Clock::new(60_000).life_ms, 60_000);
        assert_eq!(Clock::new(0).life_ms, MIN_MEASURE_LIFE_MS);
    }
}
