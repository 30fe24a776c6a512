//! Where a block's fields end: the offsets of its `,` and `\n`, found 64 bytes at a time
//! (SSE2 on x86_64, a byte loop elsewhere) for a window of the block at a time.
//!
//! Invariant: after [`Separators::index`], `offsets()` lists, in increasing order, every
//! offset in `[from, to)` whose byte is `,` or `\n`, and nothing else.

/// Bytes indexed per window: its offsets stay in L1 (4 bytes per separator).
pub(super) const WINDOW: usize = 4096;
/// Room for a whole window of separators plus the 8 unconditional writes of the last chunk.
const CAP: usize = WINDOW + 64;

pub(super) struct Separators {
    offsets: Box<[u32; CAP]>,
    len: usize,
    /// The window indexed: `[from, to)` of the block.
    pub(super) from: usize,
    pub(super) to: usize,
}

impl Separators {
    pub(super) fn new() -> Self {
        Separators { offsets: Box::new([0; CAP]), len: 0, from: 0, to: 0 }
    }

    /// The offsets found by the last [`Separators::index`].
    #[inline(always)]
    pub(super) fn offsets(&self) -> &[u32] {
        &self.offsets[..self.len]
    }

    /// Indexes `block[from..]`, at most [`WINDOW`] bytes of it. `block` must be shorter than
    /// 4 GiB (offsets are `u32`).
    pub(super) fn index(&mut self, block: &[u8], from: usize) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2 (just checked), all `index_avx2` needs.
            return unsafe { self.index_avx2(block, from) };
        }
        self.index_by(block, from, mask64);
    }

    /// [`Separators::index`] with AVX2 compares (32 bytes at a time).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn index_avx2(&mut self, block: &[u8], from: usize) {
        self.index_by(block, from, |chunk| {
            // SAFETY: `index_avx2` runs only on a CPU with AVX2.
            unsafe { mask64_avx2(chunk) }
        });
    }

    #[inline(always)]
    fn index_by(&mut self, block: &[u8], from: usize, mask: impl Fn(&[u8; 64]) -> u64) {
        debug_assert!(u32::try_from(block.len()).is_ok());
        let to = block.len().min(from + WINDOW);
        self.from = from;
        self.to = to;
        self.len = 0;
        let mut base = from;
        while let Some(chunk) = block.get(base..base + 64).filter(|_| base + 64 <= to) {
            let chunk: &[u8; 64] = chunk.try_into().expect("64 bytes");
            self.push(mask(chunk), base as u32);
            base += 64;
        }
        if base < to {
            // The window's tail, padded with bytes that are not separators.
            let mut tail = [0u8; 64];
            tail[..to - base].copy_from_slice(&block[base..to]);
            self.push(mask(&tail), base as u32);
        }
    }

    /// Appends the offsets of the set bits of `mask` (bit `k`: offset `base + k`).
    #[inline(always)]
    fn push(&mut self, mut mask: u64, base: u32) {
        let count = mask.count_ones() as usize;
        // Eight written whatever the count (most chunks hold fewer): no branch per bit.
        let first = &mut self.offsets[self.len..self.len + 8];
        for slot in first {
            *slot = base + mask.trailing_zeros();
            mask &= mask.wrapping_sub(1);
        }
        if count > 8 {
            for slot in &mut self.offsets[self.len + 8..self.len + count] {
                *slot = base + mask.trailing_zeros();
                mask &= mask.wrapping_sub(1);
            }
        }
        self.len += count;
    }
}

/// Bit `k` set when `chunk[k]` is `,` or `\n`.
#[inline(always)]
pub(super) fn mask64(chunk: &[u8; 64]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        mask64_sse2(chunk)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        mask64_bytes(chunk)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn mask64_sse2(chunk: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut mask = 0u64;
    // SAFETY: the intrinsics need SSE2, which every x86_64 target has (cfg'd on it above);
    // each load reads bytes 16k..16k+16 of the 64-byte array, and loadu takes any alignment.
    unsafe {
        let comma = _mm_set1_epi8(b',' as i8);
        let newline = _mm_set1_epi8(b'\n' as i8);
        for k in 0..4 {
            let v = _mm_loadu_si128(chunk.as_ptr().add(16 * k).cast::<__m128i>());
            let hit = _mm_or_si128(_mm_cmpeq_epi8(v, comma), _mm_cmpeq_epi8(v, newline));
            mask |= u64::from(_mm_movemask_epi8(hit) as u16) << (16 * k);
        }
    }
    mask
}

/// [`mask64`] with AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn mask64_avx2(chunk: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };
    let comma = _mm256_set1_epi8(b',' as i8);
    let newline = _mm256_set1_epi8(b'\n' as i8);
    let mut mask = 0u64;
    for k in 0..2 {
        // SAFETY: bytes 32k..32k+32 of the 64-byte array; loadu takes any alignment.
        let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().add(32 * k).cast::<__m256i>()) };
        let hit = _mm256_or_si256(_mm256_cmpeq_epi8(v, comma), _mm256_cmpeq_epi8(v, newline));
        mask |= u64::from(_mm256_movemask_epi8(hit) as u32) << (32 * k);
    }
    mask
}

/// [`mask64`] a byte at a time: the portable version, and what the SIMD one is tested against.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn mask64_bytes(chunk: &[u8; 64]) -> u64 {
    chunk
        .iter()
        .enumerate()
        .filter(|(_, &c)| c == b',' || c == b'\n')
        .fold(0, |m, (k, _)| m | 1 << k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_mask_marks_exactly_the_separators(bytes in proptest::collection::vec(
            prop_oneof![Just(b','), Just(b'\n'), Just(b'\r'), Just(b'0'), any::<u8>()], 64)) {
            let chunk: [u8; 64] = bytes.try_into().unwrap();
            prop_assert_eq!(mask64(&chunk), mask64_bytes(&chunk));
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (just checked).
                prop_assert_eq!(unsafe { mask64_avx2(&chunk) }, mask64_bytes(&chunk));
            }
        }

        #[test]
        fn every_window_lists_every_separator_in_order(
            block in proptest::collection::vec(
                prop_oneof![Just(b','), Just(b'\n'), Just(b'7')], 0..3 * WINDOW),
            from in 0usize..3 * WINDOW,
        ) {
            let from = from.min(block.len());
            let mut seps = Separators::new();
            seps.index(&block, from);
            let to = block.len().min(from + WINDOW);
            let want: Vec<u32> = (from..to)
                .filter(|&i| block[i] == b',' || block[i] == b'\n')
                .map(|i| i as u32)
                .collect();
            prop_assert_eq!((seps.from, seps.to), (from, to));
            prop_assert_eq!(seps.offsets(), &want[..]);
        }
    }
}
