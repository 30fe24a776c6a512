//! Reading ASCII 8 bytes at a time (SWAR): runs of digits and their value, runs of plain
//! string bytes. Shared by the CSV and websocket fast paths; each caller checks its own
//! bounds and falls back to a byte loop near the end of its input.

/// How many of the 8 bytes of `v` (little-endian: the first byte lowest) are ASCII digits
/// before the first that is not (8: all are).
#[inline(always)]
pub(crate) fn digit_run(v: u64) -> usize {
    // Per byte 0x33 exactly for '0'..='9' (high nibble 3, and 3 again after adding 6). A
    // carry out of a non-digit byte only reaches the bytes after it, which do not count.
    let nibbles = (v & 0xF0F0_F0F0_F0F0_F0F0)
        | ((v.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4);
    let off = nibbles ^ 0x3333_3333_3333_3333;
    (off.trailing_zeros() / 8) as usize
}

/// Whether all 8 bytes of `v` are ASCII digits.
#[inline(always)]
pub(crate) fn all_digits(v: u64) -> bool {
    digit_run(v) == 8
}

/// `v` with its `n` (0..=8) lowest bytes (the first `n` in memory) replaced by `'0'`.
#[inline(always)]
pub(crate) fn zeros_first(v: u64, n: usize) -> u64 {
    let low = LOW_BYTES[n];
    (v & !low) | (ZEROS & low)
}

/// `v` with all but its `n` (0..=8) lowest bytes (the first `n` in memory) replaced by `'0'`.
#[inline(always)]
pub(crate) fn zeros_after(v: u64, n: usize) -> u64 {
    let low = LOW_BYTES[n];
    (v & low) | (ZEROS & !low)
}

const ZEROS: u64 = 0x3030_3030_3030_3030;

/// Masks of the `n` lowest bytes.
const LOW_BYTES: [u64; 9] = {
    let mut m = [0u64; 9];
    let mut n = 1;
    while n < 9 {
        m[n] = u64::MAX >> (64 - 8 * n);
        n += 1;
    }
    m
};

/// Where the first `byte` is among the 8 bytes of `v` (8: none).
#[inline(always)]
pub(crate) fn find_byte(v: u64, byte: u8) -> usize {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let x = v ^ (0x0101_0101_0101_0101 * u64::from(byte));
    // High bit set exactly in the zero bytes of x: no carry crosses a byte (each sum < 0x100).
    let zero = !(((x & LOW7) + LOW7) | x | LOW7);
    (zero.trailing_zeros() / 8) as usize
}

/// The value of the first `n` (1..=8) bytes of `v`, all ASCII digits.
#[inline(always)]
pub(crate) fn digits_value(v: u64, n: usize) -> u64 {
    // The n digits moved to the top as the last of 8, after zeros: same value. Bytes after
    // them may borrow in the subtraction; they are shifted out.
    let v = v.wrapping_sub(0x3030_3030_3030_3030) << (8 * (8 - n));
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let mask = 0x0000_00FF_0000_00FF;
    ((v & mask).wrapping_mul(100 + (1_000_000 << 32)))
        .wrapping_add(((v >> 16) & mask).wrapping_mul(1 + (10_000 << 32)))
        >> 32
}

pub(crate) const POW10: [u64; 9] =
    [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// How many of the 8 bytes of `v` come before the first that ends or complicates a JSON
/// string: `"`, `\\`, a control character (below 0x20) or a non-ASCII byte (0x80 and up).
#[inline(always)]
pub(crate) fn plain_run(v: u64) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte's high bit is set below where it is zero (or under 0x20), exactly for the first
    // such byte: borrows only reach the bytes after it, which do not count.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero(v ^ (0x22 * ONES));
    let backslash = zero(v ^ (0x5C * ONES));
    let control = v.wrapping_sub(0x20 * ONES) & !v & HIGH;
    let special = quote | backslash | control | (v & HIGH);
    (special.trailing_zeros() / 8) as usize
}

/// The leading digits of 16 bytes, when fewer than 16: their value and count.
#[inline(always)]
pub(crate) fn up_to_16_digits(chunk: &[u8]) -> Option<(u64, usize)> {
    let a = u64::from_le_bytes(chunk[..8].try_into().ok()?);
    let n = digit_run(a);
    if n < 8 {
        return Some((if n > 0 { digits_value(a, n) } else { 0 }, n));
    }
    let b = u64::from_le_bytes(chunk[8..16].try_into().ok()?);
    let m = digit_run(b);
    let low = if m > 0 { digits_value(b, m) } else { 0 };
    (m < 8).then(|| (digits_value(a, 8) * POW10[m] + low, 8 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(bytes: &[u8]) -> u64 {
        let mut w = [b'x'; 8];
        w[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(w)
    }

    #[test]
    fn runs_end_at_the_first_byte_of_another_kind_whatever_follows() {
        for (bytes, digits, plain) in [
            (&b"12345678"[..], 8, 8),
            (b"1234567,", 7, 8),
            (b",2345678", 0, 8),
            (b"12\"45678", 2, 2),
            (b"ab\\cdefg", 0, 2),
            (b"abc\x01efg", 0, 3),
            (b"abcd\xffgh", 0, 4),
            (b"\x1f\"\x00\xff\x00\x00\x00\x00", 0, 0),
            (b"9\x00\x00\x00\x00\x00\x00\x00", 1, 1),
            (b"/:09", 0, 8),
        ] {
            let v = word(bytes);
            assert_eq!(digit_run(v), digits, "{bytes:?}");
            assert_eq!(plain_run(v), plain, "{bytes:?}");
        }
        assert_eq!(digits_value(word(b"0012"), 4), 12);
        assert_eq!(digits_value(word(b"98765432"), 8), 98_765_432);
    }

    #[test]
    fn up_to_16_leading_digits_are_read_and_16_are_left_to_the_caller() {
        for (chunk, want) in [
            (&b",123456789012345"[..], Some((0, 0))),
            (b"0,34567890123456", Some((0, 1))),
            (b"1234567,90123456", Some((1_234_567, 7))),
            (b"12345678,0123456", Some((12_345_678, 8))),
            (b"123456789,123456", Some((123_456_789, 9))),
            (b"000000000000007,", Some((7, 15))),
            (b"999999999999999.", Some((999_999_999_999_999, 15))),
            (b"1234567890123456", None),
        ] {
            assert_eq!(up_to_16_digits(chunk), want, "{:?}", std::str::from_utf8(chunk));
        }
    }

    proptest::proptest! {
        #[test]
        fn runs_agree_with_a_byte_loop(v in proptest::prelude::any::<u64>()) {
            let bytes = v.to_le_bytes();
            let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let plain = bytes
                .iter()
                .take_while(|&&b| b != b'"' && b != b'\\' && (0x20..0x80).contains(&b))
                .count();
            proptest::prop_assert_eq!(digit_run(v), digits);
            proptest::prop_assert_eq!(all_digits(v), digits == 8);
            for byte in [b'.', b',', bytes[(v % 8) as usize]] {
                let at = bytes.iter().position(|&b| b == byte).unwrap_or(8);
                proptest::prop_assert_eq!(find_byte(v, byte), at);
            }
            for n in 0..=8 {
                let mut first = bytes;
                first[..n].fill(b'0');
                proptest::prop_assert_eq!(zeros_first(v, n), u64::from_le_bytes(first));
                let mut after = bytes;
                after[n..].fill(b'0');
                proptest::prop_assert_eq!(zeros_after(v, n), u64::from_le_bytes(after));
            }
            proptest::prop_assert_eq!(plain_run(v), plain);
            if digits > 0 {
                let text = std::str::from_utf8(&bytes[..digits]).unwrap();
                proptest::prop_assert_eq!(digits_value(v, digits), text.parse::<u64>().unwrap());
            }
        }
    }
}
