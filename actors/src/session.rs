//! The `Session` handle: a transaction context inside one instance.

use std::ops::RangeBounds;

use bytes::Bytes;
use ese::{Commit, DbId, Result};

use crate::instance::Instance;
use crate::messages::*;
use crate::types::SessionKey;

/// A session (ESE's `JET_SESID`): one transaction at a time. Dropping it ends the session
/// and rolls back an open transaction.
#[derive(Debug)]
pub struct Session {
    instance: Instance,
    key: SessionKey,
}

impl Session {
    pub(crate) fn new(instance: Instance, key: SessionKey) -> Session {
        Session { instance, key }
    }

    /// The session's key, for hand-built messages.
    pub fn key(&self) -> SessionKey {
        self.key
    }

    /// The instance the session belongs to.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// `JetCreateTable` (committed at once, durably).
    pub async fn create_table(&self, db: DbId, table: &str) -> Result<()> {
        self.instance
            .ask(CreateTable {
                session: self.key,
                db,
                table: table.to_string(),
            })
            .await
    }
    /// `JetBeginTransaction`.
    pub async fn begin_transaction(&self) -> Result<()> {
        self.instance
            .ask(BeginTransaction { session: self.key })
            .await
    }
    /// Inserts or replaces a row (outside a transaction: its own durable commit).
    pub async fn put(&self, db: DbId, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let m = Put {
            session: self.key,
            db,
            table: table.to_string(),
            key: key.to_vec(),
            value: value.to_vec(),
        };
        self.instance.ask(m).await
    }
    /// Reads a row.
    pub async fn get(&self, db: DbId, table: &str, key: &[u8]) -> Result<Option<Bytes>> {
        self.instance
            .ask(Get {
                session: self.key,
                db,
                table: table.to_string(),
                key: key.to_vec(),
            })
            .await
    }
    /// Deletes a row (`RecordNotFound` if absent).
    pub async fn delete(&self, db: DbId, table: &str, key: &[u8]) -> Result<()> {
        self.instance
            .ask(Delete {
                session: self.key,
                db,
                table: table.to_string(),
                key: key.to_vec(),
            })
            .await
    }
    /// Rows with keys in `range`, in key order, with the session's own uncommitted writes
    /// merged in.
    ///
    /// The instance serves a scan in slices ([`SLICE_ROWS`](ese::SLICE_ROWS) rows or about
    /// [`SLICE_BYTES`](ese::SLICE_BYTES) bytes each), each slice its own message, so other
    /// sessions' commits are served between the slices of a long scan. Each slice is
    /// consistent on its own; a later slice sees what committed meanwhile (read committed),
    /// so the result is not one snapshot of the whole range. A scan that began before
    /// `stop_service` runs to its end; once `term` began, its next slice gets
    /// `TermInProgress`.
    pub async fn scan(
        &self,
        db: DbId,
        table: &str,
        range: impl RangeBounds<Vec<u8>>,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        self.scan_limit(db, table, range, usize::MAX).await
    }
    /// [`Session::scan`] that stops after `limit` rows (the first ones, in key order). The
    /// instance builds no more than that: each slice asks only for the rows still wanted.
    /// `limit` 0 returns nothing without asking.
    pub async fn scan_limit(
        &self,
        db: DbId,
        table: &str,
        range: impl RangeBounds<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        self.instance
            .scan_range(self.key, db, table, range, limit)
            .await
    }
    /// `JetCommitTransaction`: a durable commit answers once its log records are on disk.
    pub async fn commit(&self, durability: Commit) -> Result<()> {
        self.instance
            .ask(CommitTransaction {
                session: self.key,
                durability,
            })
            .await
    }
    /// `JetRollback`.
    pub async fn rollback(&self) -> Result<()> {
        self.instance.ask(Rollback { session: self.key }).await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.instance.tell(EndSession { session: self.key });
    }
}
