//! Backup calls (behaviour.md §2): the core's state machine decides; reads run on the blocking
//! pool without the core, so `stop_service`, `stop_backup` and everything else are answered
//! while a chunk is on disk, and the read's completion then sees the new state.

use std::path::PathBuf;

use ese::backup::FileChunk;
use ese::internals::backup::{stream, ReadPlan, ReadTicket};
use ese::{BackupBegin, BackupEnd, Error, Result};

use super::pacing::Hold;
use super::Actor;
use crate::messages::Reply;
use crate::types::{BackupFile, BackupId, BackupInfo, LogInfo};

/// Where a backup read's answer goes: `ReadFile` wants the bytes, `ReadFileChunk` the bytes
/// with their sum.
pub(crate) enum ReadReply {
    Bytes(Reply<bytes::Bytes>),
    Chunk(Reply<FileChunk>),
}

impl ReadReply {
    /// Answers the caller; one that went away is no one's concern.
    pub(crate) fn send(self, answer: Result<FileChunk>) {
        match self {
            ReadReply::Bytes(r) => {
                let _ = r.send(answer.map(|c| c.bytes));
            }
            ReadReply::Chunk(r) => {
                let _ = r.send(answer);
            }
        }
    }
}

impl Actor {
    /// `JetBeginExternalBackupInstance`: the state machine only.
    pub(super) fn on_begin_backup(&mut self, grbit: BackupBegin, r: Reply<()>) {
        let _ = r.send(self.core_mut().backup_begin(grbit));
    }

    /// `begin_backup`, answering the id of the backup it began.
    pub(super) fn on_begin_backup_with_id(&mut self, grbit: BackupBegin, r: Reply<BackupId>) {
        let c = self.core_mut();
        let res = c
            .backup_begin(grbit)
            .and_then(|()| c.backup_id().map(BackupId).ok_or(Error::InternalError));
        let _ = r.send(res);
    }

    /// The databases the backup is to copy.
    pub(super) fn on_attach_info(&mut self, r: Reply<Vec<PathBuf>>) {
        let _ = r.send(self.core_mut().backup_attach_info());
    }

    /// Opening stats the file (a log) or reads the meta page (a database): a job.
    pub(super) fn on_open_file(&mut self, path: PathBuf, r: Reply<(BackupFile, u64)>) {
        self.core_job(r, move |c| {
            c.backup_open(&path).map(|(h, size)| (BackupFile(h), size))
        });
    }

    /// Closing decides whether the file counts as copied; no disk.
    pub(super) fn on_close_file(&mut self, file: BackupFile, r: Reply<()>) {
        self.drop_prefetch();
        self.wake_held_reads();
        let _ = r.send(self.core_mut().backup_close(file.0));
    }

    /// The first log-phase call rolls the log and waits for the new generation: a job.
    pub(super) fn on_log_info(&mut self, r: Reply<LogInfo>) {
        self.core_job(r, |c| {
            c.backup_prepare_logs()?;
            let base = c.params().base().to_string();
            c.backup_log_info()
                .map(|(gen_low, gen_high, files)| LogInfo {
                    gen_low,
                    gen_high,
                    base_name: base,
                    files,
                })
        });
    }

    /// The logs a truncation would delete (rolling the log first, as `get_log_info`): a job.
    pub(super) fn on_truncate_info(&mut self, r: Reply<Vec<PathBuf>>) {
        self.core_job(r, |c| {
            c.backup_prepare_logs()?;
            c.backup_truncate_info()
        });
    }

    /// Deletes the logs the backup made redundant: a job.
    pub(super) fn on_truncate_log(&mut self, r: Reply<()>) {
        self.core_job(r, |c| c.backup_truncate());
    }

    /// `truncate_log` of backup `id` only; a job, as `truncate_log` (it deletes files).
    pub(super) fn on_truncate_log_if(&mut self, id: BackupId, r: Reply<()>) {
        self.core_job(r, move |c| c.backup_truncate_if(id.0));
    }

    /// The record a normal end would write, from memory.
    pub(super) fn on_backup_record(&mut self, r: Reply<BackupInfo>) {
        let _ = r.send(self.core_mut().backup_record());
    }

    /// Header updates are written and synced: a job.
    pub(super) fn on_end_backup(&mut self, grbit: BackupEnd, r: Reply<()>) {
        self.drop_prefetch();
        self.wake_held_reads();
        self.core_job(r, move |c| c.backup_end(grbit));
    }

    /// Aborts the backup with this id if it still runs (a job, as `end_backup`); otherwise
    /// Success at once.
    pub(super) fn on_abort_backup_if(&mut self, id: BackupId, r: Reply<()>) {
        if self.core_mut().backup_id() == Some(id.0) {
            self.wake_held_reads();
            self.core_job(r, |c| c.backup_end(BackupEnd::ABORT));
        } else {
            let _ = r.send(Ok(()));
        }
    }

    /// Whether the backup `id` runs unstopped, from memory.
    pub(super) fn on_check_backup(&mut self, id: BackupId, r: Reply<()>) {
        let _ = r.send(self.core_mut().backup_check(id.0));
    }

    /// The end of backup `id` only; a job, as `end_backup`, since a normal end writes headers.
    pub(super) fn on_end_backup_if(&mut self, id: BackupId, grbit: BackupEnd, r: Reply<()>) {
        // A stale client's end must not cost the running backup its read-ahead.
        if self.core_mut().backup_id() == Some(id.0) {
            self.drop_prefetch();
            self.wake_held_reads();
        }
        self.core_job(r, move |c| c.backup_end_if(id.0, grbit));
    }

    /// Stops and ends backup `id` in one job, so that no call of its client comes between.
    pub(super) fn on_expire_backup_if(&mut self, id: BackupId, r: Reply<()>) {
        if self.core_mut().backup_id() == Some(id.0) {
            self.drop_prefetch();
            self.wake_held_reads();
            self.core_job(r, move |c| c.backup_expire_if(id.0));
        } else {
            let _ = r.send(Ok(()));
        }
    }

    /// `JetReadFileInstance`: the chunk is read without the core; its completion settles
    /// against the state machine as it is by then. The read and its completion run in the
    /// span of the backup it was issued in.
    pub(super) fn on_read(&mut self, file: BackupFile, max_len: usize, r: ReadReply) {
        self.log_at_read = self.core_mut().log().appended();
        let core = self.core_mut();
        // The ticket names this backup and file: the completion settles against them only.
        let (ticket, plan) = match core.backup_plan_read(file.0, max_len) {
            Ok(p) => p,
            Err(e) => {
                r.send(Err(e));
                return;
            }
        };
        if let Some(hold) = self.pace_read(&plan) {
            // Held: read-ahead is for a backup running alone.
            self.drop_prefetch();
            self.read_chunk(ticket, plan, r, Some(hold));
        } else if let Some(r) = self.take_prefetch(ticket, &plan, r) {
            self.read_chunk(ticket, plan, r, None);
        }
    }

    /// Reads a planned chunk on the blocking pool, after the governor's hold if any; its
    /// completion settles it.
    pub(super) fn read_chunk(
        &mut self,
        ticket: ReadTicket,
        plan: ReadPlan,
        r: ReadReply,
        hold: Option<Hold>,
    ) {
        let core = self.core_mut();
        let span = core.backup_span();
        let sig = core.log().signature();
        let log = core.log().shared().clone();
        let storage = self.storage.clone();
        self.reads_in_flight += 1;
        self.read_job(move || {
            if let Some(hold) = hold {
                hold.wait();
            }
            let durable = || log.durable();
            let res = span.in_scope(|| stream::execute(&*storage, &plan, sig, &durable));
            Box::new(move |a: &mut Actor| {
                span.in_scope(|| a.read_finished(ticket, res, r));
            })
        });
    }

    pub(super) fn read_finished(
        &mut self,
        ticket: ReadTicket,
        res: Result<stream::Streamed>,
        r: ReadReply,
    ) {
        match self.core.as_mut() {
            Some(core) => {
                self.reads_in_flight -= 1;
                let answer = core.backup_read_done(ticket, res);
                let full = answer.as_ref().map_or(0, |c| c.bytes.len());
                r.send(answer);
                if full > 0 {
                    self.start_prefetch(ticket, full);
                }
                self.maybe_run_pending_term();
            }
            // A job holds the core: settle the read when it comes back.
            None => self.parked_reads.push((ticket, res, r)),
        }
    }
}
