//! Binance public-data aggTrades and trades CSV.
//!
//! aggTrades, spot: no header, 8 columns `a,p,q,f,l,T,m,M` (`True`/`False`), T in ms before
//! 2025 and µs after. USD-M / COIN-M futures: a header line, 7 columns `a,p,q,f,l,T,m`.
//!
//! trades (raw trades), spot: no header, 7 columns `id,price,qty,quoteQty,time,isBuyerMaker,
//! isBestMatch`; futures: a header line, 6 columns `id,price,qty,quote_qty,time,is_buyer_maker`.
//! A raw trade is an aggTrade of one trade (`f = l = id`), so every quote value is exact.

use super::digits::{digit_run, digits_value, POW10};
use super::{excerpt, parse_int};
use crate::decimal::parse_fixed8;
use crate::trade::{Skip, Trade};
use memchr::memchr;

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
    fields.all(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n.as_bytes()))).then_some(layout)
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
    crate::decimal::parse_fixed8_wide(fields[3]).map_err(|e| format!("quote_qty: {e}"))?;
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
        if let Some(chunk) = self.s.get(self.i..self.i + 16) {
            let a = u64::from_le_bytes(chunk[..8].try_into().ok()?);
            let n = digit_run(a);
            if n < 8 {
                self.i += n;
                return (n > 0).then(|| digits_value(a, n) as i64);
            }
            let b = u64::from_le_bytes(chunk[8..].try_into().ok()?);
            let m = digit_run(b);
            if m < 8 {
                self.i += 8 + m;
                let v = digits_value(a, 8) * POW10[m] + if m > 0 { digits_value(b, m) } else { 0 };
                return Some(v as i64);
            }
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
    let slow_row = match layout {
        Layout::AggTrades => parse_row,
        Layout::Trades => parse_trade_row,
    };
    let mut idx = 0u64;
    let mut fast = Fast { s: block, i: 0 };
    while fast.i < block.len() {
        let start = fast.i;
        let row = match layout {
            Layout::AggTrades => fast.row(),
            Layout::Trades => fast.trade_row(),
        };
        if let Some(t) = row {
            match usable(t, || line_at(block, start)) {
                Ok(t) => trades.push(t),
                Err(reason) => bad.push((idx, reason)),
            }
            idx += 1;
            continue;
        }
        let rest = &block[start..];
        let (line, len) = match memchr(b'\n', rest) {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        fast.i = start + len;
        if !(line.is_empty() || line == b"\r") {
            match slow_row(line).and_then(|t| usable(t, || line_at(block, start))) {
                Ok(t) => trades.push(t),
                Err(reason) => bad.push((idx, reason)),
            }
        }
        idx += 1;
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_row() {
        let t = parse_row(
            b"202790190,7139.89000000,0.06702300,222825297,222825297,1577977823305,False,True",
        )
        .unwrap();
        assert_eq!(
            t,
            Trade {
                id: 202_790_190,
                price: 713_989_000_000,
                qty: 6_702_300,
                first_id: 222_825_297,
                last_id: 222_825_297,
                time: 1_577_977_823_305,
                buyer_is_maker: false,
            }
        );
    }

    #[test]
    fn futures_row_and_header() {
        assert!(is_header(b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\r\n1,2"));
        assert!(is_header(b"\xEF\xBB\xBFagg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match"));
        // A corrupt first row is data (a bad row), whatever letter it starts with.
        for line in [&b"x1,1.0,1.0,1,1,5,true"[..], b"garbage", b"agg_trade_id,1.0,1.0,1,1,5", b""]
        {
            assert!(!is_header(line), "{}", String::from_utf8_lossy(line));
        }
        let t = parse_row(b"26129,0.01633102,4.70443515,27781,27781,1498793709153,true\r").unwrap();
        assert!(t.buyer_is_maker);
        assert_eq!(t.qty, 470_443_515);
    }

    #[test]
    fn raw_trade_rows_spot_and_futures() {
        // Spot trades: id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch (no header).
        let spot = b"3380000000,42000.01000000,0.00120000,50.40001200,1704153600123,True,True\n\
                     3380000001,42000.02000000,0.50000000,21000.01000000,1704153600456,False,True";
        let (mut trades, mut bad) = (Vec::new(), Vec::new());
        assert_eq!(parse_block(Layout::Trades, spot, &mut trades, &mut bad), 2);
        assert!(bad.is_empty(), "{bad:?}");
        let t = trades[0];
        assert_eq!((t.id, t.first_id, t.last_id), (3_380_000_000, 3_380_000_000, 3_380_000_000));
        assert_eq!(
            (t.price, t.qty, t.time, t.buyer_is_maker),
            (4_200_001_000_000, 120_000, 1_704_153_600_123, true)
        );
        assert!(!trades[1].buyer_is_maker);
        // Futures trades: a header, then id,price,qty,quote_qty,time,is_buyer_maker.
        let futures = b"id,price,qty,quote_qty,time,is_buyer_maker\n7,0.2468,3218,794.2024,1626992767899,true\n";
        assert_eq!(header(futures), Some(Layout::Trades));
        assert_eq!(header(b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"), Some(Layout::AggTrades));
        let body = &futures[futures.iter().position(|&c| c == b'\n').unwrap() + 1..];
        trades.clear();
        assert_eq!(parse_block(Layout::Trades, body, &mut trades, &mut bad), 1);
        assert_eq!(
            (trades[0].id, trades[0].price, trades[0].qty),
            (7, 24_680_000, 321_800_000_000)
        );
        // The careful path says what is wrong.
        for (row, why) in [
            (&b"1,2.0,3.0,6.0,5"[..], "5 columns"),
            (b"1,2.0,3.0,6.0,5,maybe", "is_buyer_maker is not a boolean"),
            (b"1,2.0,3.0,x,5,true", "quote_qty"),
            (b"x,2.0,3.0,6.0,5,true", "id is not an integer"),
        ] {
            let err = parse_trade_row(row).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        assert_eq!(Layout::of_file_name("BTCUSDT-trades-2024-01-02.zip"), Some(Layout::Trades));
        assert_eq!(
            Layout::of_file_name("BTCUSDT-aggTrades-2024-01-02.zip"),
            Some(Layout::AggTrades)
        );
        assert_eq!(Layout::of_file_name("BTCUSDT-1m-2024-01-02.zip"), None);
    }

    #[test]
    fn bad_rows_say_why() {
        let cases: [(&[u8], &str); 7] = [
            (b"1,2,3", "3 columns"),
            (b"x,1.0,1.0,1,1,1,true", "agg_trade_id is not an integer"),
            (b"1,1.0.0,1.0,1,1,1,true", "price: malformed"),
            (b"1,1.0,1.000000001,1,1,1,true", "quantity: more than 8 decimals"),
            (b"1,1.0,1.0,1,1,1,maybe", "is_buyer_maker is not a boolean"),
            (b"1,1.0,1.0,1,1,1,true,x", "is_best_match"),
            (b"1,1.0,1.0,1,1,1,true,true,9", "more than 8 columns"),
        ];
        for (row, want) in cases {
            let err = parse_row(row).unwrap_err();
            assert!(err.contains(want), "{err} lacks {want}");
        }
    }

    #[test]
    fn fast_path_agrees_with_the_careful_one() {
        let rows: [&[u8]; 10] = [
            b"1,1.0,1.0,0,9223372036854775807,1,true",
            b"1,1.0,1.0,0,1,99999999999999999999999,true",
            b"1,7139.89000000,0.06702300,2,3,1577977823305,False,True",
            b"1,7139.89,0.5,2,3,1577977823305,true",
            b"-1,0,0,-1,-1,1,False,True",
            b"1,92233720367.99999999,1,2,3,4,true",
            b"1,92233720368.54775807,1,2,3,4,true",
            b"1,1.000000000,1,2,3,4,true",
            b"1,1.00000001,1,2,3,1735689600000000,false\r",
            b"1,12345678.1234567x,1,2,3,4,true",
        ];
        for row in rows {
            let mut fast = Fast { s: row, i: 0 };
            let careful = parse_row(row).ok();
            // `None` falls back to parse_row.
            if let Some(t) = fast.row() {
                assert_eq!(Some(t), careful, "{}", String::from_utf8_lossy(row));
            }
            let (mut trades, mut bad) = (Vec::new(), Vec::new());
            parse_block(Layout::AggTrades, row, &mut trades, &mut bad);
            let usable = careful.and_then(|t| usable(t, || row).ok());
            assert_eq!(trades.first().copied(), usable, "{}", String::from_utf8_lossy(row));
        }
    }

    /// `n` random digits (a leading zero now and then).
    fn digits(n: usize) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        proptest::collection::vec(proptest::sample::select(b"0123456789".to_vec()), n)
            .prop_map(|d| String::from_utf8(d).unwrap())
    }

    /// A row in the usual shape with numbers of any length (1 to 20 digits, 0 to 10 decimals),
    /// followed by another line, so 8- and 16-byte reads see what comes after each field.
    fn any_length_row() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::strategy::Strategy;
        let int = (1usize..=20).prop_flat_map(digits);
        let dec = ((1usize..=13).prop_flat_map(digits), (0usize..=10).prop_flat_map(digits))
            .prop_map(|(i, f)| if f.is_empty() { i } else { format!("{i}.{f}") });
        (int.clone(), dec.clone(), dec, int.clone(), int.clone(), int, proptest::bool::ANY)
            .prop_map(|(a, p, q, f, l, t, m)| {
                format!("{a},{p},{q},{f},{l},{t},{m}\n1,1,1,1,1,1,true\n").into_bytes()
            })
    }

    proptest::proptest! {
        #[test]
        fn fast_and_careful_parsers_agree_on_numbers_of_any_length(block in any_length_row()) {
            let (mut trades, mut bad) = (Vec::new(), Vec::new());
            parse_block(Layout::AggTrades, &block, &mut trades, &mut bad);
            let row = line_at(&block, 0);
            let careful = parse_row(row).and_then(|t| usable(t, || row));
            let first = if bad.first().is_some_and(|b| b.0 == 0) { None } else { trades.first().copied() };
            proptest::prop_assert_eq!(first, careful.clone().ok());
            proptest::prop_assert_eq!(bad.first().filter(|b| b.0 == 0).map(|b| b.1.clone()), careful.err());
        }

        #[test]
        fn fast_and_careful_parsers_agree_on_any_bytes(row in proptest::collection::vec(
            proptest::sample::select(b"0123456789.,-TrueFalsf\r".to_vec()), 0..80)) {
            let (mut trades, mut bad) = (Vec::new(), Vec::new());
            parse_block(Layout::AggTrades, &row, &mut trades, &mut bad);
            let careful = parse_row(&row).and_then(|t| usable(t, || line_at(&row, 0)));
            if !row.is_empty() && !row.contains(&b'\n') && row != b"\r" {
                proptest::prop_assert_eq!(trades.first().copied(), careful.clone().ok());
                proptest::prop_assert_eq!(bad.first().map(|b| b.1.clone()), careful.err());
            }
        }
    }

    #[test]
    fn values_no_kline_can_use_are_bad_rows_but_placeholders_are_not() {
        let block = b"1,-1.5,1.0,1,1,5,true\n2,0,1.0,1,1,5,true\n3,1.0,1.0,5,4,5,true\n\
                      4,1.0,1.0,1,1,-5,true\n5,1.0,1.0,0,9223372036854775807,5,true\n\
                      6,0,0,-1,-1,5,true\n7,1.0,1.0,1,1,5,true\n";
        let (mut trades, mut bad) = (Vec::new(), Vec::new());
        assert_eq!(parse_block(Layout::AggTrades, block, &mut trades, &mut bad), 7);
        assert_eq!(trades.iter().map(|t| t.id).collect::<Vec<_>>(), [6, 7]);
        let reasons: Vec<_> = bad.iter().map(|(i, r)| (*i, r.split(':').next().unwrap())).collect();
        assert_eq!(
            reasons,
            [
                (0, "price is not positive"),
                (1, "price is not positive"),
                (2, "raw trade ids f..l are not a range"),
                (3, "time is negative"),
                (4, "raw trade ids f..l span more than 2^32 trades"),
            ]
        );
        assert!(bad[0].1.contains("\"1,-1.5,1.0,1,1,5,true\""), "{}", bad[0].1);
    }

    #[test]
    fn a_long_bad_line_is_quoted_cut() {
        let pad = "x".repeat(1 << 20);
        let rows = [
            format!("1,1.0,1.0,1,1,5,true,true,{pad}"),
            format!("{pad},1.0,1.0,1,1,5,true"),
            format!("1,1.0,1.0,1,1,5,{pad}"),
            format!("1,1.0,1.0,1,1,5,true,{pad}"),
            format!("1,{pad},1.0,1,1,5,true"),
        ];
        for row in rows {
            let (mut trades, mut bad) = (Vec::new(), Vec::new());
            parse_block(Layout::AggTrades, row.as_bytes(), &mut trades, &mut bad);
            let reason = &bad[0].1;
            assert!(reason.len() < 200, "{} bytes: {:.200}", reason.len(), reason);
        }
    }

    #[test]
    fn block_counts_lines_and_reports_bad_ones() {
        let block = b"1,1.0,1.0,1,1,5,true\n\nbad\n2,1.0,1.0,2,2,6,false\n";
        let (mut trades, mut bad) = (Vec::new(), Vec::new());
        assert_eq!(parse_block(Layout::AggTrades, block, &mut trades, &mut bad), 4);
        assert_eq!(trades.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 2);
    }
}
