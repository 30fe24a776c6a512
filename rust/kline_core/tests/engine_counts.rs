//! Every trade is counted by what became of it, and every record by its kind: the counters
//! a deployment watches (`Engine::metrics`) say exactly what happened, never a silent drop.

mod common;

use common::*;
use kline_core::engine::clock::ManualClock;
use kline_core::engine::table::SlotValue;
use kline_core::engine::{Engine, EngineConfig};
use kline_core::Trade;
use std::sync::Arc;

#[test]
fn placeholders_and_invalid_trades_are_counted_and_not_applied() {
    let e = engine(&["1m"], 1, Arc::new(ManualClock::new(T0)));
    e.add_symbol("BTCUSDT", None).unwrap();
    // Binance's placeholder aggTrade (price and quantity 0, raw ids -1), then a bad price.
    let placeholder =
        Trade { price: 0, qty: 0, first_id: -1, last_id: -1, ..trade(2, T0 + 2_000, 0) };
    let invalid = Trade { price: -5, ..trade(3, T0 + 3_000, 0) };
    let trades = vec![trade(1, T0 + 1_000, 5), placeholder, invalid, trade(4, T0 + 4_000, 6)];
    e.push_trades("BTCUSDT", trades).unwrap();
    e.sync().unwrap();
    let m = &e.metrics().partitions[0];
    assert_eq!((m.placeholders, m.invalid, m.trades), (1, 1, 2));
    let (values, last_id) = e.read("BTCUSDT").unwrap();
    assert_eq!(last_id, Some(4));
    let SlotValue::Open { kline, .. } = values[0] else { panic!("{values:?}") };
    assert_eq!((kline.trades, kline.low, kline.close), (2, 5, 6), "only trades 1 and 4");
}

#[test]
fn late_trades_that_find_the_late_queue_full_are_counted_as_overflow() {
    let clock = Arc::new(ManualClock::new(T0));
    // The late queue holds one trade.
    let e = Engine::start(EngineConfig { clock, outbox_capacity: 1, ..config(&["1m"]) }).unwrap();
    e.add_symbol("BTCUSDT", None).unwrap();
    // Trade 1 opens the second minute; 2 and 3 belong to the first, which is over.
    let late = [trade(2, T0 + 10_000, 5), trade(3, T0 + 20_000, 6)];
    e.push_trades("BTCUSDT", vec![trade(1, T0 + 70_000, 7), late[0], late[1]]).unwrap();
    e.sync().unwrap();
    let m = &e.metrics().partitions[0];
    assert_eq!((m.late, m.late_overflow, m.trades), (2, 1, 1));
    let got: Vec<Trade> = e.poll_late(10).into_iter().map(|l| l.trade).collect();
    assert_eq!(got, [late[0]], "the first is handed out, the second counted");
}

#[test]
fn closed_klines_and_flat_runs_are_counted_by_kind() {
    let e = engine(&["1m"], 1, Arc::new(ManualClock::new(T0)));
    e.add_symbol("BTCUSDT", None).unwrap();
    // Minutes 0 and 1 trade, 2 and 3 are quiet (one flat run), 4 trades until the removal.
    let trades =
        vec![trade(1, T0 + 10_000, 5), trade(2, T0 + 70_000, 6), trade(3, T0 + 250_000, 7)];
    e.push_trades("BTCUSDT", trades).unwrap();
    e.remove_symbol("BTCUSDT").unwrap();
    let m = &e.metrics().partitions[0];
    assert_eq!((m.closed, m.flat_runs), (3, 1));
    let got = drain(&e);
    let opens: Vec<(i64, u64)> =
        got[&("BTCUSDT".to_string(), 0)].iter().map(|k| (k.open_time - T0, k.trades)).collect();
    assert_eq!(opens, [(0, 1), (60_000, 1), (120_000, 0), (180_000, 0), (240_000, 1)]);
}
