//! Whether a trade's time can be true. One bad time (a µs value in an ms stream, a flipped
//! digit, the year 3000) must not open years of flat klines nor make every later trade of its
//! symbol late: such a trade is refused and counted with its reason, never applied.

use crate::interval::TimeUnit;
use std::fmt;

/// µs values are ≥ 1e14 (1973 in µs, 5138 AD in ms): [`TimeUnit::detect`]'s boundary.
const UNIT_BOUNDARY: i64 = 100_000_000_000_000;

impl TimeUnit {
    /// The times `[lo, hi)` a trade in this unit may carry: ms below the µs boundary, µs
    /// from it up to 5138 AD. Every grid computes inside this range without overflow.
    pub const fn range(self) -> (i64, i64) {
        match self {
            TimeUnit::Millis => (0, UNIT_BOUNDARY),
            TimeUnit::Micros => (UNIT_BOUNDARY, UNIT_BOUNDARY * 1_000),
        }
    }

    #[inline]
    pub const fn holds(self, t: i64) -> bool {
        let (lo, hi) = self.range();
        lo <= t && t < hi
    }
}

/// Why a trade's time was refused. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implausible {
    /// Outside its unit's range: a µs time in an ms stream (or the reverse), or garbage.
    Unit,
    /// Further ahead of the engine's clock than the bound.
    AheadOfClock,
    /// Further after the symbol's previous trade than the bound.
    Jump,
    /// An aggTrade id further ahead of the symbol's previous one than any market trades in
    /// the time between them (a corrupt id would make every later trade a duplicate).
    IdJump,
    /// Further from its event's time (`E`) than [`MAX_EVENT_SKEW_MS`]: only a relayed trade
    /// is checked for it ([`check_relayed`]); the engine measures against its clock.
    EventSkew,
}

impl fmt::Display for Implausible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Implausible::Unit => "time outside its unit's range (µs in ms data, or the reverse)",
            Implausible::AheadOfClock => "time too far ahead of the clock",
            Implausible::Jump => "time too far after the symbol's previous trade",
            Implausible::IdJump => "aggTrade id too far ahead of the symbol's previous one",
            Implausible::EventSkew => "time too far from its event's time",
        })
    }
}

/// aggTrade ids a symbol may advance per second of trade time: 100 × the busiest real symbol
/// (BTCUSDT peaks near 10 k aggTrades a second).
pub const MAX_IDS_PER_SECOND: i64 = 1_000_000;

/// The bounds a trade's time is held to, in ticks of `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimits {
    pub unit: TimeUnit,
    /// At most this far ahead of the clock (`None`: not checked).
    pub max_ahead: Option<i64>,
    /// At most this far after the symbol's previous trade (`None`: not checked).
    pub max_jump: Option<i64>,
}

impl TimeLimits {
    /// Only the unit's range.
    pub const fn unit_only(unit: TimeUnit) -> Self {
        TimeLimits { unit, max_ahead: None, max_jump: None }
    }

    /// Bounds given in ms, held in ticks of `unit`.
    pub fn from_ms(unit: TimeUnit, max_ahead_ms: Option<i64>, max_jump_ms: Option<i64>) -> Self {
        let ticks = |ms: i64| ms.saturating_mul(unit.per_ms());
        TimeLimits { unit, max_ahead: max_ahead_ms.map(ticks), max_jump: max_jump_ms.map(ticks) }
    }

    /// `now`: the clock, if it vouches for real time; `prev`: the symbol's latest trade time.
    #[inline]
    pub fn check(&self, t: i64, now: Option<i64>, prev: Option<i64>) -> Result<(), Implausible> {
        if !self.unit.holds(t) {
            return Err(Implausible::Unit);
        }
        if let (Some(bound), Some(now)) = (self.max_ahead, now) {
            if t > now.saturating_add(bound) {
                return Err(Implausible::AheadOfClock);
            }
        }
        if let (Some(bound), Some(prev)) = (self.max_jump, prev) {
            if t > prev.saturating_add(bound) {
                return Err(Implausible::Jump);
            }
        }
        Ok(())
    }

    /// An id ahead of the previous one (`last_id` at `last_time`) by more than the market
    /// could trade in between, with a second's slack.
    #[inline]
    pub fn check_id(
        &self,
        id: i64,
        time: i64,
        last_id: i64,
        last_time: i64,
    ) -> Result<(), Implausible> {
        if id.saturating_sub(last_id) <= MAX_IDS_PER_SECOND {
            return Ok(()); // within a second's worth whatever the time: no division
        }
        let seconds = (time.saturating_sub(last_time) / (1_000 * self.unit.per_ms())).max(0) + 1;
        if id.saturating_sub(last_id) > seconds.saturating_mul(MAX_IDS_PER_SECOND) {
            return Err(Implausible::IdJump);
        }
        Ok(())
    }
}

/// How far a relayed trade's time may be from the time its event was sent (`E`, the
/// exchange's own clock): Binance sends an aggTrade milliseconds after it happens, so an hour
/// either way is not a real trade (a flipped digit, a µs value cut short).
pub const MAX_EVENT_SKEW_MS: i64 = 3_600_000;

/// Why a relayed trade's time cannot be true, if it cannot: outside its unit's range, or
/// further than [`MAX_EVENT_SKEW_MS`] from its event's time. A process that passes trades on
/// and keeps no kline clock (capture) checks this; its event's time is the one clock it has.
/// Earlier *and* later both count: an early time would only be late downstream, and the real
/// trade, fetched by its id, would never replace it.
pub fn check_relayed(t: i64, event_time: i64, unit: TimeUnit) -> Result<(), Implausible> {
    if !unit.holds(t) {
        return Err(Implausible::Unit);
    }
    if t.abs_diff(event_time) > MAX_EVENT_SKEW_MS.unsigned_abs() * unit.per_ms().unsigned_abs() {
        return Err(Implausible::EventSkew);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_600_000_000_000; // 2020-09-13, ms

    #[test]
    fn a_time_in_the_other_unit_is_refused() {
        let ms = TimeLimits::unit_only(TimeUnit::Millis);
        let us = TimeLimits::unit_only(TimeUnit::Micros);
        assert_eq!(ms.check(T, None, None), Ok(()));
        assert_eq!(ms.check(T * 1_000, None, None), Err(Implausible::Unit));
        assert_eq!(us.check(T * 1_000, None, None), Ok(()));
        assert_eq!(us.check(T, None, None), Err(Implausible::Unit));
        for bad in [-1, i64::MIN, i64::MAX, i64::MAX - 5] {
            assert_eq!(ms.check(bad, None, None), Err(Implausible::Unit), "{bad}");
            assert_eq!(us.check(bad, None, None), Err(Implausible::Unit), "{bad}");
        }
    }

    #[test]
    fn bounds_against_the_clock_and_the_previous_trade() {
        let l = TimeLimits::from_ms(TimeUnit::Millis, Some(60_000), Some(86_400_000));
        assert_eq!(l.check(T + 60_000, Some(T), None), Ok(()));
        assert_eq!(l.check(T + 60_001, Some(T), None), Err(Implausible::AheadOfClock));
        assert_eq!(l.check(T + 60_001, None, None), Ok(()), "no clock: not checked");
        assert_eq!(l.check(T + 86_400_000, None, Some(T)), Ok(()));
        assert_eq!(l.check(T + 86_400_001, None, Some(T)), Err(Implausible::Jump));
        // Backwards is lateness, not implausibility.
        assert_eq!(l.check(T - 10 * 86_400_000, Some(T), Some(T)), Ok(()));
        assert_eq!(l.check_id(10 + 999_999, T, 10, T), Ok(()));
        assert_eq!(l.check_id(10_i64.pow(12), T + 5_000, 10, T), Err(Implausible::IdJump));
        assert_eq!(l.check_id(10_i64.pow(12), T + 30 * 86_400_000, 10, T), Ok(()), "a month");
        let us = TimeLimits::from_ms(TimeUnit::Micros, Some(60_000), None);
        assert_eq!(
            us.check(T * 1_000 + 60_000_001, Some(T * 1_000), None),
            Err(Implausible::AheadOfClock)
        );
    }

    #[test]
    fn each_unit_holds_times_from_its_lower_bound_up_to_but_not_including_its_upper() {
        let b = UNIT_BOUNDARY;
        assert!(TimeUnit::Millis.holds(0) && TimeUnit::Millis.holds(b - 1));
        assert!(!TimeUnit::Millis.holds(b));
        assert!(TimeUnit::Micros.holds(b) && TimeUnit::Micros.holds(b * 1_000 - 1));
        assert!(!TimeUnit::Micros.holds(b - 1) && !TimeUnit::Micros.holds(b * 1_000));
        // The boundary is the one `TimeUnit::detect` guesses by.
        assert_eq!(TimeUnit::detect(b - 1), TimeUnit::Millis);
        assert_eq!(TimeUnit::detect(b), TimeUnit::Micros);
    }

    #[test]
    fn an_id_may_lead_by_a_million_per_whole_second_elapsed_and_one_second_more() {
        let ms = TimeLimits::unit_only(TimeUnit::Millis);
        // 5 whole seconds after the last trade: 6 seconds' worth of ids.
        assert_eq!(ms.check_id(6_000_000, T + 5_000, 0, T), Ok(()));
        assert_eq!(ms.check_id(6_000_001, T + 5_000, 0, T), Err(Implausible::IdJump));
        assert_eq!(ms.check_id(5_000_001, T + 4_999, 0, T), Err(Implausible::IdJump));
        // Backwards in time: the one second of slack, no less.
        assert_eq!(ms.check_id(1_000_001, T - 60_000, 0, T), Err(Implausible::IdJump));
        let us = TimeLimits::unit_only(TimeUnit::Micros);
        assert_eq!(us.check_id(6_000_000, (T + 5_000) * 1_000, 0, T * 1_000), Ok(()));
        assert_eq!(
            us.check_id(6_000_001, (T + 5_000) * 1_000, 0, T * 1_000),
            Err(Implausible::IdJump)
        );
    }

    #[test]
    fn each_refusal_names_its_reason() {
        let texts = [
            Implausible::Unit,
            Implausible::AheadOfClock,
            Implausible::Jump,
            Implausible::IdJump,
            Implausible::EventSkew,
        ]
        .map(|why| why.to_string());
        assert_eq!(
            texts,
            [
                "time outside its unit's range (µs in ms data, or the reverse)",
                "time too far ahead of the clock",
                "time too far after the symbol's previous trade",
                "aggTrade id too far ahead of the symbol's previous one",
                "time too far from its event's time",
            ]
        );
    }

    #[test]
    fn a_relayed_time_is_held_to_its_event_time() {
        let e = T + 40; // sent 40 ms after the trade
        assert_eq!(check_relayed(T, e, TimeUnit::Millis), Ok(()));
        let skew = MAX_EVENT_SKEW_MS;
        assert_eq!(check_relayed(e - skew, e, TimeUnit::Millis), Ok(()));
        assert_eq!(check_relayed(e + skew, e, TimeUnit::Millis), Ok(()));
        assert_eq!(check_relayed(e - skew - 1, e, TimeUnit::Millis), Err(Implausible::EventSkew));
        assert_eq!(check_relayed(e + skew + 1, e, TimeUnit::Millis), Err(Implausible::EventSkew));
        assert_eq!(
            check_relayed(32_503_680_000_000, e, TimeUnit::Millis),
            Err(Implausible::EventSkew)
        );
        for bad in [T * 1_000, -T, i64::MIN, i64::MAX] {
            assert_eq!(check_relayed(bad, e, TimeUnit::Millis), Err(Implausible::Unit), "{bad}");
        }
        // µs: the bound is the same hour.
        let (t, e) = (T * 1_000, e * 1_000);
        assert_eq!(check_relayed(e + skew * 1_000, e, TimeUnit::Micros), Ok(()));
        assert_eq!(
            check_relayed(e + skew * 1_000 + 1, e, TimeUnit::Micros),
            Err(Implausible::EventSkew)
        );
        assert_eq!(check_relayed(t, i64::MIN, TimeUnit::Micros), Err(Implausible::EventSkew));
    }
}
