//! Where trades enter: Binance's text formats → [`Trade`](crate::Trade).
//!
//! Every parser returns a reason for a bad row instead of panicking; callers add the file and
//! line and decide whether to stop or count and go on (`--skip-bad`).

pub mod csv;
pub mod json;
pub mod kline_row;
pub mod source;
pub mod ws;
mod ws_fast;

use std::fmt;

/// A bad row: file, 1-based line and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Parses an ASCII integer (optional `-`), refusing anything else.
#[inline]
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(d))?;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::parse_int;

    #[test]
    fn ints() {
        assert_eq!(parse_int(b"202790190"), Some(202_790_190));
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        for bad in [&b""[..], b"-", b"1.0", b"9223372036854775808", b"12a", b" 1", b"+1"] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }
}
