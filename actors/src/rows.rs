//! The calls hosts use every day on an [`Instance`]: open a database and its tables once,
//! then read, write batches and run transactions without managing sessions.

use std::path::Path;

use bytes::Bytes;
use ese::{Commit, DbId, Result, TableId};

use crate::batch::WriteBatch;
use crate::instance::Instance;
use crate::messages::{ApplyBatch, CreateTable, EnsureTable, OpenDatabase, OpenTable};
use crate::scan::{KeyRange, Row, RowStream};
use crate::session;
use crate::transaction::Transaction;

/// How [`Instance::open_database`] opens a database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Create the database if its file does not exist.
    pub create: bool,
}

impl Instance {
    /// Attaches the database at `path`, or with `create` creates it when there is no file:
    /// the open-or-create of a service's start, in one message. [`Instance::create_database`]
    /// and [`Instance::attach_database`] keep their strict errors.
    ///
    /// ```no_run
    /// # async fn f(inst: ese_actors::Instance) -> ese_actors::Result<()> {
    /// use ese_actors::OpenOptions;
    /// let db = inst.open_database("/srv/kv/kv.edb", OpenOptions { create: true }).await?;
    /// let t = inst.ensure_table(db, "kv").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Instance::attach_database`] (`DatabaseDuplicate` -1201 if it is attached here
    /// already, `DatabaseDirtyShutdown` -550, ...), but not `FileNotFound` (-1811) with
    /// `create`; then [`Instance::create_database`]'s.
    pub async fn open_database(&self, path: impl AsRef<Path>, opts: OpenOptions) -> Result<DbId> {
        self.ask(OpenDatabase {
            path: path.as_ref().to_path_buf(),
            create: opts.create,
        })
        .await
    }

    /// `JetCreateTable` (committed at once, durably): the new table's handle.
    ///
    /// # Errors
    ///
    /// The gate's errors; `InvalidName` (-1002) for an empty name or one over 255 bytes;
    /// `InvalidDatabaseId` (-1010); `TableDuplicate` (-1303); a failed log write, as
    /// [`Transaction::commit`].
    pub async fn create_table(&self, db: DbId, name: &str) -> Result<TableId> {
        let m = CreateTable {
            db,
            table: name.to_string(),
        };
        self.ask(m).await
    }

    /// `JetOpenTable`: the handle of an existing table, to pass on every row call.
    ///
    /// # Errors
    ///
    /// The gate's errors; `InvalidDatabaseId` (-1010); `ObjectNotFound` (-1305).
    pub async fn open_table(&self, db: DbId, name: &str) -> Result<TableId> {
        let m = OpenTable {
            db,
            table: name.to_string(),
        };
        self.ask(m).await
    }

    /// The handle of a table, created first (durably) if it does not exist.
    ///
    /// # Errors
    ///
    /// As [`Instance::create_table`], but never `TableDuplicate`.
    pub async fn ensure_table(&self, db: DbId, name: &str) -> Result<TableId> {
        let m = EnsureTable {
            db,
            table: name.to_string(),
        };
        self.ask(m).await
    }

    /// Commits a [`WriteBatch`] with one message: one transaction of its own, all rows or
    /// none, answered (for `Commit::Durable`) once it is on disk.
    ///
    /// # Errors
    ///
    /// The gate's errors; for any row, `KeyTooBig` (-408), `RecordTooBig` (-1026) or the
    /// table handle's errors (`InvalidDatabaseId` -1010, `InvalidTableId` -1310), and then
    /// nothing is applied; a failed log write, as [`Transaction::commit`].
    pub async fn write(&self, batch: WriteBatch, durability: Commit) -> Result<()> {
        self.ask(ApplyBatch { batch, durability }).await
    }

    /// A transaction on a session of its own, which ends with it: no session to keep.
    ///
    /// # Errors
    ///
    /// The gate's errors; `OutOfSessions` (-1101) with
    /// [`max_sessions`](ese::InstanceParams::max_sessions) sessions open.
    pub async fn transaction(&self) -> Result<Transaction<'static>> {
        self.begin_session().await?.into_transaction().await
    }

    /// Reads a committed row. Reads of the instance share one session, opened by the first.
    ///
    /// # Errors
    ///
    /// As [`Session::get`](crate::Session::get); `OutOfSessions` (-1101) if the first read
    /// finds every session taken.
    pub async fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Bytes>> {
        session::get(self, self.reader().await?, table, key).await
    }

    /// The committed rows of a range, collected.
    ///
    /// # Errors
    ///
    /// As [`Instance::get`] and [`RowStream`].
    pub async fn scan(&self, table: TableId, range: KeyRange<'_>) -> Result<Vec<Row>> {
        self.stream(table, range).await?.collect().await
    }

    /// The committed rows of a range as a stream, one bounded slice in memory at a time.
    ///
    /// # Errors
    ///
    /// `OutOfSessions` (-1101) as [`Instance::get`]; the stream's own as [`RowStream`].
    pub async fn stream(&self, table: TableId, range: KeyRange<'_>) -> Result<RowStream<'static>> {
        Ok(RowStream::new(self, self.reader().await?, table, &range))
    }
}
