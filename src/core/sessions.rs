//! Sessions and their transactions: writes are buffered per session until commit (reads are
//! in `reads.rs`).

use super::{CommitTicket, Core, DbId, SessionId, TableId};
use crate::btree;
use crate::params::Commit;
use crate::txn::{Op, RowKey, Txn};
use crate::{Error, Result};

impl Core {
    /// Opens a session: `OutOfSessions` (-1101) with `max_sessions` open already.
    pub fn begin_session(&mut self) -> Result<SessionId> {
        if self.sessions.len() >= self.params.max_sessions {
            return Err(Error::OutOfSessions);
        }
        let id = self.next_session;
        self.next_session += 1;
        self.sessions.insert(id, None);
        Ok(SessionId(id))
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
        let id = self.last_txn + 1;
        let slot = self.txn_slot(s)?;
        if slot.is_some() {
            return Err(Error::TransTooDeep);
        }
        *slot = Some(Txn {
            start_seq: seq,
            id,
            ..Default::default()
        });
        self.last_txn = id;
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

    /// The id of the session's open transaction, unique in the core's life: a caller that
    /// holds a write across a wait (a delete whose existence check is on disk) tells by it
    /// whether the transaction it was issued in is still the one open.
    pub fn transaction_id(&self, s: SessionId) -> Option<u64> {
        self.sessions.get(&s.0)?.as_ref().map(|t| t.id)
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

    /// Creates a table (committed at once, durably): `InvalidName` (-1002), `TableDuplicate`
    /// (-1303).
    pub fn create_table(&mut self, db: DbId, name: &str) -> Result<(TableId, CommitTicket)> {
        self.check_available()?;
        self.create_table_now(db.0, name)
    }

    /// The handle of a table by name (ESE's `JetOpenTable`): `InvalidDatabaseId` (-1010),
    /// `ObjectNotFound` (-1305).
    pub fn open_table(&self, db: DbId, name: &str) -> Result<TableId> {
        self.check_available()?;
        let root = self.table_root(db.0, name)?;
        Ok(TableId { db: db.0, root })
    }

    /// Whether a table exists.
    pub fn has_table(&self, db: DbId, name: &str) -> bool {
        self.table_root(db.0, name).is_ok()
    }

    pub(super) fn write(
        &mut self,
        s: SessionId,
        row: RowKey,
        op: Op,
    ) -> Result<Option<CommitTicket>> {
        self.check_available()?;
        btree::check_key_len(&row.2)?;
        self.check_table(TableId {
            db: row.0,
            root: row.1,
        })?;
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
        t: TableId,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<CommitTicket>> {
        if value.len() > btree::MAX_VALUE {
            return Err(Error::RecordTooBig);
        }
        self.write(s, (t.db, t.root, key.to_vec()), Op::Put(value.to_vec()))
    }

    /// Applies a batch of puts and deletes as one transaction of its own, outside any
    /// session, with one durability choice. Every row is checked first (`KeyTooBig` -408,
    /// `RecordTooBig` -1026, a bad table handle), so a refused batch changes nothing. A delete
    /// of a row that does not exist is no error. The batch cannot conflict: it begins and
    /// commits in one step.
    pub fn write_batch(
        &mut self,
        rows: Vec<(TableId, Vec<u8>, Option<Vec<u8>>)>,
        durability: Commit,
    ) -> Result<CommitTicket> {
        self.check_available()?;
        let mut txn = Txn {
            start_seq: self.commit_seq,
            ..Default::default()
        };
        for (t, key, value) in rows {
            self.check_table(t)?;
            // The value before the key, as `put` checks them.
            let op = match value {
                Some(v) if v.len() > btree::MAX_VALUE => return Err(Error::RecordTooBig),
                Some(v) => Op::Put(v),
                None => Op::Delete,
            };
            btree::check_key_len(&key)?;
            txn.writes.insert((t.db, t.root, key), op);
        }
        self.commit_owned(txn, durability)
    }
}
