//! In-place edits of a leaf page: the hot path of `put`. Decoding a leaf into a `Node`
//! allocates a vector for every key and value in it, and encoding it back clears and rewrites
//! the whole page; a put that fits in its leaf needs neither. The result is byte for byte the
//! page that decoding, inserting and encoding would give (entries packed in key order from
//! the body's start, zeros after them), so the page deltas a commit logs stay as small as
//! the change.

use super::node::inline_entry_len;
use super::search::{key_cmp, leaf_entry, u16_at};
use crate::page::{put_u32, PAGE_HEADER};
use crate::Result;

/// Where a key goes in a leaf.
struct Slot {
    /// The entry's first byte: the key's own entry, or the first entry with a greater key
    /// (the end of the entries if there is none).
    start: usize,
    /// The byte after the key's own entry (`start` when the key is not there).
    end: usize,
    /// The key is there with an overflow value (whose chain the caller must free).
    overflow: bool,
}

/// The leaf's entry count, the slot of `key`, and the end of the entries. Every length is
/// checked against the page: a damaged leaf gives `DatabaseCorrupted`.
fn locate(p: &[u8], key: &[u8]) -> Result<(usize, Slot, usize)> {
    let mut at = PAGE_HEADER;
    let n = u16_at(p, &mut at)?;
    let mut slot = None;
    for _ in 0..n {
        let start = at;
        let (k, v) = leaf_entry(p, &mut at)?;
        if slot.is_none() {
            slot = match key_cmp(k, key) {
                std::cmp::Ordering::Less => None,
                std::cmp::Ordering::Equal => Some(Slot {
                    start,
                    end: at,
                    overflow: v.is_none(),
                }),
                std::cmp::Ordering::Greater => Some(Slot {
                    start,
                    end: start,
                    overflow: false,
                }),
            };
        }
    }
    let slot = slot.unwrap_or(Slot {
        start: at,
        end: at,
        overflow: false,
    });
    Ok((n, slot, at))
}

/// Puts `key` with the inline value `value` into the leaf page `p`, in place. `Ok(false)`,
/// with the page untouched, when it cannot: the leaf would overflow (the caller splits it)
/// or the key holds an overflow value (the caller frees its chain).
pub fn put_inline(p: &mut [u8], key: &[u8], value: &[u8]) -> Result<bool> {
    let (n, slot, used) = locate(p, key)?;
    if slot.overflow {
        return Ok(false);
    }
    let exists = slot.end > slot.start;
    if !exists && n == u16::MAX as usize {
        return Ok(false);
    }
    let entry = inline_entry_len(key, value);
    let new_used = used - (slot.end - slot.start) + entry;
    if new_used > p.len() {
        return Ok(false);
    }
    let (Ok(klen), Ok(vlen)) = (u16::try_from(key.len()), u32::try_from(value.len())) else {
        return Ok(false);
    };
    p.copy_within(slot.end..used, slot.start + entry);
    if new_used < used {
        p[new_used..used].fill(0);
    }
    let mut at = slot.start;
    p[at..at + 2].copy_from_slice(&klen.to_le_bytes());
    at += 2;
    p[at..at + key.len()].copy_from_slice(key);
    at += key.len();
    p[at] = 0;
    put_u32(p, at + 1, vlen);
    at += 5;
    p[at..at + value.len()].copy_from_slice(value);
    if !exists {
        let count = (n as u16 + 1).to_le_bytes();
        p[PAGE_HEADER..PAGE_HEADER + 2].copy_from_slice(&count);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::{Node, Stored};
    use crate::page::{self, PageKind};
    use crate::Error;
    use rand::{Rng, SeedableRng};

    /// What the decoding path makes of the same put, or `None` where it would split or free
    /// an overflow chain.
    fn by_decoding(p: &[u8], key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        let Node::Leaf(mut entries) = Node::decode(p).unwrap() else {
            panic!("a leaf");
        };
        let v = Stored::Inline(value.to_vec());
        match entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
            Ok(i) if matches!(entries[i].1, Stored::Overflow { .. }) => return None,
            Ok(i) => entries[i].1 = v,
            Err(i) => entries.insert(i, (key.to_vec(), v)),
        }
        let node = Node::Leaf(entries);
        if node.encoded_len() > p.len() - PAGE_HEADER {
            return None;
        }
        let mut q = p.to_vec();
        node.encode_into(&mut q);
        Some(q)
    }

    #[test]
    fn in_place_puts_give_the_page_encoding_gives() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for round in 0..300 {
            let mut p = page::new_page(4096, 9, PageKind::Leaf);
            Node::Leaf(Vec::new()).encode_into(&mut p);
            for _ in 0..rng.gen_range(1..80) {
                // Few distinct keys, so replacements (longer and shorter) are common.
                let key = vec![rng.gen_range(b'a'..b'k'); rng.gen_range(0..6)];
                let value: Vec<u8> = (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect();
                let expect = by_decoding(&p, &key, &value);
                let before = p.clone();
                let done = put_inline(&mut p, &key, &value).unwrap();
                match expect {
                    Some(q) => {
                        assert!(done, "round {round}: it fits");
                        assert_eq!(p, q, "round {round}");
                    }
                    None => {
                        assert!(!done, "round {round}: it does not fit");
                        assert_eq!(p, before, "a refused put leaves the page alone");
                    }
                }
            }
        }
    }

    #[test]
    fn an_overflow_value_is_left_to_the_caller() {
        let mut p = page::new_page(4096, 9, PageKind::Leaf);
        Node::Leaf(vec![(
            b"k".to_vec(),
            Stored::Overflow {
                len: 9000,
                first: 4,
            },
        )])
        .encode_into(&mut p);
        let before = p.clone();
        assert!(!put_inline(&mut p, b"k", b"small").unwrap());
        assert_eq!(p, before);
        assert!(put_inline(&mut p, b"j", b"small").unwrap());
        assert_eq!(
            Node::decode(&p).unwrap(),
            Node::Leaf(vec![
                (b"j".to_vec(), Stored::Inline(b"small".to_vec())),
                (
                    b"k".to_vec(),
                    Stored::Overflow {
                        len: 9000,
                        first: 4
                    }
                ),
            ])
        );
    }

    #[test]
    fn a_damaged_leaf_is_an_error_not_a_panic() {
        let mut p = page::new_page(4096, 9, PageKind::Leaf);
        Node::Leaf(vec![(b"k".to_vec(), Stored::Inline(b"v".to_vec()))]).encode_into(&mut p);
        p[PAGE_HEADER] = 0xFF;
        p[PAGE_HEADER + 1] = 0xFF;
        assert_eq!(
            put_inline(&mut p, b"a", b"v"),
            Err(Error::DatabaseCorrupted)
        );
        let mut q = page::new_page(4096, 9, PageKind::Leaf);
        Node::Leaf(vec![(b"k".to_vec(), Stored::Inline(b"v".to_vec()))]).encode_into(&mut q);
        // The value's length points past the page.
        put_u32(&mut q, PAGE_HEADER + 2 + 2 + 1 + 1, u32::MAX);
        assert_eq!(
            put_inline(&mut q, b"a", b"v"),
            Err(Error::DatabaseCorrupted)
        );
    }
}
