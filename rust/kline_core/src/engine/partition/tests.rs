//! The worker's state driven directly: what the engine's API cannot reach deterministically
//! (a stale handle racing a remove, how closed records are chunked and handed on).

use super::*;
use crate::interval::{TimeUnit, MINUTE_MS};

const T0: i64 = 1_577_836_800_000; // 2020-01-01 00:00 UTC

fn state(names: &[&str]) -> PartitionState {
    let grids =
        names.iter().map(|n| Grid::new(n.parse().unwrap(), TimeUnit::Millis, 0, 0)).collect();
    PartitionState::new(PartitionConfig {
        grids,
        grace: 0,
        tz_offset_ms: 0,
        late: LatePolicy::Drop,
        detect_id_gaps: false,
        mark_partial_start: false,
        limits: TimeLimits::unit_only(TimeUnit::Millis),
        quote_rule: QuoteRule::PerTrade,
    })
}

fn trade(id: i64, time: i64) -> Trade {
    Trade { id, price: 100 + id, qty: 1, first_id: id, last_id: id, time, buyer_is_maker: false }
}

/// Open times of the klines in a chunk, in order.
fn opens(chunk: &[Record]) -> Vec<i64> {
    chunk
        .iter()
        .map(|r| match r {
            Record::Kline { kline, .. } => kline.open_time,
            Record::FlatRun { run, .. } => run.start,
        })
        .collect()
}

#[test]
fn a_trade_or_remove_for_a_symbol_that_left_its_slot_touches_not_the_one_that_took_it() {
    let shared = Shared::new(16, 1024, 1);
    let mut p = state(&["1m"]);
    let (slot, old) = p.add("AAAUSDT".into(), SymbolSpec::default());
    p.remove(&shared, slot, old);
    let (again, new) = p.add("BBBUSDT".into(), SymbolSpec::default());
    assert_eq!(again, slot, "the freed slot is taken");
    p.trade(&shared, slot, new, &trade(1, T0), T0);
    // Items queued for AAAUSDT before its removal, applied after BBBUSDT took the slot.
    p.trade(&shared, slot, old, &trade(2, T0 + 1_000), T0);
    p.remove(&shared, slot, old);
    assert_eq!(p.tally.stale_symbol, 1);
    assert_eq!(p.live_symbols(), 1, "BBBUSDT is still there");
    let (values, last_id) = p.read(slot as usize, new);
    assert_eq!(last_id, Some(1));
    let SlotValue::Open { kline, .. } = values[0] else { panic!("{values:?}") };
    assert_eq!((kline.trades, kline.close), (1, 101), "only BBBUSDT's own trade");
    assert!(shared.outbox.is_empty() && p.pending.is_empty(), "nothing was closed");
}

#[test]
fn closed_records_wait_in_the_chunk_being_filled_until_it_holds_a_full_chunk() {
    let shared = Shared::new(16, 64 * OUT_CHUNK, 1);
    let mut p = state(&["1m"]);
    let (slot, generation) = p.add("BTCUSDT".into(), SymbolSpec::default());
    // Each trade opens the next minute and closes the one before: n trades, n - 1 klines.
    let mut put = |id: i64| p.trade(&shared, slot, generation, &trade(id, T0 + id * MINUTE_MS), T0);
    for id in 0..OUT_CHUNK as i64 {
        put(id);
    }
    assert!(shared.outbox.is_empty(), "{} records: not a full chunk yet", OUT_CHUNK - 1);
    put(OUT_CHUNK as i64);
    assert_eq!(shared.outbox.len(), 1);
    let chunk = shared.take_closed().unwrap();
    assert_eq!(chunk.len(), OUT_CHUNK, "sealed at exactly a chunk");
    assert_eq!(
        opens(&chunk),
        (0..OUT_CHUNK as i64).map(|m| T0 + m * MINUTE_MS).collect::<Vec<_>>()
    );
    assert!(p.pending.is_empty());
}

#[test]
fn chunks_behind_a_full_outbox_come_out_before_any_sealed_after_them() {
    let shared = Shared::new(16, 4 * OUT_CHUNK, 1);
    assert_eq!(shared.outbox.capacity(), 4);
    let mut p = state(&["1m"]);
    let (slot, generation) = p.add("BTCUSDT".into(), SymbolSpec::default());
    p.trade(&shared, slot, generation, &trade(0, T0), T0);
    // Seal one kline per chunk: 4 fill the outbox, the 5th waits behind it.
    let seal = |p: &mut PartitionState, m: i64| {
        p.trade(&shared, slot, generation, &trade(m, T0 + m * MINUTE_MS), T0);
        p.flush_spill(&shared)
    };
    for m in 1..=4 {
        assert!(seal(&mut p, m));
    }
    assert!(!seal(&mut p, 5), "the 5th chunk waits in the overflow");
    assert_eq!(p.spilled(&shared), 1);
    let first = shared.take_closed().unwrap(); // the consumer makes room for one chunk
    assert!(!seal(&mut p, 6), "the 6th goes behind the 5th; the 5th moves into the outbox");
    let mut got = opens(&first);
    while let Some(chunk) = shared.take_closed() {
        got.extend(opens(&chunk));
    }
    assert_eq!(got, (0..6).map(|m| T0 + m * MINUTE_MS).collect::<Vec<_>>(), "in order");
    assert_eq!(p.spilled(&shared), 0);
}

#[test]
fn trades_held_past_the_bound_while_the_feed_is_down_are_counted_not_kept() {
    let mut p = state(&["1m"]);
    let (slot, _) = p.add("BTCUSDT".into(), SymbolSpec::default());
    let sym = slot as usize;
    p.feed_down(sym, T0, false);
    // The bound is 4 M trades (about 230 MB held): one more is counted, not kept.
    for id in 0..=MAX_GAP_PENDING as i64 {
        assert!(p.defer(sym, &trade(id, T0 + id)));
    }
    assert_eq!(p.tally.gap_overflow, 1);
    let held = p.symbols[sym].outage.as_ref().map(|g| g.pending.len());
    assert_eq!(held, Some(MAX_GAP_PENDING));
}

#[test]
fn a_waiting_hole_of_a_removed_symbol_is_not_reported_for_the_one_that_took_its_slot() {
    let shared = Shared::new(16, 1, 1); // the holes queue holds one hole
    let mut p = state(&["1m"]);
    p.add("AAAUSDT".into(), SymbolSpec::default());
    let (slot, old) = p.add("BBBUSDT".into(), SymbolSpec::default());
    let sym = slot as usize;
    let hole = |symbol: &str| IdHole { symbol: symbol.into(), from_id: 2, to_id: 4, since: T0 };
    shared.holes.push(hole("AAAUSDT")).unwrap();
    p.feed_down(sym, T0, false);
    p.report_hole(&shared, sym, hole("BBBUSDT")); // waits behind AAAUSDT's
    p.remove(&shared, slot, old);
    let (again, _) = p.add("CCCUSDT".into(), SymbolSpec::default());
    assert_eq!(again, slot);
    p.feed_down(sym, T0, false); // CCCUSDT is down too, with no hole of its own yet
    shared.holes.pop();
    p.report_waiting_holes(&shared);
    assert_eq!(shared.holes.pop(), None, "BBBUSDT's hole is not CCCUSDT's");
}
