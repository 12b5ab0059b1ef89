//! Page deltas: the byte ranges a change altered in a page's body. A commit logs a delta
//! instead of the whole page when the page's last full image is recent enough (see
//! `core::checkpointing` for the horizon rule that keeps torn pages repairable).

/// First byte a delta may cover: the checksum (0..4), page number (4..8) and log position
/// (8..16) are the page's own; the kind byte at 16 is content (a leaf can become an interior
/// node).
const FIRST: usize = 16;

/// Unchanged runs shorter than this are folded into the surrounding change (each range costs
/// 4 bytes of header).
const GAP: usize = 8;

/// Bytes compared at once while skipping an unchanged stretch.
const BLOCK: usize = 64;

/// The first byte at or after `i` (before `n`) where `old` and `new` differ, or `n`. Most
/// of a page is unchanged: it is skipped a block at a time (word by word, a page's scan was a
/// fifth of a commit's instructions), then a word, then a byte.
fn next_change(old: &[u8], new: &[u8], mut i: usize, n: usize) -> usize {
    while i + BLOCK <= n && same_block(old, new, i) {
        i += BLOCK;
    }
    while i + 8 <= n {
        let (a, b) = (word(old, i), word(new, i));
        if a != b {
            return i + ((a ^ b).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && old[i] == new[i] {
        i += 1;
    }
    i
}

/// Whether `old` and `new` agree on the [`BLOCK`] bytes from `i`: the words' differences are
/// folded without a branch per word, which the compiler turns into vector compares.
fn same_block(old: &[u8], new: &[u8], i: usize) -> bool {
    let (a, b) = (&old[i..i + BLOCK], &new[i..i + BLOCK]);
    let mut acc = 0u64;
    for w in (0..BLOCK).step_by(8) {
        acc |= word(a, w) ^ word(b, w);
    }
    acc == 0
}

/// Eight bytes of `b` from `i`, little-endian (so the lowest differing bit is the first
/// differing byte).
fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// The changed ranges of `new` against `old` (same length), from the kind byte on:
/// `(offset, bytes)`.
pub fn diff(old: &[u8], new: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out: Vec<(u16, Vec<u8>)> = Vec::new();
    let n = old.len().min(new.len());
    let mut i = FIRST;
    while i < n {
        i = next_change(old, new, i, n);
        if i >= n {
            break;
        }
        let end = change_end(old, new, i, n);
        out.push((i as u16, new[i..end].to_vec()));
        i = end;
    }
    out
}

/// The end of the change that starts at `start`: the byte after its last differing byte,
/// where runs of fewer than [`GAP`] equal bytes do not end it. A page a split rewrote differs
/// almost everywhere, so right after a difference eight bytes that all differ are taken as
/// one word (a byte at a time, the split pages' deltas were most of `diff`'s cost).
fn change_end(old: &[u8], new: &[u8], start: usize, n: usize) -> usize {
    let mut end = start + 1;
    let mut same = 0;
    let mut j = start + 1;
    while j < n {
        if same == 0 && j + 8 <= n && !has_zero_byte(word(old, j) ^ word(new, j)) {
            end = j + 8;
            j += 8;
            continue;
        }
        if old[j] == new[j] {
            same += 1;
            if same >= GAP {
                break;
            }
        } else {
            same = 0;
            end = j + 1;
        }
        j += 1;
    }
    end
}

/// Whether any byte of `v` is zero (exact: a borrow only starts at a zero byte).
fn has_zero_byte(v: u64) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    v.wrapping_sub(LOW) & !v & HIGH != 0
}

/// Bytes a delta takes in a log record.
pub fn encoded_len(ranges: &[(u16, Vec<u8>)]) -> usize {
    12 + ranges.iter().map(|(_, b)| 4 + b.len()).sum::<usize>()
}

/// Applies ranges to a page; `false` if one does not fit (a damaged record).
pub fn apply(page: &mut [u8], ranges: &[(u16, Vec<u8>)]) -> bool {
    for (off, bytes) in ranges {
        let off = *off as usize;
        if off < FIRST || off.checked_add(bytes.len()).is_none_or(|e| e > page.len()) {
            return false;
        }
        page[off..off + bytes.len()].copy_from_slice(bytes);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::PAGE_HEADER;

    #[test]
    fn diff_then_apply_rebuilds_the_page() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let old: Vec<u8> = (0..4096).map(|_| rng.gen()).collect();
            let mut new = old.clone();
            for _ in 0..rng.gen_range(0..20) {
                let at = rng.gen_range(PAGE_HEADER..4096);
                let len = rng.gen_range(1..200).min(4096 - at);
                for b in &mut new[at..at + len] {
                    *b = rng.gen();
                }
            }
            let d = diff(&old, &new);
            let mut rebuilt = old.clone();
            assert!(apply(&mut rebuilt, &d));
            assert_eq!(rebuilt[FIRST..], new[FIRST..]);
        }
    }

    /// `diff` with the byte-at-a-time scan for the next change that the word skip replaced.
    fn by_bytes(old: &[u8], new: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let n = old.len().min(new.len());
        let mut i = FIRST;
        while i < n {
            if old[i] == new[i] {
                i += 1;
                continue;
            }
            let end = change_end(old, new, i, n);
            out.push((i as u16, new[i..end].to_vec()));
            i = end;
        }
        out
    }

    #[test]
    fn the_word_skip_finds_the_ranges_a_byte_scan_finds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for _ in 0..500 {
            let len = rng.gen_range(FIRST..600);
            let old: Vec<u8> = (0..len).map(|_| rng.gen_range(0..4)).collect();
            let mut new = old.clone();
            for _ in 0..rng.gen_range(0..6) {
                let at = rng.gen_range(0..len);
                new[at] = new[at].wrapping_add(rng.gen_range(1..=255));
            }
            assert_eq!(diff(&old, &new), by_bytes(&old, &new));
        }
    }

    /// The end of a change as a byte-at-a-time scan finds it.
    fn change_end_by_bytes(old: &[u8], new: &[u8], start: usize, n: usize) -> usize {
        let (mut end, mut same) = (start + 1, 0);
        for j in start + 1..n {
            if old[j] == new[j] {
                same += 1;
                if same >= GAP {
                    break;
                }
            } else {
                same = 0;
                end = j + 1;
            }
        }
        end
    }

    #[test]
    fn the_word_step_ends_changes_where_a_byte_scan_does() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..2000 {
            let n = rng.gen_range(2..300);
            let old: Vec<u8> = (0..n).map(|_| rng.gen_range(0..3)).collect();
            // Mostly different bytes, with equal runs of every length up to past GAP.
            let p_same = rng.gen_range(0.0..0.5);
            let mut new: Vec<u8> = old.iter().map(|b| b.wrapping_add(1)).collect();
            let mut j = 0;
            while j < n {
                if rng.gen_bool(p_same) {
                    let run = rng.gen_range(1..GAP + 3).min(n - j);
                    new[j..j + run].copy_from_slice(&old[j..j + run]);
                    j += run;
                } else {
                    j += 1;
                }
            }
            let start = rng.gen_range(0..n - 1);
            assert_eq!(
                change_end(&old, &new, start, n),
                change_end_by_bytes(&old, &new, start, n)
            );
        }
        for v in [
            0u64,
            1,
            0xFF00,
            u64::MAX,
            0x0101_0101_0101_0100,
            0x8080_8080_8080_8080,
        ] {
            assert_eq!(has_zero_byte(v), v.to_le_bytes().contains(&0), "{v:#x}");
        }
    }

    #[test]
    fn small_change_small_delta_and_bad_ranges_refused() {
        let old = vec![0u8; 8192];
        let mut new = old.clone();
        new[1000] = 1;
        new[1003] = 2;
        let d = diff(&old, &new);
        assert_eq!(d.len(), 1);
        assert!(encoded_len(&d) < 32);
        let mut p = vec![0u8; 4096];
        assert!(!apply(&mut p, &[(4090, vec![0; 10])]));
        assert!(
            !apply(&mut p, &[(4, vec![0; 2])]),
            "the header is not a delta's to change"
        );
    }
}
