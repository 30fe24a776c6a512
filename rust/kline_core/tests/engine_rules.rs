//! Fixed cases that pin rules a mutation audit found unguarded: the amend path's raw-trade
//! count and taker side, the grace of the closing sweep, lateness after a restore, the amend
//! path's quote volumes, a freed slot (issue 11); a symbol's own 3d grid, amendments of the
//! second symbol and after quiet periods, revisions and closes of amended klines, the grace of
//! the catch-up after an outage, a trade in a closed kline's last millisecond (the partition
//! run). Expected values are written out from Binance's rules, not computed by the code under
//! test.

mod common;

use common::{agg, config, poll_all, span, E8, T0};
use kline_core::engine::clock::ManualClock;
use kline_core::engine::output::Record;
use kline_core::engine::table::SlotValue;
use kline_core::engine::{Engine, EngineConfig, LatePolicy};
use kline_core::Kline;
use std::sync::Arc;

fn engine(names: &[&str], clock: Arc<ManualClock>, late_policy: LatePolicy) -> Engine {
    Engine::start(EngineConfig { clock, late_policy, ..config(names) }).unwrap()
}

/// The newest revision of each (interval, open time) closed so far.
fn closed(e: &Engine) -> Vec<(u16, Kline, u32)> {
    let mut out: Vec<(u16, Kline, u32)> = Vec::new();
    for r in poll_all(e, 1_000, true) {
        if let Record::Kline { interval, kline, revision, .. } = r {
            out.retain(|(i, k, _)| !(*i == interval && k.open_time == kline.open_time));
            out.push((interval, kline, revision));
        }
    }
    out
}

/// Once everything has closed: the newest 1m and 5m klines at T0, each with its revision.
fn first_1m_and_5m(e: &Engine, clock: &ManualClock) -> [(Kline, u32); 2] {
    clock.set(T0 + 10 * 60_000); // everything closes
    e.sync().unwrap();
    let got = closed(e);
    let at_t0 = |interval: u16, what: &str| {
        let found = got.iter().find(|(i, k, _)| *i == interval && k.open_time == T0);
        let (_, k, revision) = found.expect(what);
        (*k, *revision)
    };
    [at_t0(0, "1m at T0"), at_t0(1, "5m at T0")]
}

/// ETHUSDT after one trade at `time` (id 1, at 1), late trades dropped.
fn eth_after_one_trade(clock: &Arc<ManualClock>, time: i64) -> Engine {
    let e = engine(&["1m"], clock.clone(), LatePolicy::Drop);
    e.add_symbol("ETHUSDT", None).unwrap();
    e.push_trade("ETHUSDT", agg(1, 1, 1, time, E8, E8, true)).unwrap();
    e
}

#[test]
fn an_amended_kline_counts_raw_trades_and_the_taker_side_of_the_late_trade() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m", "5m"], clock.clone(), LatePolicy::Amend { allowed_lateness: 120_000 });
    e.add_symbol("BTCUSDT", None).unwrap();
    // 1 (3 raw trades, taker sold) and 2 (1 raw, taker bought, next minute) arrive first;
    // 3 (5 raw, taker bought) belongs to the first minute and comes late.
    let t1 = agg(1, 10, 12, T0 + 10_000, 100 * E8, 2 * E8, true);
    let t2 = agg(2, 13, 13, T0 + 70_000, 101 * E8, E8, false);
    let t3 = agg(3, 14, 18, T0 + 20_000, 99 * E8, 3 * E8, false);
    e.push_trades("BTCUSDT", vec![t1, t2, t3]).unwrap();
    let [one, five] = first_1m_and_5m(&e, &clock);
    // 1m [T0, T0+1m): trades 1 and 3 (amended once: revision 1).
    let (k, rev) = one;
    assert_eq!(rev, 1);
    assert_eq!(k.trades, 3 + 5, "raw trades, not aggTrades");
    assert_eq!((k.open, k.high, k.low, k.close), (100 * E8, 100 * E8, 99 * E8, 99 * E8));
    assert_eq!(k.volume, 5 * i128::from(E8));
    assert_eq!(k.taker_buy_volume, 3 * i128::from(E8), "only trade 3's taker bought");
    assert_eq!(k.taker_buy_quote_volume, 99 * 3 * i128::from(E8) * i128::from(E8));
    assert_eq!((k.first_trade_id, k.last_trade_id), (10, 18));
    // 5m [T0, T0+5m): the late trade went into the open kline (never closed before it).
    let (k, rev) = five;
    assert_eq!(rev, 0);
    assert_eq!(k.trades, 3 + 1 + 5);
    assert_eq!(k.volume, 6 * i128::from(E8));
    assert_eq!(k.taker_buy_volume, 4 * i128::from(E8), "trades 2 and 3 are taker buys");
    assert_eq!(k.taker_buy_quote_volume, (101 + 99 * 3) * i128::from(E8) * i128::from(E8));
}

#[test]
fn the_clock_closes_a_kline_only_once_the_grace_has_passed() {
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = EngineConfig { clock: clock.clone(), grace: 250, ..config(&["1m"]) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("ETHUSDT", None).unwrap();
    e.push_trade("ETHUSDT", agg(1, 1, 1, T0 + 1_000, E8, E8, true)).unwrap();
    let end = T0 + 60_000; // the minute's end: close_time + 1
    clock.set(end + 100);
    e.sync().unwrap();
    assert!(closed(&e).is_empty(), "closed 100 ms after the minute with a 250 ms grace");
    clock.set(end + 249);
    e.sync().unwrap();
    assert!(closed(&e).is_empty(), "closed 249 ms after the minute with a 250 ms grace");
    clock.set(end + 250);
    e.sync().unwrap();
    let got = closed(&e);
    assert_eq!(got.len(), 1, "closed once the grace has passed");
    assert_eq!(got[0].1.close_time, end - 1);
}

#[test]
fn after_a_restore_a_trade_before_the_restored_kline_is_late_not_folded_into_it() {
    let clock = Arc::new(ManualClock::new(T0));
    let first = engine(&["1m"], clock.clone(), LatePolicy::Drop);
    first.add_symbol("BTCUSDT", None).unwrap();
    // Trade 1 opens the second minute [T0+1m, T0+2m); that open kline is what is stored.
    first.push_trade("BTCUSDT", agg(1, 1, 1, T0 + 70_000, 100 * E8, E8, true)).unwrap();
    let snap = first.snapshot().unwrap();
    let slots: Vec<_> = snap.parts.iter().flat_map(|p| p.slots.iter()).collect();
    assert_eq!(slots.len(), 1);
    let stored = slots[0].value;
    drop(first);

    let e = engine(&["1m"], clock, LatePolicy::Drop);
    e.add_symbol("BTCUSDT", None).unwrap();
    assert_eq!(e.restore(&[("BTCUSDT", 0, stored)], &[("BTCUSDT", 1)], false).unwrap(), 2);
    // Trade 2 is newer by id but belongs to the first minute, before the restored kline.
    let t2 = agg(2, 2, 2, T0 + 30_000, 90 * E8, 2 * E8, false);
    e.push_trade("BTCUSDT", t2).unwrap();
    let (values, last_id) = e.read("BTCUSDT").unwrap();
    assert_eq!((values, last_id), (vec![stored], Some(2)), "the restored kline is unchanged");
    let late = e.poll_late(10);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].trade, t2);
    assert_eq!(e.metrics().partitions[0].late, 1);
}

#[test]
fn after_a_restore_a_late_trade_under_the_amend_policy_is_taken_without_a_panic() {
    // The restored symbol has no trade time of its own yet: the lateness horizon must not
    // underflow (it did: `max_time - allowed_lateness` with max_time = i64::MIN).
    let clock = Arc::new(ManualClock::new(T0));
    let first = engine(&["1m"], clock.clone(), LatePolicy::Drop);
    first.add_symbol("BTCUSDT", None).unwrap();
    first.push_trade("BTCUSDT", agg(1, 1, 1, T0 + 70_000, 100 * E8, E8, true)).unwrap();
    let snap = first.snapshot().unwrap();
    let stored = snap.parts.iter().flat_map(|p| p.slots.iter()).next().unwrap().value;
    drop(first);

    let amend = LatePolicy::Amend { allowed_lateness: 3_600_000 };
    let e = engine(&["1m"], clock, amend);
    e.add_symbol("BTCUSDT", None).unwrap();
    e.restore(&[("BTCUSDT", 0, stored)], &[("BTCUSDT", 1)], false).unwrap();
    e.push_trade("BTCUSDT", agg(2, 2, 2, T0 + 30_000, 90 * E8, 2 * E8, false)).unwrap();
    e.sync().unwrap();
    assert!(e.take_errors().is_empty(), "the worker panicked");
    assert_eq!(e.metrics().partitions[0].panics, 0);
    assert_eq!(e.metrics().partitions[0].late, 1);
    assert_eq!(e.read("BTCUSDT").unwrap().1, Some(2));
}

#[test]
fn an_amended_open_kline_adds_the_late_trades_quote_volumes_and_inexact_count() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m", "5m"], clock.clone(), LatePolicy::Amend { allowed_lateness: 120_000 });
    e.add_symbol("XMRBTC", None).unwrap();
    // Real spot XMRBTC prices and sizes (decimal.rs tests), each aggTrade of 2 raw trades whose
    // p·q has 9 decimals, so each is inexact. 2 opens the next minute; 3 comes late to the first.
    // p·q: 0.005773 × 0.042 = 0.000242466 (Binance: 0.00024246), × 0.228 = 0.001316244 (0.00131624).
    let t1 = agg(1, 10, 11, T0 + 10_000, 577_300, 4_200_000, true);
    let t2 = agg(2, 12, 13, T0 + 70_000, 577_300, 4_200_000, false);
    let t3 = agg(3, 14, 15, T0 + 20_000, 577_300, 22_800_000, false);
    e.push_trades("XMRBTC", vec![t1, t2, t3]).unwrap();
    let [one, five] = first_1m_and_5m(&e, &clock);
    // Quote volumes at 1e-16: each trade's p·q truncated to 8 decimals, then summed.
    let (k, rev) = one;
    assert_eq!(rev, 1);
    assert_eq!(k.quote_volume, (24_246 + 131_624) * 100_000_000);
    assert_eq!(k.quote_volume_exact, 2_424_660_000_000 + 13_162_440_000_000);
    assert_eq!(k.inexact_trades, 2);
    // 5m: trade 3 went into the still open kline (Table::apply).
    let (k, rev) = five;
    assert_eq!(rev, 0);
    assert_eq!(k.quote_volume, (24_246 * 2 + 131_624) * 100_000_000);
    assert_eq!(k.taker_buy_quote_volume, (24_246 + 131_624) * 100_000_000);
    assert_eq!(k.quote_volume_exact, 2_424_660_000_000 * 2 + 13_162_440_000_000);
    assert_eq!(k.inexact_trades, 3);
}

#[test]
fn a_removed_symbols_slot_taken_by_a_new_symbol_starts_empty() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m"], clock, LatePolicy::Drop);
    e.add_symbol("AAAUSDT", None).unwrap();
    e.push_trade("AAAUSDT", agg(1, 1, 1, T0 + 1_000, 5 * E8, E8, true)).unwrap();
    e.remove_symbol("AAAUSDT").unwrap();
    e.add_symbol("BBBUSDT", None).unwrap(); // one partition: the freed slot is reused
                                            // Same minute as AAAUSDT's kline, which remove emitted: BBBUSDT's must not continue it.
    e.push_trade("BBBUSDT", agg(1, 1, 1, T0 + 2_000, 7 * E8, 2 * E8, false)).unwrap();
    let (values, last_id) = e.read("BBBUSDT").unwrap();
    assert_eq!(last_id, Some(1));
    let SlotValue::Open { kline, .. } = values[0] else { panic!("{values:?}") };
    assert_eq!((kline.open, kline.high, kline.low, kline.close), (7 * E8, 7 * E8, 7 * E8, 7 * E8));
    assert_eq!((kline.volume, kline.trades), (2 * i128::from(E8), 1));
    assert_eq!(e.metrics().partitions[0].allocated, 1);
}

#[test]
fn a_symbols_3d_klines_step_from_its_own_anchor() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["3d"], clock.clone(), LatePolicy::Drop);
    // BTCUSDT's listing day 2017-08-17, Binance's 3d anchor for it: 2020-01-01 is 867 days
    // (289 periods) later, so a 3d period opens at T0; the epoch's grid opens one day before.
    e.add_symbol("BTCUSDT", Some(1_502_928_000_000)).unwrap();
    e.add_symbol("EPOCHUSDT", None).unwrap();
    for s in ["BTCUSDT", "EPOCHUSDT"] {
        e.push_trade(s, agg(1, 1, 1, T0 + 5_000, E8, E8, true)).unwrap();
    }
    let period = |s: &str| match e.read(s).unwrap().0[0] {
        SlotValue::Open { kline, next } => (kline.open_time, next),
        other => panic!("{other:?}"),
    };
    const DAY: i64 = 86_400_000;
    assert_eq!(period("BTCUSDT"), (T0, T0 + 3 * DAY));
    assert_eq!(period("EPOCHUSDT"), (T0 - DAY, T0 + 2 * DAY));
}

#[test]
fn a_late_trade_of_the_second_symbol_amends_its_own_closed_1m_kline() {
    let clock = Arc::new(ManualClock::new(T0));
    let late = LatePolicy::Amend { allowed_lateness: 120_000 };
    let e = engine(&["5m", "1m"], clock, late);
    e.add_symbols(&[("AAAUSDT", None), ("BBBUSDT", None)]).unwrap();
    // BBBUSDT (the second slot): trade 2 closes its first minute, trade 3 comes late to it.
    let t1 = agg(1, 1, 1, T0 + 10_000, 100 * E8, E8, true);
    let t2 = agg(2, 2, 2, T0 + 70_000, 101 * E8, E8, true);
    let t3 = agg(3, 3, 3, T0 + 30_000, 99 * E8, E8, true);
    e.push_trades("BBBUSDT", vec![t1, t2, t3]).unwrap();
    e.sync().unwrap();
    assert!(e.poll_late(10).is_empty(), "amended, not handed out");
    let got = closed(&e);
    assert_eq!(got.len(), 1, "{got:?}");
    let (interval, k, revision) = got[0];
    assert_eq!((interval, k.open_time, revision), (1, T0, 1));
    assert_eq!((k.trades, k.low, k.close), (2, 99 * E8, 99 * E8));
}

#[test]
fn a_late_trade_after_a_quiet_period_is_not_amended_into_the_kline_before_it() {
    let clock = Arc::new(ManualClock::new(T0));
    let late = LatePolicy::Amend { allowed_lateness: 120_000 };
    let e = engine(&["5m", "1m"], clock.clone(), late);
    e.add_symbols(&[("AAAUSDT", None), ("BBBUSDT", None)]).unwrap();
    let t1 = agg(1, 1, 1, T0 + 10_000, 100 * E8, E8, true);
    let t2 = agg(2, 2, 2, T0 + 70_000, 101 * E8, E8, true);
    e.push_trades("BBBUSDT", vec![t1, t2]).unwrap();
    // The second minute closes on the clock and the third is quiet (flat): the latest 1m
    // row is a flat one, which a late trade cannot amend.
    clock.set(T0 + 180_000 + 250);
    e.sync().unwrap();
    let t3 = agg(3, 3, 3, T0 + 90_000, 99 * E8, E8, true);
    e.push_trade("BBBUSDT", t3).unwrap();
    e.sync().unwrap();
    let late = e.poll_late(10);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].trade, t3);
    let got = closed(&e);
    assert!(got.iter().all(|(_, _, revision)| *revision == 0), "{got:?}");
    let opens: Vec<(u16, i64)> = got.iter().map(|(i, k, _)| (*i, k.open_time)).collect();
    assert_eq!(opens, [(1, T0), (1, T0 + 60_000)]);
}

#[test]
fn each_amendment_of_a_kline_raises_its_revision() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m"], clock, LatePolicy::Amend { allowed_lateness: 120_000 });
    e.add_symbol("BTCUSDT", None).unwrap();
    // Trade 2 closes the first minute; 3 and 4 come late to it, one after the other.
    let t1 = agg(1, 1, 1, T0 + 10_000, 100 * E8, E8, true);
    let t2 = agg(2, 2, 2, T0 + 70_000, 101 * E8, E8, true);
    let t3 = agg(3, 3, 3, T0 + 20_000, 99 * E8, E8, true);
    let t4 = agg(4, 4, 4, T0 + 30_000, 98 * E8, E8, true);
    e.push_trades("BTCUSDT", vec![t1, t2, t3, t4]).unwrap();
    e.sync().unwrap();
    let got = closed(&e);
    assert_eq!(got.len(), 1, "{got:?}");
    let (_, k, revision) = got[0];
    assert_eq!((k.open_time, revision), (T0, 2), "amended twice");
    assert_eq!((k.trades, k.low, k.close), (3, 98 * E8, 98 * E8));
}

#[test]
fn the_quiet_periods_after_an_amended_kline_carry_its_new_close() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m"], clock.clone(), LatePolicy::Amend { allowed_lateness: 120_000 });
    e.add_symbol("BTCUSDT", None).unwrap();
    e.push_trade("BTCUSDT", agg(1, 1, 1, T0 + 10_000, 100 * E8, E8, true)).unwrap();
    clock.set(T0 + 60_000 + 250); // the minute closes on the clock; nothing quiet is due yet
    e.sync().unwrap();
    // Late to the closed minute, and its last trade by id: the minute's close becomes 90.
    e.push_trade("BTCUSDT", agg(2, 2, 2, T0 + 50_000, 90 * E8, E8, true)).unwrap();
    clock.set(T0 + 120_000 + 250); // the next minute is quiet
    e.sync().unwrap();
    let rows: Vec<(i64, i64, u32)> = poll_all(&e, 1_000, false)
        .into_iter()
        .map(|r| match r {
            Record::Kline { kline, revision, .. } => (kline.open_time, kline.close, revision),
            Record::FlatRun { run, revision, .. } => (run.start, run.price, revision),
        })
        .collect();
    let want = [(T0, 100 * E8, 0), (T0, 90 * E8, 1), (T0 + 60_000, 90 * E8, 0)];
    assert_eq!(rows, want, "the quiet minute is flat at the amended close");
}

#[test]
fn the_catch_up_after_an_outage_closes_nothing_still_within_the_grace() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = eth_after_one_trade(&clock, T0 + 1_000);
    e.feed_down(Some("ETHUSDT"), T0 + 1_000, false).unwrap();
    clock.set(T0 + 60_000 + 100); // the minute is over, but not its 250 ms grace
    e.feed_up(Some("ETHUSDT"), kline_core::engine::Holes::Ask).unwrap();
    e.sync().unwrap();
    assert!(closed(&e).is_empty(), "closed 100 ms after the minute with a 250 ms grace");
    // A trade in the grace still counts in the minute.
    e.push_trade("ETHUSDT", agg(2, 2, 2, T0 + 59_000, 2 * E8, E8, true)).unwrap();
    clock.set(T0 + 60_000 + 250);
    e.sync().unwrap();
    let got = closed(&e);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].1.open_time, got[0].1.trades, got[0].2), (T0, 2, 0));
}

#[test]
fn a_trade_in_the_last_millisecond_of_a_kline_the_clock_closed_is_late() {
    let clock = Arc::new(ManualClock::new(T0));
    let e = eth_after_one_trade(&clock, T0 + 10_000);
    clock.set(T0 + 60_000 + 250); // closed; the next minute is not over yet
    e.sync().unwrap();
    let t2 = agg(2, 2, 2, T0 + 59_999, 2 * E8, E8, true);
    e.push_trade("ETHUSDT", t2).unwrap();
    clock.set(T0 + 120_000 + 250);
    e.sync().unwrap();
    assert_eq!(e.poll_late(10).into_iter().map(|l| l.trade).collect::<Vec<_>>(), [t2]);
    let got = closed(&e);
    assert_eq!(got.len(), 1, "the minute is not opened again: {got:?}");
    assert_eq!((got[0].1.open_time, got[0].1.trades), (T0, 1));
}

#[test]
fn a_symbols_quiet_3d_periods_end_on_its_own_grid() {
    const DAY: i64 = 86_400_000;
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["3d"], clock.clone(), LatePolicy::Drop);
    // BTCUSDT's 3d periods open at T0 (see above); the epoch's grid has one at T0 + 5 days.
    e.add_symbol("BTCUSDT", Some(1_502_928_000_000)).unwrap();
    e.push_trade("BTCUSDT", agg(1, 1, 1, T0 + 5_000, E8, E8, true)).unwrap();
    clock.set(T0 + 6 * DAY + 250);
    e.sync().unwrap();
    let rows: Vec<_> = poll_all(&e, 1_000, false).iter().map(span).collect();
    assert_eq!(rows, [("kline", T0, T0 + 3 * DAY), ("flat", T0 + 3 * DAY, T0 + 6 * DAY)]);
}
