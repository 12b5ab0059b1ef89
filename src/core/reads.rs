//! Reads as a session sees them: the committed state plus the session's own writes.
//!
//! Every read has two forms. `try_*` is served from memory only (the cache and the pages
//! fetched for it so far): on a miss it returns the [`Fetch`](super::Fetch) to run first, and the caller
//! tries again once [`Core::fetched`] took the pages in. The actor uses these, so no handler
//! reads the file. `get`, `scan` and `delete` are the synchronous forms: they fetch inline
//! and retry (tests, examples, tools that own a `Core`).

use std::ops::Bound;

use super::fetch::{Fetched, Read};
use super::slice::{self, Slice, SLICE_ROWS};
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

    /// Rows with keys in `[lo, hi]` bounds, as the session sees them, in key order (slice by
    /// slice, fetching missed pages inline; nothing can commit in between).
    pub fn scan(
        &mut self,
        s: SessionId,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut rows = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let from = after.as_deref().map_or(lo, Bound::Excluded);
            let slice = self.read_inline(|c, f| c.try_scan(s, t, from, hi, SLICE_ROWS, f))?;
            rows.extend(slice.rows);
            match slice.resume {
                Some(k) => after = Some(k),
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
        self.answer_from_memory(t.db, found, &misses, fetched, false)
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
    /// the range, about `SLICE_BYTES` bytes, and where the next slice resumes.
    #[allow(clippy::too_many_arguments)]
    pub fn try_scan(
        &mut self,
        s: SessionId,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        max_rows: usize,
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
            btree::scan_part(&mut v, root, lo, hi, budget)
        };
        let part = match self.answer_from_memory(dbid, part, &misses, fetched, true)? {
            Read::Done(p) => p,
            Read::Miss(f) => return Ok(Read::Miss(f)),
        };
        let writes = self.own_writes(s, t, lo, hi);
        Ok(Read::Done(slice::merge(part, writes, budget)))
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
    fn answer_from_memory<T>(
        &mut self,
        dbid: u32,
        r: Result<T>,
        misses: &Misses,
        fetched: &mut Fetched,
        read_ahead: bool,
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

fn below(k: &[u8], hi: Bound<&[u8]>) -> bool {
    match hi {
        Bound::Included(h) => k <= h,
        Bound::Excluded(h) => k < h,
        Bound::Unbounded => true,
    }
}
