//! Rollover of 10 k symbols × 16 intervals at a minute boundary, inside the engine.
//!
//! `cargo bench -p kline_core --bench rollover` (run by `make bench`): each symbol holds one
//! open kline per interval; the clock moves past 00:02 + grace and `sync()` returns after the
//! sweep. Peer: the same `sync()` with the clock still (the round trip alone).

use kline_core::engine::clock::ManualClock;
use kline_core::engine::{Engine, EngineConfig};
use kline_core::interval::Interval;
use kline_core::Trade;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let symbols = 10_000;
    let t0 = 1_704_067_200_000i64 + 90_000; // 2024-01-01 00:01:30 UTC
    let mut best = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let clock = Arc::new(ManualClock::new(t0));
        let mut cfg =
            EngineConfig::new(Interval::BINANCE.iter().map(|s| s.parse().unwrap()).collect());
        cfg.partitions = 1;
        cfg.clock = clock.clone();
        let e = Engine::start(cfg).unwrap();
        let names: Vec<String> = (0..symbols).map(|i| format!("S{i}USDT")).collect();
        let refs: Vec<(&str, Option<i64>)> = names.iter().map(|n| (n.as_str(), None)).collect();
        e.add_symbols(&refs).unwrap();
        for n in &names {
            let t = Trade {
                id: 1,
                price: 100,
                qty: 1,
                first_id: 1,
                last_id: 1,
                time: t0,
                buyer_is_maker: false,
            };
            e.push_trade(n, t).unwrap();
        }
        e.sync().unwrap();
        let start = Instant::now();
        e.sync().unwrap();
        let still = start.elapsed();
        clock.set(t0 + 30_000 + 250);
        let start = Instant::now();
        e.sync().unwrap();
        let minute = start.elapsed();
        clock.set(t0 + 31_000 + 250);
        let start = Instant::now();
        e.sync().unwrap();
        let quiet = start.elapsed();
        best = (best.0.min(still), best.1.min(minute), best.2.min(quiet));
    }
    println!("| rollover, {symbols} symbols × 16 intervals, 1 partition (best of 5) | ms |");
    println!("|---|---:|");
    println!(
        "| sync() with the clock still (peer: the round trip alone) | {:.3} |",
        best.0.as_secs_f64() * 1e3
    );
    println!(
        "| minute boundary 00:02: 1s and 1m klines close (20 k klines + 10 k flat runs) | {:.3} |",
        best.1.as_secs_f64() * 1e3
    );
    println!("| one quiet second later: 10 k 1s flat runs | {:.3} |", best.2.as_secs_f64() * 1e3);
}
