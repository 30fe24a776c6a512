//! Symbol names: what the engine keys on, what file names and stream names are made of.
//! Binance's are upper-case `[A-Z0-9]`; anything else (a path, a quote, a NUL) is refused
//! here, once, so no caller builds a path or a message out of it.

use std::borrow::Cow;
use std::num::NonZeroU32;
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

/// The shard (`0..shards`) a symbol belongs to where work is split by symbol (the scale-out
/// mode's stream subjects and leases): a 64-bit FNV-1a of the name, finished with
/// MurmurHash3's `fmix64` so that names a character apart (`S01USDT`, `S02USDT`) spread as
/// any others do (a CRC's low bits follow the differing bits linearly: twelve such names fell
/// in 3 of 16 shards). Stable across processes, versions and platforms: stored subjects and
/// leases are named by it.
pub fn shard_of(symbol: &str, shards: NonZeroU32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in symbol.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % u64::from(shards.get())) as u32
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

    #[test]
    fn shards_are_stable_and_spread_names_a_character_apart() {
        let n16 = NonZeroU32::new(16).unwrap();
        // Pinned: these name stored subjects, so they never change.
        let pinned = [("BTCUSDT", 16, 2), ("ETHUSDT", 16, 14), ("BTCUSDT", 7, 1)];
        for (name, shards, want) in pinned {
            assert_eq!(shard_of(name, NonZeroU32::new(shards).unwrap()), want, "{name} {shards}");
        }
        assert_eq!(shard_of("X", NonZeroU32::new(1).unwrap()), 0);
        // Names that differ in a digit or two fill every shard, each within 40 % of the mean.
        let mut counts = [0u32; 16];
        for i in 0..1_000 {
            counts[shard_of(&format!("S{i:03}USDT"), n16) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (40..=90).contains(&c)), "{counts:?}");
        let mut seen = [false; 16];
        for i in 0..12 {
            seen[shard_of(&format!("S{i:02}USDT"), n16) as usize] = true;
        }
        assert!(seen.iter().filter(|&&s| s).count() >= 6, "{seen:?}");
    }
}
