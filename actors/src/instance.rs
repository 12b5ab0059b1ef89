//! The `Instance` handle: every call is a typed message to the instance's actor.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use ese::backup::FileChunk;
use ese::io::StorageRef;
use ese::{
    BackupBegin, BackupEnd, CoreStats, DbId, Error, InstanceParams, Result, Term as TermBits,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::actor::pacing::{CommitTimer, Pacing};
use crate::engine::EngineInner;
use crate::messages::*;
use crate::session::Session;
use crate::types::{BackupFile, DatabaseInfo, LogInfo};

/// Mailbox depth: back-pressure on hosts that send faster than the instance serves.
pub(crate) const MAILBOX: usize = 1024;

struct Handle {
    name: String,
    id: u64,
    tx: mpsc::Sender<Command>,
    /// Commands sent from `Drop` (a session's end, a dropped backup's abort): unbounded, so a
    /// full mailbox can never make one of them vanish.
    orphans: mpsc::UnboundedSender<Command>,
    /// The instance's storage: backup sets are written (and their leftovers removed) through
    /// it, so a fault-injecting instance's sets go through the fault layer too.
    storage: StorageRef,
    /// How many dropped `backup_to_dir` calls are still being cleaned up (their backup ended,
    /// their partial set removed) on a thread of their own; `term` and new backups wait for
    /// zero, so a caller that drops a backup and then terminates never meets it.
    cleanups: watch::Sender<usize>,
    /// The backup-set runs (`start_backup`, `backup_to_dir`), for `shutdown`.
    backup_runs: crate::backup_set::BackupRuns,
    /// The session `Instance::get`, `scan` and `stream` read through, opened by the first of
    /// them. It never holds a transaction, so every reader may share it.
    reader: tokio::sync::OnceCell<crate::types::SessionKey>,
    /// What durable commits' latencies are recorded into, for the backup's pace.
    pacing: Arc<Pacing>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(&session) = self.reader.get() {
            let (tx, _) = oneshot::channel();
            let _ = self.orphans.send(EndSession { session }.into_command(tx));
        }
    }
}

/// One cleanup of a dropped backup in progress: counted from its creation to its drop.
pub(crate) struct Cleanup {
    inst: Instance,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.inst
            .h
            .cleanups
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A handle on one instance: cheap to clone, `Send + Sync`. Every method sends one message
/// and awaits its answer; a message that entered the mailbox is answered even if the caller
/// stops waiting.
///
/// # Errors
///
/// Every error is an ESE error; its [`Error::category`](crate::Error::category) says what a
/// host should do about it. Every call but `init`, `term`, `stop_service` and `stop_backup`,
/// and every [`Session`] call, first meets the instance's **gate** (behaviour.md §1.1), which
/// answers the first of:
///
/// 1. `InvalidInstance` (-1115): the instance was terminated; the handle outlived it;
/// 2. `ClientRequestToStopJetService` (-1329): `stop_service` was called;
/// 3. the instance is unavailable after a fatal write failure: `InstanceUnavailable`
///    (-1090), or the recorded cause, `InstanceUnavailableDueToFatalLogDiskFull` (-1092),
///    `LogWriteFail` (-510) or `DiskFull` (-1808, the database volume filled during a flush).
///    Every later call gets the same, whatever the error's category: `term` the instance
///    (any grbit succeeds) and `init` it again, which recovers;
/// 4. `TermInProgress` (-1000) while `term` runs; `NotInitialized` (-1029) while `init` runs;
/// 5. `NotInitialized` (-1029) before `init`.
///
/// The gate's `RestoreInProgress` (-506) step never answers here: a restore runs on no
/// instance. The methods' sections below call these "the gate's errors".
#[derive(Clone)]
pub struct Instance {
    h: Arc<Handle>,
}

/// Whether a message always commits durably once answered: a durable transaction commit or
/// batch. `ask` times these for the backup pace, so that commits a host sends as raw messages
/// (as the actix adapter does) count as the typed calls' do. Not a `Put` or `Delete` with
/// `in_transaction: false`: on a session that holds a transaction it joins the transaction
/// instead of committing, and timed as a commit it would pull the p99 down. `Session`'s put
/// and delete, which know, time their own.
fn commits_durably(msg: &dyn Any) -> bool {
    let durable = |c: &ese::Commit| matches!(c, ese::Commit::Durable);
    if let Some(m) = msg.downcast_ref::<CommitTransaction>() {
        return durable(&m.durability);
    }
    msg.downcast_ref::<ApplyBatch>()
        .is_some_and(|m| durable(&m.durability))
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.h.name)
            .finish()
    }
}

impl Instance {
    pub(crate) fn spawn(
        name: &str,
        id: u64,
        params: InstanceParams,
        storage: StorageRef,
        engine: Weak<EngineInner>,
    ) -> Result<Instance> {
        let (tx, rx) = mpsc::channel(MAILBOX);
        let (orphans, orx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::InvalidParameter)?;
        let inbox = crate::actor::Inbox {
            mailbox: rx,
            orphans: orx,
        };
        let pacing = crate::actor::start(
            &runtime,
            name.to_string(),
            id,
            params,
            storage.clone(),
            engine,
            inbox,
        );
        Ok(Instance {
            h: Arc::new(Handle {
                name: name.to_string(),
                id,
                tx,
                orphans,
                storage,
                cleanups: watch::Sender::new(0),
                reader: tokio::sync::OnceCell::new(),
                backup_runs: crate::backup_set::BackupRuns::new(),
                pacing,
            }),
        })
    }

    /// How this instance's backups share the machine with durable commits
    /// ([`ese::InstanceParams::backup_pace`]); a server that leases backups checks its lease
    /// against the longest a read may be held.
    pub fn backup_pace(&self) -> ese::BackupPace {
        self.h.pacing.pace()
    }

    /// Times a commit about to be sent, if it is durable and backups yield to commits (`ask`
    /// times the messages that always commit durably, whoever sends them; a transaction's
    /// commit is posted, and times itself; so do a session's puts and deletes outside a
    /// transaction): its
    /// caller reports the answer with [`CommitTimer::answered`].
    pub(crate) fn time_commit(&self, durability: ese::Commit) -> Option<CommitTimer> {
        match durability {
            ese::Commit::Durable => self.h.pacing.time_commit(),
            ese::Commit::Lazy => None,
        }
    }

    /// The key of the shared reader session, opened on first use.
    pub(crate) async fn reader(&self) -> Result<crate::types::SessionKey> {
        self.h
            .reader
            .get_or_try_init(|| self.ask(BeginSession {}))
            .await
            .copied()
    }

    /// The storage the instance's files (and its backup sets) live on.
    pub(crate) fn storage(&self) -> &StorageRef {
        &self.h.storage
    }

    /// Counts a cleanup of a dropped backup until the returned value is dropped.
    pub(crate) fn cleanup_started(&self) -> Cleanup {
        self.h.cleanups.send_modify(|n| *n += 1);
        Cleanup { inst: self.clone() }
    }

    /// Waits until the cleanups of dropped backups are done: their backups have ended and
    /// their partial sets are gone.
    pub(crate) async fn settle_cleanups(&self) {
        let mut rx = self.h.cleanups.subscribe();
        // The sender lives in the handle we hold, so the wait cannot fail for want of it.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    pub(crate) fn backup_runs(&self) -> &crate::backup_set::BackupRuns {
        &self.h.backup_runs
    }

    /// The instance's name.
    pub fn name(&self) -> &str {
        &self.h.name
    }

    pub(crate) fn id(&self) -> u64 {
        self.h.id
    }

    /// Sends any typed message and awaits its answer.
    ///
    /// # Errors
    ///
    /// The message's own (its table line in [`crate::messages`] says whether the gate
    /// applies); `InvalidInstance` (-1115) if the instance is gone.
    ///
    /// It does exactly what the method of the same name does, so a host that forwards typed
    /// messages gets the same behaviour as one that calls methods: `Term` (without `ABRUPT`,
    /// `STOP_BACKUP` or `DIRTY`) and `BeginBackup` first wait for a dropped backup's cleanup,
    /// and a `StopBackup` answered wakes the backup-set runs waiting out their rate limit.
    pub async fn ask<M: Message>(&self, msg: M) -> Result<M::Reply> {
        let any: &dyn Any = &msg;
        let settles = match any.downcast_ref::<Term>() {
            Some(t) => !t
                .grbit
                .intersects(TermBits::ABRUPT | TermBits::STOP_BACKUP | TermBits::DIRTY),
            None => any.is::<BeginBackup>(),
        };
        let stops = any.is::<StopBackup>();
        let timer = if commits_durably(any) {
            self.time_commit(ese::Commit::Durable)
        } else {
            None
        };
        if settles {
            self.settle_cleanups().await;
        }
        let rx = self.post(msg).await?;
        // The actor answers every command it takes; a closed reply channel means the
        // instance is gone.
        let answer = rx.await.unwrap_or(Err(Error::InvalidInstance));
        if let (Some(t), Ok(_)) = (timer, &answer) {
            t.answered();
        }
        if stops && answer.is_ok() {
            self.h.backup_runs.stopped();
        }
        answer
    }

    /// Puts a message into the mailbox and hands back where its answer will arrive, for a
    /// caller that must still own the answer if it stops waiting (a dropped backup whose
    /// begin is in flight). Dropping this future before it is ready sends nothing.
    pub(crate) async fn post<M: Message>(
        &self,
        msg: M,
    ) -> Result<oneshot::Receiver<Result<M::Reply>>> {
        let (tx, rx) = oneshot::channel();
        self.h
            .tx
            .send(msg.into_command(tx))
            .await
            .map_err(|_| Error::InvalidInstance)?;
        Ok(rx)
    }

    /// Sends a message without waiting for the answer, from code that cannot wait (`Drop`).
    /// It is never lost to a full mailbox: it goes by an unbounded side channel, which the
    /// actor serves before the mailbox. Fails only when the instance is gone.
    pub(crate) fn tell<M: Message>(&self, msg: M) {
        drop(self.tell_watched(msg));
    }

    /// [`Instance::tell`], keeping where the answer arrives, for a thread that waits for it.
    pub(crate) fn tell_watched<M: Message>(&self, msg: M) -> oneshot::Receiver<Result<M::Reply>> {
        let (tx, rx) = oneshot::channel();
        let _ = self.h.orphans.send(msg.into_command(tx));
        rx
    }

    /// `JetInit`: soft recovery, then the instance runs.
    ///
    /// # Errors
    ///
    /// Its own checks, not the gate: `InvalidInstance` (-1115) after `term`;
    /// `ClientRequestToStopJetService` (-1329) after `stop_service`; `TermInProgress` (-1000);
    /// `AlreadyInitialized` (-1030) once it ran (a second `init` sent while one runs waits for
    /// it). Paths another instance uses: `SystemPathInUse` (-1083) or `LogFilePathInUse`
    /// (-1084) within the engine, `FileAccessDenied` (-1032) from another engine or process.
    /// Soft recovery's errors (a damaged or missing log or checkpoint, e.g. `LogFileCorrupt`
    /// -501). After a failure the instance is still created, and `init` may be called again.
    pub async fn init(&self) -> Result<()> {
        self.ask(Init {}).await
    }
    /// `JetTerm2` with `Term` bits. A term that would refuse a running backup (none of
    /// `ABRUPT`, `STOP_BACKUP`, `DIRTY`) first waits for the cleanup of any dropped
    /// `backup_to_dir` call or cancelled (or dropped) [`crate::BackupHandle`], so that the
    /// backup it left is over before the term looks. A host that is stopping and may have a
    /// backup running calls [`Instance::shutdown`] instead.
    ///
    /// # Errors
    ///
    /// Not the gate (a term works after `stop_service` and on an unavailable instance):
    /// `InvalidInstance` (-1115) after a term; `TermInProgress` (-1000) while one runs;
    /// `BackupInProgress` (-505) with a backup running and none of `ABRUPT`, `STOP_BACKUP`,
    /// `DIRTY`: the instance keeps running, and no new backup may begin on it
    /// (`BackupNotAllowedYet` -523) until it is terminated and created again. Its detail
    /// says what to do: stop the backup first ([`Instance::stop_backup`], then wait for
    /// the backup to end), or term with `Term::STOP_BACKUP`, which ends it as aborted by the
    /// server; [`Instance::shutdown`] does the first.
    pub async fn term(&self, grbit: TermBits) -> Result<()> {
        // `ask` first waits for a dropped backup's cleanup, unless the grbit ends a backup.
        self.ask(Term { grbit }).await
    }
    /// `JetStopServiceInstance`: answers at once; every later call fails with -1329.
    ///
    /// # Errors
    ///
    /// Only `InvalidInstance` (-1115) after `term`; a second call succeeds.
    pub async fn stop_service(&self) -> Result<()> {
        self.ask(StopService {}).await
    }
    /// `JetStopBackupInstance`: the running backup's later calls fail with
    /// `BackupAbortByServer` (-801); Success with no backup running. A backup-set run
    /// waiting out its rate limit ([`crate::BackupOptions`]) wakes and meets -801 at once.
    ///
    /// # Errors
    ///
    /// Only `InvalidInstance` (-1115) after `term` (no gate: it works during `stop_service`
    /// and `term`).
    pub async fn stop_backup(&self) -> Result<()> {
        // `ask` wakes the backup-set runs once it is answered.
        self.ask(StopBackup {}).await
    }
    /// `JetCreateDatabase`: creates, attaches and locks the file; answers once its formatting
    /// commit is durable.
    ///
    /// # Errors
    ///
    /// The gate's errors; `BackupInProgress` (-505) during a backup; `InvalidParameter`
    /// (-1003) for an empty path; `DatabaseDuplicate` (-1201) if this instance has it
    /// attached; `DatabaseSharingViolation` (-1215) if another instance of the engine has;
    /// `FileAlreadyExists` (-1814) for an existing file; `DiskFull` (-1808), `DiskIO` (-1022).
    pub async fn create_database(&self, path: impl AsRef<Path>) -> Result<DbId> {
        self.ask(CreateDatabase {
            path: path.as_ref().to_path_buf(),
        })
        .await
    }
    /// `JetAttachDatabase`.
    ///
    /// # Errors
    ///
    /// The gate's errors; `BackupInProgress` (-505) during a backup; `InvalidParameter`
    /// (-1003) for an empty path; `DatabaseDuplicate` (-1201) if already attached here;
    /// `DatabaseSharingViolation` (-1215) if another instance of the engine has it;
    /// `FileAccessDenied` (-1032) if another engine or process holds it; `FileNotFound`
    /// (-1811); `DatabaseCorrupted` (-1206) for a file that is not a database or a damaged
    /// one (`ReadVerifyFailure` -1018 for a damaged page); `PageSizeMismatch` (-1213);
    /// `DatabaseDirtyShutdown` (-550) for a database not shut down cleanly (e.g. left dirty
    /// by another log stream).
    pub async fn attach_database(&self, path: impl AsRef<Path>) -> Result<DbId> {
        self.ask(AttachDatabase {
            path: path.as_ref().to_path_buf(),
        })
        .await
    }
    /// `JetDetachDatabase`: flushes the database, marks it clean and unlocks it.
    ///
    /// # Errors
    ///
    /// The gate's errors; `BackupInProgress` (-505) during a backup; `InvalidParameter`
    /// (-1003) for an empty path; `DatabaseNotFound` (-1203) if it is not attached;
    /// `DatabaseInUse` (-1202) while an open transaction has written to it; `DiskIO` (-1022),
    /// `DiskFull` (-1808).
    pub async fn detach_database(&self, path: impl AsRef<Path>) -> Result<()> {
        self.ask(DetachDatabase {
            path: path.as_ref().to_path_buf(),
        })
        .await
    }
    /// The backup fields and shutdown state of a database's header (attached or not).
    ///
    /// # Errors
    ///
    /// The gate's errors; for a database not attached, `FileNotFound` (-1811) or
    /// `DatabaseCorrupted` (-1206) for a file without a database header.
    pub async fn database_info(&self, path: impl AsRef<Path>) -> Result<DatabaseInfo> {
        self.ask(GetDatabaseInfo {
            path: path.as_ref().to_path_buf(),
        })
        .await
    }
    /// `JetBeginSession`.
    ///
    /// # Errors
    ///
    /// The gate's errors only.
    pub async fn begin_session(&self) -> Result<Session> {
        let key = self.ask(BeginSession {}).await?;
        Ok(Session::new(self.clone(), key))
    }
    /// The log stream and the attached databases.
    ///
    /// # Errors
    ///
    /// The gate's errors only.
    pub async fn instance_info(&self) -> Result<crate::types::InstanceInfo> {
        self.ask(GetInstanceInfo {}).await
    }
    /// Counters since `init` ([`CoreStats`]): commits, log fsyncs and batches, group commits
    /// and their sizes, flushes and failed flushes, cache hits and misses, and the bytes
    /// backups streamed to their clients and the database pages they verified.
    ///
    /// # Errors
    ///
    /// The gate's errors only.
    pub async fn stats(&self) -> Result<CoreStats> {
        self.ask(GetStats {}).await
    }

    /// `JetBeginExternalBackupInstance`. Waits first for the cleanup of any dropped
    /// `backup_to_dir` call (its backup is ended by then).
    ///
    /// # Errors
    ///
    /// The gate's errors, then in this order: `BackupNotAllowedYet` (-523) after a `term`
    /// refused with `BackupInProgress`; `InvalidGrbit` (-900) for any bit but `INCREMENTAL`;
    /// `InvalidBackup` (-526) for an incremental under circular logging; `BackupInProgress`
    /// (-505) while a backup runs (it is not disturbed); `MissingFullBackup` (-560) for an
    /// incremental when an attached database has no full backup on this log stream.
    pub async fn begin_external_backup(&self, grbit: BackupBegin) -> Result<()> {
        // `ask` first waits for a dropped backup's cleanup.
        self.ask(BeginBackup { grbit }).await
    }
    /// `JetGetAttachInfoInstance`: the paths of the attached databases.
    ///
    /// # Errors
    ///
    /// The gate's errors; `NoBackup` (-520) with no backup running; `BackupAbortByServer`
    /// (-801) after `stop_backup`; `InvalidBackupSequence` (-521) in an incremental (the
    /// backup goes on).
    pub async fn get_attach_info(&self) -> Result<Vec<PathBuf>> {
        self.ask(GetAttachInfo {}).await
    }
    /// `JetOpenFileInstance`: a handle and the file's size in bytes.
    ///
    /// # Errors
    ///
    /// The gate's errors; `NoBackup` (-520); `BackupAbortByServer` (-801) after
    /// `stop_backup`; `InvalidParameter` (-1003) for an empty path; `OutOfMemory` (-1011)
    /// with `max_open_backup_files` files open. In the database phase, `DatabaseNotFound`
    /// (-1203) for a path that is no attached database (the backup goes on). These end the
    /// backup (the next call gets `NoBackup`): `InvalidBackupSequence` (-521) for a database
    /// after the log phase began or in an incremental, or for a log before `get_log_info`;
    /// `InvalidParameter` (-1003) in the log phase for anything but a log `get_log_info`
    /// listed; `MissingFileToBackup` (-569) for a listed log that is gone.
    pub async fn open_file(&self, path: impl AsRef<Path>) -> Result<(BackupFile, u64)> {
        self.ask(OpenFile {
            path: path.as_ref().to_path_buf(),
        })
        .await
    }
    /// `JetReadFileInstance`: the next chunk; empty at the end of the file.
    ///
    /// # Errors
    ///
    /// The gate's errors; `NoBackup` (-520), also for a read whose backup ended while it was
    /// on disk; `BackupAbortByServer` (-801) after `stop_backup`; `InvalidParameter` (-1003)
    /// for an unknown or closed handle or one with a read in flight, a `max_len` that is zero
    /// or not a multiple of the page size, or a first read under 3 pages (a database) or 2 (a
    /// log).
    /// `ReadVerifyFailure` (-1018) for a database page that fails verification after retries:
    /// that database's copy is cancelled, the backup goes on. `LogReadVerifyFailure` (-612)
    /// (or `MissingFileToBackup` -569) for a damaged (or vanished) log ends the backup.
    pub async fn read_file(&self, file: BackupFile, max_len: usize) -> Result<Bytes> {
        self.ask(ReadFile { file, max_len }).await
    }

    /// [`Instance::read_file`], with the chunk's CRC-32C. For a database image the sum is put
    /// together from the page checksums that verifying the chunk computed, so a caller that
    /// sends a sum along with the bytes (as `ese-http` does) needs no pass of its own over
    /// them. Same errors as `read_file`.
    pub async fn read_file_chunk(&self, file: BackupFile, max_len: usize) -> Result<FileChunk> {
        self.ask(ReadFileChunk { file, max_len }).await
    }
    /// `JetCloseFileInstance`: a file read to its end counts as copied.
    ///
    /// # Errors
    ///
    /// The gate's errors; `NoBackup` (-520); `InvalidParameter` (-1003) for an unknown
    /// handle. Not `BackupAbortByServer`: it works after `stop_backup`.
    pub async fn close_file(&self, file: BackupFile) -> Result<()> {
        self.ask(CloseFile { file }).await
    }
    /// `JetGetLogInfoInstance2`: the first call (of this or `get_truncate_log_info`) rolls
    /// the log and fixes the range of logs to copy.
    ///
    /// # Errors
    ///
    /// The gate's errors; `NoBackup` (-520); `BackupAbortByServer` (-801) after
    /// `stop_backup`; `InvalidBackupSequence` (-521) with a file open (the backup goes on);
    /// `MissingFileToBackup` (-569) for an incremental whose logs since the previous backup
    /// are gone (the backup ends).
    pub async fn get_log_info(&self) -> Result<LogInfo> {
        self.ask(GetLogInfo {}).await
    }
    /// `JetGetTruncateLogInfoInstance`: the logs `truncate_log` would delete.
    ///
    /// # Errors
    ///
    /// As [`Instance::get_log_info`].
    pub async fn get_truncate_log_info(&self) -> Result<Vec<PathBuf>> {
        self.ask(GetTruncateLogInfo {}).await
    }
    /// `JetTruncateLogInstance`: deletes the logs the backup made redundant.
    ///
    /// # Errors
    ///
    /// The gate's errors; `NoBackup` (-520); `BackupAbortByServer` (-801) after
    /// `stop_backup`; `InvalidBackupSequence` (-521) with a file open or before
    /// `get_log_info`; `LogFileNotCopied` (-616) while a listed log was not read to its end.
    pub async fn truncate_log(&self) -> Result<()> {
        self.ask(TruncateLog {}).await
    }
    /// `JetEndExternalBackupInstance2`. Past the grbit check, a running backup ends whatever
    /// the answer.
    ///
    /// # Errors
    ///
    /// The gate's errors; `InvalidParameter` (-1003) for both or neither of `NORMAL` and
    /// `ABORT` (nothing changes); `NoBackup` (-520). With `NORMAL`: `BackupAbortByServer`
    /// (-801) after `stop_backup`; `BackupAbortByCaller` (-800) before the log phase or with a
    /// listed log not read to its end. Neither updates the headers. (`ABORT` succeeds.)
    pub async fn end_external_backup(&self, grbit: BackupEnd) -> Result<()> {
        self.ask(EndBackup { grbit }).await
    }
}
