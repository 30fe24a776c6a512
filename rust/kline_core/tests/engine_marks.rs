//! Gap flags and revisions at their exact edges. A record is marked gap when the span it covers
//! reaches past the moment the feed went down, or into a hole in aggTrade ids; after the
//! backfill, what was emitted as gap comes again as revision 1 and nothing else does. Expected
//! records are written out, not computed by the code under test.

mod common;

use common::*;
use kline_core::engine::clock::ManualClock;
use kline_core::engine::output::Record;
use kline_core::engine::{Engine, EngineConfig, Holes, LatePolicy};
use kline_core::interval::MINUTE_MS;
use std::sync::Arc;

const GRACE: i64 = 250; // EngineConfig's default

/// A record as `(symbol, kline or flat, start, end, revision, gap)`, `end` exclusive.
type Row = (String, &'static str, i64, i64, u32, bool);

/// Every record closed so far, in the order each partition emitted them.
fn rows(e: &Engine) -> Vec<Row> {
    e.sync().unwrap();
    let row = |r: &Record| {
        let ((kind, start, end), (revision, gap)) = (span(r), revision_and_gap(r));
        (r.symbol().to_string(), kind, start, end, revision, gap)
    };
    poll_all(e, 1_000, false).iter().map(row).collect()
}

fn row(symbol: &str, kind: &'static str, start: i64, revision: u32, gap: bool) -> Row {
    (symbol.to_string(), kind, T0 + start, T0 + start + MINUTE_MS, revision, gap)
}

#[test]
fn a_kline_is_marked_gap_only_if_it_ends_after_the_feed_went_down() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m"], 1, clock.clone());
    e.add_symbols(&[("AAA", None), ("BBB", None)]).unwrap();
    e.push_trade("AAA", trade(1, T0 + 10_000, 5)).unwrap();
    e.push_trade("BBB", trade(1, T0 + 10_000, 5)).unwrap();
    // AAA's feed went down as its minute ended: every trade of the minute was seen. BBB's went
    // down in the minute's last millisecond: a trade then may be missing.
    e.feed_down(Some("AAA"), T0 + MINUTE_MS, false).unwrap();
    e.feed_down(Some("BBB"), T0 + MINUTE_MS - 1, false).unwrap();
    clock.set(T0 + MINUTE_MS + GRACE);
    let mut got = rows(&e);
    got.sort();
    assert_eq!(got, vec![row("AAA", "kline", 0, 0, false), row("BBB", "kline", 0, 0, true)]);
}

#[test]
fn a_hole_in_ids_from_the_end_of_a_kline_leaves_that_kline_whole() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m"], 1, clock);
    e.add_symbol("AAA", None).unwrap();
    e.push_trade("AAA", trade(1, T0 + 10_000, 5)).unwrap();
    e.feed_down(Some("AAA"), T0 + MINUTE_MS, false).unwrap();
    e.push_trade("AAA", trade(5, T0 + 90_000, 6)).unwrap(); // held until feed_up
                                                            // Ids 2..=4 never come: the hole spans from the feed going down to trade 5.
    e.feed_up(Some("AAA"), Holes::Accept).unwrap();
    e.remove_symbol("AAA").unwrap();
    assert_eq!(
        rows(&e),
        vec![row("AAA", "kline", 0, 0, false), row("AAA", "kline", MINUTE_MS, 0, true)]
    );
}

#[test]
fn after_the_backfill_what_was_emitted_as_gap_comes_again_as_revision_1_and_the_rest_at_0() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m"], 1, clock.clone());
    e.add_symbol("AAA", None).unwrap();
    e.push_trade("AAA", trade(1, T0 + 10_000, 5)).unwrap();
    e.feed_down(Some("AAA"), T0 + 30_000, false).unwrap();
    clock.set(T0 + 2 * MINUTE_MS + GRACE); // two minutes close during the outage: gap
    assert_eq!(
        rows(&e),
        vec![row("AAA", "kline", 0, 0, true), row("AAA", "flat", MINUTE_MS, 0, true)]
    );
    // Live trades 3 and 4 are held; trade 2 comes from the backfill. Trade 4 closes the
    // minute that trade 3 opened, the first one not emitted as gap before.
    e.push_trades("AAA", vec![trade(3, T0 + 150_000, 7), trade(4, T0 + 190_000, 8)]).unwrap();
    assert!(e.backfill("AAA", vec![trade(2, T0 + 40_000, 6)]).unwrap());
    e.feed_up(Some("AAA"), Holes::Ask).unwrap();
    assert_eq!(
        rows(&e),
        vec![
            row("AAA", "kline", 0, 1, false),
            row("AAA", "flat", MINUTE_MS, 1, false),
            row("AAA", "kline", 2 * MINUTE_MS, 0, false),
        ]
    );
}

#[test]
fn an_amended_kline_stays_gap_when_the_hole_reaches_into_its_last_millisecond() {
    let late_policy = LatePolicy::Amend { allowed_lateness: 120_000 };
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::start(EngineConfig { late_policy, ..manual_config(&["1m"], clock) }).unwrap();
    e.add_symbol("AAA", None).unwrap();
    e.push_trade("AAA", trade(1, T0 + 10_000, 5)).unwrap();
    // Down from the minute's last millisecond; ids 2..=4 never come. Trade 5 closes the
    // minute, trade 6 comes late to it and amends it.
    e.feed_down(Some("AAA"), T0 + MINUTE_MS - 1, false).unwrap();
    e.push_trades("AAA", vec![trade(5, T0 + 70_000, 6), trade(6, T0 + 30_000, 7)]).unwrap();
    e.feed_up(Some("AAA"), Holes::Accept).unwrap();
    assert_eq!(
        rows(&e),
        vec![row("AAA", "kline", 0, 0, true), row("AAA", "kline", 0, 1, true)],
        "a trade in the minute's last millisecond may be among the missing ids"
    );
}

#[test]
fn with_mark_partial_start_a_feed_declared_down_before_the_first_trade_vouches_from_then_on() {
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = EngineConfig { mark_partial_start: true, ..manual_config(&["1m"], clock) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("AAA", None).unwrap();
    // History from REST from 00:01 on: the first trade (00:01:10) is not the first of its
    // minute that happened, but the backfill has every trade from 00:01:00.
    e.feed_down(Some("AAA"), T0 + MINUTE_MS, true).unwrap();
    assert!(e.backfill("AAA", vec![trade(1, T0 + 70_000, 5), trade(2, T0 + 130_000, 6)]).unwrap());
    e.feed_up(Some("AAA"), Holes::Ask).unwrap();
    e.remove_symbol("AAA").unwrap();
    assert_eq!(
        rows(&e),
        vec![
            row("AAA", "kline", MINUTE_MS, 0, false),
            row("AAA", "kline", 2 * MINUTE_MS, 0, false)
        ]
    );
}

/// An engine that finds holes in aggTrade ids by itself.
fn detecting(clock: Arc<ManualClock>) -> Engine {
    Engine::start(EngineConfig { detect_id_gaps: true, ..manual_config(&["1m"], clock) }).unwrap()
}

#[test]
fn a_trade_a_hole_hid_in_the_last_millisecond_of_a_swept_kline_goes_back_into_it() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = detecting(clock.clone());
    e.add_symbol("AAA", None).unwrap();
    e.push_trade("AAA", trade(1, T0 + 10_000, 5)).unwrap();
    clock.set(T0 + MINUTE_MS + GRACE); // the clock closes the minute with trade 1 only
    assert_eq!(rows(&e), vec![row("AAA", "kline", 0, 0, false)]);
    // Trade 3 shows that 2 was missed: 2 was in the minute's last millisecond.
    e.push_trade("AAA", trade(3, T0 + 70_000, 7)).unwrap();
    assert!(e.backfill("AAA", vec![trade(2, T0 + MINUTE_MS - 1, 6)]).unwrap());
    e.feed_up(Some("AAA"), Holes::Ask).unwrap();
    e.remove_symbol("AAA").unwrap();
    let got = rows(&e);
    assert_eq!(
        got,
        vec![row("AAA", "kline", 0, 1, false), row("AAA", "kline", MINUTE_MS, 0, false)]
    );
    assert!(e.poll_late(10).is_empty(), "trade 2 was not late");
    assert_eq!(e.metrics().partitions[0].trades, 3);
}

#[test]
fn a_declared_outage_from_after_a_swept_kline_leaves_that_kline_as_it_was() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = detecting(clock.clone());
    e.add_symbol("AAA", None).unwrap();
    e.push_trade("AAA", trade(1, T0 + 10_000, 5)).unwrap();
    clock.set(T0 + MINUTE_MS + GRACE);
    assert_eq!(rows(&e), vec![row("AAA", "kline", 0, 0, false)]);
    // Down from 00:01:30, after the minute the clock closed: that minute is complete.
    e.feed_down(Some("AAA"), T0 + 90_000, false).unwrap();
    e.push_trade("AAA", trade(2, T0 + 100_000, 6)).unwrap();
    e.feed_up(Some("AAA"), Holes::Ask).unwrap();
    e.remove_symbol("AAA").unwrap();
    assert_eq!(rows(&e), vec![row("AAA", "kline", MINUTE_MS, 0, false)], "no revision of 00:00");
}

#[test]
fn a_symbol_held_while_it_catches_up_closes_nothing_on_the_clock_until_feed_up() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m"], 1, clock.clone());
    e.add_symbols(&[("AAA", None), ("BBB", None)]).unwrap();
    for s in ["AAA", "BBB"] {
        e.push_trade(s, trade(1, T0 + 10_000, 5)).unwrap();
    }
    e.feed_down(Some("AAA"), T0 + 10_000, true).unwrap(); // catching up from REST
    clock.set(T0 + 3 * MINUTE_MS + GRACE);
    let quiet = ("BBB".to_string(), "flat", T0 + MINUTE_MS, T0 + 3 * MINUTE_MS, 0, false);
    assert_eq!(rows(&e), vec![row("BBB", "kline", 0, 0, false), quiet], "AAA waits");
    e.push_trade("AAA", trade(2, T0 + 70_000, 6)).unwrap();
    e.feed_up(Some("AAA"), Holes::Ask).unwrap();
    assert_eq!(
        rows(&e),
        vec![
            row("AAA", "kline", 0, 0, false),
            row("AAA", "kline", MINUTE_MS, 0, false),
            row("AAA", "flat", 2 * MINUTE_MS, 0, false),
        ],
        "once, exact, at revision 0"
    );
}
