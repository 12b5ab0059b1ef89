//! Encoding of B+tree nodes in a page body. Decoding checks every length against the page,
//! so a damaged page gives `DatabaseCorrupted`, never a panic.
//!
//! Leaf body: `count u16`, then per entry `key_len u16, key, tag u8` and either
//! `len u32, bytes` (tag 0, inline) or `total_len u64, first_pgno u32` (tag 1, overflow).
//! Interior body: `count u16, first_child u32`, then per entry `key_len u16, key, child u32`;
//! child `i` holds keys `>= key_i`, `first_child` keys below `key_0`. After the entries comes a
//! slot array, `count` u16 offsets of the entries, which header bytes 17..20 point to (see
//! `page`), so a lookup binary-searches an interior node instead of reading it entry by entry.
//! A node written before the slots were added has none (byte 17 is 0) and is read in order.

use super::search::corrupted;
use crate::page::{self, get_u32, get_u64, put_u32, put_u64, PageKind, PAGE_HEADER};
use crate::{Error, Result};

/// A value as stored in a leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Kept in the leaf.
    Inline(Vec<u8>),
    /// Kept in a chain of overflow pages.
    Overflow {
        /// Length of the whole value.
        len: u64,
        /// First page of the chain.
        first: u32,
    },
}

impl Stored {
    fn encoded_len(&self) -> usize {
        match self {
            Stored::Inline(v) => 1 + 4 + v.len(),
            Stored::Overflow { .. } => 1 + 8 + 4,
        }
    }
}

/// A decoded node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// Keys and values, sorted by key.
    Leaf(Vec<(Vec<u8>, Stored)>),
    /// Separator keys and children.
    Internal {
        /// Child for keys below the first separator.
        first: u32,
        /// `(separator, child)` pairs, sorted.
        entries: Vec<(Vec<u8>, u32)>,
    },
}

/// Size of one leaf entry in bytes.
pub fn leaf_entry_len(key: &[u8], v: &Stored) -> usize {
    2 + key.len() + v.encoded_len()
}

/// Size of one leaf entry of `key` with `value` kept inline, in bytes.
pub fn inline_entry_len(key: &[u8], value: &[u8]) -> usize {
    2 + key.len() + 1 + 4 + value.len()
}

/// Size of one interior entry in bytes, its slot included.
pub fn internal_entry_len(key: &[u8]) -> usize {
    2 + key.len() + 4 + 2
}

/// Header byte that says an interior node has a slot array.
const SLOTTED_AT: usize = 17;
/// Header bytes of the slot array's offset.
const SLOTS_AT: usize = 18;

/// Where the slot array of an interior node starts, if it has one.
pub(super) fn slots(page: &[u8]) -> Option<usize> {
    (page[SLOTTED_AT] == 1)
        .then(|| u16::from_le_bytes([page[SLOTS_AT], page[SLOTS_AT + 1]]) as usize)
}

/// Marks the page as having a slot array at `at`, or none.
fn set_slots(page: &mut [u8], at: Option<usize>) {
    page[SLOTTED_AT] = at.is_some() as u8;
    page[SLOTS_AT..SLOTS_AT + 2].copy_from_slice(&(at.unwrap_or(0) as u16).to_le_bytes());
}

impl Node {
    /// Bytes the node needs in a page body.
    pub fn encoded_len(&self) -> usize {
        match self {
            Node::Leaf(e) => 2 + e.iter().map(|(k, v)| leaf_entry_len(k, v)).sum::<usize>(),
            Node::Internal { entries, .. } => {
                2 + 4
                    + entries
                        .iter()
                        .map(|(k, _)| internal_entry_len(k))
                        .sum::<usize>()
            }
        }
    }

    /// Writes the node into `page` (whose header keeps its page number and LSN).
    pub fn encode_into(&self, page: &mut [u8]) {
        page[PAGE_HEADER..].fill(0);
        let mut at = PAGE_HEADER;
        match self {
            Node::Leaf(entries) => {
                page::set_kind(page, PageKind::Leaf);
                set_slots(page, None);
                page[at..at + 2].copy_from_slice(&(entries.len() as u16).to_le_bytes());
                at += 2;
                for (k, v) in entries {
                    at = put_key(page, at, k);
                    at = put_stored(page, at, v);
                }
            }
            Node::Internal { first, entries } => {
                page::set_kind(page, PageKind::Internal);
                page[at..at + 2].copy_from_slice(&(entries.len() as u16).to_le_bytes());
                put_u32(page, at + 2, *first);
                at += 6;
                let mut entry = at;
                for (k, c) in entries {
                    at = put_key(page, at, k);
                    put_u32(page, at, *c);
                    at += 4;
                }
                set_slots(page, Some(at));
                for (k, _) in entries {
                    page[at..at + 2].copy_from_slice(&(entry as u16).to_le_bytes());
                    at += 2;
                    entry += 2 + k.len() + 4;
                }
            }
        }
    }

    /// Reads a node from a page.
    pub fn decode(page: &[u8]) -> Result<Node> {
        let mut r = Reader {
            b: page,
            at: PAGE_HEADER,
        };
        match page::kind(page) {
            Some(PageKind::Leaf) => {
                let n = r.u16()? as usize;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = r.key()?;
                    let v = match r.u8()? {
                        0 => {
                            let len = r.u32()? as usize;
                            Stored::Inline(r.bytes(len)?.to_vec())
                        }
                        1 => Stored::Overflow {
                            len: r.u64()?,
                            first: r.u32()?,
                        },
                        _ => return Err(Error::DatabaseCorrupted),
                    };
                    entries.push((k, v));
                }
                Ok(Node::Leaf(entries))
            }
            Some(PageKind::Internal) => {
                let n = r.u16()? as usize;
                let first = r.u32()?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = r.key()?;
                    entries.push((k, r.u32()?));
                }
                if let Some(at) = slots(page) {
                    // The slots must name exactly the entries read in order: a lookup trusts
                    // them.
                    r.at = at;
                    let mut start = PAGE_HEADER + 6;
                    for (k, _) in &entries {
                        if r.u16()? as usize != start {
                            return Err(Error::DatabaseCorrupted);
                        }
                        start += 2 + k.len() + 4;
                    }
                }
                Ok(Node::Internal { first, entries })
            }
            _ => Err(Error::DatabaseCorrupted),
        }
    }
}

fn put_key(page: &mut [u8], at: usize, k: &[u8]) -> usize {
    page[at..at + 2].copy_from_slice(&(k.len() as u16).to_le_bytes());
    page[at + 2..at + 2 + k.len()].copy_from_slice(k);
    at + 2 + k.len()
}

fn put_stored(page: &mut [u8], at: usize, v: &Stored) -> usize {
    match v {
        Stored::Inline(bytes) => {
            page[at] = 0;
            put_u32(page, at + 1, bytes.len() as u32);
            page[at + 5..at + 5 + bytes.len()].copy_from_slice(bytes);
            at + 5 + bytes.len()
        }
        Stored::Overflow { len, first } => {
            page[at] = 1;
            put_u64(page, at + 1, *len);
            put_u32(page, at + 9, *first);
            at + 13
        }
    }
}

/// A bounds-checked cursor over a page.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(corrupted)?;
        let s = self.b.get(self.at..end).ok_or_else(corrupted)?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let s = self.bytes(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(get_u32(self.bytes(4)?, 0))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(get_u64(self.bytes(8)?, 0))
    }
    fn key(&mut self) -> Result<Vec<u8>> {
        let n = self.u16()? as usize;
        Ok(self.bytes(n)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_and_internal_round_trip() {
        let mut p = page::new_page(4096, 3, PageKind::Leaf);
        let leaf = Node::Leaf(vec![
            (b"a".to_vec(), Stored::Inline(b"xyz".to_vec())),
            (
                b"b".to_vec(),
                Stored::Overflow {
                    len: 1 << 20,
                    first: 9,
                },
            ),
        ]);
        leaf.encode_into(&mut p);
        assert_eq!(Node::decode(&p).unwrap(), leaf);
        assert_eq!(leaf.encoded_len(), 2 + (2 + 1 + 1 + 4 + 3) + (2 + 1 + 13));
        let int = Node::Internal {
            first: 4,
            entries: vec![(b"m".to_vec(), 5)],
        };
        int.encode_into(&mut p);
        assert_eq!(Node::decode(&p).unwrap(), int);
    }

    #[test]
    fn damaged_lengths_are_errors_not_panics() {
        let mut p = page::new_page(4096, 3, PageKind::Leaf);
        Node::Leaf(vec![(b"k".to_vec(), Stored::Inline(vec![1; 10]))]).encode_into(&mut p);
        p[PAGE_HEADER] = 0xFF;
        p[PAGE_HEADER + 1] = 0xFF;
        assert!(Node::decode(&p).is_err());
        let mut q = page::new_page(4096, 3, PageKind::Leaf);
        q[PAGE_HEADER + 2] = 0xFF;
        q[PAGE_HEADER + 3] = 0xFF;
        q[PAGE_HEADER] = 1;
        assert!(Node::decode(&q).is_err());
    }
}
