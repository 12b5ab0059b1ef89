//! Backup sets: `Instance::backup_to_dir` drives the whole streaming sequence into a
//! directory with a `manifest.json`; `verify_backup_set` checks a set without restoring it.
//!
//! Layout: `manifest.json`, `databases/<i>-<file name>`, `logs/<base>XXXXXXXX.log`.
//! One job per file: [`manifest`] (the format), [`write`] (writing a set, synchronous),
//! [`verify`] (checking one, synchronous), [`guard`] (cancel safety), [`drive`] (the async
//! sequence).

mod drive;
mod guard;
mod manifest;
mod verify;
mod write;

use ese::BackupBegin;
use serde::{Deserialize, Serialize};

pub use manifest::{BackupManifest, ManifestDatabase, ManifestLog};
pub use verify::{verify_backup_set, verify_backup_set_on, VerifyReport};

/// Which backup `backup_to_dir` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// Databases and logs, then truncation (`last_full`).
    Full,
    /// Logs since the last full or incremental, then truncation (`last_incremental`).
    Incremental,
    /// A full backup without truncation (`last_copy`).
    Copy,
    /// An incremental without truncation (`last_differential`).
    Differential,
}

impl BackupKind {
    fn incremental(self) -> bool {
        matches!(self, BackupKind::Incremental | BackupKind::Differential)
    }
    fn truncates(self) -> bool {
        matches!(self, BackupKind::Full | BackupKind::Incremental)
    }
    fn begin_grbit(self) -> BackupBegin {
        match self.incremental() {
            true => BackupBegin::INCREMENTAL,
            false => BackupBegin::empty(),
        }
    }
}
