//! Databases, sessions and transactions: each message maps onto one storage-core call
//! (reads go through `reads.rs`: served from memory, fetched off the actor).

use std::path::{Path, PathBuf};

use ese::internals::db::DbFile;
use ese::{CommitTicket, Core, CoreStats, Error, Result, TableId};

use super::{Actor, Finish};
use crate::messages::{
    ApplyBatch, CommitTransaction, CreateTable, EnsureTable, OpenTable, Put, Reply,
};
use crate::types::{DatabaseInfo, InstanceInfo, SessionKey};

impl Actor {
    /// `JetBeginSession`: a session is memory only.
    pub(super) fn on_begin_session(&mut self, r: Reply<SessionKey>) {
        let s = self.core_mut().begin_session();
        let _ = r.send(s.map(SessionKey));
    }

    /// Ends a session; its open scans go with it.
    pub(super) fn on_end_session(&mut self, session: SessionKey, r: Reply<()>) {
        self.core_mut().end_session(session.0);
        self.scans.retain(|_, spec| spec.session != session.0);
        let _ = r.send(Ok(()));
    }

    /// Creates a table, committed at once: answered with its handle once the commit is
    /// durable.
    pub(super) fn on_create_table(&mut self, m: CreateTable, r: Reply<TableId>) {
        let made = self.core_mut().create_table(m.db, &m.table);
        self.answer_with_after(made.map(|(t, c)| (t, Some(c))), r);
    }

    /// `JetOpenTable`.
    pub(super) fn on_open_table(&mut self, m: OpenTable, r: Reply<TableId>) {
        let _ = r.send(self.core_mut().open_table(m.db, &m.table));
    }

    /// Opens the table, or creates it: one message, so no other command comes in between.
    pub(super) fn on_ensure_table(&mut self, m: EnsureTable, r: Reply<TableId>) {
        let core = self.core_mut();
        let res = match core.open_table(m.db, &m.table) {
            Err(Error::ObjectNotFound) => {
                core.create_table(m.db, &m.table).map(|(t, c)| (t, Some(c)))
            }
            other => other.map(|t| (t, None)),
        };
        self.answer_with_after(res, r);
    }

    /// `JetBeginTransaction`.
    pub(super) fn on_begin_transaction(&mut self, session: SessionKey, r: Reply<()>) {
        let _ = r.send(self.core_mut().begin_transaction(session.0));
    }

    /// A write goes into the session's write set (or commits at once outside a transaction,
    /// unless the caller holds one that is gone).
    pub(super) fn on_put(&mut self, m: Put, r: Reply<()>) {
        let core = self.core_mut();
        if m.in_transaction && !core.in_transaction(m.session.0) {
            let _ = r.send(Err(Error::NotInTransaction));
            return;
        }
        let t = core.put(m.session.0, m.table, &m.key, &m.value);
        self.answer_after(t, r);
    }

    /// A batch is one commit of its own: checked whole, applied whole or not at all.
    pub(super) fn on_apply_batch(&mut self, m: ApplyBatch, r: Reply<()>) {
        let t = self
            .core_mut()
            .write_batch(m.batch.into_rows(), m.durability);
        self.answer_after(t.map(Some), r);
    }

    /// Applies the write set in memory and queues it to the log; a durable commit is answered
    /// by the log writer after its fsync.
    pub(super) fn on_commit(&mut self, m: CommitTransaction, r: Reply<()>) {
        let t = self.core_mut().commit(m.session.0, m.durability);
        self.answer_after(t.map(Some), r);
    }

    /// `JetRollback`: the write set is dropped, nothing was applied.
    pub(super) fn on_rollback(&mut self, session: SessionKey, r: Reply<()>) {
        let _ = r.send(self.core_mut().rollback(session.0));
    }

    /// The core's counters.
    pub(super) fn on_stats(&mut self, r: Reply<CoreStats>) {
        let _ = r.send(Ok(self.core_mut().stats()));
    }

    /// Names, sizes and signatures, from memory.
    pub(super) fn on_instance_info(&mut self, r: Reply<InstanceInfo>) {
        let c = self.core_mut();
        let info = InstanceInfo {
            base_name: c.params().base().to_string(),
            page_size: c.params().page_bytes(),
            log_signature: c.log().signature(),
            current_gen: c.log().gen(),
            databases: c.attached().into_iter().map(|(_, p)| p).collect(),
        };
        let _ = r.send(Ok(info));
    }

    /// The core; present whenever the gate passed and no job holds it.
    pub(crate) fn core_mut(&mut self) -> &mut Core {
        self.core
            .as_mut()
            .expect("the gate passed, so the instance is running and holds its core")
    }

    /// Answers at once for a lazy commit or none, or once the commit is durable.
    pub(super) fn answer_after(&mut self, t: Result<Option<CommitTicket>>, r: Reply<()>) {
        self.answer_with_after(t.map(|t| ((), t)), r);
    }

    /// [`Actor::answer_after`] for a call that also answers a value.
    pub(super) fn answer_with_after<T: Send + 'static>(
        &mut self,
        t: Result<(T, Option<CommitTicket>)>,
        r: Reply<T>,
    ) {
        match t {
            Err(e) => {
                let _ = r.send(Err(e));
            }
            Ok((v, Some(t))) if t.durable => {
                self.tick_on_commit();
                self.when_durable(
                    t.lsn,
                    Box::new(move |res| {
                        let _ = r.send(res.map(|()| v));
                    }),
                );
            }
            Ok((v, _)) => {
                let _ = r.send(Ok(v));
            }
        }
    }

    /// Creates, attaches, or attaches-or-creates a database, after claiming the path in the
    /// engine (`DatabaseSharingViolation` if another instance of it holds the database); a
    /// failure gives the claim back. A created database is answered once its formatting
    /// commit is durable.
    pub(super) fn on_open_database(&mut self, path: PathBuf, how: Open, r: Reply<ese::DbId>) {
        let claimed = match self.claim_database(&path) {
            Ok(claimed) => claimed,
            Err(e) => {
                let _ = r.send(Err(e));
                return;
            }
        };
        self.job(true, move |mut core| {
            let res = core
                .as_mut()
                .map_or(Err(Error::NotInitialized), |c| how.run(c, &path));
            let finish: Finish = Box::new(move |a: &mut Actor| {
                if res.is_err() && claimed {
                    a.release_database(&path);
                }
                a.answer_with_after(res, r);
            });
            (core, finish)
        });
    }

    /// Detaches; once the core has let the file go, it is free for other instances of the
    /// engine.
    pub(super) fn on_detach_database(&mut self, path: PathBuf, r: Reply<()>) {
        self.job(true, move |mut core| {
            let res = core
                .as_mut()
                .map_or(Err(Error::NotInitialized), |c| c.detach_database(&path));
            let finish: Finish = Box::new(move |a: &mut Actor| {
                // A detach that failed after the core let the file go frees it too. The claim
                // is the file's, whatever the spelling: a detach by another spelling of an
                // attached database's path (`sub/../db.edb`) is refused and frees nothing.
                let key = crate::claims::canonical(&path);
                if a.core.as_ref().is_some_and(|c| {
                    c.attached()
                        .iter()
                        .all(|(_, p)| crate::claims::canonical(p) != key)
                }) {
                    a.release_database(&path);
                }
                let _ = r.send(res);
            });
            (core, finish)
        });
    }

    /// The header of an attached database from memory; of any other, read by a job without
    /// the core.
    pub(super) fn on_database_info(&mut self, path: PathBuf, r: Reply<DatabaseInfo>) {
        let core = self.core_mut();
        if let Some(db) = core.database_id(&path) {
            let _ = r.send(core.header(db).map(DatabaseInfo::from_header));
            return;
        }
        let storage = self.storage.clone();
        // A read on disk like any other: term waits for it instead of dropping its answer.
        self.reads_in_flight += 1;
        self.job(false, move |_| {
            let res = DbFile::open(&*storage, &path).map(|(_, h)| DatabaseInfo::from_header(&h));
            let finish: Finish = Box::new(move |a: &mut Actor| {
                a.reads_in_flight -= 1;
                let _ = r.send(res);
            });
            (None, finish)
        });
    }
}

/// What opening a database may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Open {
    /// `JetCreateDatabase`: the file must not exist.
    Create,
    /// `JetAttachDatabase`: the file must exist.
    Attach,
    /// Attach, or create when there is no file.
    AttachOrCreate,
}

impl Open {
    fn run(self, core: &mut Core, path: &Path) -> Result<(ese::DbId, Option<CommitTicket>)> {
        let create = |core: &mut Core| core.create_database(path).map(|(db, t)| (db, Some(t)));
        match self {
            Open::Create => create(core),
            Open::Attach => core.attach_database(path).map(|db| (db, None)),
            Open::AttachOrCreate => match core.attach_database(path) {
                Err(Error::FileNotFound) => create(core),
                other => other.map(|db| (db, None)),
            },
        }
    }
}
