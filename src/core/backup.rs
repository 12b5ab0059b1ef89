//! The instance side of the external backup: the state machine of `crate::backup` applied to
//! this instance's log, databases and headers.

use std::path::{Path, PathBuf};

use super::Core;
use crate::backup::stream::Streamed;
use crate::backup::BeginFacts;
use crate::backup::{BackupState, Failure, FileChunk, ReadPlan, ReadTicket};
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

    /// The running backup's span ([`BackupState::span`]), or a disabled one with no backup.
    /// Every backup call enters it; a caller that runs a read elsewhere carries it there.
    pub fn backup_span(&self) -> tracing::Span {
        self.backup
            .as_ref()
            .map_or_else(tracing::Span::none, |b| b.span().clone())
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
        let _span = self.backup_span().entered();
        let attached: Vec<PathBuf> = self.dbs.values().map(|d| d.path.clone()).collect();
        let r = self.backup()?.attach_info(&attached);
        self.settle(r)
    }

    /// `open_file`: a handle and the size of the stream it reads.
    pub fn backup_open(&mut self, path: &Path) -> Result<(u64, u64)> {
        let _span = self.backup_span().entered();
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
        let _span = self.backup_span().entered();
        let gen = self.log.gen();
        let r = self.backup()?.plan_read(handle, max_len, gen);
        self.settle(r)
    }

    /// The chunk after the one just read, for a read-ahead ([`BackupState::plan_ahead`]);
    /// `None` when there is none to read ahead or the instance is unavailable.
    pub fn backup_plan_ahead(&self, handle: u64, max_len: usize) -> Option<(ReadTicket, ReadPlan)> {
        self.check_available().ok()?;
        self.backup.as_ref()?.plan_ahead(handle, max_len)
    }

    /// A read finished: settled against the backup and file of its ticket only. A read of a
    /// backup that has ended is `NoBackup` (behaviour.md §2.2), whatever runs now. The pages
    /// it verified count in [`CoreStats::backup_pages_verified`] whatever becomes of it; its
    /// chunk counts in [`CoreStats::backup_bytes_streamed`] once it is handed out.
    ///
    /// [`CoreStats::backup_pages_verified`]: crate::CoreStats::backup_pages_verified
    /// [`CoreStats::backup_bytes_streamed`]: crate::CoreStats::backup_bytes_streamed
    pub fn backup_read_done(
        &mut self,
        ticket: ReadTicket,
        res: Result<Streamed>,
    ) -> Result<FileChunk> {
        // The span of the read's own backup, if that is still the one running.
        let span = match &self.backup {
            Some(b) if b.id() == ticket.backup => b.span().clone(),
            _ => tracing::Span::none(),
        };
        let _span = span.entered();
        if let Ok(s) = &res {
            self.stats.backup_pages_verified += s.pages_verified;
        }
        let crc32c = res.as_ref().map_or(0, |s| s.crc32c);
        let res = res.map(|s| (s.chunk, s.whole_log));
        let r = match self.backup.as_mut() {
            Some(b) => b.read_done(ticket, &res),
            None => Err(Failure {
                error: Error::NoBackup,
                abort: false,
            }),
        };
        self.settle(r)?;
        let (bytes, _) = res?;
        self.stats.backup_bytes_streamed += bytes.len() as u64;
        Ok(FileChunk { bytes, crc32c })
    }

    /// `close_file`.
    pub fn backup_close(&mut self, handle: u64) -> Result<()> {
        let _span = self.backup_span().entered();
        let r = self.backup()?.close(handle);
        self.settle(r)
    }

    /// `stop_backup`: later backup calls get `BackupAbortByServer`.
    pub fn backup_stop(&mut self) {
        if let Some(b) = self.backup.as_mut() {
            b.span().in_scope(|| {
                tracing::info!("stop backup: later calls get BackupAbortByServer");
            });
            b.stop = true;
        }
    }

    /// Ends a running backup as aborted by the server (`term` with `ABRUPT`/`STOP_BACKUP`).
    pub fn backup_abort_by_server(&mut self) {
        let _span = self.backup_span().entered();
        if self.backup.is_some() {
            tracing::info!(
                event_id = crate::backup::events::ABORT_BY_SERVER,
                "backup aborted by the server"
            );
            self.backup_clear(MARK_ABORT);
        }
    }

    /// Whether the backup `id` may still be driven: Ok while it runs unstopped,
    /// `BackupAbortByServer` once `stop_backup` was called on it, `NoBackup` when another
    /// backup or none runs. A host serving several clients checks this before each call it
    /// makes for one of them, since the legacy calls act on whatever backup runs.
    pub fn backup_check(&self, id: u64) -> Result<()> {
        match &self.backup {
            Some(b) if b.id() == id && b.stop => Err(Error::BackupAbortByServer),
            Some(b) if b.id() == id => Ok(()),
            _ => Err(Error::NoBackup),
        }
    }

    /// `end_external_backup(grbit)` of the backup `id` only: the grbit is checked first (as
    /// with no backup running), then `NoBackup` if `id` is not the running backup.
    pub fn backup_end_if(&mut self, id: u64, grbit: BackupEnd) -> Result<()> {
        if grbit.contains(BackupEnd::NORMAL) == grbit.contains(BackupEnd::ABORT) {
            return Err(Error::InvalidParameter);
        }
        if self.backup_id() != Some(id) {
            return Err(Error::NoBackup);
        }
        self.backup_end(grbit)
    }

    /// Ends the backup `id` as aborted by the server, as `stop_backup` followed by a normal
    /// end would (event 226, no header update), in one step so that no call of its client
    /// slips in between. Success with nothing done when `id` no longer runs: a lease that
    /// expires after its backup ended must not touch a later one.
    pub fn backup_expire_if(&mut self, id: u64) -> Result<()> {
        if self.backup_id() != Some(id) {
            return Ok(());
        }
        self.backup_stop();
        match self.backup_end(BackupEnd::NORMAL) {
            Err(e) if e.code() == Error::BackupAbortByServer.code() => Ok(()),
            other => other,
        }
    }

    /// The first `get_log_info` / `get_truncate_log_info`: rolls the log, waits for the new
    /// generation to exist, and fixes the ranges. Later calls only check. Blocks on the roll.
    pub fn backup_prepare_logs(&mut self) -> Result<()> {
        let _span = self.backup_span().entered();
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
        // The ranges start at the oldest archived log *on disk* (contract §2.3): one deleted
        // by someone else (a client that truncated itself, `TRUNCATE_DONE`) is not listed.
        let storage = self.storage.clone();
        self.log.forget_missing(&*storage);
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
        let _span = self.backup_span().entered();
        let r = self.backup()?.truncate();
        let gens = self.settle(r)?;
        let storage = self.storage.clone();
        self.log.delete_now(&*storage, &gens)
    }

    /// `truncate_log` of the backup `id` only: `NoBackup` (-520) if `id` is not the running
    /// backup, so a client whose backup was ended and replaced (by the host, or its lease)
    /// can never truncate for another; otherwise exactly `truncate_log`'s outcome (-801
    /// after `stop_backup`, -521, -616, ...).
    pub fn backup_truncate_if(&mut self, id: u64) -> Result<()> {
        if self.backup_id() != Some(id) {
            return Err(Error::NoBackup);
        }
        self.backup_truncate()
    }

    /// `end_external_backup`. On a normal end the header updates are logged, made durable,
    /// then applied and written: blocks on those writes.
    pub fn backup_end(&mut self, grbit: BackupEnd) -> Result<()> {
        // Held to the end: the header updates of a normal end are the backup's too.
        let _span = self.backup_span().entered();
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::backup::stream;

    use crate::{BackupBegin, BackupEnd, Core, Error};

    const PAGE: usize = 4096;

    /// A core with `/i/db.edb`, table "t", and `rows` rows.
    fn core_with_rows(rows: u32) -> Core {
        let (mut core, s, tbl) = crate::core::testing::core_with_table(256);
        crate::core::testing::put_rows(&mut core, s, tbl, rows, 7);
        core
    }

    /// Streams one file as a client does, in chunks of 5 pages; the bytes received.
    fn stream_file(core: &mut Core, path: &Path) -> u64 {
        let (h, size) = core.backup_open(path).unwrap();
        let sig = core.log().signature();
        let mut got = 0;
        loop {
            let (ticket, plan) = core.backup_plan_read(h, 5 * PAGE).unwrap();
            let log = core.log().shared().clone();
            let res = stream::execute(&**core.storage(), &plan, sig, &|| log.durable());
            let chunk = core.backup_read_done(ticket, res).unwrap();
            assert_eq!(chunk.crc32c, crc32c::crc32c(&chunk.bytes));
            if chunk.bytes.is_empty() {
                break;
            }
            got += chunk.bytes.len() as u64;
        }
        core.backup_close(h).unwrap();
        assert_eq!(got, size, "{}", path.display());
        got
    }

    /// A full backup of the databases and logs: the bytes received, and the data pages the
    /// database images held (an image is its pages, two header copies and a trailer).
    fn full_backup(core: &mut Core) -> (u64, u64) {
        core.backup_begin(BackupBegin::empty()).unwrap();
        let got = stream_sequence(core);
        core.backup_end(BackupEnd::NORMAL).unwrap();
        got
    }

    /// Streams every database, seals the logs and streams them: the running backup's whole
    /// sequence up to its end. Answers as `full_backup`.
    fn stream_sequence(core: &mut Core) -> (u64, u64) {
        let (mut bytes, mut pages) = (0, 0);
        for db in core.backup_attach_info().unwrap() {
            let n = stream_file(core, &db);
            bytes += n;
            pages += n / PAGE as u64 - 3;
        }
        core.backup_prepare_logs().unwrap();
        let (_, _, logs) = core.backup_log_info().unwrap();
        assert!(!logs.is_empty());
        for log in logs {
            bytes += stream_file(core, &log);
        }
        (bytes, pages)
    }

    #[test]
    fn check_names_the_running_backup_only() {
        let mut core = core_with_rows(10);
        assert_eq!(core.backup_check(1), Err(Error::NoBackup));
        core.backup_begin(BackupBegin::empty()).unwrap();
        let id = core.backup_id().unwrap();
        assert_eq!(core.backup_check(id), Ok(()));
        assert_eq!(core.backup_check(id + 1), Err(Error::NoBackup));
        core.backup_stop();
        assert_eq!(core.backup_check(id), Err(Error::BackupAbortByServer));
        assert_eq!(core.backup_check(id + 1), Err(Error::NoBackup));
        // A check changes nothing: the stopped backup still runs until it is ended.
        assert_eq!(core.backup_id(), Some(id));
    }

    #[test]
    fn end_if_ends_only_the_named_backup() {
        let mut core = core_with_rows(10);
        // The grbit is checked first, as end_external_backup does with no backup running.
        assert_eq!(
            core.backup_end_if(1, BackupEnd::NORMAL | BackupEnd::ABORT),
            Err(Error::InvalidParameter)
        );
        assert_eq!(
            core.backup_end_if(1, BackupEnd::ABORT),
            Err(Error::NoBackup)
        );
        core.backup_begin(BackupBegin::empty()).unwrap();
        let first = core.backup_id().unwrap();
        core.backup_end(BackupEnd::ABORT).unwrap();
        core.backup_begin(BackupBegin::empty()).unwrap();
        let second = core.backup_id().unwrap();
        // The first backup's client cannot end the second.
        assert_eq!(
            core.backup_end_if(first, BackupEnd::NORMAL),
            Err(Error::NoBackup)
        );
        assert_eq!(core.backup_id(), Some(second));
        // Its own end has end_external_backup's outcome: before the log phase, -800.
        assert_eq!(
            core.backup_end_if(second, BackupEnd::NORMAL),
            Err(Error::BackupAbortByCaller)
        );
        assert_eq!(core.backup_id(), None);
    }

    #[test]
    fn truncate_if_truncates_for_the_named_backup_only() {
        let (mut core, s, tbl) = crate::core::testing::core_with_table(256);
        // Three generations behind a checkpoint: logs a truncation may delete.
        for fill in 0..3 {
            crate::core::testing::put_rows(&mut core, s, tbl, 50, fill);
            core.log.roll().unwrap();
        }
        crate::core::testing::put_rows(&mut core, s, tbl, 50, 9);
        core.checkpoint_now().unwrap();
        core.backup_begin(BackupBegin::empty()).unwrap();
        let first = core.backup_id().unwrap();
        core.backup_end(BackupEnd::ABORT).unwrap();
        core.backup_begin(BackupBegin::empty()).unwrap();
        let id = core.backup_id().unwrap();
        stream_sequence(&mut core);
        let doomed = core.backup_truncate_info().unwrap();
        assert!(!doomed.is_empty());
        // The first backup's client: -520, and every log is still there.
        assert_eq!(core.backup_truncate_if(first), Err(Error::NoBackup));
        assert!(doomed.iter().all(|p| core.storage.exists(p)));
        // The running backup's own: truncate_log's outcome.
        assert_eq!(core.backup_truncate_if(id), Ok(()));
        assert!(doomed.iter().all(|p| !core.storage.exists(p)));
        assert_eq!(core.backup_id(), Some(id));
    }

    #[test]
    fn truncate_if_after_stop_backup_is_801() {
        let mut core = core_with_rows(10);
        core.backup_begin(BackupBegin::empty()).unwrap();
        let id = core.backup_id().unwrap();
        core.backup_stop();
        assert_eq!(core.backup_truncate_if(id), Err(Error::BackupAbortByServer));
    }

    #[test]
    fn end_if_after_stop_backup_is_801() {
        let mut core = core_with_rows(10);
        core.backup_begin(BackupBegin::empty()).unwrap();
        let id = core.backup_id().unwrap();
        core.backup_stop();
        assert_eq!(
            core.backup_end_if(id, BackupEnd::NORMAL),
            Err(Error::BackupAbortByServer)
        );
        assert_eq!(core.backup_id(), None);
    }

    #[test]
    fn expire_if_ends_the_named_backup_as_aborted_by_the_server() {
        let mut core = core_with_rows(400);
        core.backup_begin(BackupBegin::empty()).unwrap();
        let id = core.backup_id().unwrap();
        // Even a backup whose sequence is complete gets no header update.
        stream_sequence(&mut core);
        let dbs: Vec<_> = core.dbs.keys().copied().collect();
        assert_eq!(core.backup_expire_if(id + 1), Ok(()));
        assert_eq!(core.backup_id(), Some(id), "another id touches nothing");
        assert_eq!(core.backup_expire_if(id), Ok(()));
        assert_eq!(core.backup_id(), None);
        for d in dbs {
            let h = &core.dbs[&d].header;
            assert!(h.last_copy.is_none() && h.last_full.is_none());
        }
        // Expiring it again, or after a later backup began, does nothing.
        core.backup_begin(BackupBegin::empty()).unwrap();
        let later = core.backup_id().unwrap();
        assert_eq!(core.backup_expire_if(id), Ok(()));
        assert_eq!(core.backup_check(later), Ok(()));
    }

    #[test]
    fn the_backup_counters_count_what_clients_received() {
        let mut core = core_with_rows(400);
        let s = core.stats();
        assert_eq!((s.backup_bytes_streamed, s.backup_pages_verified), (0, 0));
        let (bytes, pages) = full_backup(&mut core);
        assert!(pages > 10, "a database of several pages: {pages}");
        let s = core.stats();
        assert_eq!(s.backup_bytes_streamed, bytes);
        assert_eq!(s.backup_pages_verified, pages);
        // A second backup adds to them.
        let (b2, p2) = full_backup(&mut core);
        let s = core.stats();
        assert_eq!(s.backup_bytes_streamed, bytes + b2);
        assert_eq!(s.backup_pages_verified, pages + p2);
    }

    #[test]
    fn a_read_whose_backup_ended_verified_pages_but_streamed_nothing() {
        let mut core = core_with_rows(400);
        core.backup_begin(BackupBegin::empty()).unwrap();
        let db = core.backup_attach_info().unwrap().remove(0);
        let (h, size) = core.backup_open(&db).unwrap();
        assert!(size > 16 * PAGE as u64, "the first chunk holds no trailer");
        let (ticket, plan) = core.backup_plan_read(h, 16 * PAGE).unwrap();
        let log = core.log().shared().clone();
        let res = stream::execute(&**core.storage(), &plan, core.log().signature(), &|| {
            log.durable()
        });
        core.backup_end(BackupEnd::ABORT).unwrap();
        assert_eq!(core.backup_read_done(ticket, res), Err(Error::NoBackup));
        let s = core.stats();
        assert_eq!(s.backup_bytes_streamed, 0, "nothing was handed out");
        assert_eq!(
            s.backup_pages_verified, 14,
            "16 page slots read: two header copies and data pages 1..=14, verified"
        );
    }
}
