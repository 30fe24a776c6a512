//! Binance public-data aggTrades and trades CSV.
//!
//! aggTrades, spot: no header, 8 columns `a,p,q,f,l,T,m,M` (`True`/`False`), T in ms before
//! 2025 and µs after. USD-M / COIN-M futures: a header line, 7 columns `a,p,q,f,l,T,m`.
//!
//! trades (raw trades), spot: no header, 7 columns `id,price,qty,quoteQty,time,isBuyerMaker,
//! isBestMatch`; futures: a header line, 6 columns `id,price,qty,quote_qty,time,is_buyer_maker`
//! (COIN-M: `base_qty`, the trade's base-asset value, in place of `quote_qty`).
//! A raw trade is an aggTrade of one trade (`f = l = id`), so every quote value is exact.

use super::digits::{digit_run, digits_value, up_to_16_digits, POW10};
use super::{excerpt, parse_int};
use crate::decimal::parse_fixed8;
use crate::trade::{Skip, Trade};
use memchr::memchr;
use separators::Separators;

mod indexed;
mod separators;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2;

#[inline]
fn parse_bool(s: &[u8]) -> Option<bool> {
    match s {
        b"True" | b"true" | b"TRUE" => Some(true),
        b"False" | b"false" | b"FALSE" => Some(false),
        _ => None,
    }
}

/// Which kind of dump a file holds: from its name (`BTCUSDT-trades-2024-01-02.zip`), else its
/// header, else aggTrades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    #[default]
    AggTrades,
    Trades,
}

impl Layout {
    /// The kind a Binance public-data file name says (`SYMBOL-aggTrades-…`, `SYMBOL-trades-…`).
    pub fn of_file_name(name: &str) -> Option<Layout> {
        let rest = name.split_once('-')?.1;
        if rest.starts_with("aggTrades") {
            Some(Layout::AggTrades)
        } else if rest.starts_with("trades") {
            Some(Layout::Trades)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::AggTrades => "aggTrades",
            Layout::Trades => "trades",
        }
    }
}

const TRADE_NAMES: [&str; 7] =
    ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"];
/// What a trades header may name besides [`TRADE_NAMES`]: COIN-M's column in place of
/// `quote_qty`.
const COIN_M_QUOTE: &str = "base_qty";

const NAMES: [&str; 8] = [
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
    "is_best_match",
];

/// The kind of dump whose header the first line of `text` is: `agg_trade_id` (aggTrades) or
/// `id` (trades) then column names only. Any other line is data, so a corrupt first row is a
/// bad row, not a silent skip.
pub fn header(text: &[u8]) -> Option<Layout> {
    let line = &text[..memchr(b'\n', text).unwrap_or(text.len())];
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut fields = line.split(|&c| c == b',');
    let (layout, names): (Layout, &[&str]) = match fields.next()? {
        f if f.eq_ignore_ascii_case(b"agg_trade_id") => (Layout::AggTrades, &NAMES),
        f if f.eq_ignore_ascii_case(b"id") => (Layout::Trades, &TRADE_NAMES),
        _ => return None,
    };
    let known = |f: &[u8]| {
        names.iter().any(|n| f.eq_ignore_ascii_case(n.as_bytes()))
            || (layout == Layout::Trades && f.eq_ignore_ascii_case(COIN_M_QUOTE.as_bytes()))
    };
    fields.all(known).then_some(layout)
}

/// Whether the first line of `text` is a COIN-M trades header (it names `base_qty`): its
/// quote columns are base-asset volume, which takes the symbol's contract size.
pub fn names_base_qty(text: &[u8]) -> bool {
    let line = &text[..memchr(b'\n', text).unwrap_or(text.len())];
    header(line) == Some(Layout::Trades)
        && line.split(|&c| c == b',').any(|f| {
            let f = f.strip_suffix(b"\r").unwrap_or(f);
            f.eq_ignore_ascii_case(COIN_M_QUOTE.as_bytes())
        })
}

/// Whether the first line of `text` is a header of either kind.
pub fn is_header(text: &[u8]) -> bool {
    header(text).is_some()
}

/// Parses one data row (without its line ending).
#[inline]
pub fn parse_row(line: &[u8]) -> Result<Trade, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut fields: [&[u8]; 8] = [b""; 8];
    let mut n = 0;
    let mut rest = line;
    loop {
        if n == 8 {
            return Err(format!("more than 8 columns in {}", excerpt(line)));
        }
        match memchr(b',', rest) {
            Some(i) => {
                fields[n] = &rest[..i];
                rest = &rest[i + 1..];
                n += 1;
            }
            None => {
                fields[n] = rest;
                n += 1;
                break;
            }
        }
    }
    if n < 7 {
        return Err(format!("{n} columns, expected 7 (futures) or 8 (spot)"));
    }
    let int = |i: usize| {
        parse_int(fields[i])
            .ok_or_else(|| format!("{} is not an integer: {}", NAMES[i], excerpt(fields[i])))
    };
    let dec = |i: usize| parse_fixed8(fields[i]).map_err(|e| format!("{}: {e}", NAMES[i]));
    let buyer_is_maker = parse_bool(fields[6])
        .ok_or_else(|| format!("is_buyer_maker is not a boolean: {}", excerpt(fields[6])))?;
    if n == 8 && parse_bool(fields[7]).is_none() {
        return Err(format!("is_best_match is not a boolean: {}", excerpt(fields[7])));
    }
    Ok(Trade {
        id: int(0)?,
        price: dec(1)?,
        qty: dec(2)?,
        first_id: int(3)?,
        last_id: int(4)?,
        time: int(5)?,
        buyer_is_maker,
    })
}

/// Parses one raw-trade row (without its line ending): `id,price,qty,quoteQty,time,m[,M]`.
pub fn parse_trade_row(line: &[u8]) -> Result<Trade, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let fields: Vec<&[u8]> = line.split(|&c| c == b',').collect();
    if fields.len() < 6 || fields.len() > 7 {
        let n = fields.len();
        return Err(format!("{n} columns, expected 6 (futures trades) or 7 (spot trades)"));
    }
    let int = |i: usize| {
        parse_int(fields[i])
            .ok_or_else(|| format!("{} is not an integer: {}", TRADE_NAMES[i], excerpt(fields[i])))
    };
    let dec = |i: usize| parse_fixed8(fields[i]).map_err(|e| format!("{}: {e}", TRADE_NAMES[i]));
    crate::decimal::parse_fixed8_wide(fields[3])
        .map_err(|e| format!("quote_qty (base_qty on COIN-M): {e}"))?;
    let buyer_is_maker = parse_bool(fields[5])
        .ok_or_else(|| format!("is_buyer_maker is not a boolean: {}", excerpt(fields[5])))?;
    if fields.len() == 7 && parse_bool(fields[6]).is_none() {
        return Err(format!("is_best_match is not a boolean: {}", excerpt(fields[6])));
    }
    let id = int(0)?;
    Ok(Trade {
        id,
        price: dec(1)?,
        qty: dec(2)?,
        first_id: id,
        last_id: id,
        time: int(4)?,
        buyer_is_maker,
    })
}

/// Single-pass reader of the common row shape. Anything unusual returns `None` and the row is
/// re-read by [`parse_row`], which explains what is wrong.
struct Fast<'a> {
    s: &'a [u8],
    i: usize,
}

impl Fast<'_> {
    #[inline(always)]
    fn sep(&mut self) -> Option<()> {
        (*self.s.get(self.i)? == b',').then(|| self.i += 1)
    }

    /// `\d{1,18}`. The usual ids and times (up to 16 digits) are read 8 bytes at a time.
    #[inline(always)]
    fn uint(&mut self) -> Option<i64> {
        if let Some((v, n)) = self.s.get(self.i..self.i + 16).and_then(up_to_16_digits) {
            self.i += n;
            return (n > 0).then_some(v as i64);
        }
        self.uint_bytewise()
    }

    /// [`Fast::uint`] a byte at a time: near the end of a block, or past 16 digits.
    #[cold]
    fn uint_bytewise(&mut self) -> Option<i64> {
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(&c) = self.s.get(self.i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v.wrapping_mul(10).wrapping_add(i64::from(d)); // kept only if ≤ 18 digits
            self.i += 1;
        }
        // 18 digits cannot overflow i64.
        let n = self.i - start;
        (n > 0 && n <= 18).then_some(v)
    }

    #[inline(always)]
    fn int(&mut self) -> Option<i64> {
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
            return self.uint().map(|v| -v);
        }
        self.uint()
    }

    /// `\d{1,11}(\.\d{1,8})?` at 1e-8.
    #[inline(always)]
    fn decimal(&mut self) -> Option<i64> {
        let int = self.uint()?;
        if int >= 92_233_720_368 {
            return None;
        }
        let int = int * SCALE_I64;
        if self.s.get(self.i) != Some(&b'.') {
            return Some(int);
        }
        self.i += 1;
        if let Some(chunk) = self.s.get(self.i..self.i + 9) {
            let a = u64::from_le_bytes(chunk[..8].try_into().ok()?);
            let n = digit_run(a);
            if n == 0 || (n == 8 && chunk[8].is_ascii_digit()) {
                return None; // no digits, or more than 8
            }
            self.i += n;
            return Some(int + (digits_value(a, n) * POW10[8 - n]) as i64);
        }
        let start = self.i;
        let mut frac: i64 = 0;
        while let Some(&c) = self.s.get(self.i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            frac = frac * 10 + i64::from(d);
            self.i += 1;
        }
        let n = self.i - start;
        if n == 0 || n > 8 {
            return None;
        }
        Some(int + frac * 10_i64.pow(8 - n as u32))
    }

    #[inline(always)]
    fn boolean(&mut self) -> Option<bool> {
        let rest = &self.s[self.i.min(self.s.len())..];
        let (v, n) = match rest.first()? {
            b'T' if rest.starts_with(b"True") => (true, 4),
            b't' if rest.starts_with(b"true") => (true, 4),
            b'F' if rest.starts_with(b"False") => (false, 5),
            b'f' if rest.starts_with(b"false") => (false, 5),
            _ => return None,
        };
        self.i += n;
        Some(v)
    }

    /// `id,price,qty,`: how both kinds of row start.
    #[inline(always)]
    fn id_price_qty(&mut self) -> Option<(i64, i64, i64)> {
        let id = self.int()?;
        self.sep()?;
        let price = self.decimal()?;
        self.sep()?;
        let qty = self.decimal()?;
        self.sep()?;
        Some((id, price, qty))
    }

    /// `time,isBuyerMaker`, an optional `,isBestMatch`, then the line ending: how both end.
    #[inline(always)]
    fn time_side_end(&mut self) -> Option<(i64, bool)> {
        let time = self.int()?;
        self.sep()?;
        let buyer_is_maker = self.boolean()?;
        if self.s.get(self.i) == Some(&b',') {
            self.i += 1;
            self.boolean()?;
        }
        if self.s.get(self.i) == Some(&b'\r') {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'\n') => self.i += 1,
            None => {}
            Some(_) => return None,
        }
        Some((time, buyer_is_maker))
    }

    /// One raw-trade row (`id,p,q,quoteQty,T,m[,M]`) up to and including its `\n`.
    #[inline(always)]
    fn trade_row(&mut self) -> Option<Trade> {
        let (id, price, qty) = self.id_price_qty()?;
        self.decimal()?; // quoteQty: Binance's own trunc8(p·q), the rule the core applies
        self.sep()?;
        let (time, buyer_is_maker) = self.time_side_end()?;
        Some(Trade { id, price, qty, first_id: id, last_id: id, time, buyer_is_maker })
    }

    /// One aggTrade row up to and including its `\n` (or the end of the block).
    #[inline(always)]
    fn row(&mut self) -> Option<Trade> {
        let (id, price, qty) = self.id_price_qty()?;
        let first_id = self.int()?;
        self.sep()?;
        let last_id = self.int()?;
        self.sep()?;
        let (time, buyer_is_maker) = self.time_side_end()?;
        Some(Trade { id, price, qty, first_id, last_id, time, buyer_is_maker })
    }
}

const SCALE_I64: i64 = crate::decimal::SCALE;

/// A parsed trade no kline can be built from (zero price, `f > l`, negative time…) is a bad
/// row; Binance's placeholder rows are not (the aggregator counts them as its own).
#[inline]
fn usable<'a>(t: Trade, line: impl FnOnce() -> &'a [u8]) -> Result<Trade, String> {
    match t.defect() {
        Some(Skip::Invalid(why)) => Err(format!("{why}: {}", excerpt(line()))),
        _ => Ok(t),
    }
}

/// One line of `block` from `start`, without its line ending.
fn line_at(block: &[u8], start: usize) -> &[u8] {
    let rest = &block[start..];
    let line = &rest[..memchr(b'\n', rest).unwrap_or(rest.len())];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses a block of whole lines. Good rows go to `trades`; bad rows (unreadable, or values no
/// kline can be built from) to `bad` as (0-based line index in the block, reason). Empty lines
/// are skipped. Returns the line count.
pub fn parse_block(
    layout: Layout,
    block: &[u8],
    trades: &mut Vec<Trade>,
    bad: &mut Vec<(u64, String)>,
) -> u64 {
    if layout == Layout::AggTrades && u32::try_from(block.len()).is_ok() {
        return parse_agg_block(block, trades, bad);
    }
    let mut idx = 0u64;
    let mut i = 0;
    while i < block.len() {
        i = parse_line(layout, block, i, trades, bad, idx);
        idx += 1;
    }
    idx
}

/// An aggTrades block: rows of the usual shape read from their separators' offsets, any other
/// line by [`parse_line`].
fn parse_agg_block(block: &[u8], trades: &mut Vec<Trade>, bad: &mut Vec<(u64, String)>) -> u64 {
    let mut seps = Separators::new();
    seps.index(block, 0);
    let (mut idx, mut i, mut k) = (0u64, 0usize, 0usize);
    while i < block.len() {
        // A row takes at most 8 separators: index on from this row when fewer are left.
        if seps.offsets().len() - k < 8 && seps.to < block.len() && seps.from != i {
            seps.index(block, i);
            k = 0;
        }
        let offsets = seps.offsets();
        if let Some((t, used)) = indexed::agg_row(block, i, &offsets[k..]) {
            match usable(t, || line_at(block, i)) {
                Ok(t) => trades.push(t),
                Err(reason) => bad.push((idx, reason)),
            }
            i = offsets[k + used - 1] as usize + 1;
            k += used;
        } else {
            i = parse_line(Layout::AggTrades, block, i, trades, bad, idx);
            while offsets.get(k).is_some_and(|&o| (o as usize) < i) {
                k += 1;
            }
        }
        idx += 1;
    }
    idx
}

/// Parses the line of `block` from `start` (good rows to `trades`, bad ones to `bad` as line
/// `idx`); returns where the next line starts.
fn parse_line(
    layout: Layout,
    block: &[u8],
    start: usize,
    trades: &mut Vec<Trade>,
    bad: &mut Vec<(u64, String)>,
    idx: u64,
) -> usize {
    let mut fast = Fast { s: block, i: start };
    let row = match layout {
        Layout::AggTrades => fast.row(),
        Layout::Trades => fast.trade_row(),
    };
    if let Some(t) = row {
        match usable(t, || line_at(block, start)) {
            Ok(t) => trades.push(t),
            Err(reason) => bad.push((idx, reason)),
        }
        return fast.i;
    }
    let rest = &block[start..];
    let (line, len) = match memchr(b'\n', rest) {
        Some(i) => (&rest[..i], i + 1),
        None => (rest, rest.len()),
    };
    if !(line.is_empty() || line == b"\r") {
        let slow_row = match layout {
            Layout::AggTrades => parse_row,
            Layout::Trades => parse_trade_row,
        };
        match slow_row(line).and_then(|t| usable(t, || line_at(block, start))) {
            Ok(t) => trades.push(t),
            Err(reason) => bad.push((idx, reason)),
        }
    }
    start + len
}

#[cfg(test)]
mod tests;
