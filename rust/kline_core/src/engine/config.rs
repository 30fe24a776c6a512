//! The engine's settings and the bounds they are checked against.

use super::clock::{Clock, SystemClock};
use super::{EngineError, LatePolicy};
use crate::decimal::QuoteRule;
use crate::interval::{Interval, TimeUnit, DAY_MS, MAX_TZ_OFFSET_MS, MIN_TZ_OFFSET_MS};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct EngineConfig {
    pub intervals: Vec<Interval>,
    /// Partition workers; 0 = one per usable CPU.
    pub partitions: usize,
    pub ring_capacity: usize,
    pub outbox_capacity: usize,
    /// How long past `close_time` the clock waits for stragglers before closing, in clock units.
    pub grace: i64,
    pub time_unit: TimeUnit,
    pub tz_offset_ms: i64,
    /// Pin workers to CPUs from `sched_getaffinity` (best effort).
    pub pin_threads: bool,
    /// Add a symbol on its first trade instead of counting it as unknown.
    pub auto_add: bool,
    pub late_policy: LatePolicy,
    /// Treat a jump in a symbol's aggTrade ids as a feed gap: the symbol goes feed-down by
    /// itself and the hole is reported on [`Engine::poll_gaps`] for a backfill.
    pub detect_id_gaps: bool,
    /// Mark what a symbol's first trade opens as gap: it may have begun before we joined.
    pub mark_partial_start: bool,
    /// How long a producer waits for room in a full ring before reporting backpressure.
    pub push_wait: Duration,
    /// How long an idle worker keeps spinning on its ring before it backs off and parks: a
    /// trade arriving within it is applied without a wake-up (tens of µs on a busy machine).
    pub spin: Duration,
    pub clock: Arc<dyn Clock>,
    /// A trade further ahead of the clock than this (ms) is refused and counted, never
    /// applied; `None`: not checked (a manual clock the caller moves after pushing).
    pub max_ahead_ms: Option<i64>,
    /// A trade further after its symbol's latest trade than this (ms) is refused and
    /// counted; `None`: not checked (the clock bound guards live engines).
    pub max_jump_ms: Option<i64>,
    /// Closed records a partition may hold behind a full outbox; past it, its worker takes
    /// no more items (producers get backpressure) until a consumer polls.
    pub max_spill: usize,
    /// How trades add to quote volume: per trade truncated (spot, USD-M) or exact (COIN-M).
    pub quote_rule: QuoteRule,
}

impl EngineConfig {
    pub fn new(intervals: Vec<Interval>) -> Self {
        EngineConfig {
            intervals,
            partitions: 0,
            ring_capacity: 1 << 16,
            outbox_capacity: 1 << 16,
            grace: 250,
            time_unit: TimeUnit::Millis,
            tz_offset_ms: 0,
            pin_threads: true,
            auto_add: false,
            late_policy: LatePolicy::Drop,
            detect_id_gaps: false,
            mark_partial_start: false,
            push_wait: Duration::from_millis(100),
            spin: Duration::from_micros(50),
            clock: Arc::new(SystemClock::default()),
            max_ahead_ms: Some(DEFAULT_MAX_AHEAD_MS),
            max_jump_ms: None,
            max_spill: 1 << 18,
            quote_rule: QuoteRule::PerTrade,
        }
    }

    /// Times in `unit` (trades, grace, the clock); the default system clock follows it. Set a
    /// manual clock after this.
    pub fn with_time_unit(mut self, unit: TimeUnit) -> Self {
        self.time_unit = unit;
        self.clock = Arc::new(SystemClock { micros: unit == TimeUnit::Micros });
        self
    }

    /// Refuses settings the engine cannot run with, saying which and why.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |what: String| Err(EngineError::Config(what));
        if self.intervals.is_empty() {
            return Err(EngineError::NoIntervals);
        }
        if self.intervals.len() > 64 {
            return Err(EngineError::TooManyIntervals(self.intervals.len()));
        }
        for (i, iv) in self.intervals.iter().enumerate() {
            if self.intervals[..i].contains(iv) {
                return bad(format!("interval {iv} is given twice"));
            }
        }
        for (name, value, max) in [
            ("ring_capacity", self.ring_capacity, MAX_RING),
            ("outbox_capacity", self.outbox_capacity, MAX_OUTBOX),
            ("max_spill", self.max_spill, MAX_OUTBOX),
        ] {
            if value == 0 || value > max {
                return bad(format!("{name} {value} is not within 1..={max}"));
            }
        }
        if self.partitions > MAX_PARTITIONS {
            return bad(format!("partitions {} is more than {MAX_PARTITIONS}", self.partitions));
        }
        if !(MIN_TZ_OFFSET_MS..=MAX_TZ_OFFSET_MS).contains(&self.tz_offset_ms) {
            return bad(format!(
                "tz_offset_ms {} is not within [-12:00, +14:00]",
                self.tz_offset_ms
            ));
        }
        if !(0..=MAX_GRACE_MS * self.time_unit.per_ms()).contains(&self.grace) {
            return bad(format!("grace {} is not within 0..=1 day", self.grace));
        }
        for (name, v) in [("max_ahead_ms", self.max_ahead_ms), ("max_jump_ms", self.max_jump_ms)] {
            if v.is_some_and(|v| v <= 0) {
                return bad(format!("{name} must be positive (or None: not checked)"));
            }
        }
        Ok(())
    }
}

/// Default bound of a trade's time ahead of the wall clock: wide enough for a badly synced
/// clock, narrow enough that one bad trade cannot poison a symbol for more than minutes.
pub const DEFAULT_MAX_AHEAD_MS: i64 = 5 * 60_000;
const MAX_RING: usize = 1 << 22;
/// The largest outbox and spill an engine may be given (records).
pub const MAX_OUTBOX: usize = 1 << 24;
const MAX_PARTITIONS: usize = 1024;
const MAX_GRACE_MS: i64 = DAY_MS;

impl LatePolicy {
    /// The policy called `name` (`"drop"` or `"amend"`; `allowed_lateness` is the amend's).
    pub fn named(name: &str, allowed_lateness: i64) -> Result<LatePolicy, EngineError> {
        match name {
            "drop" => Ok(LatePolicy::Drop),
            "amend" => Ok(LatePolicy::Amend { allowed_lateness }),
            other => Err(EngineError::Config(format!(
                "late_policy {other:?} is not \"drop\" or \"amend\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clock::ManualClock;

    #[test]
    fn the_default_clock_follows_the_time_unit_and_a_manual_one_set_after_is_kept() {
        let cfg = EngineConfig::new(vec![Interval::Fixed { ms: 60_000 }]);
        let ms = cfg.clock.now();
        let us = cfg.clone().with_time_unit(TimeUnit::Micros).clock.now();
        assert!((us / 1_000 - ms).abs() < 60_000, "µs clock: {us} vs ms clock {ms}");
        let mut manual = cfg.with_time_unit(TimeUnit::Micros);
        manual.clock = Arc::new(ManualClock::new(7));
        assert_eq!(manual.clock.now(), 7);
    }

    #[test]
    fn late_policies_by_name() {
        assert_eq!(LatePolicy::named("drop", 5), Ok(LatePolicy::Drop));
        assert_eq!(LatePolicy::named("amend", 5), Ok(LatePolicy::Amend { allowed_lateness: 5 }));
        let e = LatePolicy::named("keep", 0).unwrap_err().to_string();
        assert_eq!(e, "bad engine setting: late_policy \"keep\" is not \"drop\" or \"amend\"");
    }
}
