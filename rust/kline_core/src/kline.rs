//! The kline record and the rules that build it from trades and from finer klines.

use crate::decimal::{product, QuoteRule};
use crate::trade::Trade;

/// One kline, exact. Prices at 1e-8; `volume` and `taker_buy_volume` at 1e-8;
/// `quote_volume` and `taker_buy_quote_volume` at 1e-16, summed by the venue's [`QuoteRule`]
/// (spot: each trade's p·q truncated to 8 decimals; COIN-M: the exact Σ p·q).
///
/// A flat kline (`trades == 0`) carries the previous close in all four prices and
/// `first_trade_id = last_trade_id = -1`, as Binance prints empty periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kline {
    pub open_time: i64,
    pub close_time: i64,
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    pub volume: i128,
    pub quote_volume: i128,
    pub trades: u64,
    pub taker_buy_volume: i128,
    pub taker_buy_quote_volume: i128,
    pub first_trade_id: i64,
    pub last_trade_id: i64,
    /// aggTrades whose quote value may differ from Binance's (see [`QuoteRule::of_aggtrade`]):
    /// 0 means the quote volumes are Binance's exactly.
    pub inexact_trades: u64,
    /// The exact Σ p·q at 1e-16, whatever the rule (under the per-trade rule `quote_volume`
    /// is this less what truncating each trade removed).
    pub quote_volume_exact: i128,
}

impl Kline {
    /// A kline opened by its first trade.
    #[inline]
    pub fn open_with(trade: &Trade, open_time: i64, close_time: i64, rule: QuoteRule) -> Self {
        let mut k = Kline::flat(open_time, close_time, trade.price);
        k.first_trade_id = trade.first_id;
        k.apply(trade, rule);
        k
    }

    /// An empty period at `price` (the previous close).
    #[inline]
    pub fn flat(open_time: i64, close_time: i64, price: i64) -> Self {
        Kline {
            open_time,
            close_time,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 0,
            quote_volume: 0,
            trades: 0,
            taker_buy_volume: 0,
            taker_buy_quote_volume: 0,
            first_trade_id: -1,
            last_trade_id: -1,
            inexact_trades: 0,
            quote_volume_exact: 0,
        }
    }

    #[inline]
    pub fn is_flat(&self) -> bool {
        self.trades == 0
    }

    /// Adds a later trade of the same bucket.
    #[inline]
    pub fn apply(&mut self, t: &Trade, rule: QuoteRule) {
        let raw = t.raw_trades();
        self.apply_valued(t, rule.of_aggtrade(t.price, t.qty, raw));
    }

    /// [`Kline::apply`] with the trade's quote value (and whether it may be inexact) already
    /// taken by [`QuoteRule::of_aggtrade`].
    #[inline]
    pub fn apply_valued(&mut self, t: &Trade, (pq, inexact): (i128, bool)) {
        if self.trades == 0 {
            self.open = t.price;
            self.high = t.price;
            self.low = t.price;
            self.first_trade_id = t.first_id;
        }
        self.high = self.high.max(t.price);
        self.low = self.low.min(t.price);
        self.close = t.price;
        let q = i128::from(t.qty);
        let raw = t.raw_trades();
        self.inexact_trades += u64::from(inexact);
        self.quote_volume_exact += product(t.price, t.qty);
        self.volume += q;
        self.quote_volume += pq;
        // Without a branch: the side is a coin toss the branch predictor cannot learn.
        let taker_buy = -i128::from(!t.buyer_is_maker); // all ones or zero
        self.taker_buy_volume += q & taker_buy;
        self.taker_buy_quote_volume += pq & taker_buy;
        self.trades += raw;
        self.last_trade_id = t.last_id;
    }

    /// Folds a later, finer kline of the same coarser period into this one.
    ///
    /// A flat row only carries the previous close: it never sets open, high or low.
    #[inline]
    pub fn absorb(&mut self, finer: &Kline) {
        if finer.is_flat() {
            return;
        }
        if self.is_flat() {
            self.open = finer.open;
            self.high = finer.high;
            self.low = finer.low;
            self.first_trade_id = finer.first_trade_id;
        } else {
            self.high = self.high.max(finer.high);
            self.low = self.low.min(finer.low);
        }
        self.close = finer.close;
        self.volume += finer.volume;
        self.quote_volume += finer.quote_volume;
        self.trades += finer.trades;
        self.taker_buy_volume += finer.taker_buy_volume;
        self.taker_buy_quote_volume += finer.taker_buy_quote_volume;
        self.inexact_trades += finer.inexact_trades;
        self.quote_volume_exact += finer.quote_volume_exact;
        self.last_trade_id = finer.last_trade_id;
    }
}

/// A run of empty periods `[start, end)` at one price: what a silence of any length costs.
/// Readers expand it period by period with the interval's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlatRun {
    /// Open time of the first empty period.
    pub start: i64,
    /// Open time of the period after the last empty one.
    pub end: i64,
    pub price: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_period_prints_as_binance_prints_it() {
        let k = Kline::flat(60_000, 119_999, 42);
        assert_eq!((k.open, k.high, k.low, k.close), (42, 42, 42, 42));
        assert_eq!((k.volume, k.quote_volume, k.trades), (0, 0, 0));
        assert_eq!((k.first_trade_id, k.last_trade_id), (-1, -1));
        assert!(k.is_flat());
    }

    #[test]
    fn trades_and_finer_klines_add_up_field_by_field() {
        // p = 0.005773, q = 0.042: p·q = 0.000242466, which Binance cuts to 0.00024246 per
        // raw trade; at 2p, 0.000484932 → 0.00048493. At 1e-16 below.
        let (p, q) = (577_300, 4_200_000);
        let t = |id, price, (first_id, last_id), buyer_is_maker| Trade {
            id,
            price,
            qty: q,
            first_id,
            last_id,
            time: 1_000,
            buyer_is_maker,
        };
        let mut k = Kline::flat(0, 59_999, 0);
        k.apply(&t(1, p, (1, 1), false), QuoteRule::PerTrade); // one raw trade: exact
        k.apply(&t(2, 2 * p, (2, 4), true), QuoteRule::PerTrade); // three: may differ
        let want = Kline {
            open_time: 0,
            close_time: 59_999,
            open: p,
            high: 2 * p,
            low: p,
            close: 2 * p,
            volume: 8_400_000,
            quote_volume: 2_424_600_000_000 + 4_849_300_000_000,
            trades: 4,
            taker_buy_volume: 4_200_000,
            taker_buy_quote_volume: 2_424_600_000_000,
            first_trade_id: 1,
            last_trade_id: 4,
            inexact_trades: 1,
            quote_volume_exact: 2_424_660_000_000 + 4_849_320_000_000,
        };
        assert_eq!(k, want);
        // The next minute (two raw trades, a taker buy) folded into a 2m kline holding `k`.
        let mut next = Kline::flat(60_000, 119_999, 2 * p);
        next.apply(&t(3, p, (5, 6), false), QuoteRule::PerTrade);
        let mut two = Kline { close_time: 119_999, ..k };
        two.absorb(&next);
        let want = Kline {
            close_time: 119_999,
            close: p,
            volume: 12_600_000,
            quote_volume: want.quote_volume + 2_424_600_000_000,
            trades: 6,
            taker_buy_volume: 8_400_000,
            taker_buy_quote_volume: 2 * 2_424_600_000_000,
            last_trade_id: 6,
            inexact_trades: 2,
            quote_volume_exact: want.quote_volume_exact + 2_424_660_000_000,
            ..want
        };
        assert_eq!(two, want);
    }
}
