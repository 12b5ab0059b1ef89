//! Plain data the runtime hands out.

use std::path::PathBuf;

pub use ese::internals::db::BackupInfo;

/// A file opened by a backup (ESE's `JET_HANDLE` from `JetOpenFile`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackupFile(pub(crate) u64);

impl BackupFile {
    /// A handle from its number (for hosts that store handles, and for tests of bad handles).
    pub fn from_raw(n: u64) -> BackupFile {
        BackupFile(n)
    }
    /// The handle's number.
    pub fn raw(self) -> u64 {
        self.0
    }
}

/// Names one external backup of an instance: ids are never reused within the instance's life,
/// so ending "this backup" cannot end a later one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackupId(pub(crate) u64);

impl BackupId {
    /// The id's number.
    pub fn raw(self) -> u64 {
        self.0
    }
}

/// An open scan inside its instance (like ESE's `JET_TABLEID`): where its next slice
/// resumes. Made by the first slice of a scan that has more; gone after its last slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScanCursor(pub(crate) u64);

/// One slice of a scan: at most `SLICE_ROWS` rows (or about `SLICE_BYTES` bytes), and the
/// cursor of the next slice if the range goes on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanSlice {
    /// Rows in key order.
    pub rows: Vec<(bytes::Bytes, bytes::Bytes)>,
    /// `Some`: send [`ScanNext`](crate::messages::ScanNext) with it for the next slice.
    pub next: Option<ScanCursor>,
}

/// A session's number inside its instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey(pub(crate) ese::SessionId);

/// The log range of a backup (ESE's `JET_LOGINFO`), generations inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogInfo {
    /// Lowest generation to copy.
    pub gen_low: u32,
    /// Highest generation to copy.
    pub gen_high: u32,
    /// The log base name.
    pub base_name: String,
    /// The files to copy, in generation order.
    pub files: Vec<PathBuf>,
}

/// The header fields of behaviour.md §2.5, plus the shutdown state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Whether the header says clean shutdown (an attached database is dirty).
    pub clean_shutdown: bool,
    /// Last full backup.
    pub last_full: Option<BackupInfo>,
    /// Last incremental backup.
    pub last_incremental: Option<BackupInfo>,
    /// Last copy backup.
    pub last_copy: Option<BackupInfo>,
    /// Last differential backup.
    pub last_differential: Option<BackupInfo>,
}

impl DatabaseInfo {
    pub(crate) fn from_header(h: &ese::internals::db::DbHeader) -> DatabaseInfo {
        DatabaseInfo {
            clean_shutdown: h.is_clean(),
            last_full: h.last_full,
            last_incremental: h.last_incremental,
            last_copy: h.last_copy,
            last_differential: h.last_differential,
        }
    }
}

/// What an instance is: its log stream and attached databases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    /// Log base name.
    pub base_name: String,
    /// Database page size.
    pub page_size: u32,
    /// The log stream's signature.
    pub log_signature: ese::internals::db::Signature,
    /// The current log generation.
    pub current_gen: u32,
    /// The attached databases' paths.
    pub databases: Vec<PathBuf>,
}
