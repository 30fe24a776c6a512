//! Each symbol's trades put back in aggTrade id order, for a reader that gets them out of it:
//! the scale-out aggregator reading a stream that two capture replicas and their REST repairs
//! feed, where a retried publish lands after trades made later. A trade ahead of the next id
//! expected is held until the ids before it come, or until the reader gives their hole up
//! ([`IdOrder::release`]: the trades go on across it, and the engine's gap rule takes it).
//!
//! Nothing here waits: the reader owns the time (`now`, any monotonic seconds) and says when
//! a hole has waited long enough ([`IdOrder::overdue`]).

use crate::trade::Trade;
use std::collections::{BTreeMap, HashMap};

/// Trades held over all symbols, at most. Past it, the symbol whose trade would be one more
/// is released across its hole (told by [`Took::Overflow`]).
pub const MAX_HELD: usize = 100_000;

/// What [`IdOrder::take`] did with a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Took {
    /// It went out, with the held trades it let go after it.
    Went,
    /// Held: an id before it has not come.
    Held,
    /// At or below the next id expected: already taken.
    Duplicate,
    /// Held, and the bound was passed: the symbol's held trades went out across its hole.
    Overflow,
}

/// What a batch let go ([`IdOrder::take_all`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// The trades that went, in id order per symbol.
    pub trades: Vec<Trade>,
    /// For each of them, the batch item that let it go (its symbol is that item's).
    pub by: Vec<usize>,
    /// Batch items that let their symbol go across its hole for the bound ([`Took::Overflow`]).
    pub overflowed: Vec<usize>,
}

/// A symbol's trades waiting on a hole: id → (trade, the reader's position of it).
#[derive(Debug)]
struct Held {
    trades: BTreeMap<i64, (Trade, u64)>,
    /// When the first of them was held (the reader's `now`).
    since: f64,
}

#[derive(Debug, Default)]
pub struct IdOrder {
    /// The next id each symbol expects: its checkpoint + 1, or its first trade's + 1.
    next: HashMap<String, i64>,
    /// Symbols with trades held (never an empty entry).
    held: HashMap<String, Held>,
    /// Each symbol's latest trade time the reader applied ([`IdOrder::pushed`]).
    last_time: HashMap<String, i64>,
    count: usize,
    duplicates: u64,
}

impl IdOrder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `symbol` was applied up to `last_id` (a restored checkpoint): it expects `last_id + 1`.
    pub fn start(&mut self, symbol: &str, last_id: i64) {
        self.next.insert(symbol.to_owned(), last_id.saturating_add(1));
    }

    /// Takes one trade of `symbol` (`seq`: the reader's position of it, e.g. a stream
    /// sequence); appends to `out` the trades that can go now, in id order.
    pub fn take(
        &mut self,
        symbol: &str,
        t: Trade,
        seq: u64,
        now: f64,
        out: &mut Vec<Trade>,
    ) -> Took {
        let want = self.next.get(symbol).copied();
        match want {
            Some(want) if t.id < want => {
                self.duplicates += 1;
                return Took::Duplicate;
            }
            Some(want) if t.id > want => {
                let held = self
                    .held
                    .entry(symbol.to_owned())
                    .or_insert_with(|| Held { trades: BTreeMap::new(), since: now });
                if held.trades.insert(t.id, (t, seq)).is_none() {
                    self.count += 1;
                }
                if self.count > MAX_HELD {
                    self.release(symbol, out);
                    return Took::Overflow;
                }
                return Took::Held;
            }
            _ => {}
        }
        out.push(t);
        let mut want = t.id.saturating_add(1);
        if let Some(held) = self.held.get_mut(symbol) {
            while let Some((trade, _)) = held.trades.remove(&want) {
                out.push(trade);
                self.count -= 1;
                want = want.saturating_add(1);
            }
            if held.trades.is_empty() {
                self.held.remove(symbol);
            }
        }
        match self.next.get_mut(symbol) {
            Some(next) => *next = want,
            None => {
                self.next.insert(symbol.to_owned(), want);
            }
        }
        Took::Went
    }

    /// [`IdOrder::take`] of each `(symbol, trade, position)` in turn.
    pub fn take_all<S: AsRef<str>>(
        &mut self,
        batch: impl IntoIterator<Item = (S, Trade, u64)>,
        now: f64,
    ) -> Taken {
        let mut taken = Taken::default();
        for (i, (symbol, trade, seq)) in batch.into_iter().enumerate() {
            if self.take(symbol.as_ref(), trade, seq, now, &mut taken.trades) == Took::Overflow {
                taken.overflowed.push(i);
            }
            taken.by.resize(taken.trades.len(), i);
        }
        taken
    }

    /// Gives up `symbol`'s hole: appends its held trades to `out` in id order and expects the
    /// id after the last of them. Returns how many went.
    pub fn release(&mut self, symbol: &str, out: &mut Vec<Trade>) -> usize {
        let Some(held) = self.held.remove(symbol) else {
            return 0;
        };
        let n = held.trades.len();
        self.count -= n;
        if let Some((&last, _)) = held.trades.last_key_value() {
            self.next.insert(symbol.to_owned(), last.saturating_add(1));
        }
        out.extend(held.trades.into_values().map(|(t, _)| t));
        n
    }

    /// The ids `symbol` waits for, `(first, last)`, if it waits.
    pub fn hole(&self, symbol: &str) -> Option<(i64, i64)> {
        let held = self.held.get(symbol)?;
        let (&first_held, _) = held.trades.first_key_value()?;
        Some((self.next[symbol], first_held - 1))
    }

    /// Symbols holding trades since before `before` (the reader's time).
    pub fn overdue(&self, before: f64) -> Vec<String> {
        let mut out: Vec<String> =
            self.held.iter().filter(|(_, h)| h.since < before).map(|(s, _)| s.clone()).collect();
        out.sort_unstable();
        out
    }

    /// Symbols holding trades.
    pub fn waiting(&self) -> Vec<String> {
        let mut out: Vec<String> = self.held.keys().cloned().collect();
        out.sort_unstable();
        out
    }

    /// The reader applied `symbol`'s trades up to time `last_time`.
    pub fn pushed(&mut self, symbol: &str, last_time: i64) {
        self.last_time.insert(symbol.to_owned(), last_time);
    }

    /// The time the reader's clock may not pass: the earliest latest-applied time of a
    /// symbol that waits (its missing trades are no older). None: nothing waits on one.
    pub fn time_bound(&self) -> Option<i64> {
        self.held.keys().filter_map(|s| self.last_time.get(s).copied()).min()
    }

    /// The reader's earliest position of a held trade: what it has fully applied ends before.
    pub fn first_held_seq(&self) -> Option<u64> {
        self.held.values().flat_map(|h| h.trades.values().map(|&(_, seq)| seq)).min()
    }

    /// Trades held now.
    pub fn held(&self) -> usize {
        self.count
    }

    /// Trades taken at or below their symbol's next id (ever).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn tr(id: i64) -> Trade {
        Trade {
            id,
            price: 1,
            qty: 1,
            first_id: id,
            last_id: id,
            time: T0 + id,
            buyer_is_maker: false,
        }
    }

    fn ids(v: &[Trade]) -> Vec<i64> {
        v.iter().map(|t| t.id).collect()
    }

    #[test]
    fn a_trade_after_a_hole_waits_for_it_and_goes_with_it() {
        let mut o = IdOrder::new();
        let mut out = Vec::new();
        o.start("BTCUSDT", 10);
        assert_eq!(o.take("BTCUSDT", tr(11), 1, 0.0, &mut out), Took::Went);
        assert_eq!(o.take("BTCUSDT", tr(13), 2, 1.0, &mut out), Took::Held);
        assert_eq!(o.take("BTCUSDT", tr(14), 3, 2.0, &mut out), Took::Held);
        assert_eq!(o.take("BTCUSDT", tr(14), 4, 2.0, &mut out), Took::Held); // twice: held once
        assert_eq!((o.hole("BTCUSDT"), o.held(), o.first_held_seq()), (Some((12, 12)), 2, Some(2)));
        assert_eq!(o.overdue(1.0), Vec::<String>::new());
        assert_eq!(o.overdue(1.5), vec!["BTCUSDT".to_owned()]); // held since 1.0
        assert_eq!(o.take("BTCUSDT", tr(12), 5, 3.0, &mut out), Took::Went);
        assert_eq!(ids(&out), [11, 12, 13, 14]);
        assert_eq!((o.hole("BTCUSDT"), o.held(), o.first_held_seq()), (None, 0, None));
        assert_eq!(o.take("BTCUSDT", tr(12), 6, 3.0, &mut out), Took::Duplicate);
        assert_eq!(o.duplicates(), 1);
    }

    #[test]
    fn a_new_symbol_starts_at_its_first_trade_and_a_hole_given_up_lets_all_go_in_order() {
        let mut o = IdOrder::new();
        let mut out = Vec::new();
        assert_eq!(o.take("ETHUSDT", tr(100), 1, 0.0, &mut out), Took::Went);
        o.pushed("ETHUSDT", T0 + 5);
        assert_eq!(o.take("ETHUSDT", tr(104), 2, 0.0, &mut out), Took::Held);
        assert_eq!(o.take("ETHUSDT", tr(103), 3, 0.0, &mut out), Took::Held);
        assert_eq!(o.time_bound(), Some(T0 + 5)); // the clock waits for the missing trades
        assert_eq!(o.waiting(), vec!["ETHUSDT".to_owned()]);
        out.clear();
        assert_eq!(o.release("ETHUSDT", &mut out), 2);
        assert_eq!(ids(&out), [103, 104]);
        assert_eq!(o.take("ETHUSDT", tr(105), 4, 0.0, &mut out), Took::Went);
        assert_eq!(o.take("ETHUSDT", tr(101), 5, 0.0, &mut out), Took::Duplicate);
        assert_eq!((o.time_bound(), o.held(), o.release("ETHUSDT", &mut out)), (None, 0, 0));
    }

    #[test]
    fn past_the_bound_the_symbol_that_would_hold_one_more_goes_on_across_its_hole() {
        let mut o = IdOrder::new();
        let mut out = Vec::new();
        o.start("A", 0);
        o.start("B", 0);
        assert_eq!(o.take("B", tr(5), 0, 0.0, &mut out), Took::Held);
        for id in 3..(MAX_HELD as i64 + 2) {
            assert_eq!(o.take("A", tr(id), 0, 0.0, &mut out), Took::Held, "{id}");
        }
        assert_eq!(o.held(), MAX_HELD);
        assert_eq!(o.take("A", tr(MAX_HELD as i64 + 2), 0, 0.0, &mut out), Took::Overflow);
        assert_eq!(out.len(), MAX_HELD);
        assert!(out.windows(2).all(|w| w[0].id + 1 == w[1].id) && out[0].id == 3);
        assert_eq!((o.held(), o.hole("B"), o.hole("A")), (1, Some((1, 4)), None));
        out.clear();
        assert_eq!(o.take("A", tr(MAX_HELD as i64 + 3), 0, 0.0, &mut out), Took::Went);
    }

    #[test]
    fn a_batch_gives_each_trade_that_went_with_its_symbol() {
        let mut o = IdOrder::new();
        o.start("A", 0);
        let batch = [("A", tr(2), 1), ("B", tr(7), 2), ("A", tr(1), 3), ("A", tr(1), 4)];
        let taken = o.take_all(batch, 0.0);
        assert_eq!(ids(&taken.trades), [7, 1, 2]);
        assert_eq!(taken.by, [1, 2, 2]);
        assert!(taken.overflowed.is_empty());
        assert_eq!((o.held(), o.duplicates()), (0, 1));
    }
}
