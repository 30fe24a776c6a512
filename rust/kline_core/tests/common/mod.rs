//! Helpers shared by the engine's integration tests.
#![allow(dead_code)] // each test file uses some of them

use kline_core::aggregate::expand_flat_run;
use kline_core::engine::clock::ManualClock;
use kline_core::engine::output::Record;
use kline_core::engine::{Engine, EngineConfig, Snapshot};
use kline_core::interval::Interval;
use kline_core::{Kline, Trade};
use std::collections::HashMap;
use std::sync::Arc;

pub const T0: i64 = 1_577_836_800_000; // 2020-01-01 00:00 UTC
pub const E8: i64 = 100_000_000;

pub fn intervals(names: &[&str]) -> Vec<Interval> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

/// One partition, unpinned, every other setting the default: a test changes what it is about
/// with `EngineConfig { …, ..config(names) }`.
pub fn config(names: &[&str]) -> EngineConfig {
    EngineConfig { partitions: 1, pin_threads: false, ..EngineConfig::new(intervals(names)) }
}

/// `config` on a manual clock that is not moved with the trades: nothing is too far ahead.
pub fn manual_config(names: &[&str], clock: Arc<ManualClock>) -> EngineConfig {
    EngineConfig { clock, max_ahead_ms: None, ..config(names) }
}

pub fn engine(names: &[&str], partitions: usize, clock: Arc<ManualClock>) -> Engine {
    Engine::start(EngineConfig { partitions, ring_capacity: 1024, ..manual_config(names, clock) })
        .unwrap()
}

/// Polls until nothing comes, acknowledging each batch: every record closed so far.
pub fn poll_all(e: &Engine, max: usize, expand: bool) -> Vec<Record> {
    let mut all = Vec::new();
    loop {
        let (token, batch) = e.poll(max, expand);
        if batch.is_empty() {
            return all;
        }
        assert!(e.ack(token));
        all.extend(batch);
    }
}

/// What a record covers: its kind (`"kline"` or `"flat"`) and `[start, end)`.
pub fn span(r: &Record) -> (&'static str, i64, i64) {
    match r {
        Record::Kline { kline, .. } => ("kline", kline.open_time, kline.close_time + 1),
        Record::FlatRun { run, .. } => ("flat", run.start, run.end),
    }
}

/// A record's revision and gap flag.
pub fn revision_and_gap(r: &Record) -> (u32, bool) {
    match r {
        Record::Kline { revision, gap, .. } | Record::FlatRun { revision, gap, .. } => {
            (*revision, *gap)
        }
    }
}

/// Everything the engine has closed, per (symbol, interval), flat runs expanded.
pub fn drain(e: &Engine) -> HashMap<(String, u16), Vec<Kline>> {
    let mut out: HashMap<(String, u16), Vec<Kline>> = HashMap::new();
    for r in poll_all(e, 1000, false) {
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
    out
}

pub fn trade(id: i64, time: i64, price: i64) -> Trade {
    agg(id, id, id, time, price, 1000 + id, id % 2 == 0)
}

/// An aggTrade of raw trades `first..=last`.
#[allow(clippy::too_many_arguments)]
pub fn agg(id: i64, first: i64, last: i64, time: i64, price: i64, qty: i64, maker: bool) -> Trade {
    Trade { id, price, qty, first_id: first, last_id: last, time, buyer_is_maker: maker }
}

pub fn open_slots(snap: &Snapshot) -> Vec<(String, u16, kline_core::engine::table::SlotValue)> {
    let mut v: Vec<_> = snap
        .parts
        .iter()
        .flat_map(|p| p.slots.iter().map(|s| (s.symbol.to_string(), s.interval, s.value)))
        .collect();
    v.sort_by_key(|(s, i, _)| (s.clone(), *i));
    v
}

/// Restores every open slot `snap` holds, with these checkpoints; how many it restored.
pub fn restore_from(e: &Engine, snap: &Snapshot, checkpoints: &[(&str, i64)], hold: bool) -> usize {
    let slots = open_slots(snap);
    let slots: Vec<(&str, u16, _)> = slots.iter().map(|(s, i, v)| (s.as_str(), *i, *v)).collect();
    e.restore(&slots, checkpoints, hold).unwrap()
}

/// What an idempotent upsert sink ends with: per (symbol, interval, open time) the highest
/// revision, with its gap flag.
pub fn drain_upsert(
    e: &Engine,
    table: &mut std::collections::BTreeMap<(String, u16, i64), (u32, Kline, bool)>,
) -> usize {
    let mut gaps = 0;
    for r in poll_all(e, 1000, false) {
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
    gaps
}
