//! Lockout after repeated failures: `threshold` consecutive failures lock an
//! account (or an agreement password) for a wait that doubles with each lock.
//! Keyed by the identifier as typed, so an unknown account locks exactly like
//! a real one and the answer never reveals which exists.

use super::AuthnConfig;
use crate::store::LockoutRecord;

/// Seconds left on a lock, if locked at `now_ms`.
pub fn locked_for(rec: Option<&LockoutRecord>, now_ms: u64) -> Option<u64> {
    let rec = rec?;
    (rec.locked_until_ms > now_ms).then(|| (rec.locked_until_ms - now_ms).div_ceil(1000))
}

/// The record after one more failure at `now_ms`.
pub fn after_failure(rec: Option<LockoutRecord>, cfg: &AuthnConfig, now_ms: u64) -> LockoutRecord {
    let mut rec = rec.unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
