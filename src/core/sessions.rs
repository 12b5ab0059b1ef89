//! Sessions and their transactions: writes are buffered per session until commit, reads see
//! the committed state plus the session's own writes.

use std::ops::Bound;

use super::{CommitTicket, Core, DbId, SessionId};
use crate::btree;
use crate::params::Commit;
use crate::txn::{Op, RowKey, Txn};
use crate::{Error, Result};

impl Core {
    /// Opens a session.
    pub fn begin_session(&mut self) -> SessionId {
        let id = self.next_session;
        self.next_session += 1;
        self.sessions.insert(id, None);
        SessionId(id)
    }

    /// Ends a session, rolling back its open transaction.
    pub fn end_session(&mut self, s: SessionId) {
        self.sessions.remove(&s.0);
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn txn_slot(&mut self, s: SessionId) -> Result<&mut Option<Txn>> {
        self.sessions.get_mut(&s.0).ok_or(Error::InvalidSesid)
    }

    /// Begins a transaction; one at a time per session (`TransTooDeep` otherwise).
    pub fn begin_transaction(&mut self, s: SessionId) -> Result<()> {
        self.check_available()?;
        let seq = self.commit_seq;
        let slot = self.txn_slot(s)?;
        if slot.is_some() {
            return Err(Error::TransTooDeep);
        }
        *slot = Some(Txn {
            start_seq: seq,
            ..Default::default()
        });
        Ok(())
    }

    /// Discards the session's transaction (`NotInTransaction` if none).
    pub fn rollback(&mut self, s: SessionId) -> Result<()> {
        self.txn_slot(s)?
            .take()
            .map(|_| ())
            .ok_or(Error::NotInTransaction)
    }

    /// Whether the session has an open transaction.
    pub fn in_transaction(&self, s: SessionId) -> bool {
        matches!(self.sessions.get(&s.0), Some(Some(_)))
    }

    /// Commits the session's transaction. A write conflict (another session committed one
    /// of its keys after it began) fails with `WriteConflict` and applies nothing.
    pub fn commit(&mut self, s: SessionId, durability: Commit) -> Result<CommitTicket> {
        self.check_available()?;
        let txn = self.txn_slot(s)?.take().ok_or(Error::NotInTransaction)?;
        self.commit_owned(txn, durability)
    }

    fn commit_owned(&mut self, txn: Txn, durability: Commit) -> Result<CommitTicket> {
        if self.conflicts.conflicts(&txn) {
            return Err(Error::WriteConflict);
        }
        let ticket = self.commit_txn(&txn, durability)?;
        let oldest = self.sessions.values().flatten().map(|t| t.start_seq).min();
        self.conflicts.record(&txn, self.commit_seq, oldest);
        Ok(ticket)
    }

    /// Creates a table (committed at once, durably).
    pub fn create_table(&mut self, s: SessionId, db: DbId, name: &str) -> Result<CommitTicket> {
        self.check_available()?;
        self.txn_slot(s)?;
        self.create_table_now(db.0, name)
    }

    /// Whether a table exists.
    pub fn has_table(&self, db: DbId, name: &str) -> bool {
        self.table_root(db.0, name).is_ok()
    }

    fn write(&mut self, s: SessionId, row: RowKey, op: Op) -> Result<Option<CommitTicket>> {
        self.check_available()?;
        btree::check_key_len(&row.2)?;
        self.table_root(row.0, &row.1)?;
        let seq = self.commit_seq;
        let slot = self.txn_slot(s)?;
        match slot {
            Some(t) => {
                t.writes.insert(row, op);
                Ok(None)
            }
            None => {
                // Outside a transaction an update commits by itself, durably.
                let mut t = Txn {
                    start_seq: seq,
                    ..Default::default()
                };
                t.writes.insert(row, op);
                self.commit_owned(t, Commit::Durable).map(Some)
            }
        }
    }

    /// Inserts or replaces a row. Returns the ticket of the implicit commit when the session
    /// has no transaction.
    pub fn put(
        &mut self,
        s: SessionId,
        db: DbId,
        table: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<CommitTicket>> {
        if value.len() > btree::MAX_VALUE {
            return Err(Error::RecordTooBig);
        }
        self.write(
            s,
            (db.0, table.to_string(), key.to_vec()),
            Op::Put(value.to_vec()),
        )
    }

    /// Deletes a row (`RecordNotFound` if the session cannot see it).
    pub fn delete(
        &mut self,
        s: SessionId,
        db: DbId,
        table: &str,
        key: &[u8],
    ) -> Result<Option<CommitTicket>> {
        if self.get(s, db, table, key)?.is_none() {
            return Err(Error::RecordNotFound);
        }
        self.write(s, (db.0, table.to_string(), key.to_vec()), Op::Delete)
    }

    /// Reads a row as the session sees it.
    pub fn get(
        &mut self,
        s: SessionId,
        db: DbId,
        table: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        self.check_available()?;
        btree::check_key_len(key)?;
        if let Some(Some(t)) = self
            .sessions
            .get(&s.0)
            .filter(|t| t.as_ref().is_some_and(|t| !t.writes.is_empty()))
        {
            let row: RowKey = (db.0, table.to_string(), key.to_vec());
            match t.writes.get(&row) {
                Some(Op::Put(v)) => return Ok(Some(v.clone())),
                Some(Op::Delete) => return Ok(None),
                None => {}
            }
        } else if !self.sessions.contains_key(&s.0) {
            return Err(Error::InvalidSesid);
        }
        let root = self.table_root(db.0, table)?;
        self.lookup(db.0, root, key)
    }

    /// The read path of `get`: each node is searched in place in the cache, without copying or
    /// decoding it; only a value in overflow pages takes the general path.
    fn lookup(&mut self, dbid: u32, root: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut pgno = root;
        for _ in 0..32 {
            if self.cache.get((dbid, pgno)).is_none() {
                let file = &self.dbs.get(&dbid).ok_or(Error::InvalidDatabaseId)?.file;
                let p = file.read_page(pgno)?;
                self.cache.insert_clean((dbid, pgno), p);
            }
            let Some(page) = self.cache.get((dbid, pgno)) else {
                // Evicted at once by a tiny cache: read through the general path.
                let mut v = self.view(dbid, None)?;
                return btree::get(&mut v, root, key);
            };
            match btree::search(page, key)? {
                btree::Found::Child(c) => pgno = c,
                btree::Found::Inline(v) => return Ok(Some(v.to_vec())),
                btree::Found::Missing => return Ok(None),
                btree::Found::Overflow => {
                    let mut v = self.view(dbid, None)?;
                    return btree::get(&mut v, root, key);
                }
            }
        }
        Err(Error::DatabaseCorrupted)
    }

    /// Rows with keys in `[lo, hi]` bounds, as the session sees them, in key order.
    pub fn scan(
        &mut self,
        s: SessionId,
        db: DbId,
        table: &str,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.check_available()?;
        let root = self.table_root(db.0, table)?;
        let mut v = self.view(db.0, None)?;
        let mut rows: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            btree::scan(&mut v, root, lo, hi)?.into_iter().collect();
        let Some(slot) = self.sessions.get(&s.0) else {
            return Err(Error::InvalidSesid);
        };
        if let Some(t) = slot {
            for ((d, tb, k), op) in &t.writes {
                if *d != db.0 || tb != table || !in_range(k, lo, hi) {
                    continue;
                }
                match op {
                    Op::Put(v) => rows.insert(k.clone(), v.clone()),
                    Op::Delete => rows.remove(k),
                };
            }
        }
        Ok(rows.into_iter().collect())
    }
}

fn in_range(k: &[u8], lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    let above = match lo {
        Bound::Included(l) => k >= l,
        Bound::Excluded(l) => k > l,
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(h) => k <= h,
        Bound::Excluded(h) => k < h,
        Bound::Unbounded => true,
    };
    above && below
}
