//! Issuance quotas: at most `limit` codes per key in a fixed window (SMS
//! codes per phone, captchas per natural-person account). A fixed window
//! rather than a sliding one: one small record per key, and at worst twice
//! the limit across a window boundary, which the limits allow for.

use crate::store::CodeRateRecord;

/// Counts one issuance at `now_ms` against `rec` (none yet: a fresh
/// window): the record to store, or, when the limit is reached, the seconds
/// until the window ends.
pub fn admit(
    rec: Option<CodeRateRecord>,
    limit: u32,
    window_secs: u64,
    now_ms: u64,
) -> Result<CodeRateRecord, u64> {
    let window_ms = window_secs.saturating_mul(1000);
    let mut rec = match rec {
        Some(r) if !window_over(&r, window_secs, now_ms) => r,
        _ => CodeRateRecord {
            window_start_ms: now_ms,
            count: 0,
        },
    };
    if rec.count >= limit {
        return Err((rec.window_start_ms + window_ms - now_ms).div_ceil(1000));
    }
    rec.count += 1;
    Ok(rec)
}

/// Whether the record's window is over, so that it limits nothing any more.
pub fn window_over(rec: &CodeRateRecord, window_secs: u64, now_ms: u64) -> bool {
    now_ms
        >= rec
            .window_start_ms
            .saturating_add(window_secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_window_then_a_fresh_window() {
        let mut rec = None;
        for i in 0..3 {
            let r = admit(rec, 3, 600, 1_000 + i).unwrap();
            assert_eq!(r.count, i as u32 + 1);
            rec = Some(r);
        }
        assert_eq!(admit(rec.clone(), 3, 600, 2_000), Err(599));
        assert_eq!(admit(rec.clone(), 3, 600, 600_999), Err(1));
        assert!(!window_over(rec.as_ref().unwrap(), 600, 600_999));
        assert!(window_over(rec.as_ref().unwrap(), 600, 601_000));
        let fresh = admit(rec, 3, 600, 601_000).unwrap();
        assert_eq!((fresh.window_start_ms, fresh.count), (601_000, 1));
    }

    #[test]
    fn a_zero_limit_admits_nothing() {
        assert_eq!(admit(None, 0, 10, 0), Err(10));
    }
}
