//! Binance public-data aggTrades CSV.
//!
//! Spot: no header, 8 columns `a,p,q,f,l,T,m,M` (`True`/`False`), T in ms before 2025 and µs
//! after. USD-M / COIN-M futures: a header line, 7 columns `a,p,q,f,l,T,m` (`true`/`false`).

use super::parse_int;
use crate::decimal::parse_fixed8;
use crate::trade::Trade;
use memchr::memchr;

/// Whether a line is a header (starts with a letter) rather than a data row.
pub fn is_header(line: &[u8]) -> bool {
    line.first().is_some_and(|c| c.is_ascii_alphabetic())
}

#[inline]
fn parse_bool(s: &[u8]) -> Option<bool> {
    match s {
        b"True" | b"true" | b"TRUE" => Some(true),
        b"False" | b"false" | b"FALSE" => Some(false),
        _ => None,
    }
}

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

/// Parses one data row (without its line ending).
#[inline]
pub fn parse_row(line: &[u8]) -> Result<Trade, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut fields: [&[u8]; 8] = [b""; 8];
    let mut n = 0;
    let mut rest = line;
    loop {
        if n == 8 {
            return Err(format!("more than 8 columns in {:?}", String::from_utf8_lossy(line)));
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
        parse_int(fields[i]).ok_or_else(|| {
            format!("{} is not an integer: {:?}", NAMES[i], String::from_utf8_lossy(fields[i]))
        })
    };
    let dec = |i: usize| parse_fixed8(fields[i]).map_err(|e| format!("{}: {e}", NAMES[i]));
    let buyer_is_maker = parse_bool(fields[6]).ok_or_else(|| {
        format!("is_buyer_maker is not a boolean: {:?}", String::from_utf8_lossy(fields[6]))
    })?;
    if n == 8 && parse_bool(fields[7]).is_none() {
        return Err(format!(
            "is_best_match is not a boolean: {:?}",
            String::from_utf8_lossy(fields[7])
        ));
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

/// Parses a block of whole lines. Good rows go to `trades`; bad rows to `bad` as
/// (0-based line index in the block, reason). Empty lines are skipped. Returns the line count.
pub fn parse_block(block: &[u8], trades: &mut Vec<Trade>, bad: &mut Vec<(u64, String)>) -> u64 {
    let mut idx = 0u64;
    let mut rest = block;
    while !rest.is_empty() {
        let (line, tail) = match memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = tail;
        if !(line.is_empty() || line == b"\r") {
            match parse_row(line) {
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
        assert!(is_header(b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"));
        let t = parse_row(b"26129,0.01633102,4.70443515,27781,27781,1498793709153,true\r").unwrap();
        assert!(t.buyer_is_maker);
        assert_eq!(t.qty, 470_443_515);
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
    fn block_counts_lines_and_reports_bad_ones() {
        let block = b"1,1.0,1.0,1,1,5,true\n\nbad\n2,1.0,1.0,2,2,6,false\n";
        let (mut trades, mut bad) = (Vec::new(), Vec::new());
        assert_eq!(parse_block(block, &mut trades, &mut bad), 4);
        assert_eq!(trades.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 2);
    }
}
