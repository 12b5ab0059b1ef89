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
use ese::backup::FileChunk;
use ese::{
    BackupBegin, BackupEnd, Commit, CoreStats, DbId, Error, Result, TableId, Term as TermBits,
};
use tokio::sync::oneshot;

use crate::batch::WriteBatch;
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

/// How the actor serves a command: whether it waits for the core, and what its handler does
/// with it. Every line of the `messages!` table gives its command one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Answered at once, even while a job holds the core or other commands wait for it: the
    /// two flags, and `term`, which itself waits for the job.
    Immediate,
    /// Served in the handler from the core's memory (a commit is queued to the log writer).
    Inline,
    /// Served from memory, or its disk read runs on the blocking pool without the core (a page
    /// fetch, a backup chunk, the header of a database that is not attached).
    Read,
    /// May lend the core to a blocking job (recovery, create/attach/detach, backup
    /// `open_file`, a log roll, truncation, header writes).
    Job,
}

impl Kind {
    /// Whether the command waits, in mailbox order, while a job holds the core.
    pub(crate) fn needs_core(self) -> bool {
        self != Kind::Immediate
    }
}

/// The check a command meets before its handler runs, and before it waits for the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// The handler checks the lifecycle itself: `init` (its own order of errors) and the
    /// immediates.
    Own,
    /// The instance gate of behaviour.md §1.1 (`gate::check`).
    Instance,
    /// A later slice of a scan, or closing it: the cursor must be open, and `stop_service`
    /// does not refuse it (the scan was being served when it came).
    Scan(ScanCursor),
}

/// The `Gate` of a table line; `Scan` takes the message's `cursor`.
macro_rules! gate_of {
    (Own, $m:ident) => {
        Gate::Own
    };
    (Instance, $m:ident) => {
        Gate::Instance
    };
    (Scan, $m:ident) => {
        Gate::Scan($m.cursor)
    };
}

/// The table of messages: `[kind, gate] Name { fields } -> reply;` makes the message struct,
/// its `Message` impl, its `Command` variant, and its line in `Command::kind`, `Command::gate`
/// and `Command::refuse`.
macro_rules! messages {
    ($( $(#[$m:meta])* [$kind:ident, $gate:ident] $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? } -> $reply:ty ;)*) => {
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

        impl Command {
            /// How the actor serves this command.
            pub(crate) fn kind(&self) -> Kind {
                match self { $( Command::$name(..) => Kind::$kind, )* }
            }

            /// The check this command meets first.
            pub(crate) fn gate(&self) -> Gate {
                match self { $( Command::$name(_m, _) => gate_of!($gate, _m), )* }
            }

            /// Answers the command with an error, whatever its reply type.
            pub(crate) fn refuse(self, e: Error) {
                match self { $( Command::$name(_, r) => { let _ = r.send(Err(e)); } )* }
            }
        }

        /// The table as data, for its tests: name, kind, gate.
        #[cfg(test)]
        const TABLE: &[(&str, Kind, &str)] = &[ $( (stringify!($name), Kind::$kind, stringify!($gate)), )* ];
    };
}

// Every command the actor serves, with how it serves it: `[Kind, Gate]` on each line. The
// actor routes by these two columns alone (`actor/route.rs`); a new message needs its line
// here and its arm in `Actor::serve`.
messages! {
    /// `JetInit`: soft recovery, then the instance runs.
    [Job, Own] Init {} -> ();
    /// `JetTerm2`.
    [Immediate, Own] Term { grbit: TermBits } -> ();
    /// `JetStopServiceInstance`: every later call fails with `ClientRequestToStopJetService`.
    [Immediate, Own] StopService {} -> ();
    /// `JetStopBackupInstance`: the running backup's later calls fail with `BackupAbortByServer`.
    [Immediate, Own] StopBackup {} -> ();
    /// `JetCreateDatabase`.
    [Job, Instance] CreateDatabase { path: PathBuf } -> DbId;
    /// `JetAttachDatabase`.
    [Job, Instance] AttachDatabase { path: PathBuf } -> DbId;
    /// `JetDetachDatabase`.
    [Job, Instance] DetachDatabase { path: PathBuf } -> ();
    /// The header fields of a database (attached or not).
    [Read, Instance] GetDatabaseInfo { path: PathBuf } -> DatabaseInfo;
    /// `JetBeginSession`.
    [Inline, Instance] BeginSession {} -> SessionKey;
    /// `JetEndSession`: rolls back an open transaction.
    [Inline, Instance] EndSession { session: SessionKey } -> ();
    /// `JetCreateTable` (committed at once): its handle once the commit is durable.
    [Inline, Instance] CreateTable { db: DbId, table: String } -> TableId;
    /// `JetOpenTable`: the handle of an existing table.
    [Inline, Instance] OpenTable { db: DbId, table: String } -> TableId;
    /// Opens a table, creating it first if it does not exist.
    [Inline, Instance] EnsureTable { db: DbId, table: String } -> TableId;
    /// Attaches a database, or creates it if the file does not exist and `create` is set.
    [Job, Instance] OpenDatabase { path: PathBuf, create: bool } -> DbId;
    /// `JetBeginTransaction`.
    [Inline, Instance] BeginTransaction { session: SessionKey } -> ();
    /// Insert or replace a row. With `in_transaction`, the caller holds a transaction: if
    /// none is open the put fails with `NotInTransaction` instead of committing on its own (a
    /// put of a dropped transaction that arrives after its rollback).
    [Inline, Instance] Put { session: SessionKey, table: TableId, key: Vec<u8>, value: Vec<u8>, in_transaction: bool } -> ();
    /// Read a row.
    [Read, Instance] Get { session: SessionKey, table: TableId, key: Vec<u8> } -> Option<Bytes>;
    /// Delete a row; `in_transaction` as for `Put`.
    [Read, Instance] Delete { session: SessionKey, table: TableId, key: Vec<u8>, in_transaction: bool } -> ();
    /// Puts and deletes over one or more tables, committed as one transaction of its own.
    [Inline, Instance] ApplyBatch { batch: WriteBatch, durability: Commit } -> ();
    /// The first slice of a scan of a key range: at most `max_rows` rows (at least one, at
    /// most `SLICE_ROWS`), in descending key order if `reverse`, and a cursor for the next
    /// slice if the range goes on.
    [Read, Instance] Scan { session: SessionKey, table: TableId, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>, max_rows: usize, reverse: bool } -> ScanSlice;
    /// The next slice of a scan. A scan that began before `stop_service` goes on after it
    /// (the call was being served); after `term` began its slices are refused.
    [Read, Scan] ScanNext { cursor: ScanCursor, max_rows: usize } -> ScanSlice;
    /// Closes a scan before its end (a caller that stopped reading).
    [Inline, Scan] CloseScan { cursor: ScanCursor } -> ();
    /// `JetCommitTransaction`.
    [Inline, Instance] CommitTransaction { session: SessionKey, durability: Commit } -> ();
    /// `JetRollback`.
    [Inline, Instance] Rollback { session: SessionKey } -> ();
    /// Counters of the instance.
    [Inline, Instance] GetStats {} -> CoreStats;
    /// Names, sizes and signatures of the instance and its attached databases.
    [Inline, Instance] GetInstanceInfo {} -> InstanceInfo;
    /// `JetBeginExternalBackupInstance`.
    [Inline, Instance] BeginBackup { grbit: BackupBegin } -> ();
    /// `JetGetAttachInfoInstance`.
    [Inline, Instance] GetAttachInfo {} -> Vec<PathBuf>;
    /// `JetOpenFileInstance`: a handle and the file's size in bytes.
    [Job, Instance] OpenFile { path: PathBuf } -> (BackupFile, u64);
    /// `JetReadFileInstance`: the next chunk (empty at the end).
    [Read, Instance] ReadFile { file: BackupFile, max_len: usize } -> Bytes;
    /// `JetReadFileInstance`, with the chunk's CRC-32C (from the page checksums its
    /// verification computed, for a database image).
    [Read, Instance] ReadFileChunk { file: BackupFile, max_len: usize } -> FileChunk;
    /// `JetCloseFileInstance`.
    [Inline, Instance] CloseFile { file: BackupFile } -> ();
    /// `JetGetLogInfoInstance2`.
    [Job, Instance] GetLogInfo {} -> LogInfo;
    /// `JetGetTruncateLogInfoInstance`.
    [Job, Instance] GetTruncateLogInfo {} -> Vec<PathBuf>;
    /// `JetTruncateLogInstance`.
    [Job, Instance] TruncateLog {} -> ();
    /// `JetEndExternalBackupInstance2`.
    [Job, Instance] EndBackup { grbit: BackupEnd } -> ();
    /// `BeginBackup`, answering the new backup's id, for a caller that must later end exactly
    /// the backup it began (a whole-sequence call whose future may be dropped).
    [Inline, Instance] BeginBackupWithId { grbit: BackupBegin } -> BackupId;
    /// Ends the backup with this id as aborted by the caller (`ABORT`, event 215) if it is
    /// still running; Success with nothing done if it already ended.
    [Job, Instance] AbortBackupIf { id: BackupId } -> ();
    /// Whether the backup with this id may still be driven: Success while it runs,
    /// `BackupAbortByServer` (-801) once `stop_backup` was called on it, `NoBackup` (-520)
    /// when another backup or none runs. The legacy calls act on whatever backup runs, so a
    /// host driving one backup for a remote client checks before each call.
    [Inline, Instance] CheckBackup { id: BackupId } -> ();
    /// `EndBackup` of the backup with this id only: `InvalidParameter` for a bad grbit (as
    /// `EndBackup`), `NoBackup` (-520) if it is not the running one, otherwise exactly
    /// `EndBackup`'s outcome.
    [Job, Instance] EndBackupIf { id: BackupId, grbit: BackupEnd } -> ();
    /// `TruncateLog` for the backup with this id only: `NoBackup` (-520) if it is not the
    /// running one, otherwise exactly `TruncateLog`'s outcome. A remote client's truncation,
    /// so that a client whose backup was ended and replaced never deletes logs for another.
    [Job, Instance] TruncateLogIf { id: BackupId } -> ();
    /// Ends the backup with this id as aborted by the server, as `StopBackup` then a normal
    /// `EndBackup` would, in one step (event 226, no header update); Success with nothing
    /// done if it already ended. A lease that runs out ends its backup so.
    [Job, Instance] ExpireBackupIf { id: BackupId } -> ();
    /// The record a normal end of the running backup would write into the headers (mark,
    /// time, generation range): a backup set takes its id from it before truncating logs.
    /// `InvalidBackupSequence` before the log phase.
    [Inline, Instance] GetBackupRecord {} -> BackupInfo;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: impl Fn(Kind, &str) -> bool) -> Vec<&'static str> {
        TABLE
            .iter()
            .filter(|(_, k, g)| f(*k, g))
            .map(|(n, _, _)| *n)
            .collect()
    }

    /// The macro takes exactly one `[kind, gate]` per line, so each command has one of each;
    /// a name cannot appear twice either (the enum would not compile). What is left to pin
    /// down is which commands skip the queue behind a job, and which skip the gate.
    #[test]
    fn the_immediates_are_the_flags_and_term() {
        let flags_and_term = ["Term", "StopService", "StopBackup"];
        assert_eq!(names(|k, _| k == Kind::Immediate), flags_and_term);
        assert_eq!(names(|k, _| !k.needs_core()), flags_and_term);
    }

    #[test]
    fn own_checks_are_init_and_the_immediates() {
        let own = names(|_, g| g == "Own");
        assert_eq!(own, ["Init", "Term", "StopService", "StopBackup"]);
    }

    #[test]
    fn the_scan_gate_is_for_later_slices_and_closing() {
        assert_eq!(names(|_, g| g == "Scan"), ["ScanNext", "CloseScan"]);
    }

    #[test]
    fn refuse_answers_with_the_error() {
        let (tx, mut rx) = oneshot::channel();
        CloseScan {
            cursor: ScanCursor(7),
        }
        .into_command(tx)
        .refuse(Error::InvalidInstance);
        let got = rx.try_recv().expect("answered");
        assert_eq!(got.unwrap_err().code(), -1115);
    }

    #[test]
    fn the_scan_gate_carries_the_cursor() {
        let (tx, _rx) = oneshot::channel();
        let cmd = ScanNext {
            cursor: ScanCursor(3),
            max_rows: 1,
        }
        .into_command(tx);
        assert_eq!(cmd.gate(), Gate::Scan(ScanCursor(3)));
        assert_eq!(cmd.kind(), Kind::Read);
    }
}
