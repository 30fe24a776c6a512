//! One bad input must not take the engine down: implausible times refused and counted, flat
//! runs never expanded without bound, spills bounded, nothing closed dropped at shutdown,
//! settings and names checked.

mod common;

use common::{agg, config, manual_config, poll_all, T0};
use kline_core::engine::clock::{ManualClock, SystemClock};
use kline_core::engine::metrics::PartitionMetrics;
use kline_core::engine::output::Record;
use kline_core::engine::table::SlotValue;
use kline_core::engine::{Engine, EngineConfig, EngineError};
use kline_core::interval::{Interval, DAY_MS, MINUTE_MS};
use kline_core::Trade;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn trade(id: i64, time: i64) -> Trade {
    agg(id, id, id, time, 100 + id, 5, false)
}

fn totals(e: &Engine) -> PartitionMetrics {
    let mut t = PartitionMetrics::default();
    for p in e.metrics().partitions {
        t.trades += p.trades;
        t.implausible_unit += p.implausible_unit;
        t.implausible_ahead += p.implausible_ahead;
        t.implausible_jump += p.implausible_jump;
        t.late += p.late;
        t.spilled += p.spilled;
    }
    t
}

/// The consumer loop for a bounded spill: poll to empty, sync; until the sync completes (then
/// everything closed is visible to the last poll).
fn drain_synced(e: &Engine) -> Vec<Record> {
    let mut got = Vec::new();
    loop {
        got.extend(poll_all(e, 4_096, false));
        match e.sync() {
            Ok(()) => break,
            Err(EngineError::Unpolled(_)) => continue,
            Err(other) => panic!("{other}"),
        }
    }
    got.extend(poll_all(e, 4_096, false));
    got
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn a_trade_in_the_year_3000_is_refused_and_the_symbol_goes_on() {
    let clock = Arc::new(SystemClock::default());
    let cfg = EngineConfig { clock, ..config(&["1s", "1m"]) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    let now = now_ms();
    let year_3000 = 32_503_680_000_000;
    e.push_trades("BTCUSDT", vec![trade(1, now - 2_000), trade(2, year_3000)]).unwrap();
    e.push_trades("BTCUSDT", vec![trade(3, now - 1_000), trade(4, now)]).unwrap();
    // A µs time in this ms engine, and times near i64::MAX (the grid would overflow).
    e.push_trades("BTCUSDT", vec![trade(5, now * 1_000), trade(6, i64::MAX - 1), trade(7, -5)])
        .unwrap();
    e.sync().unwrap();
    let t = totals(&e);
    assert_eq!(t.implausible_ahead, 1);
    assert_eq!(t.implausible_unit, 3, "µs time, i64::MAX - 1 and a negative time");
    assert_eq!(t.trades, 3, "the real trades after the bad one are applied, not late");
    assert_eq!(t.late, 0);
    let (values, last) = e.read("BTCUSDT").unwrap();
    assert_eq!(last, Some(4));
    assert!(values.iter().all(|v| v.start() <= now), "nothing opened in the future");
}

#[test]
fn a_jump_past_the_bound_is_refused_when_one_is_set() {
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = EngineConfig { max_jump_ms: Some(DAY_MS), ..manual_config(&["1m"], clock) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("ETHUSDT", None).unwrap();
    let trades = vec![trade(1, T0), trade(2, T0 + 400 * DAY_MS), trade(3, T0 + 1_000)];
    e.push_trades("ETHUSDT", trades).unwrap();
    e.sync().unwrap();
    let t = totals(&e);
    assert_eq!((t.implausible_jump, t.trades, t.late), (1, 2, 0));
}

#[test]
fn a_far_ahead_trade_id_is_refused_and_opens_no_gap() {
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = EngineConfig { detect_id_gaps: true, ..manual_config(&["1m"], clock) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("ETHUSDT", None).unwrap();
    let bogus = trade(1_000_000_000_000, T0 + 2_000);
    e.push_trades("ETHUSDT", vec![trade(1, T0), bogus, trade(2, T0 + 3_000)]).unwrap();
    e.sync().unwrap();
    let p = &e.metrics().partitions[0];
    assert_eq!((p.implausible_id, p.trades, p.id_gaps, p.duplicates), (1, 2, 0, 0));
    assert!(e.poll_gaps(10).is_empty(), "no repair asked for a hole nobody can fill");
    assert_eq!(e.read("ETHUSDT").unwrap().1, Some(2));
}

#[test]
fn a_manual_clock_bounds_trades_ahead_of_it() {
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = EngineConfig { clock, ..config(&["1m"]) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("ETHUSDT", None).unwrap();
    e.push_trade("ETHUSDT", trade(1, T0 + 5 * MINUTE_MS)).unwrap();
    e.push_trade("ETHUSDT", trade(2, T0 + 5 * MINUTE_MS + 1)).unwrap();
    e.sync().unwrap();
    assert_eq!((totals(&e).trades, totals(&e).implausible_ahead), (1, 1));
}

#[test]
fn a_poll_never_expands_more_than_it_was_asked_for() {
    // One trade from 2020, the next a day later, in a 1s engine: one flat run of 86 399 s.
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::start(manual_config(&["1s"], clock)).unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    e.push_trades("BTCUSDT", vec![trade(1, T0), trade(2, T0 + DAY_MS)]).unwrap();
    e.sync().unwrap();
    let mut periods = Vec::new();
    loop {
        let (token, batch) = e.poll(1_000, true);
        if batch.is_empty() {
            break;
        }
        let mut worth = 0;
        for r in &batch {
            match r {
                Record::Kline { kline, .. } => {
                    worth += 1;
                    periods.push((kline.open_time, kline.close_time + 1));
                }
                Record::FlatRun { run, .. } => {
                    worth += (run.end - run.start) / 1_000;
                    periods.push((run.start, run.end));
                }
            }
        }
        assert!(worth <= 1_000, "a poll of 1000 handed out {worth} klines");
        assert!(e.ack(token));
    }
    // The pieces tile the day exactly, in order.
    assert_eq!(periods.first().unwrap().0, T0);
    assert_eq!(periods.last().unwrap().1, T0 + DAY_MS);
    assert!(periods.windows(2).all(|w| w[0].1 == w[1].0));
    // Kept whole (expand = false), the run is one record.
    e.push_trade("BTCUSDT", trade(3, T0 + 2 * DAY_MS)).unwrap();
    e.sync().unwrap();
    let whole = poll_all(&e, 1_000, false);
    assert_eq!(whole.len(), 2, "the closed kline and one run");
}

#[test]
fn a_nacked_cut_run_comes_back_in_order() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::start(manual_config(&["1m"], clock)).unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    e.push_trades("BTCUSDT", vec![trade(1, T0), trade(2, T0 + 100 * MINUTE_MS)]).unwrap();
    e.sync().unwrap();
    let (token, first) = e.poll(10, true);
    assert!(e.nack(token));
    let again = poll_all(&e, 10, true);
    assert_eq!(again[..first.len()], first[..]);
    let covered: i64 = again
        .iter()
        .map(|r| match r {
            Record::Kline { .. } => 1,
            Record::FlatRun { run, .. } => (run.end - run.start) / MINUTE_MS,
        })
        .sum();
    assert_eq!(covered, 100, "1 kline and 99 flat minutes, nothing twice");
}

fn trades_closing_klines(n: i64) -> Vec<Trade> {
    (1..=n).map(|i| trade(i, T0 + i * MINUTE_MS)).collect()
}

#[test]
fn nothing_closed_is_dropped_at_shutdown() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::start(EngineConfig {
        outbox_capacity: 256, // a handful of chunks: most records spill
        ..manual_config(&["1m"], clock)
    })
    .unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    e.push_trades("BTCUSDT", trades_closing_klines(20_000)).unwrap();
    e.shutdown();
    let got = poll_all(&e, 4_096, false);
    assert_eq!(got.len(), 19_999, "every closed kline, after close");
}

#[test]
fn the_spill_is_bounded_and_producers_see_backpressure() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::start(EngineConfig {
        outbox_capacity: 256,
        ring_capacity: 16,
        max_spill: 2_000,
        push_wait: Duration::from_millis(20),
        ..manual_config(&["1m"], clock)
    })
    .unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    let trades = trades_closing_klines(100_000);
    let mut refused = None;
    for (i, chunk) in trades.chunks(500).enumerate() {
        if let Err(err) = e.push_trades("BTCUSDT", chunk.to_vec()) {
            refused = Some((i, err));
            break;
        }
    }
    let (at, err) = refused.expect("producers see backpressure with nobody polling");
    assert_eq!(err, EngineError::Backpressure(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    while totals(&e).spilled == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let spilled = totals(&e).spilled;
    assert!(spilled > 0 && spilled < 2_000 + 500, "spill {spilled} is over its bound");
    // A consumer drains it; the producer goes on from where it was refused: nothing lost.
    let mut got = Vec::new();
    let mut pos = at * 500;
    while pos < trades.len() {
        let (token, batch) = e.poll(4_096, false);
        got.extend(batch);
        e.ack(token);
        let end = (pos + 500).min(trades.len());
        if e.push_trades("BTCUSDT", trades[pos..end].to_vec()).is_ok() {
            pos = end;
        }
    }
    got.extend(drain_synced(&e));
    assert_eq!(got.len(), 99_999);
    let mut opens: Vec<i64> = got
        .iter()
        .map(|r| match r {
            Record::Kline { kline, .. } => kline.open_time,
            Record::FlatRun { .. } => panic!("no quiet minutes"),
        })
        .collect();
    opens.dedup();
    assert_eq!(opens.len(), 99_999, "each minute once");
}

#[test]
fn a_sync_nobody_can_complete_says_why() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::start(EngineConfig {
        outbox_capacity: 256,
        max_spill: 2_000,
        ..manual_config(&["1m"], clock)
    })
    .unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    for chunk in trades_closing_klines(10_000).chunks(500) {
        e.push_trades("BTCUSDT", chunk.to_vec()).unwrap();
    }
    let started = Instant::now();
    assert_eq!(e.sync(), Err(EngineError::Unpolled(0)));
    assert!(started.elapsed() < Duration::from_secs(5), "said at once, not after the timeout");
    assert_eq!(drain_synced(&e).len(), 9_999);
}

#[test]
fn a_shut_down_engine_refuses_pushes() {
    let e = Engine::start(config(&["1m"])).unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    e.shutdown();
    let frame: &[u8] = br#"{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,"p":"1.0","q":"1.0","f":1,"l":1,"T":1,"m":true}"#;
    assert_eq!(e.push_raw([frame]), Err(EngineError::ShutDown));
    assert_eq!(e.push_trade("BTCUSDT", trade(1, T0)), Err(EngineError::ShutDown));
}

#[test]
fn settings_are_checked_with_a_clear_error() {
    type Change = Box<dyn Fn(&mut EngineConfig)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "interval 1m is given twice",
            Box::new(|c| c.intervals.push(Interval::Fixed { ms: MINUTE_MS })),
        ),
        ("ring_capacity 0", Box::new(|c| c.ring_capacity = 0)),
        ("ring_capacity 4611686018427387904", Box::new(|c| c.ring_capacity = 1 << 62)),
        ("outbox_capacity 100000000000", Box::new(|c| c.outbox_capacity = 100_000_000_000)),
        ("max_spill 0", Box::new(|c| c.max_spill = 0)),
        ("tz_offset_ms", Box::new(|c| c.tz_offset_ms = 15 * 3_600_000)),
        ("grace", Box::new(|c| c.grace = -1)),
        ("max_ahead_ms must be positive", Box::new(|c| c.max_ahead_ms = Some(0))),
    ];
    for (want, change) in cases {
        let mut cfg = config(&["1m"]);
        change(&mut cfg);
        match Engine::start(cfg) {
            Err(e @ EngineError::Config(_)) => {
                assert!(e.to_string().contains(want), "{e} does not say {want:?}")
            }
            Err(e) => panic!("{want}: unexpected {e}"),
            Ok(_) => panic!("{want}: accepted"),
        }
    }
}

#[test]
fn symbol_names_are_normalised_and_checked() {
    let e = Engine::start(config(&["1m"])).unwrap();
    e.add_symbols(&[("ethusdt", None)]).unwrap();
    assert_eq!(e.symbols(), vec!["ETHUSDT".to_string()]);
    let frame: &[u8] = br#"{"e":"aggTrade","E":1,"s":"ETHUSDT","a":1,"p":"1.0","q":"1.0","f":1,"l":1,"T":1577836800000,"m":true}"#;
    let report = e.push_raw([frame]).unwrap();
    assert_eq!((report.trades, report.unknown_symbol), (1, 0));
    e.push_trade("ethUSDT", trade(2, T0)).unwrap();
    for bad in ["../../X", "", "A\0B", "BTC\",\"x"] {
        assert!(matches!(e.add_symbol(bad, None), Err(EngineError::Symbol(_))), "{bad:?}");
    }
    let long = "A".repeat(1 << 20);
    let err = e.add_symbol(&long, None).unwrap_err().to_string();
    assert!(err.len() < 200, "the error quotes a bounded excerpt: {err}");
    e.remove_symbol("ethusdt").unwrap();
    assert!(e.symbols().is_empty());
}

#[test]
fn a_control_request_waits_out_a_ring_full_of_trades() {
    // Trades are refused past `push_wait` (the producer's backpressure), but a sync behind a
    // ring the worker is emptying waits for room instead of failing.
    let e = Engine::start(EngineConfig {
        ring_capacity: 2,
        push_wait: Duration::ZERO,
        max_ahead_ms: None,
        ..config(&["1m"])
    })
    .unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    let n = 2_000_000;
    e.push_trades("BTCUSDT", (1..=n).map(|i| trade(i, T0 + i)).collect()).unwrap();
    let mut i = n;
    loop {
        i += 1;
        match e.push_trade("BTCUSDT", trade(i, T0 + i)) {
            Ok(()) => assert!(i < n + 100, "the ring never filled"),
            Err(err) => {
                assert_eq!(err, EngineError::Backpressure(0));
                break;
            }
        }
    }
    e.sync().unwrap();
    assert_eq!(totals(&e).trades, (i - 1) as u64);
}

/// An engine that finds holes in ids by itself, whose holes queue holds one hole.
fn one_hole_queue() -> Engine {
    let clock = Arc::new(ManualClock::new(T0));
    Engine::start(EngineConfig {
        detect_id_gaps: true,
        outbox_capacity: 1,
        ..manual_config(&["1m"], clock)
    })
    .unwrap()
}

#[test]
fn holes_that_find_the_gaps_queue_full_are_reported_once_it_has_room() {
    let e = one_hole_queue();
    let symbols = ["AAAUSDT", "BBBUSDT", "CCCUSDT"];
    for s in symbols {
        e.add_symbol(s, None).unwrap();
        e.push_trades(s, vec![trade(1, T0), trade(5, T0 + 1_000)]).unwrap(); // 2..=4 lost
    }
    e.sync().unwrap();
    let mut asked = Vec::new();
    for _ in 0..symbols.len() {
        let got = e.poll_gaps(10);
        assert_eq!(got.len(), 1, "one fits at a time; the rest wait, in order");
        asked.extend(got);
        e.sync().unwrap(); // the worker hands on the next waiting hole
    }
    assert!(e.poll_gaps(10).is_empty());
    let names: Vec<&str> = asked.iter().map(|g| &*g.symbol).collect();
    assert_eq!(names, symbols);
    assert!(asked.iter().all(|g| (g.from_id, g.to_id) == (2, 4)));
    assert_eq!(e.metrics().partitions[0].late_overflow, 0, "no hole dropped");
    assert_eq!(e.metrics().partitions[0].id_gaps, 3, "one hole found per symbol");
    for s in symbols {
        assert!(e.backfill(s, (2..=4).map(|i| trade(i, T0 + 500)).collect()).unwrap());
    }
    e.feed_up(None, kline_core::engine::Holes::Ask).unwrap();
    for s in symbols {
        assert_eq!(e.read(s).unwrap().1, Some(5), "{s} repaired and up");
    }
}

#[test]
fn a_waiting_hole_of_a_symbol_removed_meanwhile_is_not_reported() {
    let e = one_hole_queue();
    let lost = || vec![trade(1, T0), trade(5, T0 + 1_000)]; // 2..=4 lost
    e.add_symbols(&[("AAAUSDT", None), ("BBBUSDT", None)]).unwrap();
    e.push_trades("AAAUSDT", lost()).unwrap(); // its hole fills the queue
    e.push_trades("BBBUSDT", lost()).unwrap(); // its hole waits
    e.remove_symbol("BBBUSDT").unwrap();
    let asked: Vec<String> = e.poll_gaps(10).iter().map(|g| g.symbol.to_string()).collect();
    assert_eq!(asked, ["AAAUSDT"]);
    e.sync().unwrap(); // the worker hands on what waits
    assert!(e.poll_gaps(10).is_empty(), "BBBUSDT is gone: nobody repairs its hole");
}

#[test]
fn without_a_clock_bound_a_time_at_or_past_the_units_upper_bound_is_still_refused() {
    // only the unit's range, [0, 1e14) in ms, is left to refuse them
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::start(manual_config(&["1m"], clock)).unwrap();
    e.add_symbols(&[("AAAUSDT", None), ("BBBUSDT", None)]).unwrap();
    // Each the symbol's first trade: no bound against a previous trade applies either.
    e.push_trade("AAAUSDT", trade(1, 100_000_000_000_000)).unwrap(); // the µs boundary itself
    e.push_trade("BBBUSDT", trade(1, T0 * 1_000)).unwrap(); // a µs time
    e.sync().unwrap();
    let t = totals(&e);
    assert_eq!((t.implausible_unit, t.trades), (2, 0));
    for s in ["AAAUSDT", "BBBUSDT"] {
        assert_eq!(e.read(s).unwrap(), (vec![SlotValue::Empty], None), "{s}");
    }
}
