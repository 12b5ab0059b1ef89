//! Reads as a session sees them: the committed state plus the session's own writes.
//!
//! Every read has two forms. `try_*` is served from memory only (the cache and the pages
//! fetched for it so far): on a miss it returns the [`Fetch`](super::Fetch) to run first, and the caller
//! tries again once [`Core::fetched`] took the pages in. The actor uses these, so no handler
//! reads the file. `get`, `scan` and `delete` are the synchronous forms: they fetch inline
//! and retry (tests, examples, tools that own a `Core`).

use std::ops::Bound;

use super::fetch::{Fetched, Read};
use super::slice::{self, Direction, Slice, SLICE_ROWS};
use super::view::{Misses, Probe, View};
use super::{CommitTicket, Core, SessionId, TableId};
use crate::btree::{self, Found};
use crate::txn::Op;
use crate::{Error, Result};

/// Deepest tree walked before a cycle is assumed (a damaged page).
const MAX_DEPTH: usize = 32;

impl Core {
    /// Reads a row as the session sees it (fetching missed pages inline).
    pub fn get(&mut self, s: SessionId, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read_inline(|c, f| c.try_get(s, t, key, f))
    }

    /// Rows with keys in `[lo, hi]` bounds, as the session sees them, in `dir`'s key order
    /// (slice by slice, fetching missed pages inline; nothing can commit in between).
    pub fn scan(
        &mut self,
        s: SessionId,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        dir: Direction,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut rows = Vec::new();
        let mut resume: Option<Vec<u8>> = None;
        loop {
            let past = resume.as_deref().map(Bound::Excluded);
            let (from, to) = match dir {
                Direction::Forward => (past.unwrap_or(lo), hi),
                Direction::Reverse => (lo, past.unwrap_or(hi)),
            };
            let slice = self.read_inline(|c, f| c.try_scan(s, t, from, to, SLICE_ROWS, dir, f))?;
            rows.extend(slice.rows);
            match slice.resume {
                Some(k) => resume = Some(k),
                None => return Ok(rows),
            }
        }
    }

    /// Deletes a row (`RecordNotFound` if the session cannot see it), checking that it exists
    /// with pages fetched inline.
    pub fn delete(&mut self, s: SessionId, t: TableId, key: &[u8]) -> Result<Option<CommitTicket>> {
        self.read_inline(|c, f| c.try_delete(s, t, key, f))
    }

    /// [`Core::get`] from memory only.
    pub fn try_get(
        &mut self,
        s: SessionId,
        t: TableId,
        key: &[u8],
        fetched: &mut Fetched,
    ) -> Result<Read<Option<Vec<u8>>>> {
        self.check_available()?;
        btree::check_key_len(key)?;
        self.check_table(t)?;
        if let Some(own) = self.own_write(s, t, key)? {
            return Ok(Read::Done(own));
        }
        let mut misses = Misses::default();
        let found = self.lookup(t.db, t.root, key, fetched, &mut misses);
        self.answer_from_memory(t.db, found, &misses, fetched, None)
    }

    /// [`Core::delete`] with its existence check from memory only. The delete itself is a
    /// write (outside a transaction, a commit), which reads inline like every commit.
    pub fn try_delete(
        &mut self,
        s: SessionId,
        t: TableId,
        key: &[u8],
        fetched: &mut Fetched,
    ) -> Result<Read<Option<CommitTicket>>> {
        match self.try_get(s, t, key, fetched)? {
            Read::Miss(f) => Ok(Read::Miss(f)),
            Read::Done(None) => Err(Error::RecordNotFound),
            Read::Done(Some(_)) => self
                .write(s, (t.db, t.root, key.to_vec()), Op::Delete)
                .map(Read::Done),
        }
    }

    /// One slice of a scan from memory only: at most `max_rows` (and `SLICE_ROWS`) rows of
    /// the range in `dir`'s order, about `SLICE_BYTES` bytes, and where the next slice
    /// resumes ([`Slice::resume`]: a forward scan's next low bound, a reverse scan's next
    /// high bound).
    #[allow(clippy::too_many_arguments)]
    pub fn try_scan(
        &mut self,
        s: SessionId,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        max_rows: usize,
        dir: Direction,
        fetched: &mut Fetched,
    ) -> Result<Read<Slice>> {
        self.check_available()?;
        self.check_table(t)?;
        let (dbid, root) = (t.db, t.root);
        if !self.sessions.contains_key(&s.0) {
            return Err(Error::InvalidSesid);
        }
        let budget = slice::budget(max_rows);
        let mut misses = Misses::default();
        let part = {
            let mut v = self.probe_view(dbid, fetched, &mut misses)?;
            match dir {
                Direction::Forward => btree::scan_part(&mut v, root, lo, hi, budget),
                Direction::Reverse => btree::scan_part_rev(&mut v, root, lo, hi, budget),
            }
        };
        let part = match self.answer_from_memory(dbid, part, &misses, fetched, Some(dir))? {
            Read::Done(p) => p,
            Read::Miss(f) => return Ok(Read::Miss(f)),
        };
        let slice = match dir {
            Direction::Forward => {
                let writes = self.own_writes(s, t, lo, hi);
                slice::merge(part, writes, budget, dir)
            }
            Direction::Reverse => {
                let writes = self.own_writes_rev(s, t, lo, hi);
                slice::merge(part, writes, budget, dir)
            }
        };
        Ok(Read::Done(slice))
    }

    /// A cache-only view of database `dbid` that may also use `fetched`.
    fn probe_view<'a>(
        &'a mut self,
        dbid: u32,
        fetched: &'a Fetched,
        misses: &'a mut Misses,
    ) -> Result<View<'a>> {
        let mut v = self.view(dbid, None)?;
        v.probe = Some(Probe { fetched, misses });
        Ok(v)
    }

    /// A cache-only read's answer: the fetch to run if it missed (whatever the tree
    /// operation returned then: the `OutOfBuffers` sentinel stays inside), else its result.
    /// A scan's fetch reads ahead in its direction.
    fn answer_from_memory<T>(
        &mut self,
        dbid: u32,
        r: Result<T>,
        misses: &Misses,
        fetched: &mut Fetched,
        read_ahead: Option<Direction>,
    ) -> Result<Read<T>> {
        if misses.page.is_some() {
            return self
                .plan_fetch(dbid, misses, fetched, read_ahead)
                .map(Read::Miss);
        }
        r.map(Read::Done)
    }

    /// The session's own buffered write of a key: `Some(Some(v))` put, `Some(None)` deleted,
    /// `None` untouched.
    fn own_write(&self, s: SessionId, t: TableId, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        let slot = self.sessions.get(&s.0).ok_or(Error::InvalidSesid)?;
        let Some(txn) = slot.as_ref().filter(|txn| !txn.writes.is_empty()) else {
            return Ok(None);
        };
        Ok(match txn.writes.get(&(t.db, t.root, key.to_vec())) {
            Some(Op::Put(v)) => Some(Some(v.clone())),
            Some(Op::Delete) => Some(None),
            None => None,
        })
    }

    /// The session's buffered writes to `table` with keys in the bounds, in key order.
    fn own_writes<'a>(
        &'a self,
        s: SessionId,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a [u8], &'a Op)> + 'a {
        let (dbid, root) = (t.db, t.root);
        let start = match lo {
            Bound::Included(l) => Bound::Included((dbid, root, l.to_vec())),
            Bound::Excluded(l) => Bound::Excluded((dbid, root, l.to_vec())),
            Bound::Unbounded => Bound::Included((dbid, root, Vec::new())),
        };
        let txn = self.sessions.get(&s.0).and_then(|t| t.as_ref());
        txn.into_iter()
            .flat_map(move |t| t.writes.range((start.clone(), Bound::Unbounded)))
            .take_while(move |((d, r, _), _)| *d == dbid && *r == root)
            .take_while(move |((_, _, k), _)| below(k, hi))
            .map(|((_, _, k), op)| (k.as_slice(), op))
    }

    /// [`Core::own_writes`] in descending key order.
    fn own_writes_rev<'a>(
        &'a self,
        s: SessionId,
        t: TableId,
        lo: Bound<&'a [u8]>,
        hi: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], &'a Op)> + 'a {
        let (dbid, root) = (t.db, t.root);
        // Neither bound of the map's range can pass the other (the start is the table's
        // least key, the end is at or past it), so `range` cannot panic; `lo` is applied
        // while walking down, and later tables' writes are skipped.
        let start = Bound::Included((dbid, root, Vec::new()));
        let end = match hi {
            Bound::Included(h) => Bound::Included((dbid, root, h.to_vec())),
            Bound::Excluded(h) => Bound::Excluded((dbid, root, h.to_vec())),
            Bound::Unbounded => Bound::Unbounded,
        };
        let txn = self.sessions.get(&s.0).and_then(|t| t.as_ref());
        txn.into_iter()
            .flat_map(move |t| t.writes.range((start.clone(), end.clone())).rev())
            .skip_while(move |((d, r, _), _)| (*d, *r) != (dbid, root))
            .take_while(move |((_, _, k), _)| above(k, lo))
            .map(|((_, _, k), op)| (k.as_slice(), op))
    }

    /// The read path of `get`: each node is searched in place, without copying or decoding
    /// it; only a value in overflow pages takes the general path.
    fn lookup(
        &mut self,
        dbid: u32,
        root: u32,
        key: &[u8],
        fetched: &Fetched,
        misses: &mut Misses,
    ) -> Result<Option<Vec<u8>>> {
        let mut pgno = root;
        for _ in 0..MAX_DEPTH {
            let k = (dbid, pgno);
            let Some(page) = self.cache.get(k).or_else(|| fetched.get(k)) else {
                misses.page = Some(pgno);
                return Err(Error::OutOfBuffers);
            };
            match btree::search(page, key)? {
                Found::Child(c) => pgno = c,
                Found::Inline(v) => return Ok(Some(v.to_vec())),
                Found::Missing => return Ok(None),
                Found::Overflow => {
                    let mut v = self.probe_view(dbid, fetched, misses)?;
                    return btree::get(&mut v, root, key);
                }
            }
        }
        Err(Error::DatabaseCorrupted)
    }
}

fn above(k: &[u8], lo: Bound<&[u8]>) -> bool {
    match lo {
        Bound::Included(l) => k >= l,
        Bound::Excluded(l) => k > l,
        Bound::Unbounded => true,
    }
}

fn below(k: &[u8], hi: Bound<&[u8]>) -> bool {
    match hi {
        Bound::Included(h) => k <= h,
        Bound::Excluded(h) => k < h,
        Bound::Unbounded => true,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::core::testing::{core_with_table, put_rows};

    type Rows = Vec<(Vec<u8>, Vec<u8>)>;

    fn key(i: u32) -> Vec<u8> {
        format!("k{i:05}").into_bytes()
    }

    /// A bound from `(kind, key index)`: 0 unbounded, 1 included, 2 excluded.
    fn bound((kind, i): (u8, u32)) -> Bound<Vec<u8>> {
        match kind {
            0 => Bound::Unbounded,
            1 => Bound::Included(key(i)),
            _ => Bound::Excluded(key(i)),
        }
    }

    fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
        b.as_ref().map(Vec::as_slice)
    }

    /// A whole reverse scan of `[lo, hi]` by `try_scan` slices of at most `max_rows` rows,
    /// each resumed below the last one's `resume`.
    fn reverse_slices(
        core: &mut Core,
        s: SessionId,
        tbl: TableId,
        (lo, hi): (Bound<&[u8]>, Bound<&[u8]>),
        max_rows: usize,
    ) -> Rows {
        let mut out = Vec::new();
        let mut resume: Option<Vec<u8>> = None;
        for _ in 0..10_000 {
            let to = resume.as_deref().map_or(hi, Bound::Excluded);
            let slice = core
                .read_inline(|c, f| c.try_scan(s, tbl, lo, to, max_rows, Direction::Reverse, f))
                .unwrap();
            assert!(slice.rows.len() <= max_rows, "{} rows", slice.rows.len());
            if let (Some(r), Some((last, _))) = (&slice.resume, slice.rows.last()) {
                assert!(r <= last, "resumes at or below the last row it gave");
            }
            out.extend(slice.rows);
            match slice.resume {
                Some(k) => resume = Some(k),
                None => return out,
            }
        }
        panic!("a reverse scan that does not end");
    }

    /// Committed rows `k00000..` and then, in an open transaction, the session's writes
    /// `(table, key, Some(fill) put / None delete)`; table 0 is "t", the others are tables
    /// named around it ("s" and "ta"), whose writes no scan of "t" may show. The model is what
    /// the session should see of "t".
    fn setup(
        committed: u32,
        writes: &[(u8, u32, Option<u8>)],
    ) -> (Core, SessionId, TableId, BTreeMap<Vec<u8>, Vec<u8>>) {
        let (mut core, s, tbl) = core_with_table(64);
        let mut tables = vec![tbl];
        for name in ["s", "ta"] {
            let (other, t) = core.create_table(tbl.db(), name).unwrap();
            core.wait(t).unwrap();
            tables.push(other);
        }
        put_rows(&mut core, s, tbl, committed, 1);
        // On disk and clean, so the scans below miss and fetch (reading ahead downwards).
        core.flush_all().unwrap();
        let mut model: BTreeMap<_, _> = (0..committed).map(|i| (key(i), vec![1; 200])).collect();
        core.begin_transaction(s).unwrap();
        for &(table, i, op) in writes {
            let k = key(i);
            let table = tables[usize::from(table)];
            match op {
                Some(fill) => {
                    let v = vec![fill; 1 + usize::from(fill)];
                    core.put(s, table, &k, &v).unwrap();
                    if table == tbl {
                        model.insert(k, v);
                    }
                }
                None if table == tbl => match core.delete(s, table, &k) {
                    Ok(_) => assert!(model.remove(&k).is_some(), "deleted a missing row"),
                    Err(Error::RecordNotFound) => assert!(!model.contains_key(&k)),
                    Err(e) => panic!("{e:?}"),
                },
                None => {}
            }
        }
        (core, s, tbl, model)
    }

    #[test]
    fn a_reverse_scan_sees_the_sessions_writes_descending() {
        let writes = [
            (0, 999, Some(5)), // above every committed row
            (0, 10, None),
            (0, 11, Some(6)),
            (0, 299, None), // the highest committed row
            (1, 500, Some(7)),
            (2, 998, Some(8)),
        ];
        let (mut core, s, tbl, model) = setup(300, &writes);
        let want: Rows = model.into_iter().rev().collect();
        let all = (Bound::Unbounded, Bound::Unbounded);
        let got = core.scan(s, tbl, all.0, all.1, Direction::Reverse).unwrap();
        assert_eq!(got, want);
        assert_eq!(reverse_slices(&mut core, s, tbl, all, 7), want);
        // Another session sees only what was committed.
        let other = core.begin_session().unwrap();
        let theirs = core
            .scan(other, tbl, all.0, all.1, Direction::Reverse)
            .unwrap();
        let committed: Vec<Vec<u8>> = (0..300).rev().map(key).collect();
        assert_eq!(
            theirs.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            committed
        );
        core.rollback(s).unwrap();
        let mine = core.scan(s, tbl, all.0, all.1, Direction::Reverse).unwrap();
        assert_eq!(
            mine.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            committed
        );
    }

    fn write() -> impl Strategy<Value = (u8, u32, Option<u8>)> {
        (
            prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
            0u32..700,
            prop::option::of(any::<u8>()),
        )
    }

    fn a_bound() -> impl Strategy<Value = (u8, u32)> {
        (0u8..3, 0u32..720)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn scans_both_ways_match_a_model_with_own_writes(
            committed in 0u32..600,
            writes in prop::collection::vec(write(), 0..120),
            ranges in prop::collection::vec((a_bound(), a_bound(), 1usize..40), 1..6),
        ) {
            let (mut core, s, tbl, model) = setup(committed, &writes);
            for (lo, hi, max_rows) in ranges {
                let (lo, hi) = (bound(lo), bound(hi));
                let (lo, hi) = (as_ref(&lo), as_ref(&hi));
                let fwd: Rows = model
                    .iter()
                    .filter(|(k, _)| above(k, lo) && below(k, hi))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let rev: Rows = fwd.iter().rev().cloned().collect();
                let got = core.scan(s, tbl, lo, hi, Direction::Forward).unwrap();
                prop_assert_eq!(&got, &fwd, "forward {:?}..{:?}", lo, hi);
                let got = core.scan(s, tbl, lo, hi, Direction::Reverse).unwrap();
                prop_assert_eq!(&got, &rev, "reverse {:?}..{:?}", lo, hi);
                let got = reverse_slices(&mut core, s, tbl, (lo, hi), max_rows);
                prop_assert_eq!(&got, &rev, "reverse by {} {:?}..{:?}", max_rows, lo, hi);
            }
        }
    }
}
