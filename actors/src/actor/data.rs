//! Databases, sessions and transactions: each message maps onto one storage-core call.

use std::ops::Bound;
use std::path::PathBuf;

use bytes::Bytes;
use ese::db::DbFile;
use ese::{CommitTicket, Core, Error, Result};

use super::{refuse, Actor, Finish};
use crate::messages::{Command, Reply};
use crate::types::{DatabaseInfo, SessionKey};

impl Actor {
    pub(super) fn serve_data(&mut self, cmd: Command) {
        if let Err(e) = self.gate() {
            refuse(cmd, e);
            return;
        }
        match cmd {
            Command::CreateDatabase(m, r) => self.on_create_database(m.path, r),
            Command::AttachDatabase(m, r) => self.on_attach_database(m.path, r),
            Command::DetachDatabase(m, r) => self.on_detach_database(m.path, r),
            Command::GetDatabaseInfo(m, r) => self.on_database_info(m.path, r),
            Command::BeginSession(_, r) => {
                let s = self.core_mut().begin_session();
                let _ = r.send(Ok(SessionKey(s)));
            }
            Command::EndSession(m, r) => {
                self.core_mut().end_session(m.session.0);
                let _ = r.send(Ok(()));
            }
            Command::CreateTable(m, r) => {
                let t = self.core_mut().create_table(m.session.0, m.db, &m.table);
                self.answer_after(t.map(Some), r);
            }
            Command::BeginTransaction(m, r) => {
                let _ = r.send(self.core_mut().begin_transaction(m.session.0));
            }
            Command::Put(m, r) => {
                let t = self
                    .core_mut()
                    .put(m.session.0, m.db, &m.table, &m.key, &m.value);
                self.answer_after(t, r);
            }
            Command::Delete(m, r) => {
                let t = self.core_mut().delete(m.session.0, m.db, &m.table, &m.key);
                self.answer_after(t, r);
            }
            Command::Get(m, r) => {
                let v = self.core_mut().get(m.session.0, m.db, &m.table, &m.key);
                let _ = r.send(v.map(|o| o.map(Bytes::from)));
            }
            Command::Scan(m, r) => {
                let rows =
                    self.core_mut()
                        .scan(m.session.0, m.db, &m.table, bound(&m.lo), bound(&m.hi));
                let _ = r.send(rows.map(|v| {
                    v.into_iter()
                        .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
                        .collect()
                }));
            }
            Command::CommitTransaction(m, r) => {
                let t = self.core_mut().commit(m.session.0, m.durability);
                self.answer_after(t.map(Some), r);
            }
            Command::Rollback(m, r) => {
                let _ = r.send(self.core_mut().rollback(m.session.0));
            }
            Command::GetStats(_, r) => {
                let _ = r.send(Ok(self.core_mut().stats()));
            }
            Command::GetInstanceInfo(_, r) => {
                let c = self.core_mut();
                let info = crate::types::InstanceInfo {
                    base_name: c.params().base().to_string(),
                    page_size: c.params().page_bytes(),
                    log_signature: c.log().signature(),
                    current_gen: c.log().gen(),
                    databases: c.attached().into_iter().map(|(_, p)| p).collect(),
                };
                let _ = r.send(Ok(info));
            }
            other => self.serve_backup(other),
        }
    }

    /// The core; present whenever the gate passed and no job holds it.
    pub(crate) fn core_mut(&mut self) -> &mut Core {
        self.core
            .as_mut()
            .expect("the gate passed, so the instance is running and holds its core")
    }

    /// Answers at once for a lazy commit or none, or once the commit is durable.
    fn answer_after(&mut self, t: Result<Option<CommitTicket>>, r: Reply<()>) {
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

    fn on_create_database(&mut self, path: PathBuf, r: Reply<ese::DbId>) {
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
    fn on_attach_database(&mut self, path: PathBuf, r: Reply<ese::DbId>) {
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
    fn on_detach_database(&mut self, path: PathBuf, r: Reply<()>) {
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

    fn on_database_info(&mut self, path: PathBuf, r: Reply<DatabaseInfo>) {
        let core = self.core_mut();
        if let Some(db) = core.database_id(&path) {
            let _ = r.send(core.header(db).map(DatabaseInfo::from_header));
            return;
        }
        let storage = self.storage.clone();
        self.job(false, move |_| {
            let res = DbFile::open(&*storage, &path).map(|(_, h)| DatabaseInfo::from_header(&h));
            let finish: Finish = Box::new(move |_| {
                let _ = r.send(res);
            });
            (None, finish)
        });
    }
}

fn bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
