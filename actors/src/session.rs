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
    /// Rows with keys in `range`, in key order.
    pub async fn scan(
        &self,
        db: DbId,
        table: &str,
        range: impl RangeBounds<Vec<u8>>,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        self.instance.scan_range(self.key, db, table, range).await
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
