//! `Transaction`: one transaction of a session, as a value that ends exactly once.

use bytes::Bytes;
use ese::{Commit, Error, Result, TableId};

use crate::messages::{BeginTransaction, CommitTransaction, Rollback};
use crate::scan::{KeyRange, Row, RowStream};
use crate::session::{self, Session};

/// A transaction (between ESE's `JetBeginTransaction` and `JetCommitTransaction` or
/// `JetRollback`). It holds its session, borrowed mutably or owned, so nothing else can use
/// the session while it is open, and a transaction cannot be used from two tasks at once:
/// every call takes `&mut self` (reads too: what a transaction reads depends on what it
/// wrote) or `self`, and it is not `Clone`. [`Transaction::commit`] and
/// [`Transaction::rollback`] consume it; dropping it without either rolls it back, so a
/// request cancelled mid-transaction leaves nothing open and nothing applied.
///
/// Its reads see what is committed plus its own writes. Its writes are applied only at
/// commit, all or none; a commit after another transaction committed one of its keys fails
/// with `WriteConflict` (-1102) and applies nothing.
///
/// ```no_run
/// # async fn f(inst: ese_actors::Instance, t: ese_actors::TableId) -> ese_actors::Result<()> {
/// use ese_actors::Commit;
///
/// let mut tx = inst.transaction().await?;
/// tx.put(t, b"k", b"v").await?;
/// assert_eq!(tx.get(t, b"k").await?.as_deref(), Some(&b"v"[..]));
/// tx.commit(Commit::Durable).await?;
/// # Ok(()) }
/// ```
///
/// Two tasks cannot share one: a transaction borrows its session mutably, so a second
/// task cannot even reach the session while it lives.
///
/// ```compile_fail
/// # async fn f(mut s: ese_actors::Session, t: ese_actors::TableId) -> ese_actors::Result<()> {
/// let mut tx = s.transaction().await?;
/// let s2 = &s; // the session is borrowed by `tx`
/// s2.put(t, b"k", b"v").await?;
/// tx.commit(ese_actors::Commit::Durable).await?;
/// # Ok(()) }
/// ```
///
/// ```compile_fail
/// # async fn f(inst: ese_actors::Instance, t: ese_actors::TableId) -> ese_actors::Result<()> {
/// let tx = std::sync::Arc::new(inst.transaction().await?);
/// let other = tx.clone();
/// tokio::spawn(async move { other.get(t, b"a").await }); // every call needs `&mut`
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// Every call first meets its instance's gate ([`Instance`](crate::Instance)'s `# Errors`),
/// then its own checks, as [`Session`]'s.
#[derive(Debug)]
pub struct Transaction<'s> {
    session: Held<'s>,
    /// The instance may still hold the transaction open: a drop must roll it back.
    open: bool,
}

#[derive(Debug)]
enum Held<'s> {
    Borrowed(&'s mut Session),
    Owned(Session),
}

impl Held<'_> {
    fn get(&self) -> &Session {
        match self {
            Held::Borrowed(s) => s,
            Held::Owned(s) => s,
        }
    }
}

impl<'s> Transaction<'s> {
    pub(crate) async fn begin_borrowed(s: &'s mut Session) -> Result<Transaction<'s>> {
        Transaction::begin(Held::Borrowed(s)).await
    }

    pub(crate) async fn begin_owned(s: Session) -> Result<Transaction<'static>> {
        Transaction::begin(Held::Owned(s)).await
    }

    /// Once the begin is in the mailbox the transaction exists for the instance, so from then
    /// on the value exists too, and a caller that stops waiting rolls it back by dropping it.
    async fn begin<'a>(session: Held<'a>) -> Result<Transaction<'a>> {
        let (instance, key) = (session.get().instance(), session.get().key());
        let answer = instance.post(BeginTransaction { session: key }).await?;
        let mut tx = Transaction {
            session,
            open: true,
        };
        match answer.await.unwrap_or(Err(Error::InvalidInstance)) {
            Ok(()) => Ok(tx),
            Err(e) => {
                tx.open = false;
                Err(e)
            }
        }
    }

    fn session(&self) -> &Session {
        self.session.get()
    }

    /// Inserts or replaces a row in the transaction's writes.
    ///
    /// # Errors
    ///
    /// The gate's errors; `KeyTooBig` (-408) for a key over 1,024 bytes; `RecordTooBig`
    /// (-1026) for a value over 64 MiB; the table handle's errors (`InvalidDatabaseId`
    /// -1010, `InvalidTableId` -1310). The transaction stays open.
    pub async fn put(&mut self, table: TableId, key: &[u8], value: &[u8]) -> Result<()> {
        let s = self.session();
        session::put(s.instance(), s.key(), table, key, value, true).await
    }

    /// Deletes a row in the transaction's writes.
    ///
    /// # Errors
    ///
    /// As [`Transaction::put`], and `RecordNotFound` (-1601) if the transaction sees no row
    /// under `key`.
    pub async fn delete(&mut self, table: TableId, key: &[u8]) -> Result<()> {
        let s = self.session();
        session::delete(s.instance(), s.key(), table, key, true).await
    }

    /// Reads a row as the transaction sees it.
    ///
    /// # Errors
    ///
    /// As [`Session::get`].
    pub async fn get(&mut self, table: TableId, key: &[u8]) -> Result<Option<Bytes>> {
        let s = self.session();
        session::get(s.instance(), s.key(), table, key).await
    }

    /// The rows of a range as the transaction sees them, collected.
    ///
    /// # Errors
    ///
    /// As [`Session::scan`].
    pub async fn scan(&mut self, table: TableId, range: KeyRange<'_>) -> Result<Vec<Row>> {
        self.stream(table, range).collect().await
    }

    /// The rows of a range as the transaction sees them, as a stream.
    ///
    /// # Errors
    ///
    /// None here; the stream's items carry them, as [`RowStream`] says (the gate's errors, the
    /// table handle's, a damaged page's).
    pub fn stream(&mut self, table: TableId, range: KeyRange<'_>) -> RowStream<'_> {
        let s = self.session();
        RowStream::new(s.instance(), s.key(), table, &range)
    }

    /// `JetCommitTransaction`: a durable commit answers once its log records are on disk. The
    /// transaction is over whatever the answer.
    ///
    /// # Errors
    ///
    /// The gate's errors (nothing of it is applied); `WriteConflict` (-1102) if another
    /// transaction committed one of its keys after it began (nothing of it is applied: begin
    /// again to retry). A durable commit whose log write fails gets the cause (`LogWriteFail`
    /// -510, `InstanceUnavailableDueToFatalLogDiskFull` -1092), and the instance is
    /// unavailable from then on.
    pub async fn commit(mut self, durability: Commit) -> Result<()> {
        let session = self.session().key();
        let timer = self.session().instance().time_commit(durability);
        self.finish(CommitTransaction {
            session,
            durability,
        })
        .await
        .inspect(|()| timer.map_or((), |t| t.answered()))
    }

    /// `JetRollback`: nothing of the transaction is applied.
    ///
    /// # Errors
    ///
    /// The gate's errors; the transaction is rolled back all the same (as on drop).
    pub async fn rollback(mut self) -> Result<()> {
        let session = self.session().key();
        self.finish(Rollback { session }).await
    }

    /// Sends the message that ends the transaction. Once it is in the mailbox the instance
    /// will end the transaction, so a drop no longer needs to; until then it does.
    async fn finish<M: crate::Message<Reply = ()>>(&mut self, m: M) -> Result<()> {
        let (instance, session) = (self.session().instance().clone(), self.session().key());
        let answer = instance.post(m).await?;
        self.open = false;
        let res = answer.await.unwrap_or(Err(Error::InvalidInstance));
        if res.is_err() {
            // A refusal before the transaction was taken (the gate) leaves it open in the
            // instance; after a conflict it is already over, and this is answered
            // `NotInTransaction`, which nobody waits for.
            instance.tell(Rollback { session });
        }
        res
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            // By the side channel, served before the mailbox: a put of this transaction still
            // in the mailbox then finds no transaction and is refused (`NotInTransaction`)
            // instead of committing on its own.
            let s = self.session();
            s.instance().tell(Rollback { session: s.key() });
        }
    }
}
