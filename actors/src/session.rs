//! The `Session` handle: a context inside one instance that runs one transaction at a time.

use bytes::Bytes;
use ese::{Result, TableId};

use crate::instance::Instance;
use crate::messages::*;
use crate::scan::{KeyRange, Row, RowStream};
use crate::transaction::Transaction;
use crate::types::SessionKey;

/// A session (ESE's `JET_SESID`). Its transaction is a value, [`Transaction`], taken from the
/// session borrowed mutably ([`Session::transaction`]) or owned
/// ([`Session::into_transaction`]), so two tasks cannot share one transaction: while it
/// lives, nothing else can use the session. Outside a transaction, the session's reads see
/// what is committed, and each of its writes is a durable transaction of its own. Dropping
/// the session ends it.
///
/// Sessions are cheap (a few hundred bytes in the instance until they write), but capped by
/// [`InstanceParams::max_sessions`](ese::InstanceParams::max_sessions). A host that needs a
/// transaction per request can skip sessions altogether: [`Instance::transaction`] opens one
/// and ends it with the transaction.
///
/// # Errors
///
/// Every call first meets its instance's gate ([`Instance`]'s `# Errors`), then its own
/// checks. Common to the calls that name a table: `InvalidDatabaseId` (-1010) for a handle
/// whose database was detached, `InvalidTableId` (-1310) for one that names no table. A read
/// that meets a damaged page fails with a corruption error (`ReadVerifyFailure` -1018,
/// `ReadPgnoVerifyFailure` -1118, `DatabaseCorrupted` -1206, `ReadLostFlushVerifyFailure`
/// -1119 for a page the file lost since it was attached).
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

    /// `JetBeginTransaction`: a transaction on this session, which it borrows until the
    /// transaction commits, rolls back or is dropped (a drop rolls it back).
    ///
    /// # Errors
    ///
    /// The gate's errors.
    pub async fn transaction(&mut self) -> Result<Transaction<'_>> {
        Transaction::begin_borrowed(self).await
    }

    /// [`Session::transaction`] that keeps the session: it ends with the transaction.
    ///
    /// # Errors
    ///
    /// The gate's errors.
    pub async fn into_transaction(self) -> Result<Transaction<'static>> {
        Transaction::begin_owned(self).await
    }

    /// Inserts or replaces a row, as a durable transaction of its own.
    ///
    /// # Errors
    ///
    /// The gate's errors; `KeyTooBig` (-408) for a key over 1,024 bytes; `RecordTooBig`
    /// (-1026) for a value over 64 MiB; the table handle's errors; a failed log write, as
    /// [`Transaction::commit`].
    pub async fn put(&self, table: TableId, key: &[u8], value: &[u8]) -> Result<()> {
        put(&self.instance, self.key, table, key, value, false).await
    }

    /// Reads a row: `None` if there is none under `key`.
    ///
    /// # Errors
    ///
    /// The gate's errors; `KeyTooBig` (-408); the table handle's errors; a damaged page's
    /// corruption error.
    pub async fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Bytes>> {
        get(&self.instance, self.key, table, key).await
    }

    /// Deletes a row, as a durable transaction of its own.
    ///
    /// # Errors
    ///
    /// As [`Session::put`], and `RecordNotFound` (-1601) if there is no row under `key`.
    pub async fn delete(&self, table: TableId, key: &[u8]) -> Result<()> {
        delete(&self.instance, self.key, table, key, false).await
    }

    /// The rows of a range, collected (use [`Session::stream`] for a range of unknown size).
    ///
    /// # Errors
    ///
    /// As [`RowStream`]: the gate's errors, the table handle's errors, a damaged page's
    /// corruption error.
    pub async fn scan(&self, table: TableId, range: KeyRange<'_>) -> Result<Vec<Row>> {
        self.stream(table, range).collect().await
    }

    /// The rows of a range as a stream, one bounded slice in memory at a time.
    ///
    /// # Errors
    ///
    /// None here; the stream's items carry them, as [`RowStream`] says (the gate's errors, the
    /// table handle's, a damaged page's).
    pub fn stream(&self, table: TableId, range: KeyRange<'_>) -> RowStream<'_> {
        RowStream::new(&self.instance, self.key, table, &range)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.instance.tell(EndSession { session: self.key });
    }
}

/// A put by `session`; `in_transaction` says the caller holds a transaction.
pub(crate) async fn put(
    instance: &Instance,
    session: SessionKey,
    table: TableId,
    key: &[u8],
    value: &[u8],
    in_transaction: bool,
) -> Result<()> {
    let m = Put {
        session,
        table,
        key: key.to_vec(),
        value: value.to_vec(),
        in_transaction,
    };
    implicit_commit(instance, in_transaction, instance.ask(m)).await
}

/// A write outside a transaction commits by itself, durably: timed as any durable commit
/// (here, where it is known to be outside one: `ask` cannot tell from the message).
async fn implicit_commit(
    instance: &Instance,
    in_transaction: bool,
    call: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    let timer = match in_transaction {
        true => None,
        false => instance.time_commit(ese::Commit::Durable),
    };
    call.await.inspect(|()| timer.map_or((), |t| t.answered()))
}

/// A delete by `session`; `in_transaction` as for [`put`].
pub(crate) async fn delete(
    instance: &Instance,
    session: SessionKey,
    table: TableId,
    key: &[u8],
    in_transaction: bool,
) -> Result<()> {
    let m = Delete {
        session,
        table,
        key: key.to_vec(),
        in_transaction,
    };
    implicit_commit(instance, in_transaction, instance.ask(m)).await
}

/// A read by `session`.
pub(crate) async fn get(
    instance: &Instance,
    session: SessionKey,
    table: TableId,
    key: &[u8],
) -> Result<Option<Bytes>> {
    let m = Get {
        session,
        table,
        key: key.to_vec(),
    };
    instance.ask(m).await
}
