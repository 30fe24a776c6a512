//! Trade → kline visible to a reader, inside the engine: p50 / p99 / p99.9.
//!
//! `cargo bench -p kline_core --bench latency` (run by `make bench`). One producer pushes a
//! trade and reads the symbol back until the kline holds it, for 16 intervals; the time from
//! the push to the read returning it is one sample. Peer: the same read of a trade pushed
//! long before (the cost of the read round trip alone).

use kline_core::engine::clock::ManualClock;
use kline_core::engine::table::SlotValue;
use kline_core::engine::{Engine, EngineConfig};
use kline_core::interval::Interval;
use kline_core::Trade;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn main() {
    let intervals: Vec<Interval> = Interval::BINANCE.iter().map(|s| s.parse().unwrap()).collect();
    let mut cfg = EngineConfig::new(intervals);
    cfg.partitions = 1;
    cfg.clock = Arc::new(ManualClock::new(0));
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    let t0 = 1_700_000_000_000i64;
    let n = 20_000;
    let mut visible = Vec::with_capacity(n);
    let mut read_only = Vec::with_capacity(n);
    for i in 1..=n as i64 {
        let trade = Trade {
            id: i,
            price: 100 + i % 7,
            qty: 1,
            first_id: i,
            last_id: i,
            time: t0 + i,
            buyer_is_maker: false,
        };
        let start = Instant::now();
        e.push_trade("BTCUSDT", trade).unwrap();
        loop {
            let slots = e.read("BTCUSDT").unwrap();
            if matches!(slots[1], SlotValue::Open { kline, .. } if kline.last_trade_id == i) {
                break;
            }
        }
        visible.push(start.elapsed());
        let start = Instant::now();
        let _ = e.read("BTCUSDT").unwrap();
        read_only.push(start.elapsed());
    }
    visible.sort();
    read_only.sort();
    println!("| measure (16 intervals, 1 partition, {n} trades) | p50 µs | p99 µs | p99.9 µs |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [
        ("trade → kline visible to a reader", &visible),
        ("read round trip alone (peer)", &read_only),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            percentile(v, 0.5),
            percentile(v, 0.99),
            percentile(v, 0.999)
        );
    }
}
