//! Backup calls (contract 2): the core's state machine decides; reads run on the blocking
//! pool without the core, so `stop_service`, `stop_backup` and everything else are answered
//! while a chunk is on disk, and the read's completion then sees the new state.

use ese::backup::{stream, ReadTicket};
use ese::{Error, Result};

use super::{refuse, Actor, Finish};
use crate::messages::{Command, Reply};
use crate::types::{BackupFile, BackupId, LogInfo};

impl Actor {
    pub(super) fn serve_backup(&mut self, cmd: Command) {
        match cmd {
            Command::BeginBackup(m, r) => {
                let _ = r.send(self.core_mut().backup_begin(m.grbit));
            }
            Command::GetAttachInfo(_, r) => {
                let _ = r.send(self.core_mut().backup_attach_info());
            }
            // Opening stats the file (a log) or reads the meta page (a database): a job.
            Command::OpenFile(m, r) => self.core_job(r, move |c| {
                c.backup_open(&m.path)
                    .map(|(h, size)| (BackupFile(h), size))
            }),
            Command::ReadFile(m, r) => self.on_read(m.file, m.max_len, r),
            Command::CloseFile(m, r) => {
                let _ = r.send(self.core_mut().backup_close(m.file.0));
            }
            // The first log-phase call rolls the log and waits for the new generation: a job.
            Command::GetLogInfo(_, r) => self.core_job(r, |c| {
                c.backup_prepare_logs()?;
                let base = c.params().base().to_string();
                c.backup_log_info()
                    .map(|(gen_low, gen_high, files)| LogInfo {
                        gen_low,
                        gen_high,
                        base_name: base,
                        files,
                    })
            }),
            Command::GetTruncateLogInfo(_, r) => self.core_job(r, |c| {
                c.backup_prepare_logs()?;
                c.backup_truncate_info()
            }),
            Command::TruncateLog(_, r) => self.core_job(r, |c| c.backup_truncate()),
            Command::GetBackupRecord(_, r) => {
                let _ = r.send(self.core_mut().backup_record());
            }
            // Header updates are written and synced: a job.
            Command::EndBackup(m, r) => self.core_job(r, move |c| c.backup_end(m.grbit)),
            Command::BeginBackupWithId(m, r) => {
                let c = self.core_mut();
                let res = c
                    .backup_begin(m.grbit)
                    .and_then(|()| c.backup_id().map(BackupId).ok_or(Error::InternalError));
                let _ = r.send(res);
            }
            Command::AbortBackupIf(m, r) => {
                if self.core_mut().backup_id() == Some(m.id.0) {
                    self.core_job(r, |c| c.backup_end(ese::BackupEnd::ABORT));
                } else {
                    let _ = r.send(Ok(()));
                }
            }
            other => refuse(other, Error::InvalidParameter),
        }
    }

    fn on_read(&mut self, file: BackupFile, max_len: usize, r: Reply<bytes::Bytes>) {
        let core = self.core_mut();
        // The ticket names this backup and file: the completion settles against them only.
        let (ticket, plan) = match core.backup_plan_read(file.0, max_len) {
            Ok(p) => p,
            Err(e) => {
                let _ = r.send(Err(e));
                return;
            }
        };
        let sig = core.log().signature();
        let storage = self.storage.clone();
        self.reads_in_flight += 1;
        self.job(false, move |_| {
            let res = stream::execute(&*storage, &plan, sig);
            let finish: Finish = Box::new(move |a: &mut Actor| a.read_finished(ticket, res, r));
            (None, finish)
        });
    }

    pub(super) fn read_finished(
        &mut self,
        ticket: ReadTicket,
        res: Result<(bytes::Bytes, Option<bytes::Bytes>)>,
        r: Reply<bytes::Bytes>,
    ) {
        match self.core.as_mut() {
            Some(core) => {
                self.reads_in_flight -= 1;
                let _ = r.send(core.backup_read_done(ticket, res));
                self.maybe_run_pending_term();
            }
            // A job holds the core: settle the read when it comes back.
            None => self.parked_reads.push((ticket, res, r)),
        }
    }
}
