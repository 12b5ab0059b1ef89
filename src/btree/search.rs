//! Lookups that read a node in place, without decoding it: the hot path of `get`. A damaged
//! page gives `DatabaseCorrupted`, as `Node::decode` would.

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

/// Looks `key` up in one node page.
pub fn search<'a>(p: &'a [u8], key: &[u8]) -> Result<Found<'a>> {
    let mut at = PAGE_HEADER;
    match page::kind(p) {
        Some(PageKind::Leaf) => {
            let n = u16_at(p, &mut at)?;
            for _ in 0..n {
                let (k, v) = leaf_entry(p, &mut at)?;
                match k.cmp(key) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        return Ok(v.map_or(Found::Overflow, Found::Inline));
                    }
                    // Keys are sorted: past it means absent.
                    std::cmp::Ordering::Greater => return Ok(Found::Missing),
                }
            }
            Ok(Found::Missing)
        }
        Some(PageKind::Internal) => {
            let n = u16_at(p, &mut at)?;
            let mut child = get_u32(take(p, &mut at, 4)?, 0);
            for _ in 0..n {
                let klen = u16_at(p, &mut at)?;
                let k = take(p, &mut at, klen)?;
                let c = get_u32(take(p, &mut at, 4)?, 0);
                if k > key {
                    break;
                }
                child = c;
            }
            Ok(Found::Child(child))
        }
        _ => Err(Error::DatabaseCorrupted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::{Node, Stored};

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
