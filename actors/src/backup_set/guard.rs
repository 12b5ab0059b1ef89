//! Cancel safety of a backup-set run (`backup_to_dir`, `start_backup`): the guard the run
//! owns. Dropped before it is disarmed, it ends the backup as aborted (`AbortBackupIf`:
//! `ABORT`, event 215) and removes the partial set; the file work and the waiting happen on a
//! thread of their own, never in `drop` on an async worker. `Instance::term` and the next
//! backup wait for that thread.

use std::sync::Arc;

use ese::backup::set::SetWriter;
use ese::{BackupBegin, Error, Result};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::instance::{Cleanup, Instance};
use crate::messages::{AbortBackupIf, BeginBackupWithId};
use crate::types::BackupId;

/// The set being written, shared by the steps that run on blocking threads and the guard.
pub(crate) type SharedWriter = Arc<Mutex<SetWriter>>;

/// Where the backup this call began stands.
enum Begun {
    /// Not begun (or refused).
    No,
    /// The begin is in the mailbox; its answer (the id) arrives here.
    Asked(oneshot::Receiver<Result<BackupId>>),
    /// Running, with this id.
    Yes(BackupId),
}

/// What a drop does with the set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetFate {
    /// The set is partial: removed.
    Remove,
    /// The manifest is visible and truncation (or the end) was asked for: the set may be
    /// the only copy of logs the source deleted, so it stays.
    Keep,
}

/// Owned by a backup-set run; see the module documentation.
pub(crate) struct SetGuard {
    inst: Instance,
    begun: Begun,
    writer: Option<SharedWriter>,
    fate: SetFate,
    armed: bool,
}

impl SetGuard {
    /// A guard for a backup not begun yet.
    pub(crate) fn new(inst: Instance) -> SetGuard {
        SetGuard {
            inst,
            begun: Begun::No,
            writer: None,
            fate: SetFate::Remove,
            armed: true,
        }
    }

    /// Begins the backup. The answer is kept by the guard while it is awaited, so a drop in
    /// between still learns the id and ends the backup.
    pub(crate) async fn begin(&mut self, grbit: BackupBegin) -> Result<()> {
        let rx = self.inst.post(BeginBackupWithId { grbit }).await?;
        self.begun = Begun::Asked(rx);
        let answer = match &mut self.begun {
            Begun::Asked(rx) => rx.await.unwrap_or(Err(Error::InvalidInstance)),
            _ => Err(Error::InternalError),
        };
        self.begun = match &answer {
            Ok(id) => Begun::Yes(*id),
            Err(_) => Begun::No,
        };
        answer.map(|_| ())
    }

    /// Puts the set's writer under the guard.
    pub(crate) fn attach(&mut self, writer: SetWriter) -> SharedWriter {
        let w = Arc::new(Mutex::new(writer));
        self.writer = Some(w.clone());
        w
    }

    /// From now on a drop leaves the set where it is (see [`SetFate::Keep`]).
    pub(crate) fn keep_set(&mut self) {
        self.fate = SetFate::Keep;
    }

    /// The sequence is over; a drop does nothing.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Ends the backup as aborted (if it still runs) and waits for it.
    pub(crate) async fn abort(&mut self) {
        if let Begun::Yes(id) = self.begun {
            if let Err(e) = self.inst.ask(AbortBackupIf { id }).await {
                tracing::warn!(error = %e, "backup set: the failed backup could not be ended");
            }
        }
        self.begun = Begun::No;
    }

    /// A failure: ends the backup as aborted, removes the set, and disarms.
    pub(crate) async fn fail(&mut self) {
        // Should the future be dropped half way, the guard finishes the removal.
        self.fate = SetFate::Remove;
        self.abort().await;
        if let Some(w) = self.writer.clone() {
            let removed = tokio::task::spawn_blocking(move || w.lock().remove()).await;
            if removed.is_err() {
                tracing::warn!("backup set: removing the partial set failed");
            }
        }
        self.disarm();
    }
}

impl Drop for SetGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // The abort goes at once, by the side channel a full mailbox cannot refuse; the
        // thread below waits for its answer (or for the begin's, when that was in flight).
        let pending = match std::mem::replace(&mut self.begun, Begun::No) {
            Begun::No => Pending::Nothing,
            Begun::Asked(rx) => Pending::Begin(rx),
            Begun::Yes(id) => Pending::Abort(self.inst.tell_watched(AbortBackupIf { id })),
        };
        let writer = match self.fate {
            SetFate::Remove => self.writer.take(),
            SetFate::Keep => None,
        };
        if matches!(pending, Pending::Nothing) && writer.is_none() {
            return;
        }
        let job = CleanupJob {
            inst: self.inst.clone(),
            pending,
            writer,
            _count: self.inst.cleanup_started(),
        };
        let spawned = std::thread::Builder::new()
            .name("ese-backup-cleanup".into())
            .spawn(move || job.run());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "dropped backup: no thread for its cleanup; the partial set stays (it has no manifest)");
        }
    }
}

/// The answer a dropped backup's cleanup waits for.
enum Pending {
    Nothing,
    Begin(oneshot::Receiver<Result<BackupId>>),
    Abort(oneshot::Receiver<Result<()>>),
}

/// What a dropped backup leaves to do, on its own thread.
struct CleanupJob {
    inst: Instance,
    pending: Pending,
    writer: Option<SharedWriter>,
    /// Counted until the job is done (or dropped, if no thread could run it).
    _count: Cleanup,
}

impl CleanupJob {
    fn run(self) {
        match self.pending {
            Pending::Nothing => {}
            // The begin was answered after its caller left: end the backup it began.
            Pending::Begin(rx) => {
                if let Ok(Ok(id)) = rx.blocking_recv() {
                    let _ = self.inst.tell_watched(AbortBackupIf { id }).blocking_recv();
                }
            }
            Pending::Abort(rx) => {
                let _ = rx.blocking_recv();
            }
        }
        if let Some(w) = self.writer {
            w.lock().remove();
        }
        tracing::info!("dropped backup_to_dir: its backup ended, its partial set removed");
    }
}
