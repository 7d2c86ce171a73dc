//! Lockout after repeated failures: `threshold` consecutive failures lock an
//! account (or an agreement password) for a wait that doubles with each lock.
//! Keyed by the identifier as typed, so an unknown account locks exactly like
//! a real one and the answer never reveals which exists.
//!
//! An attempt is *reserved* before argon2 runs, in the same transaction that
//! checks the lock, and released when the verification ends. Reservations
//! are kept apart from completed failures: while failures plus attempts in
//! flight reach the threshold, further attempts are refused as "in progress"
//! without locking, so a burst of parallel guesses gets at most `threshold`
//! verifications (issue #10), and a burst of parallel logins with the right
//! password never locks its own account (the first design counted every
//! reservation as a failure, so five right passwords in flight locked it).
//! A reservation whose verification never ended (the server died mid-verify)
//! counts as a failure once its own deadline passes: a crash never frees a
//! guess, and later reservations never keep a dead one alive.

use std::fmt;

use super::AuthnConfig;
use crate::domain::StaffKey;
use crate::ids::{CreditCode, PersonKey};
use crate::store::LockoutRecord;

/// What a lockout counts the failures of; its text form (`kind:id`) is the
/// `LockoutRecord`'s store key, as it has always been written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockKey {
    /// An enterprise account password, by the credit code the account
    /// resolved to, or as typed when it resolved to none (so an unknown
    /// account locks like a real one).
    Enterprise(String),
    /// An agency account password, likewise.
    Agency(String),
    /// A staff member's personal password.
    Staff(StaffKey),
    /// An agent staff member's personal password.
    AgentStaff(StaffKey),
    /// A natural person's password.
    Person(PersonKey),
    /// The agreement password of `client`'s recognition of `agency`.
    Agreement { agency: String, client: CreditCode },
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Enterprise(code) => write!(f, "enterprise:{code}"),
            Self::Agency(code) => write!(f, "agency:{code}"),
            Self::Staff(key) => write!(f, "staff:{key}"),
            Self::AgentStaff(key) => write!(f, "agent:{key}"),
            Self::Person(person) => write!(f, "person:{}", person.key()),
            Self::Agreement { agency, client } => write!(f, "agreement:{agency}/{client}"),
        }
    }
}

/// How long after it was taken a reservation still in flight is presumed
/// dead (its server crashed mid-verify) and counted as a failure. Far
/// beyond any argon2 verification, queue wait included; a verification that
/// outlives it was counted as a failure already and ends as nothing more.
pub const RESERVATION_DEADLINE_MS: u64 = 60_000;

/// The retry an attempt refused as "in progress" is told: the attempts in
/// flight end within an argon2 verification or two.
pub const IN_PROGRESS_RETRY_SECS: u64 = 1;

/// Why an attempt was not reserved; nothing is verified either way, and
/// nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Locked for this many more seconds.
    Locked(u64),
    /// Failures and attempts still being verified already reach the
    /// threshold: retry in this many seconds, when those have ended (one
    /// more failure among them locks; a success frees the account).
    InProgress(u64),
}

/// Seconds left on a lock, if locked at `now_ms`.
fn locked_for(rec: &LockoutRecord, now_ms: u64) -> Option<u64> {
    (rec.locked_until_ms > now_ms).then(|| (rec.locked_until_ms - now_ms).div_ceil(1000))
}

/// The record as it stands at `now_ms`: each reservation past its deadline
/// is a failure at that deadline (which may lock, as any failure may).
fn settled(mut rec: LockoutRecord, cfg: &AuthnConfig, now_ms: u64) -> LockoutRecord {
    let mut dead: Vec<u64> = rec
        .in_flight
        .iter()
        .copied()
        .filter(|d| *d <= now_ms)
        .collect();
    if dead.is_empty() {
        return rec;
    }
    rec.in_flight.retain(|d| *d > now_ms);
    dead.sort_unstable();
    // In flight never exceeds the threshold; the cap only bounds the loop
    // over a damaged record.
    dead.truncate(cfg.lockout_threshold.max(1) as usize);
    for at in dead {
        rec = after_failure(Some(rec), cfg, at);
    }
    rec
}

/// One attempt in flight: its deadline names it when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation(u64);

/// Reserves one attempt at `now_ms`: the record to store before verifying
/// (one more attempt in flight) and the reservation to end after, or why
/// nothing may be verified now. Refusals write nothing, so a flood of them
/// costs no commits and never grows a lock.
pub fn reserve(
    rec: Option<LockoutRecord>,
    cfg: &AuthnConfig,
    now_ms: u64,
) -> Result<(LockoutRecord, Reservation), Refused> {
    let mut rec = settled(rec.unwrap_or_default(), cfg, now_ms);
    if let Some(secs) = locked_for(&rec, now_ms) {
        return Err(Refused::Locked(secs));
    }
    let in_flight = u32::try_from(rec.in_flight.len()).unwrap_or(u32::MAX);
    let pending = rec.consecutive_failures.saturating_add(in_flight);
    if pending >= cfg.lockout_threshold.max(1) {
        return Err(Refused::InProgress(IN_PROGRESS_RETRY_SECS));
    }
    let deadline = now_ms.saturating_add(RESERVATION_DEADLINE_MS);
    rec.in_flight.push(deadline);
    Ok((rec, Reservation(deadline)))
}

/// The record after the attempt `r` verified wrong at `now_ms`: no longer
/// in flight, one more failure (which may lock, doubling) — unless it
/// outlived its deadline and was counted as a failure then already.
pub fn after_wrong(
    rec: Option<LockoutRecord>,
    r: Reservation,
    cfg: &AuthnConfig,
    now_ms: u64,
) -> LockoutRecord {
    let mut rec = rec.unwrap_or_default();
    if end_reservation(&mut rec, r) {
        rec = after_failure(Some(rec), cfg, now_ms);
    }
    rec
}

/// The record after the attempt `r` verified right: failures and locks
/// forgotten; `None` (remove the record) unless other attempts are still in
/// flight, whose reservations must survive.
pub fn after_right(rec: Option<LockoutRecord>, r: Reservation) -> Option<LockoutRecord> {
    let mut rec = rec?;
    end_reservation(&mut rec, r);
    (!rec.in_flight.is_empty()).then(|| LockoutRecord {
        in_flight: rec.in_flight,
        ..LockoutRecord::default()
    })
}

/// Takes `r` out of flight; false when it was no longer there (settled as
/// a failure at its deadline).
fn end_reservation(rec: &mut LockoutRecord, Reservation(deadline): Reservation) -> bool {
    match rec.in_flight.iter().position(|d| *d == deadline) {
        Some(i) => {
            rec.in_flight.swap_remove(i);
            true
        }
        None => false,
    }
}

/// The record after one more failure at `now_ms`.
fn after_failure(rec: Option<LockoutRecord>, cfg: &AuthnConfig, now_ms: u64) -> LockoutRecord {
    let mut rec = rec.unwrap_or_default();
    rec.last_failure_ms = now_ms;
    rec.consecutive_failures += 1;
    if rec.consecutive_failures >= cfg.lockout_threshold {
        let factor = 1u64 << rec.locks.min(20);
        let wait = cfg
            .lockout_base_secs
            .saturating_mul(factor)
            .min(cfg.lockout_max_secs);
        rec.locked_until_ms = now_ms + wait * 1000;
        rec.locks += 1;
        rec.consecutive_failures = 0;
    }
    rec
}

/// Whether the record may be forgotten at `now_ms`: no lock and no failure
/// for as long as the longest lock. Forgetting resets both the pending
/// failures and the doubling, so a record is kept while someone may still
/// be guessing: an attacker who pauses between rounds for less than the
/// longest lock keeps their count and their doubled waits. A record written
/// before `last_failure_ms` existed counts as quiet since its lock ended.
///
/// Attempts in flight are failures to come (or at their deadline), so a
/// record with any is quiet only from its deadline on: live reservations
/// are never forgotten.
pub fn forgettable(rec: &LockoutRecord, cfg: &AuthnConfig, now_ms: u64) -> bool {
    let reserved_until = rec.in_flight.iter().copied().max().unwrap_or(0);
    let quiet_since = rec
        .locked_until_ms
        .max(rec.last_failure_ms)
        .max(reserved_until);
    now_ms >= quiet_since.saturating_add(cfg.lockout_max_secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_the_stored_keys_of_before() {
        let staff: StaffKey = "91210102MA0TAX001F/resident_id:21010219921111404X"
            .parse()
            .unwrap();
        let person = staff.person.clone();
        let client = CreditCode::parse("91210102MA0TAX001F").unwrap();
        let agency = "91210100MA0AGT004B".to_owned();
        let cases = [
            (LockKey::Enterprise("AB12".into()), "enterprise:AB12"),
            (LockKey::Agency(agency.clone()), "agency:91210100MA0AGT004B"),
            (
                LockKey::Staff(staff.clone()),
                "staff:91210102MA0TAX001F/resident_id:21010219921111404X",
            ),
            (
                LockKey::AgentStaff(staff),
                "agent:91210102MA0TAX001F/resident_id:21010219921111404X",
            ),
            (
                LockKey::Person(person),
                "person:resident_id:21010219921111404X",
            ),
            (
                LockKey::Agreement { agency, client },
                "agreement:91210100MA0AGT004B/91210102MA0TAX001F",
            ),
        ];
        for (key, stored) in cases {
            assert_eq!(key.to_string(), stored);
        }
    }

    /// Reserves `n` attempts at `now`, each of which must be admitted: the
    /// record and the reservations, oldest first.
    fn reserved(
        n: u32,
        rec: Option<LockoutRecord>,
        cfg: &AuthnConfig,
        now: u64,
    ) -> (LockoutRecord, Vec<Reservation>) {
        let mut rec = rec.unwrap_or_default();
        let mut taken = Vec::new();
        for _ in 0..n {
            let (next, r) = reserve(Some(rec), cfg, now).expect("admitted");
            rec = next;
            taken.push(r);
        }
        (rec, taken)
    }

    #[test]
    fn reservations_beyond_the_threshold_are_refused_without_a_lock() {
        let cfg = AuthnConfig::default();
        let (rec, _) = reserved(cfg.lockout_threshold, None, &cfg, 0);
        assert_eq!((rec.in_flight.len(), rec.consecutive_failures), (5, 0));
        // Five in flight: the sixth is refused without a verification, and
        // without locking or counting anything.
        for _ in 0..50 {
            assert_eq!(
                reserve(Some(rec.clone()), &cfg, 1_000).err(),
                Some(Refused::InProgress(IN_PROGRESS_RETRY_SECS))
            );
        }
        assert_eq!((rec.locks, rec.locked_until_ms), (0, 0));
    }

    #[test]
    fn right_passwords_in_flight_never_lock() {
        let cfg = AuthnConfig::default();
        let (rec, taken) = reserved(cfg.lockout_threshold, None, &cfg, 0);
        let mut rec = Some(rec);
        for (i, r) in taken.iter().enumerate() {
            rec = after_right(rec, *r);
            let left = taken.len() - i - 1;
            if left == 0 {
                // The last one out removes the record.
                assert!(rec.is_none());
                break;
            }
            let r = rec.as_ref().expect("others still in flight");
            assert_eq!(
                (r.in_flight.len(), r.locks, r.locked_until_ms),
                (left, 0, 0)
            );
        }
    }

    #[test]
    fn wrong_passwords_in_flight_lock_once_at_the_threshold() {
        let cfg = AuthnConfig::default();
        let (mut rec, taken) = reserved(cfg.lockout_threshold, None, &cfg, 0);
        let (last, first) = taken.split_last().unwrap();
        for r in first {
            rec = after_wrong(Some(rec), *r, &cfg, 10);
            assert_eq!(rec.locks, 0);
            assert_eq!(
                reserve(Some(rec.clone()), &cfg, 10).err(),
                Some(Refused::InProgress(1))
            );
        }
        rec = after_wrong(Some(rec), *last, &cfg, 10);
        assert_eq!(
            (rec.in_flight.len(), rec.locks, rec.locked_until_ms),
            (0, 1, 60_010)
        );
        assert_eq!(
            reserve(Some(rec), &cfg, 20).err(),
            Some(Refused::Locked(60))
        );
    }

    #[test]
    fn a_success_forgets_failures_but_keeps_the_others_in_flight() {
        let cfg = AuthnConfig::default();
        let (mut rec, taken) = reserved(2, None, &cfg, 0);
        for r in taken {
            rec = after_wrong(Some(rec), r, &cfg, 0);
        }
        let (rec, taken) = reserved(3, Some(rec), &cfg, 5);
        let rec = after_right(Some(rec), taken[0]);
        let r = rec.clone().unwrap();
        assert_eq!((r.consecutive_failures, r.in_flight.len()), (0, 2));
        // Two wrong still in flight end as two failures, no lock.
        let rec = after_wrong(rec, taken[1], &cfg, 5);
        let r = after_wrong(Some(rec), taken[2], &cfg, 5);
        assert_eq!(
            (r.consecutive_failures, r.in_flight.len(), r.locks),
            (2, 0, 0)
        );
    }

    #[test]
    fn reservations_past_their_deadline_count_as_failures() {
        let cfg = AuthnConfig::default();
        // The server died with five attempts in flight: until the deadline
        // nothing more is verified, then they are five failures, locked from
        // the deadline on, and the account is refused as locked.
        let (rec, taken) = reserved(cfg.lockout_threshold, None, &cfg, 1_000);
        let deadline = 1_000 + RESERVATION_DEADLINE_MS;
        assert_eq!(
            reserve(Some(rec.clone()), &cfg, deadline - 1).err(),
            Some(Refused::InProgress(1))
        );
        assert_eq!(
            reserve(Some(rec.clone()), &cfg, deadline).err(),
            Some(Refused::Locked(60))
        );
        // Two dead attempts: two failures, and the next attempt is admitted.
        let (two, _) = reserved(2, None, &cfg, 0);
        let (next, _) = reserve(Some(two), &cfg, RESERVATION_DEADLINE_MS).unwrap();
        assert_eq!((next.consecutive_failures, next.in_flight.len()), (2, 1));
        // A verification that outlived its deadline was counted as a
        // failure when the deadline passed; ending it late counts nothing
        // more and frees nothing.
        let settled_rec = settled(rec, &cfg, deadline);
        let late = after_wrong(Some(settled_rec.clone()), taken[0], &cfg, deadline);
        assert_eq!(
            (late.in_flight.len(), late.locks, late.consecutive_failures),
            (0, 1, 0)
        );
        assert_eq!(late.locked_until_ms, settled_rec.locked_until_ms);
    }

    #[test]
    fn later_reservations_never_keep_a_dead_one_alive() {
        let cfg = AuthnConfig::default();
        // Four attempts die at 0; the owner logs in every 15 s after. Each
        // dead reservation still ends at its own deadline, as a failure.
        let (mut rec, _) = reserved(4, None, &cfg, 0);
        let mut now = 0;
        while now < RESERVATION_DEADLINE_MS {
            now += 15_000;
            let (next, r) = reserve(Some(rec), &cfg, now).expect("one login at a time is admitted");
            rec = after_right(Some(next), r).unwrap_or_default();
        }
        assert!(rec.in_flight.is_empty(), "{rec:?}");
        // Settled as four failures at their deadline, then forgotten by the
        // owner's success: the account is free again, not one typo from a
        // lock for ever.
        assert_eq!((rec.consecutive_failures, rec.locks), (0, 0));
        let (next, _) = reserve(Some(rec), &cfg, now).unwrap();
        assert_eq!(next.in_flight.len(), 1);
    }

    #[test]
    fn a_record_with_live_reservations_is_never_forgotten() {
        let cfg = AuthnConfig {
            lockout_max_secs: 100,
            ..AuthnConfig::default()
        };
        let (rec, _) = reserved(1, None, &cfg, 0);
        let deadline = RESERVATION_DEADLINE_MS;
        assert!(!forgettable(&rec, &cfg, deadline - 1));
        // Past its deadline it is a failure at the deadline: kept as long.
        assert!(!forgettable(&rec, &cfg, deadline + 99_999));
        assert!(forgettable(&rec, &cfg, deadline + 100_000));
    }

    #[test]
    fn fifth_failure_locks_and_waits_grow() {
        let cfg = AuthnConfig::default();
        let mut rec = None;
        for _ in 0..4 {
            rec = Some(after_failure(rec, &cfg, 0));
            assert_eq!(locked_for(rec.as_ref().unwrap(), 0), None);
        }
        rec = Some(after_failure(rec, &cfg, 0));
        assert_eq!(locked_for(rec.as_ref().unwrap(), 0), Some(60));
        assert_eq!(locked_for(rec.as_ref().unwrap(), 60_000), None);
        for _ in 0..5 {
            rec = Some(after_failure(rec, &cfg, 60_000));
        }
        assert_eq!(locked_for(rec.as_ref().unwrap(), 60_000), Some(120));
    }

    #[test]
    fn forgotten_only_after_a_quiet_period_as_long_as_the_longest_lock() {
        let cfg = AuthnConfig {
            lockout_max_secs: 100,
            ..AuthnConfig::default()
        };
        // Pending failures, no lock: kept for 100 s after the last one.
        let mut rec = after_failure(None, &cfg, 1_000);
        rec = after_failure(Some(rec), &cfg, 5_000);
        assert!(!forgettable(&rec, &cfg, 104_999));
        assert!(forgettable(&rec, &cfg, 105_000));
        // Locked: never while the lock lasts, then 100 s of quiet after it.
        while rec.locks == 0 {
            rec = after_failure(Some(rec), &cfg, 10_000);
        }
        let until = rec.locked_until_ms;
        assert!(until > 10_000 && rec.consecutive_failures == 0 && rec.locks == 1);
        assert!(!forgettable(&rec, &cfg, until - 1));
        assert!(!forgettable(&rec, &cfg, until + 99_999));
        assert!(forgettable(&rec, &cfg, until + 100_000));
        // A record from before `last_failure_ms`: quiet since its lock ended.
        let old = LockoutRecord {
            consecutive_failures: 2,
            locks: 1,
            locked_until_ms: 50_000,
            ..LockoutRecord::default()
        };
        assert!(!forgettable(&old, &cfg, 149_999));
        assert!(forgettable(&old, &cfg, 150_000));
    }
}
