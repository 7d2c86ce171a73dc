//! UTC times for the decision log's command line and HTTP filters, without a
//! calendar dependency: RFC 3339 in UTC, plain milliseconds, or an age.

/// `2026-11-27T03:30:02.123Z`.
pub fn format_utc(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// Parses a point in time, as ms since the Unix epoch:
/// - `1764214202123`: milliseconds since the epoch;
/// - `2026-11-27`, `2026-11-27T03:30:02Z`, `2026-11-27T03:30:02.123Z`: UTC;
/// - `90s`, `15m`, `2h`, `7d`: that long before `now_ms`.
pub fn parse_time(s: &str, now_ms: u64) -> Result<u64, String> {
    let s = s.trim();
    let bad = || {
        format!("{s:?} is not a time: use ms since the epoch, 2026-11-27T03:30:00Z, 2026-11-27 or an age like 15m, 2h, 7d")
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    if let Some(unit) = s.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = s[..s.len() - 1].parse::<u64>() {
            let factor = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                _ => 86_400_000,
            };
            return Ok(now_ms.saturating_sub(n.saturating_mul(factor)));
        }
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        s.get(r)
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad)
    };
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if s.len() > 10 {
        let rest = &s[10..];
        if !(rest.starts_with('T') || rest.starts_with(' ')) || !rest.ends_with('Z') {
            return Err(bad());
        }
        if b.len() < 20 || b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || mi > 59 || sec > 60 {
            return Err(bad());
        }
        ms += (h * 3600 + mi * 60 + sec) * 1000;
        let frac = &s[19..s.len() - 1];
        if let Some(digits) = frac.strip_prefix('.') {
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            ms += digits.parse::<i64>().map_err(|_| bad())? * 10_i64.pow(3 - digits.len() as u32);
        } else if !frac.is_empty() {
            return Err(bad());
        }
    }
    u64::try_from(ms).map_err(|_| bad())
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        for ms in [0, 951_782_400_000, 1_764_214_202_123, 4_102_444_799_999] {
            assert_eq!(parse_time(&format_utc(ms), 0), Ok(ms), "{}", format_utc(ms));
        }
        assert_eq!(format_utc(1_764_214_202_123), "2025-11-27T03:30:02.123Z");
    }

    #[test]
    fn accepts_dates_millis_and_ages() {
        assert_eq!(parse_time("1970-01-02", 0), Ok(86_400_000));
        assert_eq!(parse_time("42", 0), Ok(42));
        assert_eq!(parse_time("2h", 10_000_000), Ok(10_000_000 - 7_200_000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z", 0), Ok(1_500));
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-27T03:30",
            "2026-11-27T03:30:00+08:00",
            "税务税务税务税务",
        ] {
            assert!(parse_time(bad, 0).is_err(), "{bad}");
        }
    }
}
