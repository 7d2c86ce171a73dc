//! Times for the decision log's command line and HTTP filters, without a
//! calendar dependency. Storage is always UTC milliseconds; people read and
//! write times at an offset (Beijing time, `+08:00`, by default), so a time
//! is parsed with its own offset, or the configured one when it names none,
//! and shown with the offset it is shown at.

use std::fmt;
use std::str::FromStr;

/// A fixed offset from UTC, in minutes east. China has one time zone and no
/// daylight saving, so a fixed offset is all the bureau needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offset(i32);

impl Offset {
    pub const UTC: Offset = Offset(0);
    /// China Standard Time, the default for display and for times without
    /// an offset.
    pub const BEIJING: Offset = Offset(8 * 60);

    /// Minutes east of UTC; `None` outside ±23:59.
    pub fn from_minutes(minutes: i32) -> Option<Self> {
        (minutes.abs() < 24 * 60).then_some(Offset(minutes))
    }

    /// Milliseconds east of UTC.
    pub fn ms(self) -> i64 {
        i64::from(self.0) * 60_000
    }
}

impl Default for Offset {
    fn default() -> Self {
        Offset::BEIJING
    }
}

impl fmt::Display for Offset {
    /// `+08:00`; UTC is `Z`, as RFC 3339 writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("Z");
        }
        let sign = if self.0 < 0 { '-' } else { '+' };
        let m = self.0.abs();
        write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
    }
}

impl FromStr for Offset {
    type Err = String;
    /// `+08:00`, `+0800`, `+08`, `-05:30`, `Z` or `UTC`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a UTC offset: use +08:00, -05:30 or Z");
        let t = s.trim();
        if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
            return Ok(Offset::UTC);
        }
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(bad()),
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        let colons = rest.len() - digits.len();
        let shape_ok = match digits.len() {
            2 => colons == 0,
            4 => colons == 0 || (colons == 1 && rest.as_bytes().get(2) == Some(&b':')),
            _ => false,
        };
        if !shape_ok || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let h: i32 = digits[..2].parse().map_err(|_| bad())?;
        let m: i32 = digits
            .get(2..)
            .filter(|m| !m.is_empty())
            .map_or(Ok(0), str::parse)
            .map_err(|_| bad())?;
        if m > 59 {
            return Err(bad());
        }
        Offset::from_minutes(sign * (h * 60 + m)).ok_or_else(bad)
    }
}

/// `2026-11-27T03:30:02.123Z`.
pub fn format_utc(ms: u64) -> String {
    format_time(ms, Offset::UTC)
}

/// `2026-11-27T11:30:02.123+08:00`: the instant `ms` as a clock at `offset`
/// reads it, with the offset, so the text names one instant unambiguously.
pub fn format_time(ms: u64, offset: Offset) -> String {
    let local = ms as i64 + offset.ms();
    let secs = local.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}{offset}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        local.rem_euclid(1000)
    )
}

/// Parses a point in time, as ms since the Unix epoch:
/// - `1764214202123`: milliseconds since the epoch;
/// - `2026-11-27T09:00:00+08:00`, `2026-11-27T01:00:00.5Z`: RFC 3339 with
///   its own offset;
/// - `2026-11-27T09:00:00` (no offset): a clock time at `offset`;
/// - `2026-11-27`: midnight at `offset`;
/// - `90s`, `15m`, `2h`, `7d`: that long before `now_ms`.
pub fn parse_time(s: &str, now_ms: u64, offset: Offset) -> Result<u64, String> {
    let s = s.trim();
    let bad = || {
        format!("{s:?} is not a time: use 2026-11-27T09:00:00+08:00, 2026-11-27 (midnight at {offset}), ms since the epoch or an age like 15m, 2h, 7d")
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    if let Some(ms) = parse_age(s, now_ms) {
        return Ok(ms);
    }
    let (local_ms, own) = parse_local(s).ok_or_else(bad)?;
    let ms = local_ms - own.unwrap_or(offset).ms();
    u64::try_from(ms).map_err(|_| bad())
}

/// `15m` → `now_ms` less 15 minutes.
fn parse_age(s: &str, now_ms: u64) -> Option<u64> {
    let unit = s.chars().last().filter(|c| "smhd".contains(*c))?;
    let n = s[..s.len() - 1].parse::<u64>().ok()?;
    let factor = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        _ => 86_400_000,
    };
    Some(now_ms.saturating_sub(n.saturating_mul(factor)))
}

/// A date or date-time as ms since the epoch *of its own clock*, and the
/// offset it names, if any.
fn parse_local(s: &str) -> Option<(i64, Option<Offset>)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        s.get(r)
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if s.len() == 10 {
        return Some((ms, None));
    }
    if !(b[10] == b'T' || b[10] == b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    ms += (h * 3600 + mi * 60 + sec) * 1000;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 3 {
            return None;
        }
        ms += frac[..n].parse::<i64>().ok()? * 10_i64.pow(3 - n as u32);
        rest = &frac[n..];
    }
    let own = match rest {
        "" => None,
        zone => Some(zone.parse::<Offset>().ok()?),
    };
    Some((ms, own))
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

    const BJ: Offset = Offset::BEIJING;

    #[test]
    fn round_trips_rfc3339_at_any_offset() {
        for ms in [0, 951_782_400_000, 1_764_214_202_123, 4_102_444_799_999] {
            for off in [Offset::UTC, BJ, "-05:30".parse().unwrap()] {
                let text = format_time(ms, off);
                assert_eq!(parse_time(&text, 0, Offset::UTC), Ok(ms), "{text}");
            }
        }
        assert_eq!(format_utc(1_764_214_202_123), "2025-11-27T03:30:02.123Z");
        assert_eq!(
            format_time(1_764_214_202_123, BJ),
            "2025-11-27T11:30:02.123+08:00"
        );
    }

    #[test]
    fn times_without_an_offset_are_read_at_the_configured_one() {
        // Beijing midnight is 16:00 UTC the day before.
        let bj_midnight = parse_time("2026-11-27", 0, BJ).unwrap();
        assert_eq!(format_utc(bj_midnight), "2026-11-26T16:00:00.000Z");
        assert_eq!(
            parse_time("2026-11-27", 0, Offset::UTC).unwrap(),
            bj_midnight + 8 * 3_600_000
        );
        assert_eq!(
            parse_time("2026-11-27T09:00:00", 0, BJ),
            parse_time("2026-11-27T01:00:00Z", 0, BJ)
        );
        // An explicit offset wins over the configured one.
        assert_eq!(
            parse_time("2026-11-27T09:00:00+08:00", 0, Offset::UTC),
            parse_time("2026-11-27T01:00:00Z", 0, BJ)
        );
    }

    #[test]
    fn accepts_dates_millis_and_ages() {
        assert_eq!(parse_time("1970-01-02", 0, Offset::UTC), Ok(86_400_000));
        assert_eq!(parse_time("42", 0, BJ), Ok(42));
        assert_eq!(parse_time("2h", 10_000_000, BJ), Ok(10_000_000 - 7_200_000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z", 0, BJ), Ok(1_500));
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-27T03:30",
            "2026-11-27T03:30:00+8",
            "2026-11-27T03:30:00+08:00junk",
            "1970-01-01T00:00:00",
            "税务税务税务税务",
        ] {
            assert!(parse_time(bad, 0, BJ).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_parse_and_print() {
        for (text, shown) in [
            ("+08:00", "+08:00"),
            ("+0800", "+08:00"),
            ("+08", "+08:00"),
            ("-05:30", "-05:30"),
            ("Z", "Z"),
            ("utc", "Z"),
        ] {
            assert_eq!(text.parse::<Offset>().unwrap().to_string(), shown, "{text}");
        }
        for bad in ["8", "+8:00", "+24:00", "+08:60", "+08:0", "++08:00", ""] {
            assert!(bad.parse::<Offset>().is_err(), "{bad}");
        }
    }
}
