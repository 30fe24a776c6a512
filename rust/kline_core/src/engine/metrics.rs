//! Counters per reason, cheap enough to leave on: relaxed atomics on their own cache lines.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Written by one partition worker.
#[derive(Debug, Default)]
pub struct PartitionCounters {
    pub trades: CachePadded<AtomicU64>,
    pub duplicates: CachePadded<AtomicU64>,
    pub placeholders: CachePadded<AtomicU64>,
    pub invalid: CachePadded<AtomicU64>,
    pub late: CachePadded<AtomicU64>,
    pub late_amended: CachePadded<AtomicU64>,
    /// Late trades that did not fit the side output (still counted in `late`).
    pub late_overflow: CachePadded<AtomicU64>,
    pub stale_symbol: CachePadded<AtomicU64>,
    pub closed: CachePadded<AtomicU64>,
    pub flat_runs: CachePadded<AtomicU64>,
    /// Latest trade time applied (event-time watermark).
    pub watermark: CachePadded<AtomicI64>,
    pub panics: CachePadded<AtomicU64>,
    /// Trades over the bound a symbol in a gap may hold (they must come from backfill).
    pub gap_overflow: CachePadded<AtomicU64>,
    /// Missing aggTrade id ranges found when a gap was replayed.
    pub id_gaps: CachePadded<AtomicU64>,
    /// Trades refused for their time (see `crate::plausible`), by reason.
    pub implausible_unit: CachePadded<AtomicU64>,
    pub implausible_ahead: CachePadded<AtomicU64>,
    pub implausible_jump: CachePadded<AtomicU64>,
    pub implausible_id: CachePadded<AtomicU64>,
}

/// Written by producers.
#[derive(Debug, Default)]
pub struct ProducerCounters {
    pub messages: CachePadded<AtomicU64>,
    pub unknown_symbol: CachePadded<AtomicU64>,
    pub malformed: CachePadded<AtomicU64>,
    pub other_events: CachePadded<AtomicU64>,
    pub backpressure: CachePadded<AtomicU64>,
}

/// A worker's own tally, published to its [`PartitionCounters`] once per batch of items:
/// the hot path pays a plain increment, not an atomic one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub trades: u64,
    pub duplicates: u64,
    pub placeholders: u64,
    pub invalid: u64,
    pub late: u64,
    pub late_amended: u64,
    pub late_overflow: u64,
    pub stale_symbol: u64,
    pub closed: u64,
    pub flat_runs: u64,
    pub gap_overflow: u64,
    pub id_gaps: u64,
    pub implausible_unit: u64,
    pub implausible_ahead: u64,
    pub implausible_jump: u64,
    pub implausible_id: u64,
    pub watermark: i64,
}

impl Tally {
    /// Makes the tally visible to readers (the worker is the only writer).
    pub fn publish(&self, c: &PartitionCounters) {
        c.trades.store(self.trades, Relaxed);
        c.duplicates.store(self.duplicates, Relaxed);
        c.placeholders.store(self.placeholders, Relaxed);
        c.invalid.store(self.invalid, Relaxed);
        c.late.store(self.late, Relaxed);
        c.late_amended.store(self.late_amended, Relaxed);
        c.late_overflow.store(self.late_overflow, Relaxed);
        c.stale_symbol.store(self.stale_symbol, Relaxed);
        c.closed.store(self.closed, Relaxed);
        c.flat_runs.store(self.flat_runs, Relaxed);
        c.gap_overflow.store(self.gap_overflow, Relaxed);
        c.id_gaps.store(self.id_gaps, Relaxed);
        c.implausible_unit.store(self.implausible_unit, Relaxed);
        c.implausible_ahead.store(self.implausible_ahead, Relaxed);
        c.implausible_jump.store(self.implausible_jump, Relaxed);
        c.implausible_id.store(self.implausible_id, Relaxed);
        c.watermark.store(self.watermark, Relaxed);
    }
}

#[inline]
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// A point-in-time copy of one partition's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionMetrics {
    pub trades: u64,
    pub duplicates: u64,
    pub placeholders: u64,
    pub invalid: u64,
    pub late: u64,
    pub late_amended: u64,
    pub late_overflow: u64,
    pub stale_symbol: u64,
    pub closed: u64,
    pub flat_runs: u64,
    pub watermark: i64,
    /// Clock minus watermark: how far behind real time the partition's latest trade is.
    pub lag: i64,
    pub panics: u64,
    pub gap_overflow: u64,
    pub id_gaps: u64,
    pub implausible_unit: u64,
    pub implausible_ahead: u64,
    pub implausible_jump: u64,
    pub implausible_id: u64,
    pub ring_depth: usize,
    /// Closed records waiting behind a full outbox (bounded by `EngineConfig::max_spill`).
    pub spilled: usize,
    pub symbols: usize,
    pub allocated: usize,
}

impl PartitionCounters {
    pub fn read(&self) -> PartitionMetrics {
        PartitionMetrics {
            trades: self.trades.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            placeholders: self.placeholders.load(Relaxed),
            invalid: self.invalid.load(Relaxed),
            late: self.late.load(Relaxed),
            late_amended: self.late_amended.load(Relaxed),
            late_overflow: self.late_overflow.load(Relaxed),
            stale_symbol: self.stale_symbol.load(Relaxed),
            closed: self.closed.load(Relaxed),
            flat_runs: self.flat_runs.load(Relaxed),
            watermark: self.watermark.load(Relaxed),
            lag: 0,
            panics: self.panics.load(Relaxed),
            gap_overflow: self.gap_overflow.load(Relaxed),
            id_gaps: self.id_gaps.load(Relaxed),
            implausible_unit: self.implausible_unit.load(Relaxed),
            implausible_ahead: self.implausible_ahead.load(Relaxed),
            implausible_jump: self.implausible_jump.load(Relaxed),
            implausible_id: self.implausible_id.load(Relaxed),
            ring_depth: 0,
            spilled: 0,
            symbols: 0,
            allocated: 0,
        }
    }
}
