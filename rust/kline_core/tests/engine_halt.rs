//! Exchange halts in the live engine (issue 12): a `BREAK`/`HALT` symbol keeps its state,
//! the clock makes no flat klines for it, and after `resume` the halted span has no rows.
//! Times are Binance's 2018-02-08 halt (00:28:14.788) and resume (02-09 10:00).

mod common;

use common::{agg, config, poll_all, span, E8};
use kline_core::engine::clock::ManualClock;
use kline_core::engine::output::Record;
use kline_core::engine::{Engine, EngineConfig, EngineError, Holes};
use kline_core::interval::{HOUR_MS, MINUTE_MS};
use kline_core::Trade;
use std::sync::Arc;

const HALT_DAY: i64 = 1_518_048_000_000; // 2018-02-08 00:00 UTC
const LAST_TRADE: i64 = 1_518_049_694_788; // 00:28:14.788, when trading stopped
const RESUMED: i64 = HALT_DAY + 34 * HOUR_MS; // 02-09 10:00
const GRACE: i64 = 500;

/// 1m and 1h klines on `clock`, with this file's grace.
fn halt_config(clock: Arc<ManualClock>) -> EngineConfig {
    EngineConfig { grace: GRACE, clock, ..config(&["1m", "1h"]) }
}

fn engine(clock: Arc<ManualClock>) -> Engine {
    Engine::start(halt_config(clock)).unwrap()
}

/// ETHUSDT after one trade at `time` (at 880), then halted; the clock a second after the halt.
fn halted_eth(time: i64) -> (Arc<ManualClock>, Engine) {
    let clock = Arc::new(ManualClock::new(LAST_TRADE + 1_000));
    let e = engine(clock.clone());
    e.add_symbol("ETHUSDT", None).unwrap();
    e.push_trade("ETHUSDT", trade(1, time, 880)).unwrap();
    e.sync().unwrap();
    e.halt("ETHUSDT").unwrap();
    (clock, e)
}

fn trade(id: i64, time: i64, price: i64) -> Trade {
    agg(id, id, id, time, price * E8, E8, true)
}

/// Every period emitted so far as (interval, open time, traded), flat runs expanded.
fn periods(e: &Engine) -> Vec<(u16, i64, bool)> {
    let mut out = Vec::new();
    for r in poll_all(e, 100_000, true) {
        match r {
            Record::Kline { interval, kline, .. } => {
                out.push((interval, kline.open_time, !kline.is_flat()))
            }
            Record::FlatRun { interval, run, .. } => {
                let len = [MINUTE_MS, HOUR_MS][interval as usize];
                out.extend(
                    (run.start..run.end).step_by(len as usize).map(|t| (interval, t, false)),
                );
            }
        }
    }
    out
}

fn at(clock: &ManualClock, e: &Engine, t: i64) {
    clock.set(t);
    e.sync().unwrap();
}

#[test]
fn a_halted_symbol_makes_no_flat_klines_and_resumes_with_the_next_trade() {
    let clock = Arc::new(ManualClock::new(LAST_TRADE + 1_000));
    let e = engine(clock.clone());
    e.add_symbol("BTCUSDT", None).unwrap();
    e.push_trades("BTCUSDT", vec![trade(1, HALT_DAY + 10_000, 7599), trade(2, LAST_TRADE, 7784)])
        .unwrap();
    e.sync().unwrap();
    e.halt("BTCUSDT").unwrap();
    // Halted: 34 hours go by; only what was trading before the halt comes out.
    let mut halted = Vec::new();
    at(&clock, &e, HALT_DAY + 29 * MINUTE_MS + GRACE);
    for hour in 1..34 {
        halted.extend(periods(&e));
        at(&clock, &e, HALT_DAY + hour * HOUR_MS + GRACE);
    }
    halted.extend(periods(&e));
    // 1m: 00:00 traded, 00:01 … 00:27 quiet before the halt (flat), 00:28 traded; then none.
    let mut want: Vec<(u16, i64, bool)> =
        (0..=28).map(|m| (0, HALT_DAY + m * MINUTE_MS, m == 0 || m == 28)).collect();
    // 1h: the kline open at the halt closes as usual; no flat hour follows it.
    want.push((1, HALT_DAY, true));
    assert_eq!(halted, want);
    assert_eq!(e.symbols(), vec!["BTCUSDT".to_string()], "halted, not removed");

    at(&clock, &e, RESUMED + 5_000);
    e.resume("BTCUSDT").unwrap();
    assert_eq!(periods(&e), vec![], "resuming makes no rows for the halted span");
    e.push_trade("BTCUSDT", trade(3, RESUMED + 20_000, 7790)).unwrap();
    at(&clock, &e, RESUMED + HOUR_MS + 3 * MINUTE_MS + GRACE);
    let after = periods(&e);
    // The first trade after the resume opens 10:00 in both intervals; quiet periods after it
    // are flat again.
    let mut want: Vec<(u16, i64, bool)> =
        (0..63).map(|m| (0, RESUMED + m * MINUTE_MS, m == 0)).collect();
    want.push((1, RESUMED, true));
    assert_eq!(after, want);
}

#[test]
fn a_trade_after_the_halt_resumes_the_symbol_before_exchange_info_says_so() {
    let (clock, e) = halted_eth(LAST_TRADE);
    at(&clock, &e, RESUMED + 30_000);
    assert_eq!(periods(&e), vec![(0, HALT_DAY + 28 * MINUTE_MS, true), (1, HALT_DAY, true)]);
    e.push_trade("ETHUSDT", trade(2, RESUMED + 20_000, 790)).unwrap();
    at(&clock, &e, RESUMED + 5 * MINUTE_MS + GRACE);
    // No rows for the halted span; the new minute closes and quiet ones follow it, flat.
    let want: Vec<(u16, i64, bool)> =
        (0..5).map(|m| (0, RESUMED + m * MINUTE_MS, m == 0)).collect();
    assert_eq!(periods(&e), want);
    e.resume("ETHUSDT").unwrap(); // the poll catches up: nothing changes
    at(&clock, &e, RESUMED + 6 * MINUTE_MS + GRACE);
    assert_eq!(periods(&e), vec![(0, RESUMED + 5 * MINUTE_MS, false)]);
}

#[test]
fn halting_an_unknown_symbol_says_so() {
    let e = engine(Arc::new(ManualClock::new(HALT_DAY)));
    assert!(matches!(e.halt("NOPEUSDT"), Err(EngineError::UnknownSymbol(_))));
    assert!(matches!(e.resume("NOPEUSDT"), Err(EngineError::UnknownSymbol(_))));
}

#[test]
fn a_feed_gap_over_the_resume_replays_without_rows_for_the_halted_span() {
    // The first trade after the resume skips ids: the feed goes down, the symbol is rewound to
    // before the halt and replayed. The halted span still gets no rows.
    let clock = Arc::new(ManualClock::new(LAST_TRADE + 1_000));
    let cfg = EngineConfig { detect_id_gaps: true, ..halt_config(clock.clone()) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("BNBUSDT", None).unwrap();
    e.push_trades("BNBUSDT", vec![trade(1, HALT_DAY + 10_000, 9), trade(2, LAST_TRADE, 8)])
        .unwrap();
    e.sync().unwrap();
    e.halt("BNBUSDT").unwrap();
    at(&clock, &e, RESUMED + 5_000);
    e.resume("BNBUSDT").unwrap();
    e.push_trade("BNBUSDT", trade(5, RESUMED + 20_000, 10)).unwrap();
    at(&clock, &e, RESUMED + 3 * MINUTE_MS + GRACE);
    e.feed_up(Some("BNBUSDT"), Holes::Accept).unwrap();
    at(&clock, &e, RESUMED + 4 * MINUTE_MS + GRACE);
    let got = periods(&e);
    let halted = |&(i, t, _): &(u16, i64, bool)| {
        let first_quiet = [HALT_DAY + 29 * MINUTE_MS, HALT_DAY + HOUR_MS][i as usize];
        first_quiet <= t && t < RESUMED
    };
    assert_eq!(got.iter().filter(|p| halted(p)).count(), 0, "{got:?}");
    assert!(
        got.contains(&(0, RESUMED, true)) && got.contains(&(0, RESUMED + 3 * MINUTE_MS, false))
    );
}

/// Every record closed so far as (symbol, interval, kind, start, end), flat runs as they are.
fn records(e: &Engine) -> Vec<(String, u16, &'static str, i64, i64)> {
    let record = |r: &Record| {
        let (kind, start, end) = span(r);
        (r.symbol().to_string(), r.interval(), kind, start, end)
    };
    poll_all(e, 100_000, false).iter().map(record).collect()
}

#[test]
fn a_trade_timed_after_the_halt_that_arrives_once_the_clock_moved_on_resumes_the_symbol() {
    let (clock, e) = halted_eth(LAST_TRADE);
    at(&clock, &e, RESUMED + 30_000);
    records(&e);
    // Trading resumed at 09:50; its first trade arrives with the clock past 10:00. It is not
    // late (the halted span moved nothing on), and the halted span gets no rows, not even
    // empty runs.
    let resumed = RESUMED - 10 * MINUTE_MS;
    e.push_trade("ETHUSDT", trade(2, resumed, 790)).unwrap();
    at(&clock, &e, RESUMED + MINUTE_MS + GRACE);
    assert!(e.poll_late(10).is_empty());
    let eth = |i, kind, start, end| ("ETHUSDT".to_string(), i, kind, start, end);
    assert_eq!(
        records(&e),
        [
            eth(0, "kline", resumed, resumed + MINUTE_MS),
            eth(0, "flat", resumed + MINUTE_MS, RESUMED + MINUTE_MS),
            eth(1, "kline", RESUMED - HOUR_MS, RESUMED),
        ]
    );
}

#[test]
fn a_trade_timed_before_the_halt_that_arrives_after_it_does_not_end_the_halt() {
    let (clock, e) = halted_eth(LAST_TRADE - 5_000);
    e.push_trade("ETHUSDT", trade(2, LAST_TRADE, 881)).unwrap(); // delayed, from before it
    at(&clock, &e, HALT_DAY + 35 * MINUTE_MS + GRACE);
    assert_eq!(periods(&e), [(0, HALT_DAY + 28 * MINUTE_MS, true)], "still halted: no flat");
}

#[test]
fn a_second_halt_keeps_the_first_and_a_halt_after_a_resume_starts_anew() {
    let (clock, e) = halted_eth(LAST_TRADE);
    at(&clock, &e, HALT_DAY + 40 * MINUTE_MS + GRACE);
    e.halt("ETHUSDT").unwrap(); // exchangeInfo polled again: still halted since 00:28
    at(&clock, &e, RESUMED + 5_000);
    e.resume("ETHUSDT").unwrap();
    let eth = |i, kind, start, end| ("ETHUSDT".to_string(), i, kind, start, end);
    let minute = HALT_DAY + 28 * MINUTE_MS;
    let want = [
        eth(0, "kline", minute, minute + MINUTE_MS),
        eth(1, "kline", HALT_DAY, HALT_DAY + HOUR_MS),
    ];
    assert_eq!(records(&e), want, "no rows for 00:29 to 10:00");
    // Three quiet minutes, then halted again: no flat minute after that.
    at(&clock, &e, RESUMED + 3 * MINUTE_MS + GRACE);
    e.halt("ETHUSDT").unwrap();
    at(&clock, &e, RESUMED + 10 * MINUTE_MS + GRACE);
    assert_eq!(records(&e), [eth(0, "flat", RESUMED, RESUMED + 3 * MINUTE_MS)]);
}

#[test]
fn after_a_resume_without_a_trade_quiet_periods_are_flat_again() {
    let clock = Arc::new(ManualClock::new(LAST_TRADE + 1_000));
    let e = engine(clock.clone());
    e.add_symbols(&[("AAAUSDT", None), ("BBBUSDT", None)]).unwrap();
    for s in ["AAAUSDT", "BBBUSDT"] {
        e.push_trade(s, trade(1, HALT_DAY + 10_000, 7599)).unwrap();
    }
    e.sync().unwrap();
    e.halt("BBBUSDT").unwrap(); // in a quiet minute: its quiet periods stop right there
    at(&clock, &e, RESUMED + 5_000);
    let bbb = |rows: Vec<(String, u16, &'static str, i64, i64)>| {
        rows.into_iter()
            .filter(|r| r.0 == "BBBUSDT")
            .map(|r| (r.1, r.2, r.3, r.4))
            .collect::<Vec<_>>()
    };
    let minute = HALT_DAY + 28 * MINUTE_MS;
    assert_eq!(
        bbb(records(&e)),
        [
            (0, "kline", HALT_DAY, HALT_DAY + MINUTE_MS),
            (0, "flat", HALT_DAY + MINUTE_MS, minute),
            (1, "kline", HALT_DAY, HALT_DAY + HOUR_MS),
        ]
    );
    e.resume("BBBUSDT").unwrap(); // no trade follows
    at(&clock, &e, RESUMED + 3 * MINUTE_MS + GRACE);
    assert_eq!(bbb(records(&e)), [(0, "flat", RESUMED, RESUMED + 3 * MINUTE_MS)]);
}
