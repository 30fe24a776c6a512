//! The engine's durability and repair: snapshots, restores, partial starts, panics, declared
//! and detected feed gaps closed exactly by their backfill.

mod common;

use common::*;
use kline_core::aggregate::{aggregate, expand_flat_run};
use kline_core::decimal::QuoteRule;
use kline_core::engine::clock::ManualClock;
use kline_core::engine::output::Record;
use kline_core::engine::table::SlotValue;
use kline_core::engine::{Engine, EngineConfig, Holes};
use kline_core::interval::MINUTE_MS;
use kline_core::{Kline, Trade};
use std::collections::HashMap;
use std::sync::Arc;

#[test]
fn snapshots_come_again_until_acknowledged() {
    let e = engine(&["1m", "1h"], 2, Arc::new(ManualClock::new(0)));
    e.add_symbols(&[("AAA", None), ("BBB", None)]).unwrap();
    e.push_trade("AAA", trade(1, T0, 5)).unwrap();
    e.push_trade("BBB", trade(1, T0, 6)).unwrap();
    let first = e.snapshot().unwrap();
    assert_eq!(open_slots(&first).len(), 4);
    let ck: Vec<i64> =
        first.parts.iter().flat_map(|p| p.checkpoints.iter().map(|c| c.last_id)).collect();
    assert_eq!(ck, vec![1, 1]);
    // Not acknowledged (the sink failed): the next snapshot carries the same entries again.
    let second = e.snapshot().unwrap();
    assert_eq!(open_slots(&second), open_slots(&first));
    assert!(!e.ack_snapshot(first.token).unwrap(), "superseded");
    assert!(e.ack_snapshot(second.token).unwrap());
    assert!(open_slots(&e.snapshot().unwrap()).is_empty(), "acknowledged: nothing owed");
    e.push_trade("AAA", trade(2, T0 + 5, 7)).unwrap();
    let third = e.snapshot().unwrap();
    assert_eq!(
        open_slots(&third).iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        vec!["AAA", "AAA"]
    );
}

/// 600 trades of XRPUSDT, 7 s apart.
fn xrp_trades() -> Vec<Trade> {
    (1..=600).map(|i| trade(i, T0 + i * 7_000, 100 + (i * 37) % 50)).collect()
}

#[test]
fn restore_from_a_snapshot_then_continue_equals_one_uninterrupted_run() {
    let grids_names = ["1m", "5m", "1h"];
    let trades = xrp_trades();
    let half1 = &trades[..250];
    let first = engine(&grids_names, 2, Arc::new(ManualClock::new(0)));
    first.add_symbol("XRPUSDT", None).unwrap();
    first.push_trades("XRPUSDT", half1.to_vec()).unwrap();
    let snap = first.snapshot().unwrap();
    assert!(first.ack_snapshot(snap.token).unwrap());
    let mut got = drain(&first);
    drop(first); // "crash": the open klines live on only in the snapshot

    let second = engine(&grids_names, 3, Arc::new(ManualClock::new(0)));
    second.add_symbol("XRPUSDT", None).unwrap();
    assert_eq!(restore_from(&second, &snap, &[("XRPUSDT", 250)], false), 4);
    // The feed replays from an earlier point: ids up to the checkpoint are duplicates.
    second.push_trades("XRPUSDT", trades[200..].to_vec()).unwrap();
    second.remove_symbol("XRPUSDT").unwrap();
    for (k, v) in drain(&second) {
        got.entry(k).or_default().extend(v);
    }
    let (want, _) = aggregate(second.grids(), &trades, QuoteRule::PerTrade).unwrap();
    for (i, want) in want.iter().enumerate() {
        assert_eq!(&got[&("XRPUSDT".to_string(), i as u16)], want, "{}", grids_names[i]);
    }
    let dups: u64 = second.metrics().partitions.iter().map(|p| p.duplicates).sum();
    assert_eq!(dups, 50);
}

#[test]
fn a_held_restore_closes_nothing_until_the_missed_trades_are_in_then_all_at_revision_0() {
    held_restore_then_backfill(false);
}

/// The feed declared down at start-up, before the restore (as a caller may, for all symbols at
/// once): `feed_up` rewinds to the restored state, not to the empty one before it.
#[test]
fn a_restore_into_a_symbol_whose_feed_is_already_down_is_kept_by_its_feed_up() {
    held_restore_then_backfill(true);
}

fn held_restore_then_backfill(down_first: bool) {
    let names = ["1m", "5m", "1h"];
    let trades = xrp_trades();
    let clock = Arc::new(ManualClock::new(T0 + 250 * 7_000));
    let first = engine(&names, 1, clock.clone());
    first.add_symbol("XRPUSDT", None).unwrap();
    first.push_trades("XRPUSDT", trades[..250].to_vec()).unwrap();
    let snap = first.snapshot().unwrap();
    let mut records = poll_all(&first, 1000, false);
    drop(first); // killed: it comes back long after, the trades it missed are on REST

    clock.set(T0 + 600 * 7_000 + 3 * 3_600_000);
    let second = engine(&names, 2, clock.clone());
    second.add_symbol("XRPUSDT", None).unwrap();
    if down_first {
        second.feed_down(None, T0, false).unwrap();
    }
    restore_from(&second, &snap, &[("XRPUSDT", 250)], true);
    second.push_trades("XRPUSDT", trades[450..].to_vec()).unwrap(); // live, after a hole
    second.sync().unwrap();
    assert!(second.poll(1000, false).1.is_empty(), "nothing closes while the symbol is held");
    assert!(second.backfill("XRPUSDT", trades[240..460].to_vec()).unwrap());
    second.feed_up(Some("XRPUSDT"), Holes::Ask).unwrap();
    second.sync().unwrap();
    records.extend(poll_all(&second, 1000, false));
    let mut got: HashMap<u16, Vec<Kline>> = HashMap::new();
    for r in records {
        match r {
            Record::Kline { interval, kline, revision, gap, .. } => {
                assert_eq!((revision, gap), (0, false), "{kline:?}");
                got.entry(interval).or_default().push(kline);
            }
            Record::FlatRun { interval, run, revision, gap, .. } => {
                assert_eq!((revision, gap), (0, false), "{run:?}");
                let grid = second.grids()[interval as usize];
                expand_flat_run(&grid, &run, |k| got.entry(interval).or_default().push(k)).unwrap();
            }
        }
    }
    let (want, _) = aggregate(second.grids(), &trades, QuoteRule::PerTrade).unwrap();
    for (i, want) in want.iter().enumerate() {
        let g = &got[&(i as u16)];
        assert_eq!(&g[..want.len()], &want[..], "{}", names[i]);
        assert!(g[want.len()..].iter().all(|k| k.trades == 0), "then quiet periods only");
    }
}

#[test]
fn with_mark_partial_start_what_the_first_trade_opens_mid_period_is_marked_gap() {
    let clock = Arc::new(ManualClock::new(0));
    let cfg = EngineConfig { mark_partial_start: true, ..manual_config(&["1m", "1h"], clock) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbols(&[("MID", None), ("EDGE", None)]).unwrap();
    e.push_trades("MID", vec![trade(1, T0 + 30_000, 5), trade(2, T0 + 90_000, 6)]).unwrap();
    e.push_trades("EDGE", vec![trade(7, T0, 5), trade(8, T0 + 90_000, 6)]).unwrap();
    e.remove_symbol("MID").unwrap();
    e.remove_symbol("EDGE").unwrap();
    let mut gaps = HashMap::new();
    for r in poll_all(&e, 100, false) {
        if let Record::Kline { symbol, interval, kline, gap, .. } = r {
            gaps.insert((symbol.to_string(), interval, kline.open_time), gap);
        }
    }
    let g = |s: &str, i: u16, t: i64| gaps[&(s.to_string(), i, t)];
    assert!(g("MID", 0, T0), "joined 30 s into the minute");
    assert!(!g("MID", 0, T0 + MINUTE_MS), "the next minute is whole");
    assert!(g("MID", 1, T0), "and the hour it joined in is partial");
    assert!(!g("EDGE", 0, T0) && !g("EDGE", 1, T0), "a first trade on the boundary is whole");
}

#[test]
fn a_panicking_worker_is_reported_and_its_symbol_restored_from_the_acknowledged_snapshot() {
    let e = engine(&["1m"], 1, Arc::new(ManualClock::new(0)));
    e.add_symbols(&[("AAA", None), ("BBB", None)]).unwrap();
    e.push_trade("AAA", trade(1, T0, 5)).unwrap();
    e.push_trade("BBB", trade(1, T0, 6)).unwrap();
    let snap = e.snapshot().unwrap();
    assert!(e.ack_snapshot(snap.token).unwrap());
    e.push_trade("AAA", trade(2, T0 + 1, 50)).unwrap();
    e.inject_panic("AAA").unwrap();
    e.push_trade("BBB", trade(2, T0 + 1, 60)).unwrap();
    e.sync().unwrap();
    let errors = e.take_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("panicked")
            && errors[0].contains("AAA restored")
            && errors[0].contains("checkpoint 1"),
        "{errors:?}"
    );
    assert_eq!(e.metrics().partitions[0].panics, 1);
    // The worker goes on: AAA is back at its snapshot (trade 2 must be replayed), BBB untouched.
    e.push_trade("AAA", trade(2, T0 + 1, 50)).unwrap();
    e.remove_symbol("AAA").unwrap();
    e.remove_symbol("BBB").unwrap();
    let got = drain(&e);
    assert_eq!(got[&("AAA".to_string(), 0)][0].high, 50);
    assert_eq!(got[&("AAA".to_string(), 0)][0].trades, 2);
    assert_eq!(got[&("BBB".to_string(), 0)][0].close, 60);
}

#[test]
fn a_declared_gap_is_marked_then_replaced_exactly_by_the_backfill() {
    let names = ["1m", "5m"];
    let trades: Vec<Trade> =
        (1..=400).map(|i| trade(i, T0 + i * 2_500 - (i % 3) * 700, 100 + (i * 13) % 40)).collect();
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&names, 2, clock.clone());
    e.add_symbol("BTCUSDT", None).unwrap();
    let mut table = std::collections::BTreeMap::new();
    e.push_trades("BTCUSDT", trades[..100].to_vec()).unwrap();
    let down_at = trades[99].time;
    clock.set(down_at);
    e.sync().unwrap();
    e.feed_down(Some("BTCUSDT"), down_at, false).unwrap();
    // The outage: the clock keeps closing buckets (marked gap); live trades resume at id 300.
    for t in &trades[299..350] {
        clock.set(t.time);
        e.push_trade("BTCUSDT", *t).unwrap();
        e.sync().unwrap();
    }
    let gaps_seen = drain_upsert(&e, &mut table);
    assert!(gaps_seen > 0, "klines closed during the outage are marked gap");
    // Backfill from REST: out of order, with duplicates of what was applied and of itself.
    let mut fill: Vec<Trade> = trades[90..310].to_vec();
    fill.reverse();
    fill.extend_from_slice(&trades[150..160]);
    assert!(e.backfill("BTCUSDT", fill).unwrap());
    e.feed_up(Some("BTCUSDT"), Holes::Ask).unwrap();
    assert!(!e.backfill("BTCUSDT", vec![trades[0]]).unwrap(), "no gap any more");
    for t in &trades[350..] {
        e.push_trade("BTCUSDT", *t).unwrap();
    }
    clock.set(trades[399].time);
    e.remove_symbol("BTCUSDT").unwrap();
    drain_upsert(&e, &mut table);
    let (want, _) = aggregate(e.grids(), &trades, QuoteRule::PerTrade).unwrap();
    for (i, want) in want.iter().enumerate() {
        let got: Vec<(Kline, bool)> =
            table.iter().filter(|(k, _)| k.1 == i as u16).map(|(_, (_, k, g))| (*k, *g)).collect();
        assert!(got.iter().all(|(_, g)| !g), "{}: a gap flag survived the backfill", names[i]);
        let got: Vec<Kline> = got.into_iter().map(|(k, _)| k).collect();
        assert_eq!(&got, want, "{}", names[i]);
    }
}

#[test]
fn ids_the_backfill_does_not_supply_keep_their_klines_marked_gap() {
    let trades: Vec<Trade> = (1..=40).map(|i| trade(i, T0 + i * 20_000, 100 + i)).collect();
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&["1m"], 1, clock.clone());
    e.add_symbol("ETHUSDT", None).unwrap();
    e.push_trades("ETHUSDT", trades[..10].to_vec()).unwrap();
    e.feed_down(None, trades[9].time, false).unwrap();
    e.push_trades("ETHUSDT", trades[30..].to_vec()).unwrap();
    e.backfill("ETHUSDT", trades[10..20].to_vec()).unwrap(); // ids 21..30 never come
    e.feed_up(None, Holes::Ask).unwrap();
    let again = e.poll_gaps(10);
    // Asked again, for everything up to the last trade held (later holes come along).
    assert_eq!((again.len(), again[0].from_id, again[0].to_id), (1, 21, 39));
    assert_eq!(again[0].since, trades[19].time, "from the last trade replayed before it");
    e.feed_up(None, Holes::Accept).unwrap(); // REST cannot supply them: give up
    e.remove_symbol("ETHUSDT").unwrap();
    let mut table = std::collections::BTreeMap::new();
    drain_upsert(&e, &mut table);
    let gap_minutes: Vec<i64> =
        table.iter().filter(|(_, v)| v.2).map(|(k, _)| (k.2 - T0) / MINUTE_MS).collect();
    // Trade 20 is at minute 6 (T0 + 400 s), trade 31 at minute 10: minutes 6..=10 are suspect.
    assert_eq!(gap_minutes, vec![6, 7, 8, 9, 10]);
    assert_eq!(e.metrics().partitions[0].id_gaps, 2, "found twice: asked again, then given up");
}

#[test]
fn a_jump_in_aggtrade_ids_opens_a_gap_by_itself_and_the_backfill_closes_it_exactly() {
    let trades: Vec<Trade> =
        (1..=300).map(|i| trade(i, T0 + i * 1_500, 100 + (i * 7) % 30)).collect();
    let clock = Arc::new(ManualClock::new(0));
    let cfg = EngineConfig { detect_id_gaps: true, ..manual_config(&["1m", "5m"], clock) };
    let e = Engine::start(cfg).unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    e.push_trades("BTCUSDT", trades[..100].to_vec()).unwrap();
    e.push_trades("BTCUSDT", trades[150..].to_vec()).unwrap(); // ids 101..=150 were lost
    e.sync().unwrap();
    let gaps = e.poll_gaps(10);
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].from_id, gaps[0].to_id, gaps[0].since), (101, 150, trades[99].time));
    assert_eq!(e.read("BTCUSDT").unwrap().1, Some(100), "later trades wait for the backfill");
    assert!(e.backfill("BTCUSDT", trades[100..150].to_vec()).unwrap());
    e.feed_up(Some("BTCUSDT"), Holes::Ask).unwrap();
    assert_eq!(e.read("BTCUSDT").unwrap().1, Some(300));
    e.remove_symbol("BTCUSDT").unwrap();
    let mut table = std::collections::BTreeMap::new();
    drain_upsert(&e, &mut table);
    let (want, _) = aggregate(e.grids(), &trades, QuoteRule::PerTrade).unwrap();
    for (i, want) in want.iter().enumerate() {
        let got: Vec<Kline> =
            table.iter().filter(|(k, _)| k.1 == i as u16).map(|(_, v)| v.1).collect();
        assert_eq!(&got, want);
    }
    assert!(table.values().all(|v| !v.2), "no gap flag left");
}

#[test]
fn restored_slots_land_in_their_own_symbols_slots_and_an_unknown_interval_is_skipped() {
    let e = engine(&["1m", "5m"], 1, Arc::new(ManualClock::new(0)));
    e.add_symbols(&[("AAA", None), ("BBB", None)]).unwrap();
    e.push_trade("AAA", trade(1, T0, 7)).unwrap();
    let before = e.read("AAA").unwrap();
    // BBB is the second symbol; AAA's interval 2 (a 1h the engine had when it stored it)
    // has no place here.
    let one = SlotValue::Flat { since: T0 + MINUTE_MS, price: 5 };
    let five = SlotValue::Flat { since: T0 + 5 * MINUTE_MS, price: 5 };
    let hour = SlotValue::Flat { since: T0 + 60 * MINUTE_MS, price: 9 };
    let stored = [("BBB", 0, one), ("BBB", 1, five), ("AAA", 2, hour)];
    assert_eq!(e.restore(&stored, &[("BBB", 3)], false).unwrap(), 3);
    assert_eq!(e.read("BBB").unwrap(), (vec![one, five], Some(3)));
    assert_eq!(e.read("AAA").unwrap(), before, "AAA's slots are untouched");
}

#[test]
fn after_a_panic_the_second_symbol_is_restored_into_its_own_slots_with_its_late_bound() {
    let e = engine(&["5m", "1m"], 1, Arc::new(ManualClock::new(0)));
    e.add_symbols(&[("AAA", None), ("BBB", None)]).unwrap();
    e.push_trade("AAA", trade(1, T0 + 10_000, 5)).unwrap();
    // BBB: 5m open at T0, 1m open at T0 + 2m; that is what the acknowledged snapshot holds.
    e.push_trades("BBB", vec![trade(1, T0 + 10_000, 6), trade(2, T0 + 130_000, 7)]).unwrap();
    let snap = e.snapshot().unwrap();
    assert!(e.ack_snapshot(snap.token).unwrap());
    let (aaa, bbb) = (e.read("AAA").unwrap(), e.read("BBB").unwrap());
    e.push_trade("BBB", trade(3, T0 + 190_000, 8)).unwrap();
    e.inject_panic("BBB").unwrap();
    e.sync().unwrap();
    assert_eq!(e.take_errors().len(), 1);
    assert_eq!(e.read("BBB").unwrap(), bbb, "back at the snapshot");
    assert_eq!(e.read("AAA").unwrap(), aaa, "untouched");
    // Before BBB's restored 1m kline, though inside its 5m one: late, not folded into them.
    let t = trade(3, T0 + 60_000, 9);
    e.push_trade("BBB", t).unwrap();
    e.sync().unwrap();
    let late: Vec<Trade> = e.poll_late(10).into_iter().map(|l| l.trade).collect();
    assert_eq!(late, [t]);
    assert_eq!(e.read("BBB").unwrap().0, bbb.0);
}

#[test]
fn the_second_symbol_down_and_back_is_rewound_to_its_own_slots() {
    let names = ["1m", "5m"];
    let mk = |price: i64| -> Vec<Trade> {
        (1..=120).map(|i| trade(i, T0 + i * 5_000, price + (i * 7) % 20)).collect()
    };
    let (aaa, bbb) = (mk(100), mk(300));
    let clock = Arc::new(ManualClock::new(T0));
    let e = engine(&names, 1, clock.clone());
    e.add_symbols(&[("AAA", None), ("BBB", None)]).unwrap();
    e.push_trades("AAA", aaa.clone()).unwrap();
    e.push_trades("BBB", bbb[..40].to_vec()).unwrap();
    e.feed_down(Some("BBB"), bbb[39].time, false).unwrap();
    clock.set(bbb[79].time);
    e.push_trades("BBB", bbb[80..].to_vec()).unwrap(); // live, held; 41..=80 come from REST
    let mut table = std::collections::BTreeMap::new();
    drain_upsert(&e, &mut table);
    assert!(e.backfill("BBB", bbb[40..80].to_vec()).unwrap());
    e.feed_up(Some("BBB"), Holes::Ask).unwrap();
    e.remove_symbol("AAA").unwrap();
    e.remove_symbol("BBB").unwrap();
    drain_upsert(&e, &mut table);
    for (symbol, trades) in [("AAA", &aaa), ("BBB", &bbb)] {
        let (want, _) = aggregate(e.grids(), trades, QuoteRule::PerTrade).unwrap();
        for (i, want) in want.iter().enumerate() {
            let got: Vec<Kline> = table
                .iter()
                .filter(|(k, _)| k.0 == symbol && k.1 == i as u16)
                .map(|(_, v)| v.1)
                .collect();
            assert_eq!(&got, want, "{symbol} {}", names[i]);
        }
    }
}

#[test]
fn held_trades_claiming_ids_the_exchange_has_not_reached_are_refused_when_accepted_below() {
    let e = engine(&["1m"], 1, Arc::new(ManualClock::new(T0)));
    e.add_symbol("AAA", None).unwrap();
    e.push_trade("AAA", trade(1, T0 + 1_000, 5)).unwrap();
    e.feed_down(Some("AAA"), T0 + 1_000, false).unwrap();
    // Held live: 2 and 3 are real; 10, 11 and 50 claim ids the exchange has not reached
    // (REST's history ends at 9): a corrupt feed.
    let held = [2, 3, 10, 11, 50].map(|id| trade(id, T0 + id * 100, 6));
    e.push_trades("AAA", held.to_vec()).unwrap();
    e.feed_up(Some("AAA"), Holes::AcceptBelow(10)).unwrap();
    assert_eq!(e.metrics().partitions[0].implausible_id, 3);
    assert_eq!(e.read("AAA").unwrap().1, Some(3));
    e.push_trade("AAA", trade(4, T0 + 6_000, 7)).unwrap(); // the real next one
    e.remove_symbol("AAA").unwrap();
    let got = drain(&e);
    let k = &got[&("AAA".to_string(), 0)];
    assert_eq!((k.len(), k[0].trades, k[0].close), (1, 4, 7), "ids 1..=4, not a duplicate");
}
