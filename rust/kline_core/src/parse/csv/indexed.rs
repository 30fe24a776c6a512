//! An aggTrades row read from its separators' offsets ([`super::separators`]): each field's
//! bounds are known, so each number is read from whole 8-byte words whatever its length,
//! without a branch per digit. Only the usual shape is read here; anything else (signs, long
//! numbers, `TRUE`, the rows at a block's edges) is `None` and goes to the careful path.

use super::super::digits::{all_digits, digits_value, find_byte, zeros_after, zeros_first};
use crate::decimal::SCALE;
use crate::trade::Trade;

/// The 8 bytes of `block` from `at`.
#[inline(always)]
fn word(block: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(block.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// `block[start..end]`, 1 to 16 ASCII digits: their value. Reads the 16 bytes before `end`.
#[inline(always)]
pub(super) fn uint_at(block: &[u8], start: usize, end: usize) -> Option<u64> {
    let len = end.checked_sub(start)?;
    if !(1..=16).contains(&len) {
        return None;
    }
    let lo = zeros_first(word(block, end.checked_sub(8)?)?, 8usize.saturating_sub(len));
    let hi = zeros_first(word(block, end.checked_sub(16)?)?, 16 - len.max(8));
    if !(all_digits(lo) & all_digits(hi)) {
        return None;
    }
    Some(digits_value(hi, 8) * 100_000_000 + digits_value(lo, 8))
}

/// `block[start..end]` as `\d{1,16}(\.\d{1,8})?` below 92233720368: the mantissa at 1e-8
/// (the bound keeps it in `i64`, as the careful parser's).
#[inline(always)]
pub(super) fn decimal_at(block: &[u8], start: usize, end: usize) -> Option<i64> {
    let len = end.checked_sub(start)?;
    let (a, b) = (word(block, start)?, word(block, start + 8)?);
    let found = match find_byte(a, b'.') {
        8 => 8 + find_byte(b, b'.'),
        n => n,
    };
    let dot = if found < len {
        start + found
    } else if len <= 16 {
        end // no dot: an integer
    } else {
        return None;
    };
    let int = uint_at(block, start, dot)?;
    if int >= 92_233_720_368 {
        return None;
    }
    // Decimals, padded with zeros to 8: already the value at 1e-8. None without a dot.
    let decimals = (end - dot).saturating_sub(1);
    if decimals > 8 || (dot < end && decimals == 0) {
        return None;
    }
    let frac = zeros_after(word(block, dot + 1)?, decimals);
    if !all_digits(frac) {
        return None;
    }
    Some(int as i64 * SCALE + digits_value(frac, 8) as i64)
}

/// `true` / `True` / `false` / `False`.
#[inline(always)]
fn boolean_at(block: &[u8], start: usize, end: usize) -> Option<bool> {
    match block.get(start..end)? {
        b"true" | b"True" => Some(true),
        b"false" | b"False" => Some(false),
        _ => None,
    }
}

/// The row from `start` whose separators are the first of `seps` (offsets in `block`), when
/// it has the usual shape `a,p,q,f,l,T,m[,M]` then `\n` (optionally `\r\n`): the trade and how
/// many separators it used (7 or 8).
#[inline(always)]
pub(super) fn agg_row(block: &[u8], start: usize, seps: &[u32]) -> Option<(Trade, usize)> {
    let p: &[u32; 7] = seps.get(..7)?.try_into().ok()?;
    let [p0, p1, p2, p3, p4, p5, p6] = p.map(|x| x as usize);
    let commas = [p0, p1, p2, p3, p4, p5].map(|at| block.get(at) == Some(&b','));
    if commas != [true; 6] {
        return None;
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    let (uint, decimal) = (super::sse2::uint_at, |block: &[u8], start, end| {
        super::sse2::decimal_at(block, start, end, || decimal_at(block, start, end))
    });
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    let (uint, decimal) = (uint_at, decimal_at);
    let id = uint(block, start, p0)?;
    let price = decimal(block, p0 + 1, p1)?;
    let qty = decimal(block, p1 + 1, p2)?;
    let first_id = uint(block, p2 + 1, p3)?;
    let last_id = uint(block, p3 + 1, p4)?;
    let time = uint(block, p4 + 1, p5)?;
    // The last field may end in `\r`.
    let cr = |end: usize| end - usize::from(block.get(end - 1) == Some(&b'\r'));
    let (buyer_is_maker, used) = match *block.get(p6)? {
        b'\n' => (boolean_at(block, p5 + 1, cr(p6))?, 7),
        _ => {
            let p7 = *seps.get(7)? as usize;
            if block.get(p7) != Some(&b'\n') {
                return None;
            }
            boolean_at(block, p6 + 1, cr(p7))?;
            (boolean_at(block, p5 + 1, p6)?, 8)
        }
    };
    let (id, first_id, last_id, time) = (id as i64, first_id as i64, last_id as i64, time as i64);
    Some((Trade { id, price, qty, first_id, last_id, time, buyer_is_maker }, used))
}
