//! The `Session` handle: a transaction context inside one instance.

use std::ops::RangeBounds;

use bytes::Bytes;
use ese::{Commit, DbId, Result};

use crate::instance::Instance;
use crate::messages::*;
use crate::types::SessionKey;

/// A session (ESE's `JET_SESID`): one transaction at a time. Dropping it ends the session
/// and rolls back an open transaction.
///
/// # Errors
///
/// Every call first meets its instance's gate ([`Instance`]'s `# Errors`), then its own
/// checks. Common to the calls that name a table: `InvalidDatabaseId` (-1010) for a `db` not
/// attached, `ObjectNotFound` (-1305) for a table that does not exist. A read that meets a
/// damaged page fails with a corruption error (`ReadVerifyFailure` -1018,
/// `ReadPgnoVerifyFailure` -1118, `DatabaseCorrupted` -1206).
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
    ///
    /// # Errors
    ///
    /// The gate's errors; `InvalidName` (-1002) for an empty name or one over 255 bytes;
    /// `InvalidDatabaseId` (-1010); `TableDuplicate` (-1303); a failed log write, as
    /// [`Session::commit`].
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
    ///
    /// # Errors
    ///
    /// The gate's errors; `TransTooDeep` (-1103) with a transaction already open (one level
    /// only).
    pub async fn begin_transaction(&self) -> Result<()> {
        self.instance
            .ask(BeginTransaction { session: self.key })
            .await
    }
    /// Inserts or replaces a row (outside a transaction: its own durable commit).
    ///
    /// # Errors
    ///
    /// The gate's errors; `RecordTooBig` (-1026) for a value over the limit; `KeyTooBig`
    /// (-408) for a key over 1024 bytes; `InvalidDatabaseId` (-1010); `ObjectNotFound`
    /// (-1305). Outside a transaction, a failed log write as [`Session::commit`].
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
    /// Reads a row: `None` if the session sees none under `key`.
    ///
    /// # Errors
    ///
    /// The gate's errors; `KeyTooBig` (-408); `InvalidDatabaseId` (-1010); `ObjectNotFound`
    /// (-1305); a damaged page's corruption error.
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
    /// Deletes a row (outside a transaction: its own durable commit).
    ///
    /// # Errors
    ///
    /// As [`Session::put`], and `RecordNotFound` (-1601) if the session sees no row under
    /// `key`.
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
    ///
    /// # Errors
    ///
    /// The gate's errors (a later slice's gate skips `stop_service`, as above);
    /// `InvalidDatabaseId` (-1010); `ObjectNotFound` (-1305); a damaged page's corruption
    /// error.
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
    ///
    /// # Errors
    ///
    /// As [`Session::scan`]; none for `limit` 0.
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
    ///
    /// # Errors
    ///
    /// The gate's errors; `NotInTransaction` (-1054) with none open; `WriteConflict` (-1102)
    /// if another transaction committed one of its keys after it began: nothing of it is
    /// applied and it is over (begin again to retry). A durable commit whose log write fails
    /// gets the cause (`LogWriteFail` -510, `InstanceUnavailableDueToFatalLogDiskFull`
    /// -1092), and the instance is unavailable from then on.
    pub async fn commit(&self, durability: Commit) -> Result<()> {
        self.instance
            .ask(CommitTransaction {
                session: self.key,
                durability,
            })
            .await
    }
    /// `JetRollback`.
    ///
    /// # Errors
    ///
    /// The gate's errors; `NotInTransaction` (-1054) with none open.
    pub async fn rollback(&self) -> Result<()> {
        self.instance.ask(Rollback { session: self.key }).await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.instance.tell(EndSession { session: self.key });
    }
}
