//! Backup calls (contract 2): the core's state machine decides; reads run on the blocking
//! pool without the core, so `stop_service`, `stop_backup` and everything else are answered
//! while a chunk is on disk, and the read's completion then sees the new state.

use ese::backup::stream;
use ese::{BackupEnd, Error, Result};

use super::{refuse, Actor, Finish};
use crate::messages::{Command, Reply};
use crate::types::{BackupFile, LogInfo};

impl Actor {
    pub(super) fn serve_backup(&mut self, cmd: Command) {
        match cmd {
            Command::BeginBackup(m, r) => {
                let _ = r.send(self.core_mut().backup_begin(m.grbit));
            }
            Command::GetAttachInfo(_, r) => {
                let _ = r.send(self.core_mut().backup_attach_info());
            }
            Command::OpenFile(m, r) => {
                let _ = r.send(
                    self.core_mut()
                        .backup_open(&m.path)
                        .map(|(h, size)| (BackupFile(h), size)),
                );
            }
            Command::ReadFile(m, r) => self.on_read(m.file, m.max_len, r),
            Command::CloseFile(m, r) => {
                let _ = r.send(self.core_mut().backup_close(m.file.0));
            }
            Command::GetLogInfo(_, r) => self.log_phase_job(r, |c| {
                let base = c.params().base().to_string();
                c.backup_log_info()
                    .map(|(gen_low, gen_high, files)| LogInfo {
                        gen_low,
                        gen_high,
                        base_name: base,
                        files,
                    })
            }),
            Command::GetTruncateLogInfo(_, r) => {
                self.log_phase_job(r, |c| c.backup_truncate_info())
            }
            Command::TruncateLog(_, r) => self.core_job(r, |c| c.backup_truncate()),
            Command::EndBackup(m, r) => self.on_end(m.grbit, r),
            other => refuse(other, Error::InvalidParameter),
        }
    }

    /// The first log-phase call rolls the log and waits for the new generation: a job.
    fn log_phase_job<T: Send + 'static>(
        &mut self,
        r: Reply<T>,
        then: fn(&mut ese::Core) -> Result<T>,
    ) {
        self.job(true, move |core| {
            let mut core = core;
            let res = match core.as_mut() {
                Some(c) => c.backup_prepare_logs().and_then(|()| then(c)),
                None => Err(Error::NotInitialized),
            };
            let finish: Finish = Box::new(move |_| {
                let _ = r.send(res);
            });
            (core, finish)
        });
    }

    /// Runs a core call that touches files as a job.
    fn core_job<T: Send + 'static>(&mut self, r: Reply<T>, f: fn(&mut ese::Core) -> Result<T>) {
        self.job(true, move |core| {
            let mut core = core;
            let res = core.as_mut().map_or(Err(Error::NotInitialized), f);
            let finish: Finish = Box::new(move |_| {
                let _ = r.send(res);
            });
            (core, finish)
        });
    }

    fn on_end(&mut self, grbit: BackupEnd, r: Reply<()>) {
        if grbit.contains(BackupEnd::NORMAL) == grbit.contains(BackupEnd::ABORT) {
            let _ = r.send(Err(Error::InvalidParameter));
            return;
        }
        if !self.core_mut().backup_running() {
            let _ = r.send(Err(Error::NoBackup));
            return;
        }
        // Header updates are written and synced: a job.
        self.job(true, move |core| {
            let mut core = core;
            let res = match core.as_mut() {
                Some(c) => c.backup_end(grbit),
                None => Err(Error::NotInitialized),
            };
            let finish: Finish = Box::new(move |_| {
                let _ = r.send(res);
            });
            (core, finish)
        });
    }

    fn on_read(&mut self, file: BackupFile, max_len: usize, r: Reply<bytes::Bytes>) {
        let core = self.core_mut();
        let plan = match core.backup_plan_read(file.0, max_len) {
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
            let finish: Finish = Box::new(move |a: &mut Actor| a.read_finished(file.0, res, r));
            (None, finish)
        });
    }

    pub(super) fn read_finished(
        &mut self,
        handle: u64,
        res: Result<(bytes::Bytes, Option<bytes::Bytes>)>,
        r: Reply<bytes::Bytes>,
    ) {
        match self.core.as_mut() {
            Some(core) => {
                self.reads_in_flight -= 1;
                let _ = r.send(core.backup_read_done(handle, res));
                self.maybe_run_pending_term();
            }
            // A job holds the core: settle the read when it comes back.
            None => self.parked_reads.push((handle, res, r)),
        }
    }
}
