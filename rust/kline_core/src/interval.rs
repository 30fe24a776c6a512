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
mod tests;
