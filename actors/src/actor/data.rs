//! Databases, sessions and transactions: each message maps onto one storage-core call
//! (reads go through `reads.rs`: served from memory, fetched off the actor).

use std::path::PathBuf;

use ese::internals::db::DbFile;
use ese::{CommitTicket, Core, CoreStats, Error, Result};

use super::{Actor, Finish};
use crate::messages::{CommitTransaction, CreateTable, Put, Reply};
use crate::types::{DatabaseInfo, InstanceInfo, SessionKey};

impl Actor {
    /// `JetBeginSession`: a session is memory only.
    pub(super) fn on_begin_session(&mut self, r: Reply<SessionKey>) {
        let s = self.core_mut().begin_session();
        let _ = r.send(Ok(SessionKey(s)));
    }

    /// Ends a session; its open scans go with it.
    pub(super) fn on_end_session(&mut self, session: SessionKey, r: Reply<()>) {
        self.core_mut().end_session(session.0);
        self.scans.retain(|_, spec| spec.session != session.0);
        let _ = r.send(Ok(()));
    }

    /// Creates a table, committed at once: answered when its commit is durable.
    pub(super) fn on_create_table(&mut self, m: CreateTable, r: Reply<()>) {
        let t = self.core_mut().create_table(m.session.0, m.db, &m.table);
        self.answer_after(t.map(Some), r);
    }

    /// `JetBeginTransaction`.
    pub(super) fn on_begin_transaction(&mut self, session: SessionKey, r: Reply<()>) {
        let _ = r.send(self.core_mut().begin_transaction(session.0));
    }

    /// A write goes into the session's write set (or commits at once outside a transaction).
    pub(super) fn on_put(&mut self, m: Put, r: Reply<()>) {
        let t = self
            .core_mut()
            .put(m.session.0, m.db, &m.table, &m.key, &m.value);
        self.answer_after(t, r);
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
        match t {
            Err(e) => {
                let _ = r.send(Err(e));
            }
            Ok(Some(t)) if t.durable => {
                self.when_durable(
                    t.lsn,
                    Box::new(move |res| {
                        let _ = r.send(res);
                    }),
                );
            }
            Ok(_) => {
                let _ = r.send(Ok(()));
            }
        }
    }

    pub(super) fn on_create_database(&mut self, path: PathBuf, r: Reply<ese::DbId>) {
        let claimed = match self.claim_database(&path) {
            Ok(claimed) => claimed,
            Err(e) => {
                let _ = r.send(Err(e));
                return;
            }
        };
        self.job(true, move |core| {
            let mut core = core;
            let res = match core.as_mut() {
                Some(c) => c.create_database(&path),
                None => Err(Error::NotInitialized),
            };
            let finish: Finish = Box::new(move |a: &mut Actor| match res {
                Err(e) => {
                    if claimed {
                        a.release_database(&path);
                    }
                    let _ = r.send(Err(e));
                }
                Ok((db, ticket)) => {
                    // Answer once the formatting commit is durable.
                    a.when_durable(
                        ticket.lsn,
                        Box::new(move |res| {
                            let _ = r.send(res.map(|()| db));
                        }),
                    );
                }
            });
            (core, finish)
        });
    }

    /// Attaches after claiming the path in the engine (`DatabaseSharingViolation` if another
    /// instance of it holds the database); a failed attach gives the claim back.
    pub(super) fn on_attach_database(&mut self, path: PathBuf, r: Reply<ese::DbId>) {
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
                .map_or(Err(Error::NotInitialized), |c| c.attach_database(&path));
            let finish: Finish = Box::new(move |a: &mut Actor| {
                if res.is_err() && claimed {
                    a.release_database(&path);
                }
                let _ = r.send(res);
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
                // A detach that failed after the core let the file go frees it too.
                if a.core
                    .as_ref()
                    .is_some_and(|c| c.database_id(&path).is_none())
                {
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
