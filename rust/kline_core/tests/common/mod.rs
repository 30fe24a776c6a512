//! Helpers shared by the engine's integration tests.
#![allow(dead_code)] // each test file uses some of them

use kline_core::aggregate::expand_flat_run;
use kline_core::engine::clock::ManualClock;
use kline_core::engine::output::Record;
use kline_core::engine::{Engine, EngineConfig};
use kline_core::interval::Interval;
use kline_core::{Kline, Trade};
use std::collections::HashMap;
use std::sync::Arc;

pub const T0: i64 = 1_577_836_800_000;

pub fn intervals(names: &[&str]) -> Vec<Interval> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

pub fn engine(names: &[&str], partitions: usize, clock: Arc<ManualClock>) -> Engine {
    let mut cfg = EngineConfig::new(intervals(names));
    cfg.partitions = partitions;
    cfg.clock = clock;
    cfg.max_ahead_ms = None; // the manual clock is not moved with the trades
    cfg.pin_threads = false;
    cfg.ring_capacity = 1024;
    Engine::start(cfg).unwrap()
}

/// Everything the engine has closed, per (symbol, interval), flat runs expanded.
pub fn drain(e: &Engine) -> HashMap<(String, u16), Vec<Kline>> {
    let mut out: HashMap<(String, u16), Vec<Kline>> = HashMap::new();
    loop {
        let (token, batch) = e.poll(1000, false);
        if batch.is_empty() {
            return out;
        }
        for r in batch {
            match r {
                Record::Kline { symbol, interval, kline, .. } => {
                    out.entry((symbol.to_string(), interval)).or_default().push(kline)
                }
                Record::FlatRun { symbol, interval, run, .. } => {
                    let grid = e.grids()[interval as usize];
                    let v = out.entry((symbol.to_string(), interval)).or_default();
                    expand_flat_run(&grid, &run, |k| v.push(k)).unwrap();
                }
            }
        }
        assert!(e.ack(token));
    }
}

pub fn trade(id: i64, time: i64, price: i64) -> Trade {
    Trade {
        id,
        price,
        qty: 1000 + id,
        first_id: id,
        last_id: id,
        time,
        buyer_is_maker: id % 2 == 0,
    }
}

pub fn open_slots(
    snap: &kline_core::engine::Snapshot,
) -> Vec<(String, u16, kline_core::engine::table::SlotValue)> {
    let mut v: Vec<_> = snap
        .parts
        .iter()
        .flat_map(|p| p.slots.iter().map(|s| (s.symbol.to_string(), s.interval, s.value)))
        .collect();
    v.sort_by_key(|(s, i, _)| (s.clone(), *i));
    v
}

/// What an idempotent upsert sink ends with: per (symbol, interval, open time) the highest
/// revision, with its gap flag.
pub fn drain_upsert(
    e: &Engine,
    table: &mut std::collections::BTreeMap<(String, u16, i64), (u32, Kline, bool)>,
) -> usize {
    let mut gaps = 0;
    loop {
        let (token, batch) = e.poll(1000, false);
        if batch.is_empty() {
            return gaps;
        }
        for r in batch {
            let mut put = |symbol: &str, interval: u16, k: Kline, revision: u32, gap: bool| {
                gaps += usize::from(gap);
                let key = (symbol.to_string(), interval, k.open_time);
                if table.get(&key).is_none_or(|(rev, _, _)| revision >= *rev) {
                    table.insert(key, (revision, k, gap));
                }
            };
            match r {
                Record::Kline { symbol, interval, kline, revision, gap } => {
                    put(&symbol, interval, kline, revision, gap)
                }
                Record::FlatRun { symbol, interval, run, revision, gap } => {
                    expand_flat_run(&e.grids()[interval as usize], &run, |k| {
                        put(&symbol, interval, k, revision, gap)
                    })
                    .unwrap()
                }
            }
        }
        assert!(e.ack(token));
    }
}
