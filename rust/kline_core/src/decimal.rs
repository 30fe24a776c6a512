//! Decimal text ↔ scaled integers.
//!
//! Prices and quantities are `i64` mantissas at 1e-8 ([`SCALE`]); sums of them are `i128`
//! at 1e-8 and products p·q are `i128` at 1e-16 ([`SCALE_SQ`]). No float touches a value.

use thiserror::Error;

/// Decimals of every price and quantity (Binance prints 8).
pub const DECIMALS: usize = 8;
/// 1e8: one unit of the last decimal is `1 / SCALE`.
pub const SCALE: i64 = 100_000_000;
/// 1e16: the scale of a price × quantity product.
pub const SCALE_SQ: i128 = (SCALE as i128) * (SCALE as i128);

/// Why a decimal text was refused. The text itself is kept so the message names it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecimalError {
    #[error("empty number")]
    Empty,
    #[error("malformed number {0:?}")]
    Malformed(String),
    #[error("more than 8 decimals in {0:?}")]
    TooPrecise(String),
    #[error("more than {0} decimals in {1:?}")]
    TooPreciseFor(usize, String),
    #[error("number {0:?} out of range (|x| must be below 92233720368.54775808)")]
    Overflow(String),
}

fn text(s: &[u8]) -> String {
    String::from_utf8_lossy(&s[..s.len().min(64)]).into_owned()
}

const POW10: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// Parses `-?\d+(\.\d+)?` into a mantissa at 1e-8.
///
/// Trailing zeros past the 8th decimal are accepted (the value is exact); any other 9th
/// decimal is [`DecimalError::TooPrecise`]. Exponents, `+`, spaces and empty parts are refused.
pub fn parse_fixed8(s: &[u8]) -> Result<i64, DecimalError> {
    if let Some(v) = parse_fixed8_short(s) {
        return Ok(v);
    }
    let wide = parse_fixed8_wide(s)?;
    i64::try_from(wide).map_err(|_| DecimalError::Overflow(text(s)))
}

/// The usual case in integer arithmetic: `\d{1,10}(\.\d{1,8})?`, which cannot overflow.
/// `None` sends everything else (signs, long or odd text, errors) to the careful parser.
#[inline]
fn parse_fixed8_short(s: &[u8]) -> Option<i64> {
    let dot = s.iter().position(|&c| c == b'.').unwrap_or(s.len());
    let (int, frac) = (&s[..dot], s.get(dot + 1..).unwrap_or(&[]));
    if int.is_empty()
        || int.len() > 10
        || frac.len() > DECIMALS
        || (dot < s.len() && frac.is_empty())
    {
        return None;
    }
    let mut v: i64 = 0;
    for &c in int {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    let mut f: i64 = 0;
    for &c in frac {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        f = f * 10 + i64::from(d);
    }
    Some(v * SCALE + f * POW10[DECIMALS - frac.len()] as i64)
}

/// [`parse_fixed8`] for sums (volumes), which may pass `i64` at 1e-8: `i128` mantissa.
pub fn parse_fixed8_wide(s: &[u8]) -> Result<i128, DecimalError> {
    parse_scaled(s, DECIMALS)
}

/// The most decimals [`parse_scaled`] and [`format_scaled`] take (16: a p·q product's scale).
pub const MAX_SCALED_DECIMALS: usize = 2 * DECIMALS;

/// Parses `-?\d+(\.\d+)?` into an `i128` mantissa at `10^-decimals` (8: prices, volumes;
/// 16: quote sums). Trailing zeros past the last decimal are accepted; any other digit there
/// is [`DecimalError::TooPrecise`]. `decimals` above [`MAX_SCALED_DECIMALS`] is a caller bug.
pub fn parse_scaled(s: &[u8], decimals: usize) -> Result<i128, DecimalError> {
    assert!(decimals <= MAX_SCALED_DECIMALS, "at most {MAX_SCALED_DECIMALS} decimals");
    if s.is_empty() {
        return Err(DecimalError::Empty);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let overflow = || DecimalError::Overflow(text(s));
    let mut int_part: i128 = 0;
    let mut i = 0;
    while i < digits.len() {
        let d = digits[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        int_part = int_part
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(d)))
            .ok_or_else(overflow)?;
        i += 1;
    }
    if i == 0 {
        return Err(DecimalError::Malformed(text(s)));
    }
    let mut frac: i128 = 0;
    let mut frac_digits = 0usize;
    if i < digits.len() {
        if digits[i] != b'.' || i + 1 == digits.len() {
            return Err(DecimalError::Malformed(text(s)));
        }
        for &c in &digits[i + 1..] {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return Err(DecimalError::Malformed(text(s)));
            }
            if frac_digits < decimals {
                frac = frac * 10 + i128::from(d);
                frac_digits += 1;
            } else if d != 0 {
                return Err(if decimals == DECIMALS {
                    DecimalError::TooPrecise(text(s))
                } else {
                    DecimalError::TooPreciseFor(decimals, text(s))
                });
            }
        }
    }
    let mantissa = int_part
        .checked_mul(10i128.pow(decimals as u32))
        .and_then(|v| v.checked_add(frac * 10i128.pow((decimals - frac_digits) as u32)))
        .ok_or_else(overflow)?;
    Ok(if neg { -mantissa } else { mantissa })
}

/// Parses a decimal `str`; see [`parse_fixed8`].
pub fn parse_decimal(s: &str) -> Result<i64, DecimalError> {
    parse_fixed8(s.as_bytes())
}

/// Appends `v / 10^scale_digits` as text with exactly `scale_digits` decimals.
fn write_scaled(out: &mut Vec<u8>, v: i128, scale_digits: usize) {
    use std::io::Write as _;
    let p = 10u128.pow(scale_digits as u32);
    let mag = v.unsigned_abs();
    let sign = if v < 0 { "-" } else { "" };
    write!(out, "{sign}{}.{:0scale_digits$}", mag / p, mag % p).expect("Vec write");
}

/// Appends a 1e-8 value as Binance prints it: `7195.24000000`.
pub fn write_fixed8(out: &mut Vec<u8>, v: i128) {
    write_scaled(out, v, DECIMALS);
}

/// `v / 10^decimals` as text with exactly `decimals` decimals (at most
/// [`MAX_SCALED_DECIMALS`]): the exact text of a mantissa, the inverse of [`parse_scaled`].
pub fn format_scaled(v: i128, decimals: usize) -> String {
    assert!(decimals <= MAX_SCALED_DECIMALS, "at most {MAX_SCALED_DECIMALS} decimals");
    let mut out = Vec::with_capacity(48);
    write_scaled(&mut out, v, decimals);
    String::from_utf8(out).expect("ascii")
}

/// A 1e-8 value as Binance's 8-decimal text.
pub fn format_fixed8(v: i128) -> String {
    format_scaled(v, DECIMALS)
}

/// A 1e-16 value (a p·q product or its sum) with all 16 decimals, for diagnostics.
pub fn format_fixed16(v: i128) -> String {
    format_scaled(v, 2 * DECIMALS)
}

/// A quote sum at 1e-16 as Binance prints it: 8 decimals, the rest truncated.
pub fn format_quote(v: i128) -> String {
    format_fixed8(quote_to_fixed8(v))
}

/// p·q at 1e-16; exact for any two `i64` mantissas.
#[inline]
pub fn product(price: i64, qty: i64) -> i128 {
    i128::from(price) * i128::from(qty)
}

/// Largest COIN-M contract size [`QuoteRule::Contracts`] takes (Binance's are 10 and 100 USD):
/// with it, `qty × size × 1e16` stays inside `i128` for any `i64` quantity.
pub const MAX_CONTRACT_SIZE: u32 = 1_000;

/// How a kline sums its trades' quote values (see `docs/quote-volume-rounding.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuoteRule {
    /// Spot, Binance US and USD-M: each trade's p·q truncated to 8 decimals, then summed (a real
    /// spot XMRBTC minute and REST `quoteQty`). From aggTrades this is exact where each aggTrade
    /// is one raw trade or its p·q fits 8 decimals.
    #[default]
    PerTrade,
    /// The exact Σ p·q, brought to 8 decimals once, when printed.
    ExactSum,
    /// COIN-M: the quote columns are base-asset volume, each trade's `qty` contracts × `size`
    /// (the symbol's `contractSize` in USD) / price, summed at 1e-16 (each value truncated
    /// there) and brought to 8 decimals once, when printed (real COIN-M captures: no
    /// per-trade rounding to 8 decimals).
    Contracts { size: u32 },
}

impl QuoteRule {
    /// One trade's contribution to quote volume, at 1e-16.
    #[inline]
    pub fn value(self, price: i64, qty: i64) -> i128 {
        self.of_aggtrade(price, qty, 1).0
    }

    /// An aggTrade's contribution to quote volume at 1e-16, and whether it may differ from
    /// Binance's: under the per-trade rule, when it holds several raw trades and its p·q does
    /// not fit 8 decimals (Binance truncates each raw trade's p·q, which an aggTrade hides; the
    /// difference is at most `(raw_trades − 1) × 1e-8`). Under the contract rule an aggTrade's
    /// raw trades share its price, so its value is theirs summed.
    #[inline]
    pub fn of_aggtrade(self, price: i64, qty: i64, raw_trades: u64) -> (i128, bool) {
        match self {
            QuoteRule::PerTrade => {
                let pq = product(price, qty);
                // (p·q) mod 1e8 from |p| mod 1e8 and |q| mod 1e8: unsigned 64-bit arithmetic,
                // no i128 division on the trade path; with p·q's sign, what truncation toward
                // zero removes.
                let s = SCALE as u64;
                let cut = (price.unsigned_abs() % s) * (qty.unsigned_abs() % s) % s;
                let cut = if (price ^ qty) < 0 { -(cut as i64) } else { cut as i64 };
                (pq - i128::from(cut), cut != 0 && raw_trades > 1)
            }
            QuoteRule::ExactSum => (product(price, qty), false),
            QuoteRule::Contracts { size } => (base_of_contracts(price, qty, size), false),
        }
    }

    /// `"per-trade"`, `"exact-sum"` or `"contracts:<size>"`.
    pub fn name(self) -> String {
        match self {
            QuoteRule::PerTrade => "per-trade".into(),
            QuoteRule::ExactSum => "exact-sum".into(),
            QuoteRule::Contracts { size } => format!("contracts:{size}"),
        }
    }

    /// The rule a name gives; `contracts:<size>` with a size in 1..=[`MAX_CONTRACT_SIZE`].
    pub fn parse(name: &str) -> Option<QuoteRule> {
        match name {
            "per-trade" => Some(QuoteRule::PerTrade),
            "exact-sum" => Some(QuoteRule::ExactSum),
            _ => {
                let size = name.strip_prefix("contracts:")?;
                let ok = !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit());
                QuoteRule::contracts(size.parse().ok().filter(|_| ok)?)
            }
        }
    }

    /// COIN-M's rule for a contract of `size` USD, if within 1..=[`MAX_CONTRACT_SIZE`].
    pub fn contracts(size: u32) -> Option<QuoteRule> {
        (1..=MAX_CONTRACT_SIZE).contains(&size).then_some(QuoteRule::Contracts { size })
    }
}

/// `qty` contracts of `size` USD at `price`, in the base asset at 1e-16: `qty × size / price`,
/// truncated toward zero (0 for a price that is not positive, which no accepted trade has).
#[inline]
pub fn base_of_contracts(price: i64, qty: i64, size: u32) -> i128 {
    debug_assert!(size <= MAX_CONTRACT_SIZE);
    let num = i128::from(qty) * i128::from(size) * SCALE_SQ;
    if price > 0 {
        num / i128::from(price)
    } else {
        0
    }
}

/// A 1e-16 amount brought to 1e-8 the way Binance prints quote volumes.
///
/// ROUNDING: see `docs/quote-volume-rounding.md` for the evidence behind the rule.
#[inline]
pub fn quote_to_fixed8(v: i128) -> i128 {
    v / i128::from(SCALE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_at_8_and_16_decimals_round_trips_exactly() {
        let huge = i128::MAX / 10; // volume sums pass i64; quote sums keep 16 decimals
        for (v, d) in [(huge, 16), (-huge, 8), (0, 16), (-1, 16), (1, 8)] {
            let t = format_scaled(v, d);
            assert_eq!(t.rsplit('.').next().map(str::len), Some(d), "{t}");
            assert_eq!(parse_scaled(t.as_bytes(), d), Ok(v), "{t}");
        }
        assert_eq!(format_scaled(-1, 16), "-0.0000000000000001");
        assert_eq!(parse_scaled(b"0.00000000000000010", 16), Ok(1), "a trailing zero is exact");
        assert_eq!(
            parse_scaled(b"0.00000000000000001", 16),
            Err(DecimalError::TooPreciseFor(16, "0.00000000000000001".into()))
        );
        assert_eq!(
            DecimalError::TooPreciseFor(16, "x".into()).to_string(),
            "more than 16 decimals in \"x\""
        );
        assert!(matches!(parse_scaled(b"1e5", 16), Err(DecimalError::Malformed(_))));
        let past = format!("{}0", i128::MAX);
        assert!(matches!(parse_scaled(past.as_bytes(), 8), Err(DecimalError::Overflow(_))));
    }

    #[test]
    fn a_quote_sum_prints_truncated_to_8_decimals() {
        assert_eq!(format_quote(12_345_678_999_999_999), "1.23456789");
        assert_eq!(format_quote(99_999_999), "0.00000000");
        assert_eq!(format_quote(i128::from(i64::MAX) * 1_000_000_000), "922337203685.47758070");
    }

    #[test]
    fn quote_volume_text_truncates_as_binance_prints_it() {
        // Real spot XMRBTC minute 2021-08-14 14:46 UTC (docs/quote-volume-rounding.md): after
        // 0.005773 x 0.042 and 0.00578 x 0.07 Binance printed q = 0.00064706; the exact
        // 0.000647066 rounded half-up would print 0.00064707.
        let exact = product(577_300, 4_200_000) + product(578_000, 7_000_000);
        assert_eq!(exact, 6_470_660_000_000);
        assert_eq!(quote_to_fixed8(exact), 64_706);
    }

    #[test]
    fn spot_quote_volume_truncates_each_trade_then_sums() {
        // Real spot XMRBTC minute 2021-08-14 14:46 UTC (cryptofeed capture, issue 12): after
        // the 2nd, 3rd and 4th trade Binance printed q = 0.00064706, 0.00196330, 0.00222308.
        // The exact sum truncated once prints …331 and …309 for the last two.
        let trades = [(577_300, 4_200_000), (578_000, 7_000_000), (577_300, 22_800_000)];
        let trades = [trades[0], trades[1], trades[2], (577_300, 4_500_000)];
        let mut per_trade = 0;
        let mut exact = 0;
        let mut printed = vec![];
        for (i, &(p, q)) in trades.iter().enumerate() {
            per_trade += QuoteRule::PerTrade.value(p, q);
            exact += QuoteRule::ExactSum.value(p, q);
            if i > 0 {
                printed.push((quote_to_fixed8(per_trade), quote_to_fixed8(exact)));
            }
        }
        assert_eq!(printed, [(64_706, 64_706), (196_330, 196_331), (222_308, 222_309)]);
        // REST trade records: quoteQty 0.03577 × 0.1267 = 0.004532059 → 0.00453205.
        assert_eq!(QuoteRule::PerTrade.value(3_577_000, 12_670_000), 453_205 * 100_000_000);
    }

    #[test]
    fn a_several_trade_aggtrade_is_inexact_only_when_its_product_passes_8_decimals() {
        let r = QuoteRule::PerTrade;
        // 0.005773 × 0.042 = 0.000242466 has 9 decimals.
        assert_eq!(r.of_aggtrade(577_300, 4_200_000, 2), (24_246 * 100_000_000, true));
        // One raw trade: truncated as Binance truncates it.
        assert_eq!(r.of_aggtrade(577_300, 4_200_000, 1), (24_246 * 100_000_000, false));
        assert_eq!(r.of_aggtrade(100_000_000, 4_200_000, 5), (4_200_000 * 100_000_000, false));
        let exact = QuoteRule::ExactSum.of_aggtrade(577_300, 4_200_000, 2);
        assert_eq!(exact, (2_424_660_000_000, false));
        for r in [QuoteRule::PerTrade, QuoteRule::ExactSum, QuoteRule::Contracts { size: 100 }] {
            assert_eq!(QuoteRule::parse(&r.name()), Some(r));
        }
        assert_eq!(QuoteRule::parse("half-up"), None);
        assert_eq!(QuoteRule::parse("contracts:1000"), Some(QuoteRule::Contracts { size: 1000 }));
        for bad in ["contracts:0", "contracts:1001", "contracts:+5", "contracts:", "contracts:1e2"]
        {
            assert_eq!(QuoteRule::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_coin_m_trade_is_worth_its_contracts_times_the_size_over_the_price_in_base_asset() {
        let btc = QuoteRule::Contracts { size: 100 };
        // 3 contracts of 100 USD at 32000: 0.009375 BTC, at 1e-16.
        assert_eq!(btc.of_aggtrade(3_200_000_000_000, 300_000_000, 4), (93_750_000_000_000, false));
        // 1 contract of 10 USD at 3: 3.3333333333333333 (truncated at the 16th decimal).
        let ten = QuoteRule::Contracts { size: 10 };
        assert_eq!(ten.value(300_000_000, 100_000_000), 33_333_333_333_333_333);
        // The largest size and quantity stay inside i128; a price of 0 is worth nothing.
        let max = QuoteRule::Contracts { size: MAX_CONTRACT_SIZE };
        assert_eq!(max.value(1, i64::MAX), i128::from(i64::MAX) * 1000 * SCALE_SQ);
        assert_eq!(max.value(0, 5), 0);
        assert_eq!(ten.value(300_000_000, -100_000_000), -33_333_333_333_333_333);
    }

    #[test]
    fn parses_binance_texts() {
        assert_eq!(parse_decimal("7195.24000000"), Ok(719_524_000_000));
        assert_eq!(parse_decimal("0.00000001"), Ok(1));
        assert_eq!(parse_decimal("0"), Ok(0));
        assert_eq!(parse_decimal("12"), Ok(1_200_000_000));
        assert_eq!(parse_decimal("1.5"), Ok(150_000_000));
        assert_eq!(parse_decimal("-2.25"), Ok(-225_000_000));
        assert_eq!(parse_decimal("1.000000000000"), Ok(SCALE));
        assert_eq!(parse_decimal("92233720368.54775807"), Ok(i64::MAX));
        assert_eq!(parse_decimal("-92233720368.54775808"), Ok(i64::MIN));
    }

    #[test]
    fn the_usual_texts_take_the_short_path_and_the_rest_do_not() {
        // Same values either way (a property below); this pins which path parses them.
        assert_eq!(parse_fixed8_short(b"7195.24000000"), Some(719_524_000_000));
        assert_eq!(parse_fixed8_short(b"0.00000001"), Some(1));
        assert_eq!(parse_fixed8_short(b"12"), Some(1_200_000_000));
        assert_eq!(parse_fixed8_short(b"1.5"), Some(150_000_000));
        assert_eq!(parse_fixed8_short(b"9999999999.99999999"), Some(999_999_999_999_999_999));
        for other in [&b"-2.25"[..], b"1.000000000", b"12345678901", b"1.", b".5", b"", b"1e5"] {
            assert_eq!(parse_fixed8_short(other), None, "{}", text(other));
        }
    }

    #[test]
    fn one_times_one_is_one_unit_of_the_product_scale() {
        assert_eq!(product(SCALE, SCALE), SCALE_SQ);
        assert_eq!(format_fixed16(SCALE_SQ), "1.0000000000000000");
    }

    #[test]
    fn refuses_bad_texts_by_name() {
        assert_eq!(parse_decimal(""), Err(DecimalError::Empty));
        for bad in ["abc", "1.", ".5", "1e5", "+1", " 1", "1 ", "1.2.3", "-", "1,5", "0x10"] {
            assert!(
                matches!(parse_decimal(bad), Err(DecimalError::Malformed(ref t)) if t == bad),
                "{bad}"
            );
        }
        assert_eq!(
            parse_decimal("0.000000001"),
            Err(DecimalError::TooPrecise("0.000000001".into()))
        );
        assert_eq!(
            parse_decimal("92233720368.54775808"),
            Err(DecimalError::Overflow("92233720368.54775808".into()))
        );
        assert!(matches!(parse_decimal("99999999999999999999999"), Err(DecimalError::Overflow(_))));
        assert_eq!(parse_fixed8_wide(b"180000000000.00000001"), Ok(18_000_000_000_000_000_001));
        assert!(matches!(parse_fixed8_wide(&[b'9'; 40]), Err(DecimalError::Overflow(_))));
        let msg = parse_decimal("1.123456789").unwrap_err().to_string();
        assert!(msg.contains("1.123456789") && msg.contains("8 decimals"), "{msg}");
    }

    #[test]
    fn formats_like_binance() {
        assert_eq!(format_fixed8(719_524_000_000), "7195.24000000");
        assert_eq!(format_fixed8(0), "0.00000000");
        assert_eq!(format_fixed8(1), "0.00000001");
        assert_eq!(format_fixed8(-150_000_000), "-1.50000000");
        assert_eq!(format_fixed8(i128::from(i64::MAX) * 1000), "92233720368547.75807000");
        assert_eq!(format_fixed16(product(1, 1)), "0.0000000000000001");
    }

    proptest! {
        #[test]
        fn per_trade_quote_is_the_product_truncated_to_8_decimals(
            p in prop_oneof![1..i64::MAX, any::<i64>()],
            q in prop_oneof![0..i64::MAX, any::<i64>()],
            raw in 1u64..4,
        ) {
            let pq = product(p, q);
            let cut = pq % i128::from(SCALE);
            let (value, inexact) = QuoteRule::PerTrade.of_aggtrade(p, q, raw);
            prop_assert_eq!(value, pq - cut);
            prop_assert_eq!(inexact, cut != 0 && raw > 1);
            prop_assert_eq!(QuoteRule::ExactSum.of_aggtrade(p, q, raw), (pq, false));
        }

        #[test]
        fn text_round_trips(v in any::<i64>()) {
            prop_assert_eq!(parse_decimal(&format_fixed8(i128::from(v))), Ok(v));
        }

        #[test]
        fn the_short_path_agrees_with_the_careful_one(text in "[0-9]{0,12}(\\.[0-9]{0,10})?") {
            let careful = parse_fixed8_wide(text.as_bytes())
                .and_then(|v| i64::try_from(v).map_err(|_| DecimalError::Overflow(text.clone())));
            prop_assert_eq!(parse_fixed8(text.as_bytes()), careful);
        }

        #[test]
        fn short_fractions_scale(int in 0u64..1_000_000, frac in 0u64..1000) {
            let s = format!("{int}.{frac:03}");
            prop_assert_eq!(parse_decimal(&s), Ok((int * 100_000_000 + frac * 100_000) as i64));
        }
    }
}
