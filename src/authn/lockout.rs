//! Lockout after repeated failures: `threshold` consecutive failures lock an
//! account (or an agreement password) for a wait that doubles with each lock.
//! Keyed by the identifier as typed, so an unknown account locks exactly like
//! a real one and the answer never reveals which exists.
//!
//! An attempt is counted as a failure when it is *reserved*, before argon2
//! runs, in the same transaction that checks the lock: attempts in flight
//! count, so a burst of parallel guesses gets at most `threshold`
//! verifications and earns the first lock only. A success then forgets the
//! record; a failure needs no further write.

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

/// Seconds left on a lock, if locked at `now_ms`.
pub fn locked_for(rec: Option<&LockoutRecord>, now_ms: u64) -> Option<u64> {
    let rec = rec?;
    (rec.locked_until_ms > now_ms).then(|| (rec.locked_until_ms - now_ms).div_ceil(1000))
}

/// Reserves one attempt at `now_ms`: the seconds left on a lock if locked
/// (nothing is verified then), else the record to store before verifying,
/// with the attempt counted as a failure until it succeeds. The reservation
/// that reaches the threshold locks at once, so no later attempt is
/// verified while it is in flight; if it succeeds, the success forgets the
/// lock with the count.
pub fn reserve(
    rec: Option<LockoutRecord>,
    cfg: &AuthnConfig,
    now_ms: u64,
) -> Result<LockoutRecord, u64> {
    if let Some(secs) = locked_for(rec.as_ref(), now_ms) {
        return Err(secs);
    }
    Ok(after_failure(rec, cfg, now_ms))
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
pub fn forgettable(rec: &LockoutRecord, cfg: &AuthnConfig, now_ms: u64) -> bool {
    let quiet_since = rec.locked_until_ms.max(rec.last_failure_ms);
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

    #[test]
    fn reservations_beyond_the_threshold_are_refused_and_the_lock_does_not_grow() {
        let cfg = AuthnConfig::default();
        let mut rec = None;
        for _ in 0..cfg.lockout_threshold {
            rec = Some(reserve(rec, &cfg, 0).expect("not locked yet"));
        }
        // Five in flight: the sixth is refused without a verification, and
        // refusals do not count, so the burst earns the first lock only.
        for _ in 0..50 {
            assert_eq!(reserve(rec.clone(), &cfg, 1_000).err(), Some(59));
        }
        let rec = rec.unwrap();
        assert_eq!((rec.locks, rec.locked_until_ms), (1, 60_000));
    }

    #[test]
    fn fifth_failure_locks_and_waits_grow() {
        let cfg = AuthnConfig::default();
        let mut rec = None;
        for _ in 0..4 {
            rec = Some(after_failure(rec, &cfg, 0));
            assert_eq!(locked_for(rec.as_ref(), 0), None);
        }
        rec = Some(after_failure(rec, &cfg, 0));
        assert_eq!(locked_for(rec.as_ref(), 0), Some(60));
        assert_eq!(locked_for(rec.as_ref(), 60_000), None);
        for _ in 0..5 {
            rec = Some(after_failure(rec, &cfg, 60_000));
        }
        assert_eq!(locked_for(rec.as_ref(), 60_000), Some(120));
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
            last_failure_ms: 0,
        };
        assert!(!forgettable(&old, &cfg, 149_999));
        assert!(forgettable(&old, &cfg, 150_000));
    }
}
