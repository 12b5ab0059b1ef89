//! Layer 6: ESE's online external (streaming) backup, behaviour.md §2.
//!
//! Public: [`set`] (backup sets), [`events`] (ESE's event ids) and [`FileChunk`]. Internal, shown through
//! [`crate::internals::backup`]: `BackupState`, the state machine as plain data with
//! `&mut self` methods, which decides every answer and every range and says what to read;
//! and `stream`, which performs the reads (on an
//! I/O thread, outside the actor) and produces the streamed images: a database's header twice,
//! its verified pages and a trailer page, or a verified log file.

pub(crate) mod pace;
pub mod repo;
pub mod set;
pub(crate) mod state;
pub(crate) mod stream;

pub(crate) use state::{BackupState, BeginFacts, Failure, ReadPlan, ReadTicket};

/// One chunk of a backup file as `read_file` hands it out, with its CRC-32C: for a database
/// image the sum is put together from the page checksums that verifying the chunk computed,
/// so a caller that must send a sum along (`ese-http`'s trailers) needs no pass of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileChunk {
    /// The bytes; empty at the end of the file.
    pub bytes: bytes::Bytes,
    /// CRC-32C (Castagnoli) of `bytes`.
    pub crc32c: u32,
}

/// ESE's backup event ids, set as the `event_id` field of `tracing` events.
pub mod events {
    /// Full backup started.
    pub const FULL_START: u32 = 210;
    /// Incremental backup started.
    pub const INCREMENTAL_START: u32 = 211;
    /// Backup ended normally.
    pub const END_OK: u32 = 213;
    /// Backup ended with an error.
    pub const END_ERROR: u32 = 214;
    /// Backup aborted by the caller.
    pub const ABORT_BY_CALLER: u32 = 215;
    /// Error on one database (its copy is cancelled, the backup continues).
    pub const DB_ERROR: u32 = 217;
    /// Read error: the backup is aborted.
    pub const READ_ERROR: u32 = 218;
    /// A file's copy started.
    pub const FILE_START: u32 = 220;
    /// A file was read to its end.
    pub const FILE_DONE: u32 = 221;
    /// A file was closed before its end.
    pub const FILE_CLOSED_EARLY: u32 = 222;
    /// The log phase started.
    pub const LOGS_START: u32 = 223;
    /// Logs truncated.
    pub const TRUNCATED: u32 = 224;
    /// Nothing to truncate.
    pub const NOTHING_TO_TRUNCATE: u32 = 225;
    /// Backup aborted by the server (stop_backup or term).
    pub const ABORT_BY_SERVER: u32 = 226;
    /// Incremental refused: a database has no full backup.
    pub const MISSING_FULL: u32 = 206;
    /// A log the backup needs is missing.
    pub const LOG_MISSING: u32 = 459;
    /// Truncation refused: logs not copied.
    pub const LOGS_NOT_COPIED: u32 = 520;
}
