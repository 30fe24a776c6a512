//! Where trades enter: Binance's text formats → [`Trade`](crate::Trade).
//!
//! Every parser returns a reason for a bad row instead of panicking; callers add the file and
//! line and decide whether to stop or count and go on (`--skip-bad`).

pub mod csv;
mod digits;
pub mod json;
pub mod kline_row;
pub mod source;
pub mod ws;
mod ws_fast;

use std::fmt;

/// Bytes of a row or field quoted in an error: enough to recognise it, never the whole line.
pub const EXCERPT: usize = 80;
/// Longest reason a [`BadRow`] keeps (a reason quotes at most an [`EXCERPT`], escaped).
pub const MAX_REASON: usize = 600;

/// `s` quoted, cut to [`EXCERPT`] bytes with its length when longer.
pub fn excerpt(s: &[u8]) -> String {
    if s.len() <= EXCERPT {
        return format!("{:?}", String::from_utf8_lossy(s));
    }
    format!("{:?}… ({} bytes)", String::from_utf8_lossy(&s[..EXCERPT]), s.len())
}

/// A bad row: file, 1-based line and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

impl BadRow {
    /// A bad row whose reason is cut to [`MAX_REASON`] bytes, whatever quoted it.
    pub fn new(file: impl Into<String>, line: u64, mut reason: String) -> Self {
        if reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        BadRow { file: file.into(), line, reason }
    }
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
    use super::{excerpt, parse_int, BadRow, EXCERPT, MAX_REASON};

    #[test]
    fn excerpts_and_reasons_are_bounded() {
        assert_eq!(excerpt(b"1,2"), "\"1,2\"");
        let long = vec![b'x'; 1_000_000];
        let e = excerpt(&long);
        assert!(e.len() < EXCERPT + 40 && e.ends_with("… (1000000 bytes)"), "{e}");
        let bad = BadRow::new("f.csv", 3, "é".repeat(1_000_000));
        assert!(bad.reason.len() <= MAX_REASON + '…'.len_utf8(), "{}", bad.reason.len());
        assert_eq!(BadRow::new("f.csv", 3, "short".into()).reason, "short");
    }

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
