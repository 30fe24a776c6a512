//! Rollover of 10 k symbols × 16 intervals at a minute boundary, inside the engine.
//!
//! `cargo bench -p kline_core --bench rollover` (run by `make bench`): each symbol holds one
//! open kline per interval; the clock moves past 00:02 + grace and `sync()` returns after the
//! sweep. Peer: the same `sync()` with the clock still (the round trip alone). Measured cold
//! (a fresh engine: every outbox chunk is new memory) and in steady state (a consumer has
//! drained the previous minute, so the emptied chunks are reused), at 00:03.

use kline_core::engine::clock::ManualClock;
use kline_core::engine::{Engine, EngineConfig};
use kline_core::interval::Interval;
use kline_core::Trade;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The consumer: takes and acknowledges everything closed so far.
fn drain(e: &Engine) {
    loop {
        let (token, batch) = e.poll(65_536, false);
        if batch.is_empty() {
            return;
        }
        e.ack(token);
    }
}

fn main() {
    // One partition, and two: the default on this 2-core machine (one worker per usable CPU).
    for partitions in [1, 2] {
        run(partitions);
    }
}

fn run(partitions: usize) {
    let symbols = 10_000;
    let t0 = 1_704_067_200_000i64 + 90_000; // 2024-01-01 00:01:30 UTC
    let mut best = (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let clock = Arc::new(ManualClock::new(t0));
        let mut cfg =
            EngineConfig::new(Interval::BINANCE.iter().map(|s| s.parse().unwrap()).collect());
        cfg.partitions = partitions;
        cfg.clock = clock.clone();
        cfg.max_ahead_ms = None; // the manual clock is not moved with the trades
        let e = Engine::start(cfg).unwrap();
        let names: Vec<String> = (0..symbols).map(|i| format!("S{i}USDT")).collect();
        let refs: Vec<(&str, Option<i64>)> = names.iter().map(|n| (n.as_str(), None)).collect();
        e.add_symbols(&refs).unwrap();
        let trade_all = |id: i64, time: i64| {
            for n in &names {
                let t = Trade {
                    id,
                    price: 100,
                    qty: 1,
                    first_id: id,
                    last_id: id,
                    time,
                    buyer_is_maker: false,
                };
                e.push_trade(n, t).unwrap();
            }
            e.sync().unwrap();
        };
        trade_all(1, t0);
        let start = Instant::now();
        e.sync().unwrap();
        let still = start.elapsed();
        clock.set(t0 + 30_000 + 250);
        let start = Instant::now();
        e.sync().unwrap();
        let minute = start.elapsed();
        drain(&e);
        trade_all(2, t0 + 60_000); // 00:02:30
        drain(&e);
        clock.set(t0 + 90_000 + 250); // 00:03 + grace
        let start = Instant::now();
        e.sync().unwrap();
        let steady = start.elapsed();
        drain(&e);
        clock.set(t0 + 91_000 + 250);
        let start = Instant::now();
        e.sync().unwrap();
        let quiet = start.elapsed();
        best = (best.0.min(still), best.1.min(minute), best.2.min(quiet), best.3.min(steady));
    }
    println!(
        "\n| rollover, {symbols} symbols × 16 intervals, {partitions} partition(s) (best of 5) | ms |"
    );
    println!("|---|---:|");
    println!(
        "| sync() with the clock still (peer: the round trip alone) | {:.3} |",
        best.0.as_secs_f64() * 1e3
    );
    println!(
        "| minute boundary 00:02, cold: 1s and 1m klines close (20 k klines + 10 k flat runs) | {:.3} |",
        best.1.as_secs_f64() * 1e3
    );
    println!(
        "| minute boundary 00:03, steady state (the same records, chunks reused) | {:.3} |",
        best.3.as_secs_f64() * 1e3
    );
    println!("| one quiet second later: 10 k 1s flat runs | {:.3} |", best.2.as_secs_f64() * 1e3);
}
