//! B+tree operations: get, put, delete, range scan. Splits propagate upwards; the root keeps
//! its page number by moving its contents into a new child when it splits.

use std::ops::Bound;

use super::node::{inline_entry_len, internal_entry_len, leaf_entry_len, Node, Stored};
use super::search::{search, Found};
use super::{edit, space, PageIo};
use crate::page::{self, get_u32, put_u32, PageKind, PAGE_HEADER};
use crate::{Error, Result};

/// Longest key accepted, in bytes (longer keys: `KeyTooBig`).
pub const MAX_KEY: usize = 1024;
/// Longest value accepted, in bytes (longer values: `RecordTooBig`).
pub const MAX_VALUE: usize = 64 << 20;
/// Overflow page body: `next u32, len u32`, then data.
const OVF_HDR: usize = 8;
/// Deepest tree walked before a cycle is assumed (a damaged page).
const MAX_DEPTH: usize = 32;

fn capacity(ps: u32) -> usize {
    ps as usize - PAGE_HEADER
}

/// Creates an empty tree and returns its root page.
pub fn create_tree(io: &mut dyn PageIo) -> Result<u32> {
    let (pgno, mut p) = space::alloc(io, PageKind::Leaf)?;
    Node::Leaf(Vec::new()).encode_into(&mut p);
    io.write(pgno, p);
    Ok(pgno)
}

fn load(io: &mut dyn PageIo, pgno: u32) -> Result<(Vec<u8>, Node)> {
    let p = io.read(pgno)?;
    let n = Node::decode(&p)?;
    Ok((p, n))
}

fn store(io: &mut dyn PageIo, pgno: u32, mut p: Vec<u8>, n: &Node) {
    n.encode_into(&mut p);
    io.write(pgno, p);
}

fn child_index(entries: &[(Vec<u8>, u32)], key: &[u8]) -> usize {
    // number of separators <= key: 0 means `first`
    entries.partition_point(|(k, _)| k.as_slice() <= key)
}

fn child_at(first: u32, entries: &[(Vec<u8>, u32)], i: usize) -> u32 {
    if i == 0 {
        first
    } else {
        entries[i - 1].1
    }
}

/// Checks a key against the limits.
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY {
        return Err(Error::KeyTooBig);
    }
    Ok(())
}

/// Looks up `key`.
pub fn get(io: &mut dyn PageIo, root: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut pgno = root;
    for _ in 0..MAX_DEPTH {
        match load(io, pgno)?.1 {
            Node::Leaf(entries) => {
                return match entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                    Ok(i) => Ok(Some(read_value(io, &entries[i].1)?)),
                    Err(_) => Ok(None),
                };
            }
            Node::Internal { first, entries } => {
                pgno = child_at(first, &entries, child_index(&entries, key))
            }
        }
    }
    Err(Error::DatabaseCorrupted)
}

/// Inserts or replaces `key`.
pub fn put(io: &mut dyn PageIo, root: u32, key: &[u8], value: &[u8]) -> Result<()> {
    check_key(key)?;
    if value.len() > MAX_VALUE {
        return Err(Error::RecordTooBig);
    }
    let ps = io.page_size();
    let inline = inline_entry_len(key, value) <= capacity(ps) / 4;
    if inline && put_in_leaf(io, root, key, value)? {
        return Ok(());
    }
    let stored = match inline {
        true => Stored::Inline(value.to_vec()),
        false => write_overflow(io, value)?,
    };
    if let Some((sep, right)) = insert(io, root, key, stored, 0)? {
        grow_root(io, root, sep, right)?;
    }
    Ok(())
}

/// The hot path of [`put`]: down the tree without decoding a node, then the value put into
/// its leaf in place. `false` (nothing changed) when the leaf has no room or the key holds
/// an overflow value: [`insert`] then does it by decoding, splitting as needed.
fn put_in_leaf(io: &mut dyn PageIo, root: u32, key: &[u8], value: &[u8]) -> Result<bool> {
    let mut pgno = root;
    for _ in 0..MAX_DEPTH {
        let mut p = io.read(pgno)?;
        // A leaf is read once, by the edit; an interior page by the search.
        if page::kind(&p) == Some(PageKind::Leaf) {
            if !edit::put_inline(&mut p, key, value)? {
                return Ok(false);
            }
            io.write(pgno, p);
            return Ok(true);
        }
        match search(&p, key)? {
            Found::Child(c) => pgno = c,
            _ => return Err(Error::DatabaseCorrupted),
        }
    }
    Err(Error::DatabaseCorrupted)
}

/// The root split: its contents move to a new left child, so the root page stays put.
fn grow_root(io: &mut dyn PageIo, root: u32, sep: Vec<u8>, right: u32) -> Result<()> {
    let (rp, rnode) = load(io, root)?;
    let kind = page::kind(&rp).unwrap_or(PageKind::Leaf);
    let (left, lp) = space::alloc(io, kind)?;
    store(io, left, lp, &rnode);
    let new_root = Node::Internal {
        first: left,
        entries: vec![(sep, right)],
    };
    store(io, root, rp, &new_root);
    Ok(())
}

fn insert(
    io: &mut dyn PageIo,
    pgno: u32,
    key: &[u8],
    v: Stored,
    depth: usize,
) -> Result<Option<(Vec<u8>, u32)>> {
    if depth > MAX_DEPTH {
        return Err(Error::DatabaseCorrupted);
    }
    let (p, node) = load(io, pgno)?;
    match node {
        Node::Leaf(mut entries) => {
            match entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                Ok(i) => {
                    let old = std::mem::replace(&mut entries[i].1, v);
                    free_value(io, &old)?;
                }
                Err(i) => entries.insert(i, (key.to_vec(), v)),
            }
            finish(io, pgno, p, Node::Leaf(entries))
        }
        Node::Internal { first, mut entries } => {
            let i = child_index(&entries, key);
            let child = child_at(first, &entries, i);
            match insert(io, child, key, v, depth + 1)? {
                None => Ok(None),
                Some((sep, right)) => {
                    entries.insert(i, (sep, right));
                    finish(io, pgno, p, Node::Internal { first, entries })
                }
            }
        }
    }
}

/// Stores `node` at `pgno`, splitting it if it does not fit.
fn finish(
    io: &mut dyn PageIo,
    pgno: u32,
    p: Vec<u8>,
    node: Node,
) -> Result<Option<(Vec<u8>, u32)>> {
    if node.encoded_len() <= capacity(io.page_size()) {
        store(io, pgno, p, &node);
        return Ok(None);
    }
    let (left, sep, right) = split(node);
    store(io, pgno, p, &left);
    let kind = if matches!(right, Node::Leaf(_)) {
        PageKind::Leaf
    } else {
        PageKind::Internal
    };
    let (rpgno, rp) = space::alloc(io, kind)?;
    store(io, rpgno, rp, &right);
    Ok(Some((sep, rpgno)))
}

/// Splits at the byte midpoint; every entry is at most a quarter of a page (keys are capped
/// and large values overflow), so both halves fit.
fn split(node: Node) -> (Node, Vec<u8>, Node) {
    match node {
        Node::Leaf(mut entries) => {
            let at = midpoint(entries.iter().map(|(k, v)| leaf_entry_len(k, v)));
            let right = entries.split_off(at);
            let sep = right[0].0.clone();
            (Node::Leaf(entries), sep, Node::Leaf(right))
        }
        Node::Internal { first, mut entries } => {
            let at = midpoint(entries.iter().map(|(k, _)| internal_entry_len(k)));
            let mut right = entries.split_off(at);
            let (sep, rfirst) = right.remove(0);
            (
                Node::Internal { first, entries },
                sep,
                Node::Internal {
                    first: rfirst,
                    entries: right,
                },
            )
        }
    }
}

fn midpoint(sizes: impl Iterator<Item = usize> + Clone) -> usize {
    let total: usize = sizes.clone().sum();
    let n = sizes.clone().count();
    let mut acc = 0;
    for (i, s) in sizes.enumerate() {
        acc += s;
        if acc * 2 >= total {
            return (i + 1).clamp(1, n.saturating_sub(1).max(1));
        }
    }
    n / 2
}

/// An interior node a delete walked through: page number, page, first child, entries, and
/// the index of the child taken (0 for `first`).
type Step = (u32, Vec<u8>, u32, Vec<(Vec<u8>, u32)>, usize);

/// Deletes `key`; false if it was not there. A leaf the delete empties (other than the root)
/// is freed and taken out of its parent, and so is an interior node left with no child, so
/// the pages of rows deleted for good (a queue's head, a range deleted) are reused.
pub fn delete(io: &mut dyn PageIo, root: u32, key: &[u8]) -> Result<bool> {
    let mut pgno = root;
    let mut path: Vec<Step> = Vec::new();
    for _ in 0..MAX_DEPTH {
        let (p, node) = load(io, pgno)?;
        match node {
            Node::Leaf(mut entries) => {
                let Ok(i) = entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)) else {
                    return Ok(false);
                };
                let (_, old) = entries.remove(i);
                free_value(io, &old)?;
                if !entries.is_empty() || path.is_empty() {
                    store(io, pgno, p, &Node::Leaf(entries));
                    return Ok(true);
                }
                space::free(io, pgno)?;
                return unlink(io, path).map(|()| true);
            }
            Node::Internal { first, entries } => {
                let i = child_index(&entries, key);
                let child = child_at(first, &entries, i);
                path.push((pgno, p, first, entries, i));
                pgno = child;
            }
        }
    }
    Err(Error::DatabaseCorrupted)
}

/// Takes the child that was just freed out of the last node of `path`; a node left with no
/// child is freed in turn, and a root left with none becomes an empty leaf.
fn unlink(io: &mut dyn PageIo, mut path: Vec<Step>) -> Result<()> {
    while let Some((pgno, p, mut first, mut entries, i)) = path.pop() {
        if !entries.is_empty() {
            if i == 0 {
                first = entries.remove(0).1;
            } else {
                entries.remove(i - 1);
            }
            store(io, pgno, p, &Node::Internal { first, entries });
            return Ok(());
        }
        if path.is_empty() {
            // The root keeps its page.
            store(io, pgno, p, &Node::Leaf(Vec::new()));
            return Ok(());
        }
        space::free(io, pgno)?;
    }
    Ok(())
}

/// How much one bounded scan may produce: it stops before a row that would go past `rows`
/// rows, or once `bytes` bytes of keys and values are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Rows at most.
    pub rows: usize,
    /// Bytes of keys and values after which it stops (the row that crosses it is kept).
    pub bytes: usize,
}

impl Budget {
    /// No bound.
    pub const UNBOUNDED: Budget = Budget {
        rows: usize::MAX,
        bytes: usize::MAX,
    };
}

/// What a bounded scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPart {
    /// Rows in the scan's order: ascending keys for [`scan_part`], descending for
    /// [`scan_part_rev`].
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// The budget ran out with rows of the range left: the rest lies past the last row (above
    /// it for a forward scan, below it for a reverse one).
    pub more: bool,
}

/// Every `(key, value)` with key in the range, in key order.
pub fn scan(
    io: &mut dyn PageIo,
    root: u32,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    Ok(scan_part(io, root, lo, hi, Budget::UNBOUNDED)?.rows)
}

/// The first rows of the range, in key order, within `budget`. `more` is true only when a
/// row of the range was left out, so a scan resumed after the last row is never empty
/// because of a budget that ran out exactly at the end.
pub fn scan_part(
    io: &mut dyn PageIo,
    root: u32,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    budget: Budget,
) -> Result<ScanPart> {
    bounded(scan_node, io, root, (lo, hi), budget)
}

/// The last rows of the range, in descending key order, within `budget`: [`scan_part`] run
/// from the high end. `more` means the same (a row below the last one was left out), so a
/// reverse scan resumes with `hi = Excluded(last key)`.
pub fn scan_part_rev(
    io: &mut dyn PageIo,
    root: u32,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    budget: Budget,
) -> Result<ScanPart> {
    bounded(scan_node_rev, io, root, (lo, hi), budget)
}

/// A walk of the tree in one direction, from the root, into a fresh accumulator.
type Walk = fn(&mut dyn PageIo, u32, Bound<&[u8]>, Bound<&[u8]>, &mut Acc, usize) -> Result<()>;

fn bounded(
    walk: Walk,
    io: &mut dyn PageIo,
    root: u32,
    (lo, hi): (Bound<&[u8]>, Bound<&[u8]>),
    budget: Budget,
) -> Result<ScanPart> {
    let mut acc = Acc {
        part: ScanPart::default(),
        bytes: 0,
        budget,
    };
    walk(io, root, lo, hi, &mut acc, 0)?;
    Ok(acc.part)
}

/// A bounded scan's rows so far.
struct Acc {
    part: ScanPart,
    bytes: usize,
    budget: Budget,
}

impl Acc {
    fn full(&self) -> bool {
        self.part.rows.len() >= self.budget.rows || self.bytes >= self.budget.bytes
    }

    /// Takes a row of the range, in either direction; `false` (and `more` set) once the
    /// budget is spent, leaving the row for the next slice.
    fn take(&mut self, io: &mut dyn PageIo, k: Vec<u8>, v: &Stored) -> Result<bool> {
        if self.full() {
            self.part.more = true;
            return Ok(false);
        }
        let v = read_value(io, v)?;
        self.bytes += k.len() + v.len();
        self.part.rows.push((k, v));
        Ok(true)
    }
}

fn above_lo(k: &[u8], lo: Bound<&[u8]>) -> bool {
    match lo {
        Bound::Included(l) => k >= l,
        Bound::Excluded(l) => k > l,
        Bound::Unbounded => true,
    }
}

fn below_hi(k: &[u8], hi: Bound<&[u8]>) -> bool {
    match hi {
        Bound::Included(h) => k <= h,
        Bound::Excluded(h) => k < h,
        Bound::Unbounded => true,
    }
}

/// Scans one subtree; stops (setting `more`) at the first row of the range that does not fit.
fn scan_node(
    io: &mut dyn PageIo,
    pgno: u32,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    acc: &mut Acc,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::DatabaseCorrupted);
    }
    match load(io, pgno)?.1 {
        Node::Leaf(entries) => {
            for (k, v) in entries {
                if !above_lo(&k, lo) || !below_hi(&k, hi) {
                    continue;
                }
                if !acc.take(io, k, &v)? {
                    return Ok(());
                }
            }
        }
        Node::Internal { first, entries } => {
            let start = match lo {
                Bound::Unbounded => 0,
                Bound::Included(l) | Bound::Excluded(l) => child_index(&entries, l),
            };
            for i in start..=entries.len() {
                if i > 0 && !below_hi(&entries[i - 1].0, hi) {
                    break;
                }
                scan_node(io, child_at(first, &entries, i), lo, hi, acc, depth + 1)?;
                if acc.part.more {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// [`scan_node`] from the high end. Nodes have no sibling links, so the walk goes down by
/// `hi` and back through the parents' earlier children, as the forward walk goes by `lo`.
fn scan_node_rev(
    io: &mut dyn PageIo,
    pgno: u32,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    acc: &mut Acc,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::DatabaseCorrupted);
    }
    match load(io, pgno)?.1 {
        Node::Leaf(mut entries) => {
            // Both tests are monotone over sorted keys, so the range is one run of entries.
            // A damaged leaf may be unsorted: an inverted run is then read as empty.
            let start = entries.partition_point(|(k, _)| !above_lo(k, lo));
            let end = entries.partition_point(|(k, _)| below_hi(k, hi));
            if start >= end {
                return Ok(());
            }
            entries.truncate(end);
            for (k, v) in entries.drain(start..).rev() {
                if !acc.take(io, k, &v)? {
                    return Ok(());
                }
            }
        }
        Node::Internal { first, entries } => {
            // Child `i` holds keys from separator `i - 1` on: an excluded `hi` equal to a
            // separator leaves nothing of the range in that separator's child.
            let end = match hi {
                Bound::Unbounded => entries.len(),
                Bound::Included(h) => child_index(&entries, h),
                Bound::Excluded(h) => entries.partition_point(|(k, _)| k.as_slice() < h),
            };
            let start = match lo {
                Bound::Unbounded => 0,
                Bound::Included(l) | Bound::Excluded(l) => child_index(&entries, l),
            };
            for i in (start..=end).rev() {
                scan_node_rev(io, child_at(first, &entries, i), lo, hi, acc, depth + 1)?;
                if acc.part.more {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn write_overflow(io: &mut dyn PageIo, value: &[u8]) -> Result<Stored> {
    let chunk = capacity(io.page_size()) - OVF_HDR;
    let mut next = 0u32;
    // Written back to front so each page knows its successor when it is made. An empty value
    // (kept out of the leaf because its key is long) still gets one page: readers and
    // `free_value` walk at least one page of a chain, and a chain of none would send them to
    // page 0.
    let mut pieces: Vec<&[u8]> = value.chunks(chunk).collect();
    if pieces.is_empty() {
        pieces.push(&[]);
    }
    for piece in pieces.iter().rev() {
        let (pgno, mut p) = space::alloc(io, PageKind::Overflow)?;
        put_u32(&mut p, PAGE_HEADER, next);
        put_u32(&mut p, PAGE_HEADER + 4, piece.len() as u32);
        p[PAGE_HEADER + OVF_HDR..PAGE_HEADER + OVF_HDR + piece.len()].copy_from_slice(piece);
        io.write(pgno, p);
        next = pgno;
    }
    Ok(Stored::Overflow {
        len: value.len() as u64,
        first: next,
    })
}

fn overflow_pages(io: &mut dyn PageIo, len: u64, first: u32) -> Result<Vec<(u32, Vec<u8>)>> {
    let chunk = (capacity(io.page_size()) - OVF_HDR) as u64;
    let count = len.div_ceil(chunk).max(1);
    let mut pages = Vec::new();
    let mut pgno = first;
    for _ in 0..count {
        let p = io.read(pgno)?;
        if page::kind(&p) != Some(PageKind::Overflow) {
            return Err(Error::DatabaseCorrupted);
        }
        let next = get_u32(&p, PAGE_HEADER);
        pages.push((pgno, p));
        pgno = next;
    }
    Ok(pages)
}

fn read_value(io: &mut dyn PageIo, v: &Stored) -> Result<Vec<u8>> {
    match v {
        Stored::Inline(b) => Ok(b.clone()),
        Stored::Overflow { len, first } => {
            if *len as usize > MAX_VALUE {
                return Err(Error::DatabaseCorrupted);
            }
            let mut out = Vec::with_capacity(*len as usize);
            for (_, p) in overflow_pages(io, *len, *first)? {
                let n = get_u32(&p, PAGE_HEADER + 4) as usize;
                let data = p
                    .get(PAGE_HEADER + OVF_HDR..PAGE_HEADER + OVF_HDR + n)
                    .ok_or(Error::DatabaseCorrupted)?;
                out.extend_from_slice(data);
            }
            if out.len() as u64 != *len {
                return Err(Error::DatabaseCorrupted);
            }
            Ok(out)
        }
    }
}

fn free_value(io: &mut dyn PageIo, v: &Stored) -> Result<()> {
    if let Stored::Overflow { len, first } = v {
        for (pgno, _) in overflow_pages(io, *len, *first)? {
            space::free(io, pgno)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    /// Pages in memory, for the tree tests here and in `boundary_tests`.
    pub(super) struct Mem {
        pub(super) ps: u32,
        pub(super) pages: HashMap<u32, Vec<u8>>,
    }
    impl PageIo for Mem {
        fn page_size(&self) -> u32 {
            self.ps
        }
        fn read(&mut self, pgno: u32) -> Result<Vec<u8>> {
            Ok(self
                .pages
                .get(&pgno)
                .cloned()
                .unwrap_or_else(|| vec![0; self.ps as usize]))
        }
        fn write(&mut self, pgno: u32, page: Vec<u8>) {
            self.pages.insert(pgno, page);
        }
    }

    pub(super) fn mem(ps: u32) -> Mem {
        let mut m = Mem {
            ps,
            pages: HashMap::new(),
        };
        space::format(&mut m);
        m
    }

    #[test]
    fn random_ops_match_a_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for ps in [4096, 8192] {
            let mut m = mem(ps);
            let root = create_tree(&mut m).unwrap();
            let mut model = BTreeMap::new();
            for _ in 0..6000 {
                let k = format!("k{:05}", rng.gen_range(0..1500)).into_bytes();
                if rng.gen_bool(0.25) {
                    assert_eq!(
                        delete(&mut m, root, &k).unwrap(),
                        model.remove(&k).is_some()
                    );
                } else {
                    let len = if rng.gen_bool(0.02) {
                        rng.gen_range(2000..40000)
                    } else {
                        rng.gen_range(0..200)
                    };
                    let v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    put(&mut m, root, &k, &v).unwrap();
                    model.insert(k, v);
                }
            }
            for (k, v) in &model {
                assert_eq!(get(&mut m, root, k).unwrap().as_ref(), Some(v));
            }
            let all = scan(&mut m, root, Bound::Unbounded, Bound::Unbounded).unwrap();
            assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>());
            let lo = b"k00500".to_vec();
            let hi = b"k00900".to_vec();
            let part = scan(&mut m, root, Bound::Included(&lo), Bound::Excluded(&hi)).unwrap();
            let want: Vec<_> = model
                .range(lo.clone()..hi.clone())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(part, want);
            assert_eq!(scan_in_parts(&mut m, root, 7, 3000), all);
            assert_eq!(scan_in_parts(&mut m, root, 1, usize::MAX), all);
            let desc: Vec<_> = all.iter().rev().cloned().collect();
            let whole = (Bound::Unbounded, Bound::Unbounded);
            assert_eq!(scan_in_parts_rev(&mut m, root, whole, 7, 3000), desc);
        }
    }

    /// A whole reverse scan of `[lo, hi]` made of bounded parts, each resumed just below the
    /// last row.
    fn scan_in_parts_rev(
        m: &mut Mem,
        root: u32,
        (lo, hi): (Bound<&[u8]>, Bound<&[u8]>),
        rows: usize,
        bytes: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            let below = out.last().map(|(k, _)| k.clone());
            let hi = below.as_deref().map_or(hi, Bound::Excluded);
            let part = scan_part_rev(m, root, lo, hi, Budget { rows, bytes }).unwrap();
            assert!(part.rows.len() <= rows);
            assert!(
                !part.more || !part.rows.is_empty(),
                "an early stop has rows"
            );
            out.extend(part.rows);
            if !part.more {
                return out;
            }
        }
    }

    /// Levels from the root to the leftmost leaf.
    fn levels(m: &mut Mem, root: u32) -> usize {
        let mut pgno = root;
        for depth in 1..=MAX_DEPTH {
            match load(m, pgno).unwrap().1 {
                Node::Leaf(_) => return depth,
                Node::Internal { first, .. } => pgno = first,
            }
        }
        panic!("no leaf under {root}");
    }

    /// 3000 rows with long keys (so interior nodes fan out little) and every seventh row
    /// deleted: a tree of at least three levels whose leaves have gaps.
    fn deep_tree() -> (Mem, u32, Vec<Vec<u8>>) {
        let mut m = mem(4096);
        let root = create_tree(&mut m).unwrap();
        let key = |i: u32| format!("k{i:05}{}", "p".repeat(90)).into_bytes();
        for i in 0..3000u32 {
            put(&mut m, root, &key(i), &i.to_be_bytes().repeat(25)).unwrap();
        }
        for i in (0..3000u32).step_by(7) {
            assert!(delete(&mut m, root, &key(i)).unwrap());
        }
        assert!(levels(&mut m, root) >= 3, "the tree is too shallow");
        // Present keys, deleted ones, and keys before, between and after all of them.
        let mut probes: Vec<Vec<u8>> = [0, 1, 7, 8, 17, 500, 1001, 1498, 1500, 2999]
            .into_iter()
            .map(key)
            .collect();
        probes.extend([
            b"".to_vec(),
            b"a".to_vec(),
            b"k01000".to_vec(),
            b"z".to_vec(),
        ]);
        (m, root, probes)
    }

    fn bounds(probes: &[Vec<u8>]) -> Vec<Bound<&[u8]>> {
        let mut out = vec![Bound::Unbounded];
        for p in probes {
            out.push(Bound::Included(p.as_slice()));
            out.push(Bound::Excluded(p.as_slice()));
        }
        out
    }

    #[test]
    fn a_reverse_scan_is_the_forward_scan_reversed() {
        let (mut m, root, probes) = deep_tree();
        let bounds = bounds(&probes);
        let mut nonempty = 0;
        for &lo in &bounds {
            for &hi in &bounds {
                let mut want = scan(&mut m, root, lo, hi).unwrap();
                want.reverse();
                let got = scan_part_rev(&mut m, root, lo, hi, Budget::UNBOUNDED).unwrap();
                assert_eq!(got.rows, want, "{lo:?}..{hi:?}");
                assert!(!got.more);
                nonempty += usize::from(!want.is_empty());
            }
        }
        // The assortment has empty ranges (lo > hi, lo == hi excluded) and real ones.
        assert!(nonempty > 100 && nonempty < bounds.len() * bounds.len());
    }

    #[test]
    fn reverse_parts_cover_the_range_once() {
        let (mut m, root, probes) = deep_tree();
        let bounds = bounds(&probes);
        for (i, &lo) in bounds.iter().enumerate() {
            // Every third high bound is plenty; budgets alternate so parts end anywhere.
            for &hi in bounds.iter().skip(i % 3).step_by(3) {
                let mut want = scan(&mut m, root, lo, hi).unwrap();
                want.reverse();
                for (rows, bytes) in [(7, 3000), (1, usize::MAX), (usize::MAX, 1), (250, 20_000)] {
                    let got = scan_in_parts_rev(&mut m, root, (lo, hi), rows, bytes);
                    assert_eq!(got, want, "{lo:?}..{hi:?} by ({rows}, {bytes})");
                }
            }
        }
    }

    #[test]
    fn a_budget_that_ends_with_the_range_is_not_more() {
        let (mut m, root, _) = deep_tree();
        let all = scan(&mut m, root, Bound::Unbounded, Bound::Unbounded).unwrap();
        let rows = all.len();
        let exact = Budget {
            rows,
            bytes: usize::MAX,
        };
        let part = scan_part_rev(&mut m, root, Bound::Unbounded, Bound::Unbounded, exact).unwrap();
        assert_eq!((part.rows.len(), part.more), (rows, false));
        let short = Budget {
            rows: rows - 1,
            ..exact
        };
        let part = scan_part_rev(&mut m, root, Bound::Unbounded, Bound::Unbounded, short).unwrap();
        assert_eq!((part.rows.len(), part.more), (rows - 1, true));
        assert_eq!(part.rows.last(), all.get(1), "stopped above the lowest row");
    }

    #[test]
    fn a_damaged_tree_is_an_error_in_both_directions() {
        let whole = (Bound::Unbounded, Bound::Unbounded);
        // An interior node that is its own child: a cycle.
        let mut m = mem(4096);
        let root = create_tree(&mut m).unwrap();
        let mut p = m.read(root).unwrap();
        let cycle = Node::Internal {
            first: root,
            entries: vec![(b"m".to_vec(), root)],
        };
        cycle.encode_into(&mut p);
        m.write(root, p);
        let fwd = scan_part(&mut m, root, whole.0, whole.1, Budget::UNBOUNDED);
        let rev = scan_part_rev(&mut m, root, whole.0, whole.1, Budget::UNBOUNDED);
        assert!(matches!(fwd, Err(Error::DatabaseCorrupted)), "{fwd:?}");
        assert!(matches!(rev, Err(Error::DatabaseCorrupted)), "{rev:?}");
        // A page under the root with an unsorted leaf body, then with a garbage one.
        let (mut m, root, _) = deep_tree();
        let child = match load(&mut m, root).unwrap().1 {
            Node::Internal { entries, .. } => entries[0].1,
            Node::Leaf(_) => unreachable!("deep_tree has levels"),
        };
        let mut p = m.read(child).unwrap();
        let unsorted = Node::Leaf(vec![
            (b"z".to_vec(), Stored::Inline(b"1".to_vec())),
            (b"a".to_vec(), Stored::Inline(b"2".to_vec())),
        ]);
        unsorted.encode_into(&mut p);
        m.write(child, p.clone());
        let lo = Bound::Included(&b"b"[..]);
        assert!(scan_part_rev(&mut m, root, lo, Bound::Excluded(b"y"), Budget::UNBOUNDED).is_ok());
        for b in &mut p[PAGE_HEADER..] {
            *b = 0xff;
        }
        m.write(child, p);
        let rev = scan_part_rev(&mut m, root, whole.0, whole.1, Budget::UNBOUNDED);
        assert!(rev.is_err(), "{rev:?}");
    }

    /// A whole scan made of bounded parts, each resumed just after the last row.
    fn scan_in_parts(m: &mut Mem, root: u32, rows: usize, bytes: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            let after = out.last().map(|(k, _)| k.clone());
            let lo = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let part = scan_part(m, root, lo, Bound::Unbounded, Budget { rows, bytes }).unwrap();
            assert!(part.rows.len() <= rows);
            assert!(
                !part.more || !part.rows.is_empty(),
                "an early stop has rows"
            );
            out.extend(part.rows);
            if !part.more {
                return out;
            }
        }
    }

    #[test]
    fn big_keys_and_values() {
        let mut m = mem(4096);
        let root = create_tree(&mut m).unwrap();
        for i in 0..50u8 {
            let k = vec![i; MAX_KEY];
            put(&mut m, root, &k, &vec![i; 1 << 20]).unwrap();
        }
        assert_eq!(
            get(&mut m, root, &[7u8; MAX_KEY]).unwrap().unwrap().len(),
            1 << 20
        );
        assert!(matches!(
            put(&mut m, root, &[0u8; MAX_KEY + 1], b"x"),
            Err(Error::KeyTooBig)
        ));
    }

    #[test]
    fn freed_overflow_pages_are_reused() {
        let mut m = mem(4096);
        let root = create_tree(&mut m).unwrap();
        put(&mut m, root, b"a", &[1u8; 100_000]).unwrap();
        let before = space::read_meta(&mut m).unwrap().last_page;
        for _ in 0..5 {
            put(&mut m, root, b"a", &[2u8; 100_000]).unwrap();
        }
        let after = space::read_meta(&mut m).unwrap().last_page;
        assert!(after <= before + 30, "{before} -> {after}");
    }
}

#[cfg(test)]
mod boundary_tests {
    use super::tests::{mem, Mem};
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    const SIZES: [u32; 4] = [4096, 8192, 16384, 32768];

    /// Value lengths at and around every threshold of a page size, for a key of `klen`.
    fn value_lens(ps: u32, klen: usize) -> Vec<usize> {
        let cap = capacity(ps);
        let chunk = cap - OVF_HDR;
        // Largest inline value for this key: 2 + klen + 5 + v <= cap / 4.
        let inl = (cap / 4).saturating_sub(2 + klen + 5);
        let mut out = vec![0, 1, 2];
        for t in [inl, chunk, 2 * chunk, 3 * chunk, cap, cap / 2] {
            for d in [-2i64, -1, 0, 1, 2] {
                let v = t as i64 + d;
                if v >= 0 {
                    out.push(v as usize);
                }
            }
        }
        out
    }

    fn key_lens() -> Vec<usize> {
        vec![0, 1, 7, 8, 9, 100, 500, 1000, 1016, 1017, 1023, 1024]
    }

    fn check(m: &mut Mem, root: u32, model: &BTreeMap<Vec<u8>, Vec<u8>>, what: &str) {
        for (k, v) in model {
            let got = get(m, root, k).unwrap_or_else(|e| panic!("{what}: get {}: {e:?}", k.len()));
            assert_eq!(
                got.as_ref().map(Vec::len),
                Some(v.len()),
                "{what}: key len {}",
                k.len()
            );
            assert!(
                got.as_ref() == Some(v),
                "{what}: value of key len {}",
                k.len()
            );
        }
        let all = scan(m, root, Bound::Unbounded, Bound::Unbounded).unwrap();
        let want: Vec<_> = model.clone().into_iter().collect();
        assert!(all == want, "{what}: forward scan");
        let rev = scan_part_rev(
            m,
            root,
            Bound::Unbounded,
            Bound::Unbounded,
            Budget::UNBOUNDED,
        )
        .unwrap()
        .rows;
        assert!(rev.iter().eq(want.iter().rev()), "{what}: reverse scan");
        // Bounds equal to keys.
        let keys: Vec<&Vec<u8>> = model.keys().collect();
        for (i, lo) in keys.iter().enumerate().step_by(13) {
            for hi in keys.iter().skip(i).step_by(17) {
                let got = scan(m, root, Bound::Included(lo), Bound::Excluded(hi)).unwrap();
                let w: Vec<_> = model
                    .range::<Vec<u8>, _>((Bound::Included(*lo), Bound::Excluded(*hi)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert!(got == w, "{what}: range scan");
                let got = scan_part_rev(
                    m,
                    root,
                    Bound::Excluded(lo),
                    Bound::Included(hi),
                    Budget::UNBOUNDED,
                )
                .unwrap()
                .rows;
                let w: Vec<_> = model
                    .range::<Vec<u8>, _>((Bound::Excluded(*lo), Bound::Included(*hi)))
                    .rev()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert!(got == w, "{what}: reverse range scan");
            }
        }
    }

    /// Every key length with every threshold value length, for every page size, one row each,
    /// then replaced by the next length, deleted and put back.
    #[test]
    fn rows_at_every_size_threshold_read_back() {
        for ps in SIZES {
            let mut m = mem(ps);
            let root = create_tree(&mut m).unwrap();
            let mut model = BTreeMap::new();
            let mut n = 0u32;
            for kl in key_lens() {
                for vl in value_lens(ps, kl) {
                    // Prefix keys: the same fill byte, different lengths, and a counter tail.
                    let mut k = vec![b'k'; kl];
                    if kl >= 4 {
                        k[kl - 4..].copy_from_slice(&n.to_be_bytes());
                    }
                    let v = vec![(n % 251) as u8; vl];
                    n += 1;
                    put(&mut m, root, &k, &v).unwrap();
                    model.insert(k, v);
                }
            }
            check(&mut m, root, &model, &format!("ps {ps} puts"));
            // Replace each row by another row's length: across the inline/overflow switch.
            let lens: Vec<usize> = model.values().map(Vec::len).collect();
            let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
            for (i, k) in keys.iter().enumerate() {
                let v = vec![7u8; lens[(i * 7 + 3) % lens.len()]];
                put(&mut m, root, k, &v).unwrap();
                model.insert(k.clone(), v);
            }
            check(&mut m, root, &model, &format!("ps {ps} replaced"));
            let last = space::read_meta(&mut m).unwrap().last_page;
            for k in &keys {
                assert!(delete(&mut m, root, k).unwrap());
            }
            model.clear();
            check(&mut m, root, &model, &format!("ps {ps} emptied"));
            every_page_accounted_for(&mut m, root, &format!("ps {ps} emptied"));
            for (i, k) in keys.iter().enumerate() {
                let v = vec![9u8; lens[i]];
                put(&mut m, root, k, &v).unwrap();
                model.insert(k.clone(), v);
            }
            check(&mut m, root, &model, &format!("ps {ps} reinserted"));
            let again = space::read_meta(&mut m).unwrap().last_page;
            assert!(
                again <= last + last / 10,
                "ps {ps}: {last} -> {again} pages"
            );
        }
    }

    /// A row replaced 1,000 times across the inline/overflow switch keeps the file's size.
    #[test]
    fn replacing_across_the_switch_does_not_leak_pages() {
        for ps in SIZES {
            for kl in [1usize, 500, 1024] {
                let mut m = mem(ps);
                let root = create_tree(&mut m).unwrap();
                let k = vec![b'x'; kl];
                let lens = value_lens(ps, kl);
                put(&mut m, root, &k, &[]).unwrap();
                let mut peak = 0;
                for i in 0..1000 {
                    let v = vec![i as u8; lens[i % lens.len()]];
                    put(&mut m, root, &k, &v).unwrap();
                    assert_eq!(get(&mut m, root, &k).unwrap(), Some(v));
                    if i == lens.len() * 2 {
                        peak = space::read_meta(&mut m).unwrap().last_page;
                    }
                }
                let end = space::read_meta(&mut m).unwrap().last_page;
                every_page_accounted_for(&mut m, root, &format!("ps {ps} key {kl}"));
                assert!(end <= peak, "ps {ps} key {kl}: {peak} -> {end}");
            }
        }
    }

    /// Random rows with sizes near the thresholds against a model, every page size (seed 1024,
    /// or `BSEED`).
    #[test]
    fn random_sizes_near_thresholds_match_a_model() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            std::env::var("BSEED").map_or(1024, |s| s.parse().unwrap()),
        );
        for ps in SIZES {
            let mut m = mem(ps);
            let root = create_tree(&mut m).unwrap();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let kls = key_lens();
            for step in 0..2000 {
                let kl = kls[rng.gen_range(0..kls.len())];
                // Few distinct keys per length, prefixes of each other.
                let mut k = vec![b'p'; kl];
                for b in k.iter_mut().rev().take(2) {
                    *b = rng.gen_range(b'a'..b'i');
                }
                if rng.gen_bool(0.2) {
                    assert_eq!(
                        delete(&mut m, root, &k).unwrap(),
                        model.remove(&k).is_some()
                    );
                } else {
                    let vls = value_lens(ps, kl);
                    let v = vec![step as u8; vls[rng.gen_range(0..vls.len())]];
                    put(&mut m, root, &k, &v).unwrap();
                    model.insert(k, v);
                }
            }
            check(&mut m, root, &model, &format!("ps {ps} random"));
            every_page_accounted_for(&mut m, root, &format!("ps {ps} random"));
        }
    }

    /// A queue: rows put at one end and deleted from the other, a bounded number live at
    /// any time. Leaves emptied by the deletes must be reused, or the file grows without end.
    #[test]
    fn a_queue_of_rows_keeps_the_files_size() {
        for ps in SIZES {
            let mut m = mem(ps);
            let root = create_tree(&mut m).unwrap();
            let key = |i: u32| format!("q{i:08}").into_bytes();
            let v = vec![5u8; 200];
            for i in 0..500u32 {
                put(&mut m, root, &key(i), &v).unwrap();
            }
            let mut sizes = Vec::new();
            for round in 0..8u32 {
                for i in 0..500u32 {
                    let n = 500 + round * 500 + i;
                    put(&mut m, root, &key(n), &v).unwrap();
                    assert!(delete(&mut m, root, &key(n - 500)).unwrap());
                }
                sizes.push(space::read_meta(&mut m).unwrap().last_page);
            }
            assert!(
                sizes[7] <= sizes[1] + 4,
                "ps {ps}: pages by round {sizes:?}"
            );
        }
    }

    /// Keys of the largest size (interior nodes of three or four separators at 4 KiB) in a
    /// deep tree, put and deleted at random until it is empty, against a model: splits with
    /// entries at their largest and the unlinking of emptied leaves and interior nodes.
    #[test]
    fn max_keys_deep_tree_filled_and_emptied_matches_a_model() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(408);
        for ps in SIZES {
            let mut m = mem(ps);
            let root = create_tree(&mut m).unwrap();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let key = |i: u32| {
                let mut k = vec![b'm'; MAX_KEY];
                k[..4].copy_from_slice(&i.to_be_bytes());
                k
            };
            for step in 0..3000u32 {
                let k = key(rng.gen_range(0..600));
                if rng.gen_bool(0.3) {
                    assert_eq!(
                        delete(&mut m, root, &k).unwrap(),
                        model.remove(&k).is_some()
                    );
                } else {
                    let v = vec![step as u8; rng.gen_range(0..3)];
                    put(&mut m, root, &k, &v).unwrap();
                    model.insert(k, v);
                }
            }
            check(&mut m, root, &model, &format!("ps {ps} max keys"));
            let high = space::read_meta(&mut m).unwrap().last_page;
            every_page_accounted_for(&mut m, root, &format!("ps {ps} max keys"));
            let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
            for (n, k) in keys.iter().enumerate() {
                // From both ends toward the middle.
                let k = if n % 2 == 0 {
                    k
                } else {
                    &keys[keys.len() - 1 - n / 2]
                };
                if model.remove(k).is_some() {
                    assert!(delete(&mut m, root, k).unwrap());
                }
                if n % 97 == 0 {
                    check(&mut m, root, &model, &format!("ps {ps} emptying"));
                }
            }
            for k in &keys {
                if model.remove(k).is_some() {
                    assert!(delete(&mut m, root, k).unwrap());
                }
            }
            check(&mut m, root, &model, &format!("ps {ps} empty"));
            assert_eq!(load(&mut m, root).unwrap().1, Node::Leaf(Vec::new()));
            every_page_accounted_for(&mut m, root, &format!("ps {ps} empty"));
            for i in 0..600 {
                put(&mut m, root, &key(i), b"v").unwrap();
                model.insert(key(i), b"v".to_vec());
            }
            check(&mut m, root, &model, &format!("ps {ps} refilled"));
            let again = space::read_meta(&mut m).unwrap().last_page;
            assert!(again >= high);
            every_page_accounted_for(&mut m, root, &format!("ps {ps} refilled"));
        }
    }

    /// Every page of the file is the meta page, the catalog root, a page of the tree under
    /// `root` (nodes and overflow chains) or on the free list, exactly once: no page leaked.
    fn every_page_accounted_for(m: &mut Mem, root: u32, what: &str) {
        let meta = space::read_meta(m).unwrap();
        let mut seen = vec![0u32; meta.last_page as usize + 1];
        seen[space::META_PGNO as usize] += 1;
        seen[space::CATALOG_ROOT as usize] += 1;
        let mut todo = vec![root];
        while let Some(pgno) = todo.pop() {
            seen[pgno as usize] += 1;
            match load(m, pgno).unwrap().1 {
                Node::Leaf(entries) => {
                    for (_, v) in entries {
                        if let Stored::Overflow { len, first } = v {
                            for (p, _) in overflow_pages(m, len, first).unwrap() {
                                seen[p as usize] += 1;
                            }
                        }
                    }
                }
                Node::Internal { first, entries } => {
                    todo.push(first);
                    todo.extend(entries.iter().map(|(_, c)| *c));
                }
            }
        }
        let mut free = meta.free_head;
        while free != 0 {
            seen[free as usize] += 1;
            free = get_u32(&m.read(free).unwrap(), PAGE_HEADER);
        }
        let wrong: Vec<_> = (1..seen.len()).filter(|&p| seen[p] != 1).collect();
        assert!(
            wrong.is_empty(),
            "{what}: pages not used exactly once: {wrong:?}"
        );
    }
}
