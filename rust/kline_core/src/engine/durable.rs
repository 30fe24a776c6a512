//! The acknowledged state a panicked symbol goes back to, kept compact.
//!
//! One blob per symbol holds its slot values (one per interval) and its checkpoint, encoded
//! losslessly as zigzag varints of small deltas (high − open, open − low, last − first id,
//! Σ p·q − volume · open …): 40-75 bytes per open kline instead of the 136 of a `SlotValue`. It is read only after a
//! panic and rewritten only when a snapshot is acknowledged, so the cost of the encoding is off
//! the trade path.

use super::output::PartitionSnapshot;
use super::table::SlotValue;
use crate::kline::Kline;
use std::collections::HashMap;
use std::sync::Arc;

const EMPTY: u8 = 0;
const OPEN: u8 = 1;
const FLAT: u8 = 2;

/// Acknowledged state by symbol.
#[derive(Debug, Default)]
pub struct Durable {
    /// Intervals per symbol.
    n: usize,
    blobs: HashMap<Arc<str>, Box<[u8]>>,
}

impl Durable {
    pub fn new(n: usize) -> Self {
        Durable { n, blobs: HashMap::new() }
    }

    /// The symbol's acknowledged slot values and checkpoint (all empty and `i64::MIN` if none).
    pub fn get(&self, symbol: &str) -> (Vec<SlotValue>, i64) {
        let mut values = Vec::with_capacity(self.n);
        let last_id = self.get_into(symbol, &mut values);
        (values, last_id)
    }

    /// Takes in an acknowledged (or restored) snapshot, one symbol at a time through one
    /// reused buffer, so that nothing but the new blobs is allocated between them (a copy of
    /// every touched symbol's values held until the end would leave the blobs scattered over
    /// pages the allocator cannot give back).
    pub fn absorb(&mut self, snap: &PartitionSnapshot) {
        let mut order: Vec<usize> = (0..snap.slots.len()).collect();
        order.sort_by(|&a, &b| snap.slots[a].symbol.cmp(&snap.slots[b].symbol));
        let mut checkpoints: HashMap<Arc<str>, i64> =
            snap.checkpoints.iter().map(|c| (c.symbol.clone(), c.last_id)).collect();
        let (mut values, mut scratch) = (Vec::with_capacity(self.n), Vec::new());
        let mut at = 0;
        while at < order.len() {
            let symbol = &snap.slots[order[at]].symbol;
            let mut last_id = self.get_into(symbol, &mut values);
            while let Some(s) = order.get(at).map(|&k| &snap.slots[k]) {
                if s.symbol != *symbol {
                    break;
                }
                if let Some(v) = values.get_mut(s.interval as usize) {
                    *v = s.value;
                }
                at += 1;
            }
            if let Some(id) = checkpoints.remove(symbol) {
                last_id = id;
            }
            self.blobs.insert(symbol.clone(), encode_into(&mut scratch, &values, last_id));
        }
        for (symbol, id) in checkpoints {
            self.get_into(&symbol, &mut values);
            self.blobs.insert(symbol, encode_into(&mut scratch, &values, id));
        }
    }

    /// [`Durable::get`] into `values` (cleared first); returns the checkpoint.
    fn get_into(&self, symbol: &str, values: &mut Vec<SlotValue>) -> i64 {
        values.clear();
        match self.blobs.get(symbol) {
            Some(blob) => decode_into(blob, self.n, values),
            None => {
                values.resize(self.n, SlotValue::Empty);
                i64::MIN
            }
        }
    }

    /// Heap bytes held (blobs and map), for the memory benchmark.
    pub fn bytes(&self) -> usize {
        let entry = std::mem::size_of::<(Arc<str>, Box<[u8]>)>() + 1;
        self.blobs.capacity() * entry + self.blobs.values().map(|b| b.len()).sum::<usize>()
    }
}

fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag(u: u128) -> i128 {
    ((u >> 1) as i128) ^ -((u & 1) as i128)
}

fn put(out: &mut Vec<u8>, v: i128) {
    let mut u = zigzag(v);
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn take(blob: &[u8], at: &mut usize) -> i128 {
    let mut u: u128 = 0;
    let mut shift = 0;
    loop {
        let b = blob[*at];
        *at += 1;
        u |= u128::from(b & 0x7f) << shift;
        if b < 0x80 {
            return unzigzag(u);
        }
        shift += 7;
    }
}

/// Σ p·q is close to Σ q · open: only the (small) difference is stored. Wrapping arithmetic
/// keeps it exact whatever the values.
fn guess(volume: i128, open: i64) -> i128 {
    volume.wrapping_mul(i128::from(open))
}

/// Wrapping differences keep every i64 pair exact (`a - b` may overflow i64, not i128).
fn diff(a: i64, b: i64) -> i128 {
    i128::from(a) - i128::from(b)
}

pub fn encode(values: &[SlotValue], last_id: i64) -> Box<[u8]> {
    encode_into(&mut Vec::new(), values, last_id)
}

/// [`encode`] through `out` (a reused buffer): the blob is allocated once, at its size.
fn encode_into(out: &mut Vec<u8>, values: &[SlotValue], last_id: i64) -> Box<[u8]> {
    out.clear();
    put(out, i128::from(last_id));
    // Times as deltas from the slot before, ids from the checkpoint: all close together.
    let mut time = 0i64;
    for v in values {
        match *v {
            SlotValue::Empty => out.push(EMPTY),
            SlotValue::Flat { since, price } => {
                out.push(FLAT);
                put(out, diff(since, time));
                put(out, i128::from(price));
                time = since;
            }
            SlotValue::Open { kline: k, next } => {
                out.push(OPEN);
                put(out, diff(k.open_time, time));
                put(out, diff(next, k.open_time));
                put(out, diff(k.close_time, next));
                time = k.open_time;
                put(out, i128::from(k.open));
                put(out, diff(k.high, k.open));
                put(out, diff(k.open, k.low));
                put(out, diff(k.close, k.low));
                put(out, k.volume);
                put(out, k.quote_volume.wrapping_sub(guess(k.volume, k.open)));
                put(out, i128::from(k.trades));
                put(out, k.taker_buy_volume);
                put(out, k.taker_buy_quote_volume.wrapping_sub(guess(k.taker_buy_volume, k.open)));
                put(out, diff(k.first_trade_id, last_id));
                put(out, diff(k.last_trade_id, k.first_trade_id));
                put(out, i128::from(k.inexact_trades));
                put(out, k.quote_volume_exact.wrapping_sub(k.quote_volume));
            }
        }
    }
    Box::from(&out[..])
}

pub fn decode(blob: &[u8], n: usize) -> (Vec<SlotValue>, i64) {
    let mut values = Vec::with_capacity(n);
    let last_id = decode_into(blob, n, &mut values);
    (values, last_id)
}

/// [`decode`] appending to `values`; returns the checkpoint.
fn decode_into(blob: &[u8], n: usize, values: &mut Vec<SlotValue>) -> i64 {
    let at = &mut 0usize;
    let last_id = take(blob, at) as i64;
    let mut time = 0i64;
    while values.len() < n && *at < blob.len() {
        let tag = blob[*at];
        *at += 1;
        values.push(match tag {
            FLAT => {
                time = (i128::from(time) + take(blob, at)) as i64;
                SlotValue::Flat { since: time, price: take(blob, at) as i64 }
            }
            OPEN => {
                let open_time = (i128::from(time) + take(blob, at)) as i64;
                time = open_time;
                let next = (i128::from(open_time) + take(blob, at)) as i64;
                let close_time = (i128::from(next) + take(blob, at)) as i64;
                let open = take(blob, at) as i64;
                let high = (i128::from(open) + take(blob, at)) as i64;
                let low = (i128::from(open) - take(blob, at)) as i64;
                let close = (i128::from(low) + take(blob, at)) as i64;
                let volume = take(blob, at);
                let quote_volume = take(blob, at).wrapping_add(guess(volume, open));
                let trades = take(blob, at) as u64;
                let taker_buy_volume = take(blob, at);
                let taker_buy_quote_volume =
                    take(blob, at).wrapping_add(guess(taker_buy_volume, open));
                let first_trade_id = (i128::from(last_id) + take(blob, at)) as i64;
                let last_trade_id = (i128::from(first_trade_id) + take(blob, at)) as i64;
                let inexact_trades = take(blob, at) as u64;
                let quote_volume_exact = take(blob, at).wrapping_add(quote_volume);
                let kline = Kline {
                    open_time,
                    close_time,
                    open,
                    high,
                    low,
                    close,
                    volume,
                    quote_volume,
                    trades,
                    taker_buy_volume,
                    taker_buy_quote_volume,
                    first_trade_id,
                    last_trade_id,
                    inexact_trades,
                    quote_volume_exact,
                };
                SlotValue::Open { kline, next }
            }
            _ => SlotValue::Empty,
        });
    }
    values.resize(n, SlotValue::Empty);
    last_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = SlotValue> {
        let counts = (any::<u64>(), any::<u64>());
        let kline = (any::<[i64; 8]>(), any::<[i128; 4]>(), counts, any::<i64>()).prop_map(
            |(t, v, (trades, inexact_trades), next)| {
                let k = Kline {
                    open_time: t[0],
                    close_time: t[1],
                    open: t[2],
                    high: t[3],
                    low: t[4],
                    close: t[5],
                    volume: v[0],
                    quote_volume: v[1],
                    trades,
                    taker_buy_volume: v[2],
                    taker_buy_quote_volume: v[3],
                    first_trade_id: t[6],
                    last_trade_id: t[7],
                    inexact_trades,
                    quote_volume_exact: v[1] ^ i128::from(t[0]),
                };
                SlotValue::Open { kline: k, next }
            },
        );
        prop_oneof![
            Just(SlotValue::Empty),
            (any::<i64>(), any::<i64>())
                .prop_map(|(since, price)| SlotValue::Flat { since, price }),
            kline,
        ]
    }

    proptest! {
        #[test]
        fn any_values_come_back_exactly(values in prop::collection::vec(arb_value(), 0..20), last in any::<i64>()) {
            let blob = encode(&values, last);
            let (back, last_back) = decode(&blob, values.len());
            prop_assert_eq!(back, values);
            prop_assert_eq!(last_back, last);
        }
    }

    #[test]
    fn an_open_btc_minute_takes_under_seventy_five_bytes() {
        let k = Kline {
            open_time: 1_732_550_400_000,
            close_time: 1_732_550_459_999,
            open: 9_512_345_000_000,
            high: 9_512_999_000_000,
            low: 9_511_000_000_000,
            close: 9_512_100_000_000,
            volume: 1_234_567_890,
            quote_volume: 1_234_567_890 * 9_512_345_000_000 + 61_234_000_000_000_000,
            trades: 812,
            taker_buy_volume: 634_567_890,
            taker_buy_quote_volume: 634_567_890 * 9_512_345_000_000 - 23_456_000_000_000_000,
            first_trade_id: 3_300_123_456,
            last_trade_id: 3_300_124_267,
            inexact_trades: 0,
            // BTCUSDT's p·q fits 8 decimals: Binance's sum and the exact one agree.
            quote_volume_exact: 1_234_567_890 * 9_512_345_000_000 + 61_234_000_000_000_000,
        };
        let blob = encode(&[SlotValue::Open { kline: k, next: 1_732_550_460_000 }], 3_300_124_267);
        assert!(blob.len() <= 75, "{} bytes", blob.len());
    }

    #[test]
    fn absorb_keeps_what_a_later_snapshot_does_not_carry_symbol_by_symbol() {
        use crate::engine::output::{Checkpoint, SlotSnapshot};
        let flat = |since: i64, price: i64| SlotValue::Flat { since, price };
        let slot = |symbol: &str, interval: u16, value: SlotValue| SlotSnapshot {
            symbol: symbol.into(),
            interval,
            value,
        };
        let ck = |symbol: &str, last_id: i64| Checkpoint { symbol: symbol.into(), last_id };
        let mut d = Durable::new(3);
        // Slots of two symbols interleaved, as dirty order gives them; one interval out of range.
        d.absorb(&PartitionSnapshot {
            partition: 0,
            seq: 1,
            slots: vec![
                slot("B", 2, flat(5, 50)),
                slot("A", 0, flat(1, 10)),
                slot("B", 0, flat(6, 60)),
                slot("A", 1, flat(2, 20)),
                slot("A", 7, flat(9, 90)),
            ],
            checkpoints: vec![ck("A", 100), ck("C", 300)],
        });
        d.absorb(&PartitionSnapshot {
            partition: 0,
            seq: 2,
            slots: vec![slot("A", 1, flat(3, 30))],
            checkpoints: vec![ck("B", 200)],
        });
        assert_eq!(d.get("A"), (vec![flat(1, 10), flat(3, 30), SlotValue::Empty], 100));
        assert_eq!(d.get("B"), (vec![flat(6, 60), SlotValue::Empty, flat(5, 50)], 200));
        assert_eq!(d.get("C"), (vec![SlotValue::Empty; 3], 300));
        assert_eq!(d.get("D"), (vec![SlotValue::Empty; 3], i64::MIN));
    }
}
