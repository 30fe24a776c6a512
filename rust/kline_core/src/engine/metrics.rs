//! Counters per reason, cheap enough to leave on: relaxed atomics on their own cache lines.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Declares the worker's counters once: the atomics readers see ([`PartitionCounters`]), the
/// worker's plain tally ([`Tally`]), the copy handed out ([`PartitionMetrics`]) and the names
/// every binding prints them by ([`PartitionMetrics::named`]).
macro_rules! worker_counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Written by one partition worker.
        #[derive(Debug, Default)]
        pub struct PartitionCounters {
            $($(#[$doc])* pub $name: CachePadded<AtomicU64>,)*
            /// Latest trade time applied (event-time watermark).
            pub watermark: CachePadded<AtomicI64>,
            /// Caught panics (bumped by the supervisor, not the tally).
            pub panics: CachePadded<AtomicU64>,
        }

        /// A worker's own tally, published to its [`PartitionCounters`] once per batch of
        /// items: the hot path pays a plain increment, not an atomic one.
        #[derive(Debug, Default, Clone, Copy)]
        pub struct Tally {
            $(pub $name: u64,)*
            pub watermark: i64,
        }

        impl Tally {
            /// Makes the tally visible to readers (the worker is the only writer).
            pub fn publish(&self, c: &PartitionCounters) {
                $(c.$name.store(self.$name, Relaxed);)*
                c.watermark.store(self.watermark, Relaxed);
            }
        }

        /// A point-in-time copy of one partition's counters and gauges.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct PartitionMetrics {
            $($(#[$doc])* pub $name: u64,)*
            pub watermark: i64,
            /// Clock minus watermark: how far behind real time the partition's latest trade is.
            pub lag: i64,
            pub panics: u64,
            pub ring_depth: usize,
            /// Closed records waiting behind a full outbox (bounded by
            /// `EngineConfig::max_spill`).
            pub spilled: usize,
            pub symbols: usize,
            pub allocated: usize,
        }

        impl PartitionCounters {
            /// The counters (the gauges — lag, ring depth, spill, symbols — are the engine's
            /// to fill in).
            pub fn read(&self) -> PartitionMetrics {
                PartitionMetrics {
                    $($name: self.$name.load(Relaxed),)*
                    watermark: self.watermark.load(Relaxed),
                    panics: self.panics.load(Relaxed),
                    ..PartitionMetrics::default()
                }
            }
        }

        impl PartitionMetrics {
            /// Every field by name, in declaration order: what bindings and reports print.
            pub fn named(&self) -> Vec<(&'static str, i64)> {
                let wide = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                let gauge = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
                vec![
                    $((stringify!($name), wide(self.$name)),)*
                    ("watermark", self.watermark),
                    ("lag", self.lag),
                    ("panics", wide(self.panics)),
                    ("ring_depth", gauge(self.ring_depth)),
                    ("spilled", gauge(self.spilled)),
                    ("symbols", gauge(self.symbols)),
                    ("allocated", gauge(self.allocated)),
                ]
            }
        }
    };
}

worker_counters! {
    trades,
    duplicates,
    placeholders,
    invalid,
    late,
    late_amended,
    /// Late trades that did not fit the side output (still counted in `late`).
    late_overflow,
    stale_symbol,
    closed,
    flat_runs,
    /// Trades over the bound a symbol in a gap may hold (they must come from backfill).
    gap_overflow,
    /// Missing aggTrade id ranges found (live, or when a gap was replayed).
    id_gaps,
    /// Trades refused for their time or id (see `crate::plausible`), by reason.
    implausible_unit,
    implausible_ahead,
    implausible_jump,
    implausible_id,
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

#[inline]
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_tally_is_read_back_field_by_field_and_named() {
        let t =
            Tally { trades: 1, duplicates: 2, implausible_id: 3, watermark: 4, ..Tally::default() };
        let c = PartitionCounters::default();
        t.publish(&c);
        bump(&c.panics);
        let m = c.read();
        assert_eq!(
            (m.trades, m.duplicates, m.implausible_id, m.watermark, m.panics),
            (1, 2, 3, 4, 1)
        );
        let named = m.named();
        let get = |k: &str| named.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(
            (get("trades"), get("implausible_id"), get("panics")),
            (Some(1), Some(3), Some(1))
        );
        assert_eq!(named.len(), 16 + 7, "16 counters, watermark, 6 gauges");
        assert_eq!(named.first().map(|(n, _)| *n), Some("trades"));
    }
}
