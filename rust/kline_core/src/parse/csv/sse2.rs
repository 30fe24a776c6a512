//! The numbers of an indexed row read 16 bytes at a time with SSE2 (every x86_64 CPU has it):
//! the field's bytes in one register, the bytes around it masked off, all digits checked and
//! converted at once. Same answers as the word-at-a-time readers of [`super::indexed`], which
//! other CPUs use and the tests compare against.

use std::arch::x86_64::{
    __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cvtsi128_si64, _mm_loadl_epi64, _mm_loadu_si128,
    _mm_madd_epi16, _mm_max_epu8, _mm_movemask_epi8, _mm_packs_epi32, _mm_set1_epi32,
    _mm_set1_epi8, _mm_setzero_si128, _mm_sub_epi8, _mm_unpackhi_epi8, _mm_unpacklo_epi64,
    _mm_unpacklo_epi8,
};

/// 16 zero bytes then 16 0xFF: 16 bytes from offset `k` keep the last `k` of a register.
static KEEP_LAST: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut i = 16;
    while i < 32 {
        t[i] = 0xFF;
        i += 1;
    }
    t
};

/// 16 0xFF then 16 zero bytes: 8 bytes from offset `16 - k` keep the first `k` (k ≤ 8).
static KEEP_FIRST: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        t[i] = 0xFF;
        i += 1;
    }
    t
};

#[inline(always)]
fn load16(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: reads the 16 bytes of the array; loadu takes any alignment; SSE2 is part of
    // every x86_64 target (this module is compiled only there).
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

#[inline(always)]
fn load8(bytes: &[u8; 8]) -> __m128i {
    // SAFETY: reads the 8 bytes of the array (loadl reads 8); SSE2 as in `load16`.
    unsafe { _mm_loadl_epi64(bytes.as_ptr().cast()) }
}

#[inline(always)]
fn array<const N: usize>(block: &[u8], at: usize) -> Option<&[u8; N]> {
    block.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Bytes less `'0'`, kept where `keep` is set (0 elsewhere): `Some` when every kept byte was an
/// ASCII digit, with the 16 digits' value (at most 16 significant: fits `u64`).
#[inline(always)]
fn digits_value(raw: __m128i, keep: __m128i) -> Option<u64> {
    // SAFETY (all the intrinsics below): SSE2 only, which every x86_64 target has.
    unsafe {
        let v = _mm_and_si128(_mm_sub_epi8(raw, _mm_set1_epi8(b'0' as i8)), keep);
        let nine = _mm_set1_epi8(9);
        if _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, nine), nine)) != 0xFFFF {
            return None;
        }
        // Digits → pairs → fours → eights, by multiply-adds of neighbours (the first byte is the
        // most significant digit).
        let zero = _mm_setzero_si128();
        let tens = _mm_set1_epi32(0x0001_000A); // 10, 1 per pair of 16-bit lanes
        let lo = _mm_madd_epi16(_mm_unpacklo_epi8(v, zero), tens);
        let hi = _mm_madd_epi16(_mm_unpackhi_epi8(v, zero), tens);
        let pairs = _mm_packs_epi32(lo, hi); // 8 × (≤ 99)
        let fours = _mm_madd_epi16(pairs, _mm_set1_epi32(0x0001_0064)); // 100, 1
        let fours = _mm_packs_epi32(fours, fours); // (≤ 9999 fits i16)
        let eights = _mm_madd_epi16(fours, _mm_set1_epi32(0x0001_2710)); // 10000, 1
        let both = _mm_cvtsi128_si64(eights) as u64;
        Some((both & 0xFFFF_FFFF) * 100_000_000 + (both >> 32))
    }
}

/// `block[start..end]`, 1 to 16 ASCII digits: their value. Reads the 16 bytes before `end`.
#[inline(always)]
pub(super) fn uint_at(block: &[u8], start: usize, end: usize) -> Option<u64> {
    let len = end.checked_sub(start)?;
    if !(1..=16).contains(&len) {
        return None;
    }
    let raw = load16(array(block, end.checked_sub(16)?)?);
    let keep = load16(array(&KEEP_LAST, len)?);
    digits_value(raw, keep)
}

/// `block[start..end]` as `\d{1,16}(\.\d{1,8})?` below 92233720368: the mantissa at 1e-8.
/// Up to 8 digits before the point are read with the decimals in one register; more go to
/// `wide`.
#[inline(always)]
pub(super) fn decimal_at(
    block: &[u8],
    start: usize,
    end: usize,
    wide: impl FnOnce() -> Option<i64>,
) -> Option<i64> {
    let len = end.checked_sub(start)?;
    if !(1..=16).contains(&len) {
        return wide();
    }
    let text = load16(array(block, start)?);
    // SAFETY: SSE2 only, which every x86_64 target has.
    let dots = unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(text, _mm_set1_epi8(b'.' as i8))) };
    let dots = dots as u32 & ((1 << len) - 1);
    if dots == 0 {
        let int = uint_at(block, start, end)?;
        return (int < 92_233_720_368).then(|| int as i64 * crate::decimal::SCALE);
    }
    let int_len = dots.trailing_zeros() as usize;
    let frac_len = len - int_len - 1;
    if !(1..=8).contains(&int_len) || !(1..=8).contains(&frac_len) {
        return wide();
    }
    let dot = start + int_len;
    // The 8 bytes before the point, then the 8 after: int · 1e8 + decimals padded to 8.
    // SAFETY: SSE2 only, which every x86_64 target has.
    let (raw, keep) = unsafe {
        let raw = _mm_unpacklo_epi64(
            load8(array(block, dot.checked_sub(8)?)?),
            load8(array(block, dot + 1)?),
        );
        let keep = _mm_unpacklo_epi64(
            load8(array(&KEEP_LAST, 8 + int_len)?),
            load8(array(&KEEP_FIRST, 16 - frac_len)?),
        );
        (raw, keep)
    };
    digits_value(raw, keep).map(|v| v as i64)
}
