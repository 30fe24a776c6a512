//! Trade → kline visible to a reader, inside the engine: p50 / p99 / p99.9.
//!
//! `cargo bench -p kline_core --bench latency` (run by `make bench`). A producer pushes a trade
//! of a healthy symbol and reads the symbol back until its 1m kline holds it, with 16 intervals;
//! the time from the push to that read is one sample. Then the same while 1 000 other symbols
//! of the same partition come back from an hour of silence. Peer: the read round trip alone.

use kline_core::engine::clock::ManualClock;
use kline_core::engine::table::SlotValue;
use kline_core::engine::{Engine, EngineConfig};
use kline_core::interval::Interval;
use kline_core::Trade;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HEALTHY: &str = "BTCUSDT";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn trade(id: i64, time: i64, price: i64) -> Trade {
    Trade { id, price, qty: 1, first_id: id, last_id: id, time, buyer_is_maker: false }
}

/// Pushes trade `id` of the healthy symbol and reads until it is visible: one sample.
fn probe(e: &Engine, id: i64, time: i64) -> Duration {
    let start = Instant::now();
    e.push_trade(HEALTHY, trade(id, time, 100 + id % 7)).unwrap();
    loop {
        let (slots, _) = e.read(HEALTHY).unwrap();
        if matches!(slots[1], SlotValue::Open { kline, .. } if kline.last_trade_id == id) {
            return start.elapsed();
        }
    }
}

fn main() {
    let intervals: Vec<Interval> = Interval::BINANCE.iter().map(|s| s.parse().unwrap()).collect();
    let clock = Arc::new(ManualClock::new(0));
    let mut cfg = EngineConfig::new(intervals);
    cfg.partitions = 1;
    cfg.clock = clock.clone();
    cfg.max_ahead_ms = None; // the manual clock is not moved with the trades
    let e = Engine::start(cfg).unwrap();
    e.add_symbol(HEALTHY, None).unwrap();
    let silent: Vec<String> = (0..1000).map(|k| format!("Q{k}USDT")).collect();
    let refs: Vec<(&str, Option<i64>)> = silent.iter().map(|s| (s.as_str(), None)).collect();
    e.add_symbols(&refs).unwrap();
    let t0 = 1_700_000_000_000i64;
    for s in &silent {
        e.push_trade(s, trade(1, t0, 5)).unwrap();
    }
    let n = 20_000i64;
    let (mut visible, mut read_only, mut recovering) = (Vec::new(), Vec::new(), Vec::new());
    for id in 1..=n {
        visible.push(probe(&e, id, t0 + id));
        let start = Instant::now();
        let _ = e.read(HEALTHY).unwrap();
        read_only.push(start.elapsed());
    }
    // An hour later the silent symbols trade again, one every 20 probes, between the probes.
    let hour = 3_600_000;
    clock.set(t0 + hour);
    for k in 0..n {
        if k % 20 == 0 {
            if let Some(s) = silent.get((k / 20) as usize) {
                e.push_trade(s, trade(2, t0 + hour, 6)).unwrap();
            }
        }
        recovering.push(probe(&e, n + 1 + k, t0 + hour + k));
    }
    let _ = e.poll(usize::MAX, false);
    for v in [&mut visible, &mut read_only, &mut recovering] {
        v.sort();
    }
    println!(
        "| measure (16 intervals, 1 partition, {n} samples each) | p50 µs | p99 µs | p99.9 µs |"
    );
    println!("|---|---:|---:|---:|");
    let rows = [
        ("trade → kline visible to a reader", &visible),
        ("the same while 1 000 symbols recover from 1 h of silence", &recovering),
        ("read round trip alone (peer)", &read_only),
    ];
    for (name, v) in rows {
        let (p50, p99, p999) = (percentile(v, 0.5), percentile(v, 0.99), percentile(v, 0.999));
        println!("| {name} | {p50:.1} | {p99:.1} | {p999:.1} |");
    }
}
