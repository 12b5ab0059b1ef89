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

/// The first byte at or after `i` (before `n`) where `old` and `new` differ, or `n`. Most
/// of a page is unchanged: it is skipped eight bytes at a time.
fn next_change(old: &[u8], new: &[u8], mut i: usize, n: usize) -> usize {
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
/// where runs of fewer than [`GAP`] equal bytes do not end it.
fn change_end(old: &[u8], new: &[u8], start: usize, n: usize) -> usize {
    let mut end = start + 1;
    let mut same = 0;
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
