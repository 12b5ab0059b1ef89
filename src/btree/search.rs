//! Lookups that read a node in place, without decoding it: the hot path of `get`. A damaged
//! page gives `DatabaseCorrupted`, as `Node::decode` would.

use std::cmp::Ordering;

use crate::page::{self, get_u32, PageKind, PAGE_HEADER};
use crate::{Error, Result};

/// Where a key leads inside one node.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a> {
    /// Go down to this child.
    Child(u32),
    /// The value, stored in the leaf.
    Inline(&'a [u8]),
    /// The value lives in an overflow chain.
    Overflow,
    /// The key is not in the tree.
    Missing,
}

/// The error of a damaged page, made only when one is found: built eagerly (`ok_or`), the
/// error was made and dropped for every field of every page read, 7% of a put's
/// instructions.
pub(super) fn corrupted() -> Error {
    Error::DatabaseCorrupted
}

pub(super) fn take<'a>(b: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8]> {
    let end = at.checked_add(n).ok_or_else(corrupted)?;
    let s = b.get(*at..end).ok_or_else(corrupted)?;
    *at = end;
    Ok(s)
}

pub(super) fn u16_at(b: &[u8], at: &mut usize) -> Result<usize> {
    let s = take(b, at, 2)?;
    Ok(u16::from_le_bytes([s[0], s[1]]) as usize)
}

/// A leaf entry's value as stored: the bytes kept in the leaf, or `None` for a value in
/// overflow pages.
pub(super) type Value<'a> = Option<&'a [u8]>;

/// The leaf entry at `*at` (key and value), moving `at` past it; every length is checked
/// against the page.
pub(super) fn leaf_entry<'a>(p: &'a [u8], at: &mut usize) -> Result<(&'a [u8], Value<'a>)> {
    let klen = u16_at(p, at)?;
    let k = take(p, at, klen)?;
    let v = match take(p, at, 1)?[0] {
        0 => {
            let len = get_u32(take(p, at, 4)?, 0) as usize;
            Some(take(p, at, len)?)
        }
        1 => {
            take(p, at, 12)?;
            None
        }
        _ => return Err(Error::DatabaseCorrupted),
    };
    Ok((k, v))
}

/// Orders two keys as `[u8]::cmp` does. Most keys differ in their first eight bytes, so
/// those are compared as one big-endian word first: a node is searched entry by entry, and a
/// library `memcmp` call per entry was a quarter of a put's search.
#[inline]
pub(super) fn key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    if let (Some(x), Some(y)) = (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x.cmp(&y);
        }
    }
    a.cmp(b)
}

/// Looks `key` up in one node page.
pub fn search<'a>(p: &'a [u8], key: &[u8]) -> Result<Found<'a>> {
    let mut at = PAGE_HEADER;
    match page::kind(p) {
        Some(PageKind::Leaf) => {
            let n = u16_at(p, &mut at)?;
            for _ in 0..n {
                let (k, v) = leaf_entry(p, &mut at)?;
                match key_cmp(k, key) {
                    Ordering::Less => {}
                    Ordering::Equal => {
                        return Ok(v.map_or(Found::Overflow, Found::Inline));
                    }
                    // Keys are sorted: past it means absent.
                    Ordering::Greater => return Ok(Found::Missing),
                }
            }
            Ok(Found::Missing)
        }
        Some(PageKind::Internal) => {
            let n = u16_at(p, &mut at)?;
            let first = get_u32(take(p, &mut at, 4)?, 0);
            if let Some(slots) = super::node::slots(p) {
                return slotted_child(p, slots, n, first, key).map(Found::Child);
            }
            let mut child = first;
            for _ in 0..n {
                let klen = u16_at(p, &mut at)?;
                let k = take(p, &mut at, klen)?;
                let c = get_u32(take(p, &mut at, 4)?, 0);
                if key_cmp(k, key) == Ordering::Greater {
                    break;
                }
                child = c;
            }
            Ok(Found::Child(child))
        }
        _ => Err(Error::DatabaseCorrupted),
    }
}

/// The child of an interior node with a slot array that `key` leads to: a binary search for
/// the last separator at or below `key`. Every slot and entry is checked against the page.
fn slotted_child(p: &[u8], slots: usize, n: usize, first: u32, key: &[u8]) -> Result<u32> {
    // The separator of entry `i`, and where its child number starts.
    let entry = |i: usize| -> Result<(&[u8], usize)> {
        let mut at = slots.checked_add(2 * i).ok_or_else(corrupted)?;
        let mut at = u16_at(p, &mut at)?;
        let klen = u16_at(p, &mut at)?;
        Ok((take(p, &mut at, klen)?, at))
    };
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match key_cmp(entry(mid)?.0, key) {
            Ordering::Greater => hi = mid,
            _ => lo = mid + 1,
        }
    }
    if lo == 0 {
        return Ok(first);
    }
    let (_, mut at) = entry(lo - 1)?;
    Ok(get_u32(take(p, &mut at, 4)?, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::{Node, Stored};

    #[test]
    fn key_cmp_orders_as_slices_do() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Few byte values and short lengths, so equal prefixes, prefixes of each other and
        // lengths on both sides of eight all come up.
        let mut key = || -> Vec<u8> {
            let n = rng.gen_range(0..20);
            (0..n).map(|_| rng.gen_range(0..3u8)).collect()
        };
        for _ in 0..20_000 {
            let (a, b) = (key(), key());
            assert_eq!(key_cmp(&a, &b), a.cmp(&b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn slotted_interior_search_agrees_with_the_scan_in_order() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..300 {
            let n = rng.gen_range(0..120);
            let mut keys: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let len = rng.gen_range(1..14);
                    (0..len).map(|_| rng.gen_range(0..4u8)).collect()
                })
                .collect();
            keys.sort();
            keys.dedup();
            let entries = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), 100 + i as u32));
            let mut p = page::new_page(8192, 5, PageKind::Internal);
            Node::Internal {
                first: 7,
                entries: entries.collect(),
            }
            .encode_into(&mut p);
            assert!(crate::btree::node::slots(&p).is_some());
            // The same page without its slot array is read entry by entry.
            let mut scan = p.clone();
            scan[17] = 0;
            for _ in 0..50 {
                let len = rng.gen_range(0..15);
                let probe: Vec<u8> = (0..len).map(|_| rng.gen_range(0..4u8)).collect();
                assert_eq!(search(&p, &probe).unwrap(), search(&scan, &probe).unwrap());
            }
        }
    }

    #[test]
    fn a_damaged_slot_is_an_error_not_a_panic() {
        let mut p = page::new_page(4096, 5, PageKind::Internal);
        Node::Internal {
            first: 1,
            entries: vec![(b"m".to_vec(), 2), (b"t".to_vec(), 3)],
        }
        .encode_into(&mut p);
        let slots = crate::btree::node::slots(&p).unwrap();
        for b in &mut p[slots..slots + 4] {
            *b = 0xFF;
        }
        assert_eq!(search(&p, b"z"), Err(Error::DatabaseCorrupted));
        assert_eq!(Node::decode(&p), Err(Error::DatabaseCorrupted));
        p[18] = 0xFF;
        p[19] = 0xFF;
        assert_eq!(search(&p, b"z"), Err(Error::DatabaseCorrupted));
    }

    #[test]
    fn finds_what_decode_finds() {
        let mut p = page::new_page(4096, 3, PageKind::Leaf);
        Node::Leaf(vec![
            (b"a".to_vec(), Stored::Inline(b"1".to_vec())),
            (b"c".to_vec(), Stored::Overflow { len: 9, first: 4 }),
            (b"e".to_vec(), Stored::Inline(b"3".to_vec())),
        ])
        .encode_into(&mut p);
        assert_eq!(search(&p, b"a").unwrap(), Found::Inline(b"1"));
        assert_eq!(search(&p, b"b").unwrap(), Found::Missing);
        assert_eq!(search(&p, b"c").unwrap(), Found::Overflow);
        assert_eq!(search(&p, b"e").unwrap(), Found::Inline(b"3"));
        assert_eq!(search(&p, b"z").unwrap(), Found::Missing);
        let mut q = page::new_page(4096, 5, PageKind::Internal);
        Node::Internal {
            first: 10,
            entries: vec![(b"m".to_vec(), 11), (b"t".to_vec(), 12)],
        }
        .encode_into(&mut q);
        assert_eq!(search(&q, b"a").unwrap(), Found::Child(10));
        assert_eq!(search(&q, b"m").unwrap(), Found::Child(11));
        assert_eq!(search(&q, b"s").unwrap(), Found::Child(11));
        assert_eq!(search(&q, b"z").unwrap(), Found::Child(12));
        q[PAGE_HEADER] = 0xFF;
        q[PAGE_HEADER + 1] = 0xFF;
        assert!(
            search(&q, b"z").is_err(),
            "a count past the page is corruption, not a panic"
        );
    }
}
