//! Symbol names: what the engine keys on, what file names and stream names are made of.
//! Binance's are upper-case `[A-Z0-9]`; anything else (a path, a quote, a NUL) is refused
//! here, once, so no caller builds a path or a message out of it.

use std::borrow::Cow;
use thiserror::Error;

/// Longest symbol accepted (Binance's longest are about 20 characters).
pub const MAX_SYMBOL_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SymbolError {
    #[error("empty symbol name")]
    Empty,
    #[error("symbol name of {0} bytes is longer than {MAX_SYMBOL_LEN}")]
    TooLong(usize),
    #[error("symbol {0:?} has a character other than A-Z, 0-9 and _")]
    BadChar(String),
}

/// The symbol's name as the engine keys it: upper-cased, `[A-Z0-9_]{1,32}` only.
pub fn symbol_name(s: &str) -> Result<Cow<'_, str>, SymbolError> {
    if s.is_empty() {
        return Err(SymbolError::Empty);
    }
    if s.len() > MAX_SYMBOL_LEN {
        return Err(SymbolError::TooLong(s.len()));
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        let shown: String = s.chars().take(MAX_SYMBOL_LEN).collect();
        return Err(SymbolError::BadChar(shown));
    }
    if s.bytes().any(|b| b.is_ascii_lowercase()) {
        Ok(Cow::Owned(s.to_ascii_uppercase()))
    } else {
        Ok(Cow::Borrowed(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_upper_cased_and_held_to_the_alphabet() {
        assert_eq!(symbol_name("BTCUSDT").unwrap(), "BTCUSDT");
        assert_eq!(symbol_name("ethusdt").unwrap(), "ETHUSDT");
        assert_eq!(symbol_name("BTCUSD_PERP").unwrap(), "BTCUSD_PERP");
        assert_eq!(symbol_name(""), Err(SymbolError::Empty));
        assert_eq!(symbol_name(&"A".repeat(1 << 20)), Err(SymbolError::TooLong(1 << 20)));
        for bad in ["../../X", "/etc/x", "A\0B", "BTC\",\"x", "BTC USDT", "ÄBC"] {
            assert!(matches!(symbol_name(bad), Err(SymbolError::BadChar(_))), "{bad:?}");
        }
    }
}
