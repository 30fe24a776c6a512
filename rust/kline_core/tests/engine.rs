//! The streaming engine against batch aggregation: closing, polling, acks, raw frames,
//! symbols coming and going, late trades, backpressure.

mod common;

use common::*;
use kline_core::aggregate::aggregate;
use kline_core::decimal::QuoteRule;
use kline_core::engine::clock::ManualClock;
use kline_core::engine::output::Record;
use kline_core::engine::table::SlotValue;
use kline_core::engine::{Engine, EngineConfig, EngineError};
use kline_core::interval::{Grid, MINUTE_MS};
use kline_core::{Kline, Trade};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arb_symbol_trades() -> impl Strategy<Value = Vec<Trade>> {
    prop::collection::vec((0i64..90_000, 1i64..1_000_000, 1i64..5_000_000, any::<bool>()), 1..200)
        .prop_map(|rows| {
            let mut time = T0;
            rows.into_iter()
                .enumerate()
                .map(|(i, (dt, price, qty, m))| {
                    time += dt * (dt % 5);
                    let id = i as i64 + 1;
                    Trade {
                        id,
                        price,
                        qty,
                        first_id: id * 3,
                        last_id: id * 3 + (dt % 3),
                        time,
                        buyer_is_maker: m,
                    }
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn streaming_equals_batch_for_any_partitions_and_batches(
        symbols in prop::collection::vec(arb_symbol_trades(), 1..6),
        partitions in 1usize..=4,
        batch in 1usize..50,
    ) {
        let names = ["1m", "5m", "1h", "1d"];
        let clock = Arc::new(ManualClock::new(0));
        let e = engine(&names, partitions, clock);
        let syms: Vec<String> = (0..symbols.len()).map(|i| format!("SYM{i}USDT")).collect();
        for s in &syms {
            e.add_symbol(s, None).unwrap();
        }
        // Interleave symbols, each in random-sized batches, some as single trades.
        let mut cursors = vec![0usize; symbols.len()];
        while cursors.iter().zip(&symbols).any(|(c, t)| *c < t.len()) {
            for (k, trades) in symbols.iter().enumerate() {
                let from = cursors[k];
                let to = (from + batch).min(trades.len());
                if from == to { continue; }
                if (to - from) % 2 == 0 {
                    e.push_trades(&syms[k], trades[from..to].to_vec()).unwrap();
                } else {
                    for t in &trades[from..to] { e.push_trade(&syms[k], *t).unwrap(); }
                }
                cursors[k] = to;
            }
        }
        for s in &syms {
            e.remove_symbol(s).unwrap();
        }
        let got = drain(&e);
        let grids: Vec<Grid> = e.grids().to_vec();
        for (k, trades) in symbols.iter().enumerate() {
            let (want, _) = aggregate(&grids, trades, QuoteRule::PerTrade).unwrap();
            for (i, want) in want.iter().enumerate() {
                let got = got.get(&(syms[k].clone(), i as u16)).cloned().unwrap_or_default();
                prop_assert_eq!(&got, want, "{} {}", syms[k], names[i]);
            }
        }
        let m = e.metrics();
        prop_assert_eq!(m.unacked, 0);
        let applied: u64 = m.partitions.iter().map(|p| p.trades).sum();
        prop_assert_eq!(applied as usize, symbols.iter().map(Vec::len).sum::<usize>());
    }
}

#[test]
fn the_clock_closes_quiet_buckets_and_a_long_silence_is_one_flat_run() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m", "1h"], 2, clock.clone());
    e.add_symbol("BTCUSDT", None).unwrap();
    e.push_trade("BTCUSDT", trade(1, T0 + 10, 100)).unwrap();
    e.sync().unwrap();
    assert!(e.poll(10, false).1.is_empty(), "nothing closes before close_time + grace");
    clock.set(T0 + MINUTE_MS + 250);
    e.sync().unwrap();
    let (_, recs) = e.poll(10, false);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!(
        matches!(&recs[0], Record::Kline { interval: 0, kline, .. } if kline.open_time == T0 && kline.close == 100)
    );
    // Two days of silence: one flat-run record per interval, not one per period.
    clock.set(T0 + 2 * 24 * 60 * MINUTE_MS + 300);
    e.sync().unwrap();
    let (_, recs) = e.poll(100, false);
    let runs: Vec<_> = recs.iter().filter(|r| matches!(r, Record::FlatRun { .. })).collect();
    assert_eq!(recs.len(), 3, "1h kline + one flat run per interval: {recs:?}");
    assert_eq!(runs.len(), 2);
    for r in runs {
        let Record::FlatRun { interval, run, .. } = r else { unreachable!() };
        let per = if *interval == 0 { MINUTE_MS } else { 60 * MINUTE_MS };
        assert_eq!(run.price, 100);
        assert_eq!(run.end, T0 + 2 * 24 * 60 * MINUTE_MS, "{run:?}");
        assert_eq!(run.start, T0 + per);
    }
    // A trade for a period the clock already closed is late: counted and on the side output.
    e.push_trade("BTCUSDT", trade(2, T0 + 30 * MINUTE_MS, 99)).unwrap();
    e.sync().unwrap();
    let late = e.poll_late(10);
    assert_eq!(late.len(), 1);
    assert_eq!(&*late[0].symbol, "BTCUSDT");
    assert_eq!(e.metrics().partitions.iter().map(|p| p.late).sum::<u64>(), 1);
}

#[test]
fn remove_flushes_open_klines_and_frees_the_slot_for_reuse() {
    let clock = Arc::new(ManualClock::new(0));
    let e = engine(&["1m"], 1, clock);
    e.add_symbol("AAA", None).unwrap();
    e.push_trade("AAA", trade(1, T0, 5)).unwrap();
    e.remove_symbol("AAA").unwrap();
    let (_, recs) = e.poll(10, false);
    assert!(matches!(&recs[..], [Record::Kline { kline, .. }] if kline.close == 5));
    assert_eq!(
        e.push_trade("AAA", trade(2, T0 + 1, 6)),
        Err(EngineError::UnknownSymbol("AAA".into()))
    );
    e.add_symbol("BBB", None).unwrap();
    e.push_trade("BBB", trade(1, T0, 7)).unwrap();
    e.sync().unwrap();
    let m = e.metrics();
    assert_eq!(m.unknown_symbol, 1);
    assert_eq!(m.partitions[0].symbols, 1);
    assert_eq!(e.symbols(), vec!["BBB".to_string()]);
}

#[test]
fn unacknowledged_batches_come_again() {
    let clock = Arc::new(ManualClock::new(0));
    let e = engine(&["1m"], 1, clock);
    e.add_symbol("AAA", None).unwrap();
    e.push_trade("AAA", trade(1, T0, 5)).unwrap();
    e.push_trade("AAA", trade(2, T0 + MINUTE_MS, 6)).unwrap();
    e.sync().unwrap();
    let (token, first) = e.poll(10, false);
    assert_eq!(first.len(), 1);
    assert!(e.nack(token));
    let (token2, again) = e.poll(10, false);
    assert_eq!(again, first);
    assert_eq!(e.metrics().unacked, 1);
    assert!(e.ack(token2));
    assert!(!e.ack(token2));
    assert_eq!(e.metrics().unacked, 0);
}

#[test]
fn raw_websocket_frames_are_parsed_routed_and_bad_ones_counted() {
    let clock = Arc::new(ManualClock::new(0));
    let e = engine(&["1m"], 2, clock);
    e.add_symbol("ETHUSDT", None).unwrap();
    let good = br#"{"stream":"ethusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"ETHUSDT","a":7,"p":"1632.46000000","q":"0.34305000","f":9,"l":9,"T":1675759520847,"m":false,"M":true}}"#;
    let unknown = br#"{"e":"aggTrade","E":1,"s":"XRPUSDT","a":7,"p":"1","q":"1","f":9,"l":9,"T":1,"m":false}"#;
    let frames: Vec<&[u8]> = vec![
        good,
        b"{broken",
        unknown,
        br#"{"e":"kline","k":{}}"#,
        br#"{"e":"aggTrade","s":"ETHUSDT"}"#,
    ];
    let report = e.push_raw(frames).unwrap();
    assert_eq!(
        (
            report.consumed,
            report.trades,
            report.malformed,
            report.unknown_symbol,
            report.other_events
        ),
        (5, 1, 2, 1, 1)
    );
    assert!(report.errors[0].contains("invalid JSON"), "{:?}", report.errors);
    assert!(report.errors[1].contains("missing field"), "{:?}", report.errors);
    e.sync().unwrap();
    assert_eq!(e.metrics().partitions.iter().map(|p| p.trades).sum::<u64>(), 1);
}

#[test]
fn shutdown_joins_and_later_pushes_fail() {
    let e = engine(&["1m"], 2, Arc::new(ManualClock::new(0)));
    e.add_symbol("AAA", None).unwrap();
    e.shutdown();
    assert_eq!(e.push_trade("AAA", trade(1, T0, 1)), Err(EngineError::ShutDown));
}

#[test]
fn late_trades_amend_the_latest_closed_kline_within_the_allowed_lateness() {
    let late_policy = kline_core::engine::LatePolicy::Amend { allowed_lateness: 5_000 };
    let clock = Arc::new(ManualClock::new(0));
    let cfg = EngineConfig { late_policy, ..manual_config(&["1m", "5m"], clock) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    e.push_trade("BTCUSDT", trade(1, T0 + 10_000, 100)).unwrap();
    e.push_trade("BTCUSDT", trade(2, T0 + 61_000, 110)).unwrap(); // closes minute 0
    e.push_trade("BTCUSDT", trade(3, T0 + 30_000, 90)).unwrap(); // late, 1 s after the close
    e.sync().unwrap();
    let (_, recs) = e.poll(10, false);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let Record::Kline { kline: first, revision: 0, .. } = &recs[0] else { panic!("{recs:?}") };
    let Record::Kline { kline: amended, revision: 1, .. } = &recs[1] else { panic!("{recs:?}") };
    assert_eq!((first.trades, first.low), (1, 100));
    assert_eq!((amended.open_time, amended.trades, amended.low, amended.close), (T0, 2, 90, 90));
    // Too late: the symbol's time has moved 6 s past minute 1's close.
    e.push_trade("BTCUSDT", trade(4, T0 + 126_000, 120)).unwrap(); // closes minute 1
    e.push_trade("BTCUSDT", trade(5, T0 + 70_000, 1)).unwrap();
    e.sync().unwrap();
    assert_eq!(e.poll_late(10).len(), 1);
    let m = &e.metrics().partitions[0];
    assert_eq!((m.late, m.late_amended), (2, 1));
    e.remove_symbol("BTCUSDT").unwrap();
    let mut table = std::collections::BTreeMap::new();
    drain_upsert(&e, &mut table);
    let five = &table[&("BTCUSDT".to_string(), 1, T0)].1;
    assert_eq!((five.trades, five.low, five.close), (4, 90, 120), "the 5m kline took trade 3");
}

/// Symbols come and go for `KLINE_SOAK_SECS` (default 3) while trades of live ones flow from
/// another thread: slots are reused (allocation stays flat) and no trade of a live symbol is lost.
#[test]
fn adding_and_removing_symbols_under_load_loses_nothing_and_stays_flat() {
    let secs: u64 = std::env::var("KLINE_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let e = Arc::new(engine(&["1m", "5m"], 2, Arc::new(ManualClock::new(0))));
    let steady: Vec<String> = (0..8).map(|i| format!("LIVE{i}")).collect();
    for s in &steady {
        e.add_symbol(s, None).unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (e, stop, steady) = (e.clone(), stop.clone(), steady.clone());
        std::thread::spawn(move || {
            let mut sent = vec![Vec::new(); steady.len()];
            let mut id = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                id += 1;
                for (k, s) in steady.iter().enumerate() {
                    let t = trade(id, T0 + id * 97, 100 + (id * (k as i64 + 3)) % 77);
                    loop {
                        match e.push_trade(s, t) {
                            Ok(()) => break,
                            Err(EngineError::Backpressure(_)) => continue,
                            Err(other) => panic!("{other}"),
                        }
                    }
                    sent[k].push(t);
                }
            }
            sent
        })
    };
    let started = std::time::Instant::now();
    let mut rounds = 0u64;
    let mut peak_allocated = 0;
    let mut churned: HashMap<(String, u16), Vec<Kline>> = HashMap::new();
    // At least MIN_ROUNDS rounds of churn however slow the machine: slot reuse is what is
    // checked, not a rate.
    const MIN_ROUNDS: u64 = 6;
    while rounds < MIN_ROUNDS || started.elapsed().as_secs() < secs {
        let names: Vec<String> = (0..50).map(|i| format!("TMP{}_{i}", rounds % 7)).collect();
        let refs: Vec<(&str, Option<i64>)> = names.iter().map(|n| (n.as_str(), None)).collect();
        e.add_symbols(&refs).unwrap();
        for (i, n) in names.iter().enumerate() {
            // The producer keeps the rings full: wait out backpressure as it does.
            while let Err(err) = e.push_trade(n, trade(1, T0 + i as i64, 5)) {
                assert!(matches!(err, EngineError::Backpressure(_)), "{err}");
            }
        }
        for n in &names {
            e.remove_symbol(n).unwrap();
        }
        // Drain as we go so the outbox never fills; keep only what the steady symbols made.
        for (k, v) in drain(&e) {
            churned.entry(k).or_default().extend(v);
        }
        let allocated: usize = e.metrics().partitions.iter().map(|p| p.allocated).sum();
        peak_allocated = peak_allocated.max(allocated);
        rounds += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = producer.join().unwrap();
    for s in &steady {
        e.remove_symbol(s).unwrap();
    }
    for (k, v) in drain(&e) {
        churned.entry(k).or_default().extend(v);
    }
    assert!(peak_allocated <= steady.len() + 50 + 2, "slots grew to {peak_allocated}");
    for (k, s) in steady.iter().enumerate() {
        let (want, _) = aggregate(e.grids(), &sent[k], QuoteRule::PerTrade).unwrap();
        for (i, want) in want.iter().enumerate() {
            assert_eq!(&churned[&(s.clone(), i as u16)], want, "{s} interval {i}");
        }
    }
}

#[test]
fn a_full_ring_is_backpressure_reported_to_the_producer_never_a_silent_drop() {
    let clock = Arc::new(ManualClock::new(0));
    let e = Engine::start(EngineConfig {
        ring_capacity: 2,
        push_wait: Duration::ZERO,
        ..manual_config(&["1s", "1m", "1h"], clock)
    })
    .unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    // Keep the worker busy with one huge batch, then push single trades until the ring is full.
    let n = 3_000_000;
    let busy: Vec<Trade> = (1..=n).map(|i| trade(i, T0 + i * 10, 100)).collect();
    e.push_trades("BTCUSDT", busy).unwrap();
    let mut accepted = 0;
    let mut refused = None;
    for i in 1..=100 {
        match e.push_trade("BTCUSDT", trade(n + i, T0 + (n + i) * 10, 101)) {
            Ok(()) => accepted += 1,
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
    }
    assert_eq!(refused, Some(EngineError::Backpressure(0)));
    assert!(accepted <= 2, "{accepted}");
    assert_eq!(e.metrics().backpressure, 1);
    // push_raw says where to resume.
    let late_enough = T0 + (n + 1000) * 10;
    let id = n + 500; // ahead of every trade before it, and a plausible id for the time
    let frame = format!(
        r#"{{"e":"aggTrade","s":"BTCUSDT","a":{id},"p":"1","q":"1","f":1,"l":1,"T":{late_enough},"m":true}}"#
    );
    let frames: Vec<&[u8]> = vec![frame.as_bytes(); 3000];
    let report = e.push_raw(frames.iter().copied()).unwrap();
    if report.backpressure {
        assert!(report.consumed < frames.len() && report.consumed % 1024 == 0, "{report:?}");
    }
    while let Err(EngineError::Backpressure(_)) = e.sync() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let m = e.metrics();
    let applied: u64 = m.partitions.iter().map(|p| p.trades).sum();
    let from_raw = u64::from(report.trades > 0);
    assert_eq!(applied, n as u64 + accepted + from_raw, "everything accepted was applied");
    assert_eq!(m.partitions[0].duplicates, report.trades.saturating_sub(1) as u64);
}

#[test]
fn live_and_allocated_symbols_are_counted_and_each_symbol_reads_its_own_slots() {
    let e = engine(&["1m", "5m"], 1, Arc::new(ManualClock::new(0)));
    e.add_symbols(&[("AAA", None), ("BBB", None), ("CCC", None)]).unwrap();
    e.remove_symbol("BBB").unwrap();
    let m = &e.metrics().partitions[0];
    assert_eq!((m.symbols, m.allocated), (2, 3), "BBB's slot is free, not returned");
    e.push_trade("AAA", trade(1, T0, 5)).unwrap();
    e.push_trade("CCC", trade(1, T0 + 70_000, 7)).unwrap();
    let (values, last_id) = e.read("CCC").unwrap();
    assert_eq!(last_id, Some(1));
    let opens: Vec<(i64, i64)> = values
        .iter()
        .map(|v| match v {
            SlotValue::Open { kline, .. } => (kline.open_time, kline.close),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(opens, [(T0 + MINUTE_MS, 7), (T0, 7)], "CCC's 1m and 5m, not AAA's");
}

#[test]
fn a_parked_worker_is_woken_by_a_request_not_by_its_park_timeout() {
    // An idle worker parks for up to 50 ms; a push rings its doorbell. The median of eleven
    // requests is timed: a loaded machine slowing a few, or a stray early wake-up, decides
    // nothing.
    let clock = Arc::new(ManualClock::new(T0)); // no sweep due: only a push wakes it early
    let cfg = EngineConfig { clock, spin: Duration::ZERO, ..config(&["1m"]) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    let mut took: Vec<Duration> = (0..11)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(5)); // the worker parks meanwhile
            let start = Instant::now();
            e.read("BTCUSDT").unwrap();
            start.elapsed()
        })
        .collect();
    took.sort();
    assert!(took[5] < Duration::from_millis(20), "answered after {:?} (of {took:?})", took[5]);
}
