//! Kline intervals and the grid of bucket boundaries they cut time into.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

pub const SECOND_MS: i64 = 1_000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
pub const WEEK_MS: i64 = 7 * DAY_MS;
/// 1970-01-05 00:00 UTC, the first Monday: Binance weeks start on Mondays.
const FIRST_MONDAY_MS: i64 = 4 * DAY_MS;
/// Binance's `timeZone` range: [-12:00, +14:00].
pub const MIN_TZ_OFFSET_MS: i64 = -12 * HOUR_MS;
pub const MAX_TZ_OFFSET_MS: i64 = 14 * HOUR_MS;

/// The unit of a timestamp: Binance spot dumps switched from ms to µs in 2025.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Millis,
    Micros,
}

impl TimeUnit {
    /// Ticks of this unit in one millisecond.
    #[inline]
    pub const fn per_ms(self) -> i64 {
        match self {
            TimeUnit::Millis => 1,
            TimeUnit::Micros => 1_000,
        }
    }

    /// Guesses the unit of an epoch timestamp: µs values are ≥ 1e14 (past 5138 AD in ms).
    #[inline]
    pub const fn detect(t: i64) -> TimeUnit {
        if t >= 100_000_000_000_000 {
            TimeUnit::Micros
        } else {
            TimeUnit::Millis
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            TimeUnit::Millis => "ms",
            TimeUnit::Micros => "us",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IntervalError {
    #[error("unknown interval {0:?} (use 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M or a custom <n>s|m|h|d)")]
    Unknown(String),
    #[error(
        "{0:?} is not a time-zone offset: give [+-]hours[:minutes] within -12:00..+14:00, e.g. \
         +08:00, -05:00, 8 or 05:45 (Binance's timeZone forms; leave it out for UTC)"
    )]
    TimeZone(String),
}

/// A kline interval. `Fixed` intervals are epoch-aligned (the 1d-and-up ones shifted by the
/// time-zone offset); `ThreeDay` is stepped from a per-symbol anchor, `Week` from Mondays and
/// `Month` by the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    Fixed { ms: i64 },
    ThreeDay,
    Week,
    Month,
}

impl Interval {
    /// Binance's 16 intervals, finest first.
    pub const BINANCE: [&'static str; 16] = [
        "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d",
        "1w", "1M",
    ];

    /// Nominal length in ms (a month counts 31 days); orders intervals and checks roll-ups.
    pub const fn nominal_ms(self) -> i64 {
        match self {
            Interval::Fixed { ms } => ms,
            Interval::ThreeDay => 3 * DAY_MS,
            Interval::Week => WEEK_MS,
            Interval::Month => 31 * DAY_MS,
        }
    }

    /// The shortest a period can be in ms (a month: 28 days; a halt can still cut one short):
    /// how far a page of `n` periods reaches at least.
    pub const fn shortest_ms(self) -> i64 {
        match self {
            Interval::Month => 28 * DAY_MS,
            other => other.nominal_ms(),
        }
    }

    /// Whether the time-zone offset moves this interval's boundaries (Binance: 1d and up).
    pub const fn follows_time_zone(self) -> bool {
        self.nominal_ms() >= DAY_MS
    }
}

impl FromStr for Interval {
    type Err = IntervalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || IntervalError::Unknown(s.to_string());
        match s {
            "3d" => return Ok(Interval::ThreeDay),
            "1w" => return Ok(Interval::Week),
            "1M" => return Ok(Interval::Month),
            _ => {}
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(unknown)?;
        let (n, unit) = s.split_at(split);
        let n: i64 = n.parse().map_err(|_| unknown())?;
        let unit_ms = match unit {
            "s" => SECOND_MS,
            "m" => MINUTE_MS,
            "h" => HOUR_MS,
            "d" => DAY_MS,
            _ => return Err(unknown()),
        };
        if n <= 0 || n > 366 * DAY_MS / unit_ms {
            return Err(unknown());
        }
        Ok(Interval::Fixed { ms: n * unit_ms })
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Interval::ThreeDay => f.write_str("3d"),
            Interval::Week => f.write_str("1w"),
            Interval::Month => f.write_str("1M"),
            Interval::Fixed { ms } => {
                for (unit, len) in [("d", DAY_MS), ("h", HOUR_MS), ("m", MINUTE_MS)] {
                    if ms % len == 0 {
                        return write!(f, "{}{unit}", ms / len);
                    }
                }
                write!(f, "{}s", ms / SECOND_MS)
            }
        }
    }
}

/// Parses Binance's `timeZone` forms, `[+-]H[H][:MM]` within [-12:00, +14:00] (`+08:00`,
/// `-05:30`, `8`, `-1:00`, `0`), into an offset in ms. Nothing else: `Z`, `UTC`, `+0800` and
/// `8:60` are refused rather than guessed.
/// Why 3d without an anchor differs from Binance; `None` when no 3d is asked or an anchor is
/// given. Every entry point that takes intervals says it (replay in its summary, Python as a
/// warning): the epoch grid is used then, and 8 of 10 real symbols' 3d klines differ.
pub fn epoch_3d_warning(intervals: &[Interval], anchor_3d_ms: Option<i64>) -> Option<&'static str> {
    (anchor_3d_ms.is_none() && intervals.contains(&Interval::ThreeDay)).then_some(
        "3d klines are stepped from the Unix epoch; Binance steps each symbol's 3d grid from its \
         listing day (its first 1d kline): give that day as the 3d anchor to match Binance",
    )
}

pub fn parse_tz_offset(s: &str) -> Result<i64, IntervalError> {
    let bad = || IntervalError::TimeZone(s.chars().take(40).collect());
    let t = s.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => (1, t),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "00"));
    let digits = |x: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&x.len()) && x.bytes().all(|c| c.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return Err(bad());
    }
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let off = sign * (h * HOUR_MS + m * MINUTE_MS);
    if m >= 60 || !(MIN_TZ_OFFSET_MS..=MAX_TZ_OFFSET_MS).contains(&off) {
        return Err(bad());
    }
    Ok(off)
}

/// An offset in ms as `+HH:MM` (the one spelling stored and printed).
pub fn format_tz_offset(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let minutes = ms.abs() / MINUTE_MS;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// An interval laid on the time axis: unit, time-zone offset and (for 3d) the anchor.
///
/// Invariant: `bucket_start(t) <= t < next_start(bucket_start(t))` for every `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub interval: Interval,
    pub unit: TimeUnit,
    /// Local time = UTC + shift, in ticks of `unit` (0 for intervals under 1d).
    shift: i64,
    /// 3d only: a bucket start, in ticks of `unit` (UTC).
    anchor: i64,
}

#[inline]
fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

impl Grid {
    /// `tz_offset_ms` applies to 1d and up; `anchor_3d_ms` is a 3d open time in UTC ms (the
    /// symbol's listing day; with an offset, the local midnight of that day is used).
    pub fn new(interval: Interval, unit: TimeUnit, tz_offset_ms: i64, anchor_3d_ms: i64) -> Self {
        let per = unit.per_ms();
        let shift = if interval.follows_time_zone() { tz_offset_ms * per } else { 0 };
        Grid { interval, unit, shift, anchor: anchor_3d_ms * per - shift }
    }

    /// A UTC grid with the 3d anchor at the epoch.
    pub fn utc(interval: Interval, unit: TimeUnit) -> Self {
        Grid::new(interval, unit, 0, 0)
    }

    #[inline]
    fn day(&self) -> i64 {
        DAY_MS * self.unit.per_ms()
    }

    /// Open time of the bucket holding `t`.
    #[inline]
    pub fn bucket_start(&self, t: i64) -> i64 {
        let per = self.unit.per_ms();
        match self.interval {
            Interval::Fixed { ms } => {
                let len = ms * per;
                floor_div(t + self.shift, len) * len - self.shift
            }
            Interval::ThreeDay => {
                let len = 3 * self.day();
                self.anchor + floor_div(t - self.anchor, len) * len
            }
            Interval::Week => {
                let (len, monday) = (WEEK_MS * per, FIRST_MONDAY_MS * per);
                floor_div(t + self.shift - monday, len) * len + monday - self.shift
            }
            Interval::Month => {
                let days = floor_div(t + self.shift, self.day());
                let (y, m, _) = civil_from_days(days);
                days_from_civil(y, m, 1) * self.day() - self.shift
            }
        }
    }

    /// Open time of the bucket after the one opening at `start`.
    #[inline]
    pub fn next_start(&self, start: i64) -> i64 {
        let per = self.unit.per_ms();
        match self.interval {
            Interval::Fixed { ms } => start + ms * per,
            Interval::ThreeDay => start + 3 * self.day(),
            Interval::Week => start + WEEK_MS * per,
            Interval::Month => {
                let days = floor_div(start + self.shift, self.day());
                let (y, m, _) = civil_from_days(days);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * self.day() - self.shift
            }
        }
    }

    /// Close time Binance prints: one tick before the next open.
    #[inline]
    pub fn close_time(&self, start: i64) -> i64 {
        self.next_start(start) - 1
    }

    /// Whether every boundary of `coarse` is one of this grid's (same unit): then each
    /// `coarse` kline is exactly the roll-up of this grid's klines inside it.
    ///
    /// Only a fixed-length grid refines another; `coarse`'s boundaries are taken as all of
    /// `c0 + k·step` (a month's as every local midnight, a superset), each of which must be a
    /// multiple of this grid's length from its own origin.
    pub fn refines(&self, coarse: &Grid) -> bool {
        let Interval::Fixed { ms } = self.interval else {
            return false;
        };
        if self.unit != coarse.unit || self.interval == coarse.interval {
            return false;
        }
        let (per, len) = (self.unit.per_ms(), ms * self.unit.per_ms());
        let (c0, step) = match coarse.interval {
            Interval::Fixed { ms } => (-coarse.shift, ms * per),
            Interval::ThreeDay => (coarse.anchor, 3 * coarse.day()),
            Interval::Week => (FIRST_MONDAY_MS * per - coarse.shift, WEEK_MS * per),
            Interval::Month => (-coarse.shift, coarse.day()),
        };
        step % len == 0 && (c0 + self.shift).rem_euclid(len) == 0
    }

    /// Length of every period, in ticks; `None` for calendar months.
    pub fn period_len(&self) -> Option<i64> {
        let per = self.unit.per_ms();
        match self.interval {
            Interval::Fixed { ms } => Some(ms * per),
            Interval::ThreeDay => Some(3 * self.day()),
            Interval::Week => Some(WEEK_MS * per),
            Interval::Month => None,
        }
    }

    /// Index of the calendar month holding `t` (months since year 0): months differ by it.
    fn month_index(&self, t: i64) -> i64 {
        let (y, m, _) = civil_from_days(floor_div(t + self.shift, self.day()));
        y * 12 + i64::from(m) - 1
    }

    /// Whole periods from the bucket opening at `start` to the one opening at `end` (≥ start),
    /// in O(1): how long a flat run is without walking it.
    pub fn periods_between(&self, start: i64, end: i64) -> i64 {
        match self.period_len() {
            Some(len) => (end - start).div_euclid(len),
            None => self.month_index(end) - self.month_index(start),
        }
    }

    /// Open time of the bucket `n ≥ 0` periods after the one opening at `start`, in O(1);
    /// `None` past what an i64 holds.
    pub fn advance(&self, start: i64, n: i64) -> Option<i64> {
        match self.period_len() {
            Some(len) => start.checked_add(n.checked_mul(len)?),
            None => {
                let months = self.month_index(start).checked_add(n)?;
                let days =
                    days_from_civil(months.div_euclid(12), (months.rem_euclid(12) + 1) as u32, 1);
                days.checked_mul(self.day())?.checked_sub(self.shift)
            }
        }
    }
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = floor_div(z, 146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01; inverse of [`civil_from_days`].
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = floor_div(y, 400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_refines_a_coarser_one_only_where_each_coarse_boundary_is_its_own() {
        let g = |name: &str, tz_minutes: i64, anchor: i64| {
            Grid::new(name.parse().unwrap(), TimeUnit::Millis, tz_minutes * MINUTE_MS, anchor)
        };
        let utc = |name: &str| g(name, 0, 0);
        for coarse in ["5m", "1h", "1d", "3d", "1w", "1M"] {
            assert!(utc("1m").refines(&utc(coarse)), "1m refines {coarse}");
        }
        assert!(!utc("7m").refines(&utc("1h")), "60 is no multiple of 7");
        assert!(!utc("1h").refines(&utc("1m")) && !utc("1h").refines(&utc("1h")));
        assert!(!utc("1w").refines(&utc("1M")) && !utc("1M").refines(&utc("1M")));
        assert!(!utc("2d").refines(&utc("1w")), "a week is no whole number of 2 days");
        // +05:30: local days start at 18:30 UTC, on a half-hour but not an hour.
        assert!(g("30m", 330, 0).refines(&g("1d", 330, 0)));
        assert!(!g("1h", 330, 0).refines(&g("1d", 330, 0)));
        assert!(g("1d", 480, 0).refines(&g("1M", 480, 0)), "both at +08:00");
        assert!(!g("1d", 0, 0).refines(&g("1w", 480, 0)), "UTC days, weeks at +08:00");
        // 3d from the listing day: a day grid at the anchor's offset, an hour grid always.
        let listed = 1_502_928_000_000; // 2017-08-17
        assert!(utc("1d").refines(&g("3d", 0, listed)) && utc("1h").refines(&g("3d", 0, listed)));
        assert!(!utc("2d").refines(&g("3d", 0, listed)));
        let us = Grid::utc("1m".parse().unwrap(), TimeUnit::Micros);
        assert!(!us.refines(&utc("1h")), "a µs grid and a ms grid are not comparable");
        assert!(us.refines(&Grid::utc("1h".parse().unwrap(), TimeUnit::Micros)));
    }
    use proptest::prelude::*;

    const MS: TimeUnit = TimeUnit::Millis;

    fn iv(s: &str) -> Interval {
        s.parse().unwrap()
    }

    #[test]
    fn the_shortest_period_is_a_february_for_months_and_the_length_otherwise() {
        let got: Vec<i64> =
            ["1s", "7m", "3d", "1w", "1M"].iter().map(|s| iv(s).shortest_ms()).collect();
        assert_eq!(got, [1_000, 420_000, 3 * DAY_MS, 7 * DAY_MS, 28 * DAY_MS]);
        let feb = Grid::utc(iv("1M"), MS);
        let start = days_from_civil(2023, 2, 1) * DAY_MS;
        assert_eq!(feb.next_start(start) - start, iv("1M").shortest_ms());
    }

    #[test]
    fn parses_all_binance_intervals_and_prints_them_back() {
        for name in Interval::BINANCE {
            assert_eq!(iv(name).to_string(), name);
        }
        assert_eq!(iv("10s"), Interval::Fixed { ms: 10_000 });
        assert_eq!(iv("7m"), Interval::Fixed { ms: 420_000 });
        assert_eq!(iv("90s").to_string(), "90s");
        for bad in ["", "m", "0m", "1x", "1W", "2M", "-1m", "1.5h", "999999d"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
    }

    #[test]
    fn binance_close_times() {
        // 2020-01-01 00:00 UTC, from the official 1m, 5m and 1d files.
        let t0 = 1_577_836_800_000;
        for (name, close) in [("1m", 59_999), ("5m", 299_999), ("1d", 86_399_999)] {
            let g = Grid::utc(iv(name), MS);
            assert_eq!(g.bucket_start(t0 + 17), t0);
            assert_eq!(g.close_time(t0), t0 + close);
        }
        let us = Grid::utc(iv("1m"), TimeUnit::Micros);
        assert_eq!(us.close_time(t0 * 1000), t0 * 1000 + 59_999_999);
    }

    #[test]
    fn week_starts_monday() {
        let g = Grid::utc(Interval::Week, MS);
        // Wed 2020-01-01 → Mon 2019-12-30.
        let start = g.bucket_start(1_577_836_800_000);
        assert_eq!(start, 1_577_664_000_000);
        assert_eq!(start % WEEK_MS, 345_600_000);
        assert_eq!(g.close_time(start) - start, WEEK_MS - 1);
    }

    #[test]
    fn month_is_the_calendar_month() {
        let g = Grid::utc(Interval::Month, MS);
        let feb_2024 = days_from_civil(2024, 2, 1) * DAY_MS;
        let t = feb_2024 + 28 * DAY_MS + 5; // 2024-02-29, leap day
        assert_eq!(g.bucket_start(t), feb_2024);
        assert_eq!(g.next_start(feb_2024), days_from_civil(2024, 3, 1) * DAY_MS);
        let dec = days_from_civil(2023, 12, 1) * DAY_MS;
        assert_eq!(g.next_start(dec), days_from_civil(2024, 1, 1) * DAY_MS);
        assert_eq!(g.bucket_start(-1), days_from_civil(1969, 12, 1) * DAY_MS);
    }

    #[test]
    fn time_zone_moves_days_not_hours() {
        let tz = parse_tz_offset("+08:00").unwrap();
        // A recorded 1d kline with timeZone +8 opened at 16:00 UTC the day before.
        let day = Grid::new(iv("1d"), MS, tz, 0);
        let t = 1_577_836_800_000 + 3 * HOUR_MS; // 2020-01-01 03:00 UTC = 11:00 +08
        assert_eq!(day.bucket_start(t), 1_577_836_800_000 - 8 * HOUR_MS);
        let hour = Grid::new(iv("1h"), MS, tz, 0);
        assert_eq!(hour.bucket_start(t), t);
        let month = Grid::new(Interval::Month, MS, tz, 0);
        // 2020-01-31 20:00 UTC is 2020-02-01 04:00 at +08.
        let t = days_from_civil(2020, 1, 31) * DAY_MS + 20 * HOUR_MS;
        assert_eq!(month.bucket_start(t), days_from_civil(2020, 2, 1) * DAY_MS - 8 * HOUR_MS);
        assert_eq!(parse_tz_offset("-05:30"), Ok(-(5 * HOUR_MS + 30 * MINUTE_MS)));
        assert_eq!(parse_tz_offset("14"), Ok(14 * HOUR_MS));
        assert_eq!(parse_tz_offset("-1:00"), Ok(-HOUR_MS));
        assert_eq!(parse_tz_offset("0"), Ok(0));
        assert_eq!(format_tz_offset(parse_tz_offset("05:45").unwrap()), "+05:45");
        assert_eq!(format_tz_offset(-(5 * HOUR_MS + 30 * MINUTE_MS)), "-05:30");
        for bad in ["+15:00", "-13", "8:60", "abc", "+08:xx", "Z", "UTC", "+0800", "8:5", "", "+"] {
            assert!(parse_tz_offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn three_day_steps_from_the_anchor() {
        let btc_listing = days_from_civil(2017, 8, 17) * DAY_MS;
        assert_eq!(btc_listing % (3 * DAY_MS), DAY_MS);
        let g = Grid::new(Interval::ThreeDay, MS, 0, btc_listing);
        let t = days_from_civil(2020, 1, 2) * DAY_MS + 5;
        let start = g.bucket_start(t);
        assert_eq!((start - btc_listing) % (3 * DAY_MS), 0);
        assert!(start <= t && t < g.next_start(start));
        assert_eq!(Grid::utc(Interval::ThreeDay, MS).bucket_start(t) % (3 * DAY_MS), 0);
    }

    #[test]
    fn periods_between_and_advance_agree_with_stepping() {
        let t0 = 1_577_836_800_000;
        for name in Interval::BINANCE {
            for tz in [0, 8 * HOUR_MS, -5 * HOUR_MS] {
                let g = Grid::new(iv(name), MS, tz, 1_502_928_000_000);
                let start = g.bucket_start(t0);
                let mut t = start;
                for n in 0..40 {
                    assert_eq!(g.advance(start, n), Some(t), "{name} {tz} {n}");
                    assert_eq!(g.periods_between(start, t), n, "{name} {tz} {n}");
                    t = g.next_start(t);
                }
            }
        }
        let g = Grid::utc(Interval::Fixed { ms: 1_000 }, MS);
        assert_eq!(g.advance(0, i64::MAX / 10), None);
    }

    #[test]
    fn units_print_as_ms_and_us() {
        assert_eq!((TimeUnit::Millis.name(), TimeUnit::Micros.name()), ("ms", "us"));
    }

    #[test]
    fn nominal_lengths_and_only_1d_and_up_follow_the_time_zone() {
        assert_eq!(Interval::ThreeDay.nominal_ms(), 3 * DAY_MS);
        assert_eq!(Interval::Week.nominal_ms(), WEEK_MS);
        assert_eq!(Interval::Month.nominal_ms(), 31 * DAY_MS);
        assert_eq!(iv("12h").nominal_ms(), 12 * HOUR_MS);
        let follow: Vec<&str> =
            Interval::BINANCE.into_iter().filter(|n| iv(n).follows_time_zone()).collect();
        assert_eq!(follow, ["1d", "3d", "1w", "1M"]);
    }

    #[test]
    fn three_days_is_the_anchored_grid_and_72_hours_a_fixed_one() {
        assert_eq!(iv("3d"), Interval::ThreeDay);
        assert_eq!(iv("72h"), Interval::Fixed { ms: 3 * DAY_MS });
    }

    #[test]
    fn a_custom_interval_is_at_most_366_days_in_any_unit() {
        for ok in ["366d", "8784h", "527040m", "31622400s"] {
            assert_eq!(iv(ok), Interval::Fixed { ms: 366 * DAY_MS }, "{ok}");
        }
        for bad in ["367d", "8785h", "527041m", "31622401s"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_epoch_3d_warning_is_given_only_for_3d_without_an_anchor() {
        let warning = epoch_3d_warning(&[iv("1d"), Interval::ThreeDay], None);
        assert!(warning.is_some_and(|w| w.contains("3d anchor")), "{warning:?}");
        assert_eq!(epoch_3d_warning(&[Interval::ThreeDay], Some(1_502_928_000_000)), None);
        assert_eq!(epoch_3d_warning(&[iv("1d"), iv("1w")], None), None);
    }

    #[test]
    fn a_zero_offset_prints_with_a_plus() {
        assert_eq!(format_tz_offset(0), "+00:00");
        assert_eq!(format_tz_offset(-MINUTE_MS), "-00:01");
    }

    #[test]
    fn a_microsecond_grid_has_the_millisecond_grids_boundaries_times_1000() {
        let leap_day = days_from_civil(2024, 2, 29) * DAY_MS + 5;
        let times = [-1, 0, 1_577_836_800_000 + 17, leap_day, 1_735_689_599_999];
        for name in Interval::BINANCE {
            for tz in [0, 8 * HOUR_MS, -(5 * HOUR_MS + 30 * MINUTE_MS)] {
                let ms = Grid::new(iv(name), MS, tz, 1_502_928_000_000);
                let us = Grid::new(iv(name), TimeUnit::Micros, tz, 1_502_928_000_000);
                for t in times {
                    let s = ms.bucket_start(t);
                    let at = format!("{name} {tz} {t}");
                    assert_eq!(us.bucket_start(t * 1_000 + 999), s * 1_000, "{at}");
                    assert_eq!(us.next_start(s * 1_000), ms.next_start(s) * 1_000, "{at}");
                    let later = ms.advance(s, 5).unwrap();
                    assert_eq!(us.advance(s * 1_000, 5), Some(later * 1_000), "{at}");
                    assert_eq!(us.periods_between(s * 1_000, later * 1_000), 5, "{at}");
                }
            }
        }
    }

    #[test]
    fn the_last_day_of_a_400_year_era_is_february_29() {
        // 2000-01-01 is day 10 957 since the epoch; + 31 + 28 days is 2000-02-29.
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        for (y, m, d) in [(1600, 2, 29), (2400, 2, 29), (1970, 1, 1), (1969, 12, 31), (2100, 3, 1)]
        {
            assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y, m, d));
        }
    }

    proptest! {
        #[test]
        fn every_grid_contains_its_time(
            t in -4_000_000_000_000i64..8_000_000_000_000,
            which in 0usize..16,
            tz in MIN_TZ_OFFSET_MS / MINUTE_MS..=MAX_TZ_OFFSET_MS / MINUTE_MS,
            micros in any::<bool>(),
        ) {
            let unit = if micros { TimeUnit::Micros } else { MS };
            let t = t * unit.per_ms();
            let g = Grid::new(iv(Interval::BINANCE[which]), unit, tz * MINUTE_MS, 1_502_928_000_000);
            let s = g.bucket_start(t);
            prop_assert!(s <= t && t < g.next_start(s));
            prop_assert_eq!(g.bucket_start(g.next_start(s)), g.next_start(s));
            prop_assert_eq!(g.bucket_start(s), s);
        }

        #[test]
        fn civil_round_trips(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
