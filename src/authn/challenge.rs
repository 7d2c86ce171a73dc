//! One-time codes the service issues: SMS codes to a real-name phone and
//! captchas. A code is 6 random digits, stored only as a hash, valid for a
//! few minutes, dead after too many wrong attempts, and good for one use.
//!
//! A 6-digit code has only ~20 bits, so its hash (SHA-256 salted with the
//! challenge id) keeps it out of a casual look at the store; what protects
//! it is the attempt limit and the short lifetime.

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::store::{ChallengePurpose, ChallengeRecord};

/// Why a code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("no such verification code was issued, or it belongs to another step")]
    Unknown,
    #[error("the verification code has expired; request a new one")]
    Expired,
    #[error("the verification code was already used; request a new one")]
    Used,
    #[error("too many wrong attempts for this verification code; request a new one")]
    Exhausted,
    #[error("the verification code is wrong ({attempts_left} attempt(s) left)")]
    Wrong { attempts_left: u32 },
}

/// A fresh code: 6 decimal digits, uniformly random.
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

pub fn code_hash(challenge_id: &str, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{challenge_id}:{code}").as_bytes()))
}

/// A challenge record for `code`.
pub fn issue(
    challenge_id: &str,
    code: &str,
    purpose: ChallengePurpose,
    subject: &str,
    now_ms: u64,
    ttl_secs: u64,
) -> ChallengeRecord {
    ChallengeRecord {
        purpose,
        subject: subject.to_owned(),
        code_hash: code_hash(challenge_id, code),
        expires_ms: now_ms + ttl_secs * 1000,
        failures: 0,
        used: false,
    }
}

/// Stands where a code hash would: no code hashes to it, so a decoy
/// challenge fails every attempt like a wrong code.
const DECOY_HASH: &str = "decoy";

/// A challenge no code answers, for when the details given match no account
/// (password recovery): the caller gets the same answer as for a real one,
/// and every attempt fails as a wrong code, until the attempts run out.
pub fn issue_decoy(
    purpose: ChallengePurpose,
    subject: &str,
    now_ms: u64,
    ttl_secs: u64,
) -> ChallengeRecord {
    ChallengeRecord {
        purpose,
        subject: subject.to_owned(),
        code_hash: DECOY_HASH.to_owned(),
        expires_ms: now_ms + ttl_secs * 1000,
        failures: 0,
        used: false,
    }
}

pub fn is_decoy(rec: &ChallengeRecord) -> bool {
    rec.code_hash == DECOY_HASH
}

/// Whether the challenge's lifetime is over: no code is accepted any more.
pub fn expired(rec: &ChallengeRecord, now_ms: u64) -> bool {
    now_ms >= rec.expires_ms
}

/// Checks `code` against `rec`, updating it: a wrong code counts an attempt,
/// the right one uses the challenge up. The caller stores `rec` either way.
pub fn attempt(
    rec: &mut ChallengeRecord,
    challenge_id: &str,
    code: &str,
    now_ms: u64,
    max_attempts: u32,
) -> Result<(), ChallengeError> {
    if rec.used {
        return Err(ChallengeError::Used);
    }
    if expired(rec, now_ms) {
        return Err(ChallengeError::Expired);
    }
    if rec.failures >= max_attempts {
        return Err(ChallengeError::Exhausted);
    }
    let given = code_hash(challenge_id, code.trim());
    // Compare hashes, not codes: timing reveals nothing about the code.
    if given != rec.code_hash {
        rec.failures += 1;
        if rec.failures >= max_attempts {
            return Err(ChallengeError::Exhausted);
        }
        return Err(ChallengeError::Wrong {
            attempts_left: max_attempts - rec.failures,
        });
    }
    rec.used = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn single_use_expiry_and_attempts() {
        let mut rec = issue("c1", "123456", ChallengePurpose::Login, "s", 0, 300);
        assert!(!rec.code_hash.contains("123456"));
        assert_eq!(
            attempt(&mut rec, "c1", "000000", 1, 5),
            Err(ChallengeError::Wrong { attempts_left: 4 })
        );
        assert_eq!(attempt(&mut rec, "c1", "123456", 1, 5), Ok(()));
        assert_eq!(
            attempt(&mut rec, "c1", "123456", 1, 5),
            Err(ChallengeError::Used)
        );

        let mut rec = issue("c2", "123456", ChallengePurpose::Login, "s", 0, 300);
        assert_eq!(
            attempt(&mut rec, "c2", "123456", 300_000, 5),
            Err(ChallengeError::Expired)
        );

        let mut rec = issue("c3", "123456", ChallengePurpose::Login, "s", 0, 300);
        for _ in 0..4 {
            assert!(matches!(
                attempt(&mut rec, "c3", "999999", 1, 5),
                Err(ChallengeError::Wrong { .. })
            ));
        }
        assert_eq!(
            attempt(&mut rec, "c3", "999999", 1, 5),
            Err(ChallengeError::Exhausted)
        );
        assert_eq!(
            attempt(&mut rec, "c3", "123456", 1, 5),
            Err(ChallengeError::Exhausted)
        );
    }

    #[test]
    fn a_decoy_takes_no_code() {
        let mut rec = issue_decoy(ChallengePurpose::Reset, "s", 0, 300);
        assert!(is_decoy(&rec));
        assert!(!is_decoy(&issue(
            "c",
            "123456",
            ChallengePurpose::Reset,
            "s",
            0,
            300
        )));
        for code in ["123456", "000000", "decoy", ""] {
            assert!(matches!(
                attempt(&mut rec, "c4", code, 1, 5),
                Err(ChallengeError::Wrong { .. })
            ));
        }
        assert_eq!(
            attempt(&mut rec, "c4", "654321", 1, 5),
            Err(ChallengeError::Exhausted)
        );
    }
}
