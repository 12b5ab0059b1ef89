//! CRC-32C sums put together from the sums of their parts, for bytes that were summed
//! already: a backup chunk's sum from the checksums its pages' verification computed, so
//! that a server streaming the chunk needs no second pass over it.
//!
//! The identity behind it (the one zlib's `crc32_combine` rests on): for byte strings `a` and
//! `b`, `crc(a ‖ b) = shift(crc(a), |b|) ^ crc(b)`, where `shift(c, n)` is what feeding `n`
//! zero bytes does to the CRC register, a multiplication by `x^(8n)` modulo the polynomial.
//! [`Shift`] keeps that factor for one length; [`crc32c::crc32c_combine`] computes it for any
//! length, at the cost of about twenty 32x32 matrix squarings a call, too slow to pay per
//! page.

/// CRC-32C's polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `x^0` in the bit-reflected representation: the factor that changes nothing.
const ONE: u32 = 1 << 31;

/// `a * b` modulo the polynomial (both bit-reflected): `b` is multiplied by `x` once per bit
/// of `a`, from `x^0` up, and added where `a` has the bit.
fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = ONE;
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
            if a & (bit - 1) == 0 {
                break;
            }
        }
        bit >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    product
}

/// Appending a fixed number of bytes to a CRC-32C: built once per length, then one
/// polynomial multiplication (at most 32 shifts) per use.
///
/// ```
/// use ese::crc::Shift;
///
/// let (a, b) = (b"header".as_slice(), b"body of eight".as_slice());
/// let after_b = Shift::new(b.len());
/// let whole = after_b.apply(crc32c::crc32c(a)) ^ crc32c::crc32c(b);
/// assert_eq!(whole, crc32c::crc32c(b"headerbody of eight"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift {
    len: usize,
    /// `x^(8 * len)` modulo the polynomial.
    factor: u32,
}

impl Shift {
    /// The shift past `len` bytes.
    pub fn new(len: usize) -> Shift {
        // Combining `x^0` with an empty sum past `len` bytes gives the factor itself.
        Shift {
            len,
            factor: crc32c::crc32c_combine(ONE, 0, len),
        }
    }

    /// The number of bytes this shift passes over.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether this shift passes over no bytes (and changes nothing).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `crc` as it stands after `len` more bytes of zeros: XOR the sum of those `len` bytes
    /// in to get the sum of the whole.
    pub fn apply(&self, crc: u32) -> u32 {
        mul_mod(self.factor, crc)
    }

    /// The sum of `a ‖ b` from the sums of `a` and of `b`, for `b` of this shift's length.
    pub fn combine(&self, crc_a: u32, crc_b: u32) -> u32 {
        self.apply(crc_a) ^ crc_b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_combined_sum_is_the_sum_of_the_whole() {
        for (la, lb) in [
            (0, 0),
            (0, 7),
            (5, 0),
            (1, 1),
            (4, 8188),
            (8192, 8192),
            (3, 65_537),
        ] {
            let (a, b) = (bytes(la, 1), bytes(lb, 2));
            let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
            let s = Shift::new(lb);
            assert_eq!(
                s.combine(crc32c::crc32c(&a), crc32c::crc32c(&b)),
                crc32c::crc32c(&whole),
                "{la} + {lb}"
            );
        }
    }

    #[test]
    fn it_agrees_with_the_crates_combine() {
        for (len, seed) in [(1, 3), (4092, 4), (32_764, 5), (1 << 20, 6)] {
            let (c1, c2) = (
                crc32c::crc32c(&bytes(64, seed)),
                crc32c::crc32c(&bytes(9, seed)),
            );
            assert_eq!(
                Shift::new(len).combine(c1, c2),
                crc32c::crc32c_combine(c1, c2, len)
            );
        }
    }

    #[test]
    fn an_empty_shift_changes_nothing() {
        let s = Shift::new(0);
        assert!(s.is_empty());
        assert_eq!(s.apply(0xDEAD_BEEF), 0xDEAD_BEEF);
        assert_eq!(Shift::new(12).len(), 12);
    }
}
