//! The instance side of the external backup: the state machine of `crate::backup` applied to
//! this instance's log, databases and headers.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::Core;
use crate::backup::BeginFacts;
use crate::backup::{BackupState, Failure, ReadPlan, ReadTicket};
use crate::db::DbHeader;
use crate::io::OpenMode;
use crate::log::{Record, LOG_HEADER_SIZE};
use crate::lsn::{now_ms, Lsn};
use crate::{btree, BackupBegin, BackupEnd, Error, Result};

/// BackupMark kinds in the log.
const MARK_BEGIN: u8 = 1;
const MARK_PREPARE: u8 = 2;
const MARK_END: u8 = 3;
const MARK_ABORT: u8 = 4;

impl Core {
    /// Whether an external backup is in progress.
    pub fn backup_running(&self) -> bool {
        self.backup.is_some()
    }

    /// The id of the running backup: unique within this core's life (the first is 1).
    pub fn backup_id(&self) -> Option<u64> {
        self.backup.as_ref().map(BackupState::id)
    }

    /// After a failed term: no new backup may begin on this instance (behaviour.md §1.2).
    pub fn forbid_new_backups(&mut self) {
        self.backup_forbidden = true;
    }

    fn backup(&mut self) -> Result<&mut BackupState> {
        self.backup.as_mut().ok_or(Error::NoBackup)
    }

    /// Turns a state-machine failure into the caller's error, ending the backup if it says so.
    fn settle<T>(&mut self, r: std::result::Result<T, Failure>) -> Result<T> {
        r.map_err(|f| {
            if f.abort {
                tracing::warn!(event_id = crate::backup::events::END_ERROR, error = %f.error, "backup aborted");
                self.backup_clear(MARK_ABORT);
            }
            f.error
        })
    }

    fn backup_clear(&mut self, mark: u8) {
        if let Some(b) = self.backup.take() {
            // The next backup's handles start after this one's: never reused (behaviour.md §2.2).
            self.next_backup_handle = b.next_handle();
        }
        self.log.hold(None);
        let _ = self.log.append(&Record::BackupMark { kind: mark }, false);
    }

    /// `begin_external_backup`.
    pub fn backup_begin(&mut self, grbit: BackupBegin) -> Result<()> {
        self.check_available()?;
        if self.backup_forbidden {
            return Err(Error::BackupNotAllowedYet);
        }
        let facts = BeginFacts {
            circular: self.params.is_circular(),
            headers: self.dbs.values().map(|d| &d.header).collect(),
            tip: self.log.tip(),
            now_ms: now_ms(),
            checkpoint_gen: self.checkpoint.lsn.gen(),
            page_size: self.params.page_bytes(),
            log_dir: self.params.log_dir().clone(),
            base: self.params.base().to_string(),
            log_signature: self.log.signature(),
            max_open: self.params.backup_file_limit(),
            id: self.backup_seq + 1,
            first_handle: self.next_backup_handle,
        };
        let state = BackupState::begin(grbit, self.backup.is_some(), facts)?;
        // Keep every log the backup may copy: from the checkpoint (full), or all (incremental).
        let hold = if grbit.contains(BackupBegin::INCREMENTAL) {
            0
        } else {
            state.gen_low
        };
        self.log.hold(Some(hold));
        self.backup_seq = state.id();
        self.backup = Some(state);
        self.log
            .append(&Record::BackupMark { kind: MARK_BEGIN }, false)?;
        Ok(())
    }

    /// `get_attach_info`.
    pub fn backup_attach_info(&mut self) -> Result<Vec<PathBuf>> {
        let attached: Vec<PathBuf> = self.dbs.values().map(|d| d.path.clone()).collect();
        let r = self.backup()?.attach_info(&attached);
        self.settle(r)
    }

    /// `open_file`: a handle and the size of the stream it reads.
    pub fn backup_open(&mut self, path: &Path) -> Result<(u64, u64)> {
        self.backup()?;
        let dbid = self
            .dbs
            .iter()
            .find(|(_, d)| d.path == path)
            .map(|(id, _)| *id);
        let last_page = match dbid {
            Some(id) if self.backup.as_ref().is_some_and(|b| !b.stop) => {
                let mut v = self.view(id, None)?;
                Some(btree::read_meta(&mut v)?.last_page)
            }
            _ => None,
        };
        let db = match (dbid, last_page) {
            (Some(id), Some(lp)) => self.dbs.get(&id).map(|d| (id, &d.header, &d.file, lp)),
            _ => None,
        };
        let state = self.backup.as_mut().ok_or(Error::NoBackup)?;
        let r = state.open(path, db);
        let (h, size) = self.settle(r)?;
        if let Some(p) = self
            .backup
            .as_ref()
            .and_then(|b| b.log_path(h))
            .map(Path::to_path_buf)
        {
            if self.storage.is_link(&p) {
                tracing::warn!(path = %p.display(), "a log to back up is a symbolic link; refused");
                return self.settle(Err(Failure {
                    error: Error::InvalidParameter,
                    abort: true,
                }));
            }
            return match self
                .storage
                .open(&p, OpenMode::ReadOnly)
                .and_then(|f| f.len())
            {
                Ok(len) => {
                    self.backup()?.set_size(h, len);
                    Ok((h, len))
                }
                Err(_) => {
                    tracing::warn!(event_id = crate::backup::events::LOG_MISSING, path = %p.display(), "log to back up is missing");
                    self.settle(Err(Failure {
                        error: Error::MissingFileToBackup,
                        abort: true,
                    }))
                }
            };
        }
        Ok((h, size))
    }

    /// Plans a `read_file`; the caller runs [`crate::backup::stream::execute`] on an I/O
    /// thread and reports with [`Core::backup_read_done`], handing back the ticket.
    pub fn backup_plan_read(
        &mut self,
        handle: u64,
        max_len: usize,
    ) -> Result<(ReadTicket, ReadPlan)> {
        let gen = self.log.gen();
        let r = self.backup()?.plan_read(handle, max_len, gen);
        self.settle(r)
    }

    /// A read finished: settled against the backup and file of its ticket only. A read of a
    /// backup that has ended is `NoBackup` (behaviour.md §2.2), whatever runs now.
    pub fn backup_read_done(
        &mut self,
        ticket: ReadTicket,
        res: Result<(Bytes, Option<Bytes>)>,
    ) -> Result<Bytes> {
        let r = match self.backup.as_mut() {
            Some(b) => b.read_done(ticket, &res),
            None => Err(Failure {
                error: Error::NoBackup,
                abort: false,
            }),
        };
        self.settle(r)?;
        res.map(|(c, _)| c)
    }

    /// `close_file`.
    pub fn backup_close(&mut self, handle: u64) -> Result<()> {
        let r = self.backup()?.close(handle);
        self.settle(r)
    }

    /// `stop_backup`: later backup calls get `BackupAbortByServer`.
    pub fn backup_stop(&mut self) {
        if let Some(b) = self.backup.as_mut() {
            b.stop = true;
        }
    }

    /// Ends a running backup as aborted by the server (`term` with `ABRUPT`/`STOP_BACKUP`).
    pub fn backup_abort_by_server(&mut self) {
        if self.backup.is_some() {
            tracing::info!(
                event_id = crate::backup::events::ABORT_BY_SERVER,
                "backup aborted by the server"
            );
            self.backup_clear(MARK_ABORT);
        }
    }

    /// The first `get_log_info` / `get_truncate_log_info`: rolls the log, waits for the new
    /// generation to exist, and fixes the ranges. Later calls only check. Blocks on the roll.
    pub fn backup_prepare_logs(&mut self) -> Result<()> {
        let r = self.backup()?.log_info_needs_roll();
        if !self.settle(r)? {
            return Ok(());
        }
        self.log
            .append(&Record::BackupMark { kind: MARK_PREPARE }, false)?;
        self.log.roll()?;
        let new_gen = self.log.gen();
        let mark = (Lsn::new(new_gen, LOG_HEADER_SIZE), now_ms());
        self.log.wait_durable(mark.0)?;
        let oldest = self.log.archived().next().unwrap_or(new_gen - 1);
        let ckpt = self.checkpoint.lsn.gen();
        let dbs: Vec<(u32, DbHeader)> = self
            .dbs
            .iter()
            .map(|(id, d)| (*id, d.header.clone()))
            .collect();
        let refs: Vec<(u32, &DbHeader)> = dbs.iter().map(|(id, h)| (*id, h)).collect();
        let r = self
            .backup()?
            .fix_ranges(new_gen, oldest, ckpt, &refs, mark);
        self.settle(r)
    }

    /// The copy range and files, after [`Core::backup_prepare_logs`].
    pub fn backup_log_info(&mut self) -> Result<(u32, u32, Vec<PathBuf>)> {
        let b = self.backup()?;
        let r = b.ranges.clone().ok_or(Error::InvalidBackupSequence)?;
        Ok((r.copy_low, r.copy_high, b.log_files()))
    }

    /// The record a normal end would write into the headers ([`BackupState::end_record`]).
    /// `InvalidBackupSequence` before the log phase.
    pub fn backup_record(&mut self) -> Result<crate::db::BackupInfo> {
        self.backup()?
            .end_record()
            .ok_or(Error::InvalidBackupSequence)
    }

    /// The files `truncate_log` would delete, after [`Core::backup_prepare_logs`].
    pub fn backup_truncate_info(&mut self) -> Result<Vec<PathBuf>> {
        Ok(self.backup()?.truncate_files())
    }

    /// `truncate_log`: deletes the truncate range in increasing order. Blocks on the deletes.
    pub fn backup_truncate(&mut self) -> Result<()> {
        let r = self.backup()?.truncate();
        let gens = self.settle(r)?;
        let storage = self.storage.clone();
        self.log.delete_now(&*storage, &gens)
    }

    /// `end_external_backup`. On a normal end the header updates are logged, made durable,
    /// then applied and written: blocks on those writes.
    pub fn backup_end(&mut self, grbit: BackupEnd) -> Result<()> {
        if grbit.contains(BackupEnd::NORMAL) == grbit.contains(BackupEnd::ABORT) {
            return Err(Error::InvalidParameter);
        }
        let attached: Vec<u32> = self.dbs.keys().copied().collect();
        let outcome = self.backup()?.end(grbit, &attached);
        let ok = outcome.result.is_ok() && !grbit.contains(BackupEnd::ABORT);
        self.backup_clear(if ok { MARK_END } else { MARK_ABORT });
        tracing::info!(event_id = outcome.event, "backup ended");
        let mut last = None;
        for (dbid, field, info) in &outcome.updates {
            last = Some(self.log.append(
                &Record::BackupUpdate {
                    dbid: *dbid,
                    field: *field,
                    info: *info,
                },
                true,
            )?);
        }
        if let Some(at) = last {
            self.log.wait_durable(at)?;
        }
        for (dbid, field, info) in outcome.updates {
            if let Some(d) = self.dbs.get_mut(&dbid) {
                d.header.apply_backup(field, info);
                d.file.write_header(&d.header)?;
            }
        }
        outcome.result
    }
}
