//! Binance kline rows (CSV lines of the public-data zips, REST arrays) → [`Kline`].
//!
//! Used to check results against Binance and to roll official 1m files up.

use super::parse_int;
use crate::decimal::{parse_fixed8, parse_fixed8_wide, SCALE};
use crate::kline::Kline;

/// Parses the 12 (or 11) fields of a Binance kline in their order. Quote volumes come back
/// at 1e-16 (their 8 printed decimals scaled up); trade ids are not in this format (-1).
pub fn parse_kline_fields(f: &[&str]) -> Result<Kline, String> {
    if f.len() < 11 {
        return Err(format!("{} fields, a kline has 12", f.len()));
    }
    let int = |i: usize| {
        parse_int(f[i].as_bytes()).ok_or_else(|| format!("field {i} is not an integer: {:?}", f[i]))
    };
    let dec = |i: usize| parse_fixed8(f[i].as_bytes()).map_err(|e| format!("field {i}: {e}"));
    let sum = |i: usize| parse_fixed8_wide(f[i].as_bytes()).map_err(|e| format!("field {i}: {e}"));
    let quote = |i: usize| {
        sum(i)?.checked_mul(i128::from(SCALE)).ok_or_else(|| format!("field {i}: out of range"))
    };
    let trades = int(8)?;
    Ok(Kline {
        open_time: int(0)?,
        open: dec(1)?,
        high: dec(2)?,
        low: dec(3)?,
        close: dec(4)?,
        volume: sum(5)?,
        close_time: int(6)?,
        quote_volume: quote(7)?,
        trades: u64::try_from(trades).map_err(|_| format!("negative trade count {trades}"))?,
        taker_buy_volume: sum(9)?,
        taker_buy_quote_volume: quote(10)?,
        first_trade_id: -1,
        last_trade_id: -1,
        inexact_trades: 0,
        // Binance prints the quote volume only: the exact sum is not known; its print is kept.
        quote_volume_exact: quote(7)?,
    })
}

/// Parses one CSV line of an official kline file.
pub fn parse_kline_csv(line: &str) -> Result<Kline, String> {
    let fields: Vec<&str> = line.trim_end().split(',').collect();
    parse_kline_fields(&fields)
}
