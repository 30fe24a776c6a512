//! One aggregate trade, already parsed into exact integers.

use crate::plausible::Implausible;

/// More raw trades than this in one aggTrade (`l - f + 1`) is a corrupt row, not a trade: the
/// largest real ones hold thousands.
pub const MAX_RAW_TRADES: i64 = 1 << 32;

/// A Binance aggTrade (a `@trade` event is an aggTrade of one raw trade: `f = l = t`).
///
/// `price` and `qty` are mantissas at 1e-8; `time` is in the unit of its source (ms or µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trade {
    /// aggTrade id `a`: strictly increasing per symbol; decides order and dedupe.
    pub id: i64,
    pub price: i64,
    pub qty: i64,
    /// First and last raw trade ids `f`, `l` (inclusive).
    pub first_id: i64,
    pub last_id: i64,
    pub time: i64,
    /// `m`: the buyer was the maker, so the taker sold. `false` counts as taker buy volume.
    pub buyer_is_maker: bool,
}

/// Why a trade was not applied. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Id at or below the last applied id of its symbol.
    Duplicate,
    /// Binance's invalid placeholder row (p = 0, q = 0, f = l = -1).
    Placeholder,
    /// Negative or zero price, negative quantity, `l < f`, negative time.
    Invalid(&'static str),
    /// Its bucket has already closed (time went backwards past a boundary).
    Late,
    /// Its time cannot be true (see [`crate::plausible`]).
    Implausible(Implausible),
}

impl Trade {
    /// Checks the values a kline can be built from; `None` when usable.
    pub fn defect(&self) -> Option<Skip> {
        if self.price == 0 && self.qty == 0 && self.first_id == -1 && self.last_id == -1 {
            return Some(Skip::Placeholder);
        }
        if self.price <= 0 {
            return Some(Skip::Invalid("price is not positive"));
        }
        if self.qty < 0 {
            return Some(Skip::Invalid("quantity is negative"));
        }
        if self.last_id < self.first_id || self.first_id < 0 {
            return Some(Skip::Invalid("raw trade ids f..l are not a range"));
        }
        if self.last_id - self.first_id >= MAX_RAW_TRADES {
            return Some(Skip::Invalid("raw trade ids f..l span more than 2^32 trades"));
        }
        if self.time < 0 {
            return Some(Skip::Invalid("time is negative"));
        }
        None
    }

    /// Raw trades this aggTrade stands for (`l - f + 1`).
    #[inline]
    pub fn raw_trades(&self) -> u64 {
        (self.last_id - self.first_id + 1) as u64
    }
}
