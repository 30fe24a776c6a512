//! Raw websocket JSON → klines on one partition, without Python: M frames/s.
//!
//! `cargo bench -p kline_core --bench raw_ingest`. 1 M combined-stream aggTrade frames of 4
//! symbols, 16 intervals, `push_raw` in batches of 10 000, then `sync()`. Peer row: the same
//! frames parsed only (`parse_ws_message`), the floor of the calling thread's work.

use kline_core::engine::clock::ManualClock;
use kline_core::engine::{Engine, EngineConfig};
use kline_core::interval::Interval;
use kline_core::parse::json::parse_ws_message;
use std::sync::Arc;
use std::time::Instant;

fn frames(n: usize) -> Vec<Vec<u8>> {
    let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"];
    (0..n)
        .map(|i| {
            let s = symbols[i % 4];
            let id = 1_000_000 + i / 4;
            let t = 1_704_067_200_000 + (i as i64) * 80;
            format!(
                r#"{{"stream":"{}@aggTrade","data":{{"e":"aggTrade","E":{t},"s":"{s}","a":{id},"p":"{}.{:02}000000","q":"0.{:08}","f":{id},"l":{id},"T":{t},"m":{},"M":true}}}}"#,
                s.to_lowercase(),
                40_000 + i % 97,
                i % 100,
                (i * 7919) % 100_000_000,
                i % 3 == 0
            )
            .into_bytes()
        })
        .collect()
}

fn main() {
    let all = frames(1_000_000);
    let mut best_engine = f64::MAX;
    let mut best_parse = f64::MAX;
    for _ in 0..3 {
        let mut cfg =
            EngineConfig::new(Interval::BINANCE.iter().map(|s| s.parse().unwrap()).collect());
        cfg.partitions = 1;
        cfg.clock = Arc::new(ManualClock::new(0));
        cfg.max_ahead_ms = None; // the manual clock is not moved with the trades
                                 // Nobody polls: the closed klines of 1 M trades (~0.6 M records) wait in the spill.
        cfg.max_spill = kline_core::engine::MAX_OUTBOX;
        let e = Engine::start(cfg).unwrap();
        e.add_symbols(&[
            ("BTCUSDT", None),
            ("ETHUSDT", None),
            ("SOLUSDT", None),
            ("XRPUSDT", None),
        ])
        .unwrap();
        let start = Instant::now();
        for chunk in all.chunks(10_000) {
            let report = e.push_raw(chunk.iter().map(Vec::as_slice)).unwrap();
            assert_eq!(report.consumed, chunk.len());
        }
        e.sync().unwrap();
        best_engine = best_engine.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let mut n = 0;
        for f in &all {
            n += usize::from(parse_ws_message(f).is_ok());
        }
        assert_eq!(n, all.len());
        best_parse = best_parse.min(start.elapsed().as_secs_f64());
    }
    println!("| raw JSON, 1 M frames, 16 intervals, 1 partition (best of 3) | M frames/s |");
    println!("|---|---:|");
    println!("| push_raw + sync | {:.2} |", 1.0 / best_engine);
    println!("| parse only (peer: the calling thread's floor) | {:.2} |", 1.0 / best_parse);
}
