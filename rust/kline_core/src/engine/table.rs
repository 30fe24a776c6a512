//! One partition's kline state: struct of arrays, one slot per symbol × interval.
//!
//! Slot `s * intervals + i` holds symbol `s`'s interval `i`. Dirty slots (changed since the
//! last acknowledged snapshot) carry an O(1) flag and sit once in the dirty list.

use super::dirty::DirtySet;
use crate::decimal::{product, QuoteRule};
use crate::kline::Kline;
use crate::trade::Trade;

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SlotState {
    /// No trade yet.
    Empty,
    /// A kline is open: `open_time .. next`.
    Open,
    /// Quiet since `open_time` at price `close`: complete empty periods not yet emitted.
    Flat,
}

/// A slot's state by value: what snapshots carry and restores put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotValue {
    Empty,
    Open {
        kline: Kline,
        next: i64,
    },
    /// Quiet since `since` (complete periods before it were emitted) at `price`.
    Flat {
        since: i64,
        price: i64,
    },
}

impl SlotValue {
    /// Open time of the period the slot is at (`i64::MIN` when empty): trades before it are late.
    pub fn start(&self) -> i64 {
        match *self {
            SlotValue::Open { kline, .. } => kline.open_time,
            SlotValue::Flat { since, .. } => since,
            SlotValue::Empty => i64::MIN,
        }
    }
}

/// Resizes to `len`, growing capacity by a quarter at a time rather than doubling: memory
/// stays within 25 % of symbols × intervals instead of up to 100 %.
pub fn grow_to<T: Clone>(v: &mut Vec<T>, len: usize, fill: T) {
    if len > v.capacity() {
        let more = (len - v.len()).max(v.capacity() / 4);
        v.reserve_exact(more);
    }
    v.resize(len, fill);
}

#[derive(Debug, Default)]
pub struct Table {
    pub state: Vec<SlotState>,
    pub open_time: Vec<i64>,
    pub next: Vec<i64>,
    pub open: Vec<i64>,
    pub high: Vec<i64>,
    pub low: Vec<i64>,
    pub close: Vec<i64>,
    pub volume: Vec<i128>,
    pub quote: Vec<i128>,
    pub taker_volume: Vec<i128>,
    pub taker_quote: Vec<i128>,
    pub trades: Vec<u64>,
    /// aggTrades whose quote value may differ from Binance's (see `QuoteRule::of_aggtrade`).
    pub inexact: Vec<u64>,
    /// Exact Σ p·q at 1e-16 (`quote` is by the rule).
    pub quote_exact: Vec<i128>,
    pub first_id: Vec<i64>,
    pub last_id: Vec<i64>,
    pub dirty: DirtySet,
}

impl Table {
    pub fn len(&self) -> usize {
        self.state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Adds `n` empty slots.
    pub fn grow(&mut self, n: usize) {
        let len = self.len() + n;
        grow_to(&mut self.state, len, SlotState::Empty);
        for v in [
            &mut self.open_time,
            &mut self.next,
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.first_id,
            &mut self.last_id,
        ] {
            grow_to(v, len, 0);
        }
        for v in [
            &mut self.volume,
            &mut self.quote,
            &mut self.taker_volume,
            &mut self.taker_quote,
            &mut self.quote_exact,
        ] {
            grow_to(v, len, 0);
        }
        grow_to(&mut self.trades, len, 0);
        grow_to(&mut self.inexact, len, 0);
        self.dirty.grow(len);
    }

    /// Bytes of state per slot (both the table and a snapshot copy of it).
    pub const fn bytes_per_slot() -> usize {
        std::mem::size_of::<SlotState>()
            + 11 * std::mem::size_of::<i64>()
            + 5 * std::mem::size_of::<i128>()
            + std::mem::size_of::<u8>()
            + std::mem::size_of::<u32>()
    }

    #[inline]
    pub fn mark_dirty(&mut self, idx: usize) {
        self.dirty.mark(idx);
    }

    /// The kline in slot `idx` (open or flat), with its close time from `next`.
    pub fn kline(&self, idx: usize) -> Kline {
        Kline {
            open_time: self.open_time[idx],
            close_time: self.next[idx] - 1,
            open: self.open[idx],
            high: self.high[idx],
            low: self.low[idx],
            close: self.close[idx],
            volume: self.volume[idx],
            quote_volume: self.quote[idx],
            trades: self.trades[idx],
            taker_buy_volume: self.taker_volume[idx],
            taker_buy_quote_volume: self.taker_quote[idx],
            first_trade_id: self.first_id[idx],
            last_trade_id: self.last_id[idx],
            inexact_trades: self.inexact[idx],
            quote_volume_exact: self.quote_exact[idx],
        }
    }

    /// Opens a kline at `start .. next` with its first trade; `rule`: how trades add to
    /// `quote` and `taker_quote` (the symbol's).
    #[inline]
    pub fn open_with(&mut self, idx: usize, t: &Trade, start: i64, next: i64, rule: QuoteRule) {
        self.state[idx] = SlotState::Open;
        self.open_time[idx] = start;
        self.next[idx] = next;
        self.open[idx] = t.price;
        self.high[idx] = t.price;
        self.low[idx] = t.price;
        self.close[idx] = t.price;
        let q = i128::from(t.qty);
        let raw = t.raw_trades();
        let (pq, inexact) = rule.of_aggtrade(t.price, t.qty, raw);
        let taker = !t.buyer_is_maker;
        self.volume[idx] = q;
        self.quote[idx] = pq;
        self.taker_volume[idx] = if taker { q } else { 0 };
        self.taker_quote[idx] = if taker { pq } else { 0 };
        self.trades[idx] = raw;
        self.inexact[idx] = u64::from(inexact);
        self.quote_exact[idx] = product(t.price, t.qty);
        self.first_id[idx] = t.first_id;
        self.last_id[idx] = t.last_id;
        self.mark_dirty(idx);
    }

    /// Adds `t` to each of the `n` slots from `base` whose open bucket holds it (the hot path:
    /// one pass over per-symbol subslices, no bounds checks inside). Returns a bitmask of the
    /// slots that need a roll instead (`n` ≤ 64).
    #[inline]
    pub fn apply_run(&mut self, base: usize, n: usize, t: &Trade, rule: QuoteRule) -> u64 {
        let r = base..base + n;
        let state = &self.state[r.clone()];
        let next = &self.next[r.clone()];
        let high = &mut self.high[r.clone()];
        let low = &mut self.low[r.clone()];
        let close = &mut self.close[r.clone()];
        let volume = &mut self.volume[r.clone()];
        let quote = &mut self.quote[r.clone()];
        let taker_volume = &mut self.taker_volume[r.clone()];
        let taker_quote = &mut self.taker_quote[r.clone()];
        let trades = &mut self.trades[r.clone()];
        let inexact = &mut self.inexact[r.clone()];
        let quote_exact = &mut self.quote_exact[r.clone()];
        let last_id = &mut self.last_id[r];
        let (taker, raw) = (!t.buyer_is_maker, t.raw_trades());
        let (p, q) = (t.price, i128::from(t.qty));
        let (pq, cut) = rule.of_aggtrade(t.price, t.qty, raw);
        let cut = u64::from(cut);
        let exact = product(t.price, t.qty);
        let mut roll = 0u64;
        for i in 0..n {
            if state[i] != SlotState::Open || t.time >= next[i] {
                roll |= 1 << i;
                continue;
            }
            high[i] = high[i].max(p);
            low[i] = low[i].min(p);
            close[i] = p;
            volume[i] += q;
            quote[i] += pq;
            if taker {
                taker_volume[i] += q;
                taker_quote[i] += pq;
            }
            trades[i] += raw;
            inexact[i] += cut;
            quote_exact[i] += exact;
            last_id[i] = t.last_id;
            self.dirty.mark(base + i);
        }
        roll
    }

    /// Adds a trade to the open kline in `idx` (same bucket).
    #[inline]
    pub fn apply(&mut self, idx: usize, t: &Trade, rule: QuoteRule) {
        self.high[idx] = self.high[idx].max(t.price);
        self.low[idx] = self.low[idx].min(t.price);
        self.close[idx] = t.price;
        let q = i128::from(t.qty);
        let raw = t.raw_trades();
        let (pq, inexact) = rule.of_aggtrade(t.price, t.qty, raw);
        self.volume[idx] += q;
        self.quote[idx] += pq;
        if !t.buyer_is_maker {
            self.taker_volume[idx] += q;
            self.taker_quote[idx] += pq;
        }
        self.trades[idx] += raw;
        self.inexact[idx] += u64::from(inexact);
        self.quote_exact[idx] += product(t.price, t.qty);
        self.last_id[idx] = t.last_id;
        self.mark_dirty(idx);
    }

    /// Turns an open kline into the quiet state after it: flat from `next` at its close.
    #[inline]
    pub fn go_flat(&mut self, idx: usize, since: i64) {
        self.state[idx] = SlotState::Flat;
        self.open_time[idx] = since;
        self.mark_dirty(idx);
    }

    /// Puts a slot back to a state taken from a snapshot.
    pub fn restore(&mut self, idx: usize, state: &SlotValue) {
        match *state {
            SlotValue::Empty => self.state[idx] = SlotState::Empty,
            SlotValue::Open { kline, next } => {
                self.state[idx] = SlotState::Open;
                self.open_time[idx] = kline.open_time;
                self.next[idx] = next;
                self.open[idx] = kline.open;
                self.high[idx] = kline.high;
                self.low[idx] = kline.low;
                self.close[idx] = kline.close;
                self.volume[idx] = kline.volume;
                self.quote[idx] = kline.quote_volume;
                self.taker_volume[idx] = kline.taker_buy_volume;
                self.taker_quote[idx] = kline.taker_buy_quote_volume;
                self.trades[idx] = kline.trades;
                self.inexact[idx] = kline.inexact_trades;
                self.quote_exact[idx] = kline.quote_volume_exact;
                self.first_id[idx] = kline.first_trade_id;
                self.last_id[idx] = kline.last_trade_id;
            }
            SlotValue::Flat { since, price } => {
                self.state[idx] = SlotState::Flat;
                self.open_time[idx] = since;
                self.next[idx] = i64::MIN; // the next sweep sets it from the grid
                self.close[idx] = price;
            }
        }
        self.mark_dirty(idx);
    }

    /// The slot's state as a value (for snapshots).
    pub fn value(&self, idx: usize) -> SlotValue {
        match self.state[idx] {
            SlotState::Empty => SlotValue::Empty,
            SlotState::Open => SlotValue::Open { kline: self.kline(idx), next: self.next[idx] },
            SlotState::Flat => {
                SlotValue::Flat { since: self.open_time[idx], price: self.close[idx] }
            }
        }
    }

    pub fn clear(&mut self, idx: usize) {
        self.state[idx] = SlotState::Empty;
        self.mark_dirty(idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_column_gains_a_quarter_of_its_capacity_at_a_time_not_double() {
        // Exact capacities: `reserve_exact` and `resize` within capacity allocate exactly that.
        let mut v: Vec<i64> = Vec::new();
        grow_to(&mut v, 100, 0);
        assert_eq!((v.len(), v.capacity()), (100, 100));
        grow_to(&mut v, 101, 7);
        assert_eq!((v.len(), v.capacity(), v[100]), (101, 125, 7), "a quarter more, not double");
        grow_to(&mut v, 125, 0);
        assert_eq!(v.capacity(), 125, "within its capacity a column is not reallocated");
        grow_to(&mut v, 300, 0);
        assert_eq!(v.capacity(), 300, "past a quarter more: exactly what is asked");
    }
}
