//! Databases, sessions and transactions: each message maps onto one storage-core call
//! (reads go through `reads.rs`: served from memory, fetched off the actor).

use std::path::PathBuf;

use ese::db::DbFile;
use ese::{CommitTicket, Core, Error, Fetched, Result};

use super::reads::{ReadCmd, ScanSpec};
use super::{refuse, Actor, Finish};
use crate::messages::{Command, Reply};
use crate::types::{DatabaseInfo, ScanCursor, ScanSlice, SessionKey};

impl Actor {
    pub(super) fn serve_data(&mut self, cmd: Command) {
        if let Err(e) = self.gate_for(&cmd) {
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
                self.scans.retain(|_, spec| spec.session != m.session.0);
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
            Command::Delete(m, r) => self.serve_read(ReadCmd::Delete(m, r), Fetched::default()),
            Command::Get(m, r) => self.serve_read(ReadCmd::Get(m, r), Fetched::default()),
            Command::Scan(m, r) => {
                let cmd = ReadCmd::Slice {
                    spec: ScanSpec::from(&m),
                    cursor: None,
                    max_rows: m.max_rows,
                    reply: r,
                };
                self.serve_read(cmd, Fetched::default());
            }
            Command::ScanNext(m, r) => self.on_scan_next(m.cursor, m.max_rows, r),
            Command::CloseScan(m, r) => {
                self.close_cursor(Some(m.cursor.0));
                let _ = r.send(Ok(()));
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

    /// The next slice of an open scan (the gate checked that the cursor is open).
    fn on_scan_next(&mut self, cursor: ScanCursor, max_rows: usize, r: Reply<ScanSlice>) {
        let Some(spec) = self.scans.get(&cursor.0).cloned() else {
            let _ = r.send(Err(Error::InvalidTableId));
            return;
        };
        let cmd = ReadCmd::Slice {
            spec,
            cursor: Some(cursor.0),
            max_rows,
            reply: r,
        };
        self.serve_read(cmd, Fetched::default());
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
