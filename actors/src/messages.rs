//! The typed messages of the instance mailbox. Every public call of [`Instance`] and
//! [`Session`] is one of these; hosts may build and forward them and send them with
//! [`Instance::ask`].
//!
//! [`Instance`]: crate::Instance
//! [`Session`]: crate::Session
//! [`Instance::ask`]: crate::Instance::ask

use std::ops::Bound;
use std::path::PathBuf;

use bytes::Bytes;
use ese::{BackupBegin, BackupEnd, Commit, CoreStats, DbId, Result, Term as TermBits};
use tokio::sync::oneshot;

use crate::types::{
    BackupFile, BackupId, BackupInfo, DatabaseInfo, InstanceInfo, LogInfo, ScanCursor, ScanSlice,
    SessionKey,
};

/// Where a message's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// A message the instance actor understands.
pub trait Message: Send + 'static {
    /// What the actor answers (inside `Result`).
    type Reply: Send + 'static;
    #[doc(hidden)]
    fn into_command(self, reply: Reply<Self::Reply>) -> Command;
}

macro_rules! messages {
    ($( $(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? } -> $reply:ty ;)*) => {
        $(
            $(#[$m])*
            #[derive(Debug, Clone)]
            pub struct $name { $($(#[$fm])* pub $field: $ty),* }
            impl Message for $name {
                type Reply = $reply;
                fn into_command(self, reply: Reply<$reply>) -> Command { Command::$name(self, reply) }
            }
        )*
        /// Everything the mailbox carries (a message with its reply channel).
        #[doc(hidden)]
        #[derive(Debug)]
        pub enum Command { $( $name($name, Reply<$reply>), )* }
    };
}

messages! {
    /// `JetInit`: soft recovery, then the instance runs.
    Init {} -> ();
    /// `JetTerm2`.
    Term { grbit: TermBits } -> ();
    /// `JetStopServiceInstance`: every later call fails with `ClientRequestToStopJetService`.
    StopService {} -> ();
    /// `JetStopBackupInstance`: the running backup's later calls fail with `BackupAbortByServer`.
    StopBackup {} -> ();
    /// `JetCreateDatabase`.
    CreateDatabase { path: PathBuf } -> DbId;
    /// `JetAttachDatabase`.
    AttachDatabase { path: PathBuf } -> DbId;
    /// `JetDetachDatabase`.
    DetachDatabase { path: PathBuf } -> ();
    /// The header fields of a database (attached or not).
    GetDatabaseInfo { path: PathBuf } -> DatabaseInfo;
    /// `JetBeginSession`.
    BeginSession {} -> SessionKey;
    /// `JetEndSession`: rolls back an open transaction.
    EndSession { session: SessionKey } -> ();
    /// `JetCreateTable` (committed at once).
    CreateTable { session: SessionKey, db: DbId, table: String } -> ();
    /// `JetBeginTransaction`.
    BeginTransaction { session: SessionKey } -> ();
    /// Insert or replace a row.
    Put { session: SessionKey, db: DbId, table: String, key: Vec<u8>, value: Vec<u8> } -> ();
    /// Read a row.
    Get { session: SessionKey, db: DbId, table: String, key: Vec<u8> } -> Option<Bytes>;
    /// Delete a row.
    Delete { session: SessionKey, db: DbId, table: String, key: Vec<u8> } -> ();
    /// The first slice of a scan of a key range: at most `max_rows` rows (at least one, at
    /// most `SLICE_ROWS`), and a cursor for the next slice if the range goes on.
    Scan { session: SessionKey, db: DbId, table: String, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>, max_rows: usize } -> ScanSlice;
    /// The next slice of a scan. A scan that began before `stop_service` goes on after it
    /// (the call was being served); after `term` began its slices are refused.
    ScanNext { cursor: ScanCursor, max_rows: usize } -> ScanSlice;
    /// Closes a scan before its end (a caller that stopped reading).
    CloseScan { cursor: ScanCursor } -> ();
    /// `JetCommitTransaction`.
    CommitTransaction { session: SessionKey, durability: Commit } -> ();
    /// `JetRollback`.
    Rollback { session: SessionKey } -> ();
    /// Counters of the instance.
    GetStats {} -> CoreStats;
    /// Names, sizes and signatures of the instance and its attached databases.
    GetInstanceInfo {} -> InstanceInfo;
    /// `JetBeginExternalBackupInstance`.
    BeginBackup { grbit: BackupBegin } -> ();
    /// `JetGetAttachInfoInstance`.
    GetAttachInfo {} -> Vec<PathBuf>;
    /// `JetOpenFileInstance`: a handle and the file's size in bytes.
    OpenFile { path: PathBuf } -> (BackupFile, u64);
    /// `JetReadFileInstance`: the next chunk (empty at the end).
    ReadFile { file: BackupFile, max_len: usize } -> Bytes;
    /// `JetCloseFileInstance`.
    CloseFile { file: BackupFile } -> ();
    /// `JetGetLogInfoInstance2`.
    GetLogInfo {} -> LogInfo;
    /// `JetGetTruncateLogInfoInstance`.
    GetTruncateLogInfo {} -> Vec<PathBuf>;
    /// `JetTruncateLogInstance`.
    TruncateLog {} -> ();
    /// `JetEndExternalBackupInstance2`.
    EndBackup { grbit: BackupEnd } -> ();
    /// `BeginBackup`, answering the new backup's id, for a caller that must later end exactly
    /// the backup it began (a whole-sequence call whose future may be dropped).
    BeginBackupWithId { grbit: BackupBegin } -> BackupId;
    /// Ends the backup with this id as aborted by the caller (`ABORT`, event 215) if it is
    /// still running; Success with nothing done if it already ended.
    AbortBackupIf { id: BackupId } -> ();
    /// The record a normal end of the running backup would write into the headers (mark,
    /// time, generation range): a backup set takes its id from it before truncating logs.
    /// `InvalidBackupSequence` before the log phase.
    GetBackupRecord {} -> BackupInfo;
}
