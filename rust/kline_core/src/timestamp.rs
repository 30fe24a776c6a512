//! Times as people write them: ISO 8601 text ⇄ Unix epoch ms (or µs).
//!
//! Accepted wherever a time in ms is: the ms themselves (`1577934000000`), a day
//! (`2020-01-02`, its 00:00 UTC) or a day and time (`2020-01-02T03:00`, `…T03:00:00.5Z`,
//! `… 03:00:00+08:00`). A time without an offset is UTC, never the machine's local time.

use crate::interval::{days_from_civil, TimeUnit, DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS};
use thiserror::Error;

/// What was wrong with a time's text.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "{text:?}: {reason}; expected ms since 1970 or an ISO time such as 2020-01-02, \
     2020-01-02T15:30 or 2020-01-02T15:30:00.250+08:00 (UTC unless an offset is given)"
)]
pub struct TimeTextError {
    /// The text, cut to 40 bytes.
    pub text: String,
    pub reason: String,
}

fn fail(text: &str, reason: impl Into<String>) -> TimeTextError {
    let cut = text.char_indices().nth(40).map_or(text, |(i, _)| &text[..i]);
    TimeTextError { text: cut.to_string(), reason: reason.into() }
}

/// Days of a month of a (proleptic Gregorian) year.
fn days_in_month(y: i64, m: u32) -> u32 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads `n` ASCII digits at `*at`, advancing past them.
fn digits(b: &[u8], at: &mut usize, n: usize) -> Option<u32> {
    let part = b.get(*at..*at + n)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *at += n;
    Some(part.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

fn expect(b: &[u8], at: &mut usize, c: u8) -> bool {
    if b.get(*at) == Some(&c) {
        *at += 1;
        true
    } else {
        false
    }
}

/// A time's text → Unix epoch ms (UTC). A fraction finer than a ms is cut (towards the past).
pub fn parse_time_ms(text: &str) -> Result<i64, TimeTextError> {
    let s = text.trim();
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(fail(text, "empty"));
    }
    if b.iter().all(u8::is_ascii_digit) {
        return s.parse::<i64>().map_err(|_| fail(text, "too large for ms"));
    }
    let bad = |what: &str| fail(text, format!("not a {what}"));
    let mut at = 0;
    let year = digits(b, &mut at, 4).ok_or_else(|| bad("year (4 digits)"))?;
    if !expect(b, &mut at, b'-') {
        return Err(bad("date (YYYY-MM-DD)"));
    }
    let month = digits(b, &mut at, 2).ok_or_else(|| bad("month (2 digits)"))?;
    if !expect(b, &mut at, b'-') {
        return Err(bad("date (YYYY-MM-DD)"));
    }
    let day = digits(b, &mut at, 2).ok_or_else(|| bad("day (2 digits)"))?;
    if !(1..=12).contains(&month) {
        return Err(fail(text, format!("month {month} is not within 1..12")));
    }
    let y = i64::from(year);
    if day < 1 || day > days_in_month(y, month) {
        return Err(fail(text, format!("{year:04}-{month:02} has no day {day}")));
    }
    let mut ms = days_from_civil(y, month, day) * DAY_MS;
    if at == b.len() {
        return Ok(ms);
    }
    if !(expect(b, &mut at, b'T') || expect(b, &mut at, b't') || expect(b, &mut at, b' ')) {
        return Err(bad("date and time (T or a space between them)"));
    }
    let hour = digits(b, &mut at, 2).ok_or_else(|| bad("time (HH:MM)"))?;
    if !expect(b, &mut at, b':') {
        return Err(bad("time (HH:MM)"));
    }
    let minute = digits(b, &mut at, 2).ok_or_else(|| bad("time (HH:MM)"))?;
    let mut second = 0;
    let mut fraction_ms = 0;
    if expect(b, &mut at, b':') {
        second = digits(b, &mut at, 2).ok_or_else(|| bad("time (HH:MM:SS)"))?;
        if expect(b, &mut at, b'.') || expect(b, &mut at, b',') {
            let start = at;
            while at < b.len() && b[at].is_ascii_digit() {
                at += 1;
            }
            let frac = &b[start..at];
            if frac.is_empty() || frac.len() > 9 {
                return Err(fail(text, "a fraction of a second has 1 to 9 digits"));
            }
            fraction_ms = frac
                .iter()
                .chain(b"000")
                .take(3)
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(fail(text, format!("{hour:02}:{minute:02}:{second:02} is not a time of day")));
    }
    ms += i64::from(hour) * HOUR_MS + i64::from(minute) * MINUTE_MS;
    ms += i64::from(second) * SECOND_MS + fraction_ms;
    match b.get(at) {
        None => Ok(ms),
        Some(b'Z' | b'z') if at + 1 == b.len() => Ok(ms),
        Some(&sign @ (b'+' | b'-')) => {
            at += 1;
            let h = digits(b, &mut at, 2).ok_or_else(|| bad("UTC offset (+HH:MM)"))?;
            expect(b, &mut at, b':');
            let m = if at < b.len() { digits(b, &mut at, 2) } else { Some(0) };
            let m = m.ok_or_else(|| bad("UTC offset (+HH:MM)"))?;
            if at != b.len() || h > 23 || m > 59 {
                return Err(bad("UTC offset (+HH:MM)"));
            }
            let offset = i64::from(h) * HOUR_MS + i64::from(m) * MINUTE_MS;
            Ok(if sign == b'+' { ms - offset } else { ms + offset })
        }
        Some(_) => Err(fail(text, format!("unexpected {:?} after the time", &s[at..]))),
    }
}

/// A time in `unit` → ISO 8601 UTC text: `2020-01-02T15:11:00Z`, with the fraction only when
/// there is one (`…59.999Z`; µs: `…59.999999Z`).
pub fn format_time(t: i64, unit: TimeUnit) -> String {
    let per_ms = unit.per_ms();
    let per_second = SECOND_MS * per_ms;
    let (seconds, fraction) = (t.div_euclid(per_second), t.rem_euclid(per_second));
    let (days, in_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = crate::interval::civil_from_days(days);
    let (hh, mm, ss) = (in_day / 3600, in_day % 3600 / 60, in_day % 60);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
    if fraction != 0 {
        let width = if per_ms == 1 { 3 } else { 6 };
        out.push_str(&format!(".{fraction:0width$}"));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_577_934_000_000; // 2020-01-02T03:00:00Z

    #[test]
    fn ms_and_iso_forms_agree() {
        for text in [
            "1577934000000",
            "2020-01-02T03:00",
            "2020-01-02T03:00:00",
            "2020-01-02 03:00:00Z",
            "2020-01-02T03:00:00.000Z",
            "2020-01-02T11:00:00+08:00",
            "2020-01-02T11:00+0800",
            "2020-01-02T11:00:00+08",
            "2020-01-01T22:00:00-05:00",
            " 2020-01-02t03:00:00z ",
        ] {
            assert_eq!(parse_time_ms(text), Ok(T), "{text}");
        }
        assert_eq!(parse_time_ms("2020-01-02"), Ok(T - 3 * HOUR_MS));
        assert_eq!(parse_time_ms("2020-01-02T03:00:00.25Z"), Ok(T + 250));
        assert_eq!(parse_time_ms("2020-01-02T03:00:00.123999Z"), Ok(T + 123));
        assert_eq!(parse_time_ms("1969-12-31T23:59:59.999Z"), Ok(-1));
    }

    #[test]
    fn bad_text_says_what_and_how() {
        for (text, reason) in [
            ("", "empty"),
            ("2020-13-01", "month 13"),
            ("2021-02-29", "2021-02 has no day 29"),
            ("2020-01-02T24:00", "not a time of day"),
            ("2020-01-02T03:00:60", "not a time of day"),
            ("2020-1-2", "month (2 digits)"),
            ("yesterday", "year"),
            ("2020-01-02T03:00:00.Z", "1 to 9 digits"),
            ("2020-01-02T03:00 UTC", "unexpected"),
            ("2020-01-02T03:00+8", "UTC offset"),
            ("99999999999999999999", "too large"),
        ] {
            let e = parse_time_ms(text).expect_err(text).to_string();
            assert!(e.contains(reason), "{text}: {e}");
            assert!(e.contains("2020-01-02T15:30"), "{e}");
        }
        assert_eq!(parse_time_ms("2024-02-29"), Ok(19_782 * DAY_MS));
    }

    #[test]
    fn format_round_trips_and_shows_fractions_only_when_there() {
        assert_eq!(format_time(T, TimeUnit::Millis), "2020-01-02T03:00:00Z");
        assert_eq!(format_time(T + 59_999, TimeUnit::Millis), "2020-01-02T03:00:59.999Z");
        assert_eq!(format_time(T * 1000 + 7, TimeUnit::Micros), "2020-01-02T03:00:00.000007Z");
        assert_eq!(format_time(-1, TimeUnit::Millis), "1969-12-31T23:59:59.999Z");
        for t in [0, 1, T, T + 59_999, 951_782_400_000, 253_402_300_799_999] {
            assert_eq!(parse_time_ms(&format_time(t, TimeUnit::Millis)), Ok(t));
        }
    }
}
