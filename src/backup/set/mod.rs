//! Backup sets: a whole backup (database images, logs, a manifest) kept as one unit that
//! can be checked and restored on its own.
//!
//! Layout, the same wherever a set is kept: `manifest.json`, `databases/<i>-<file name>`
//! (`00-db.edb`: unique even when two databases share a file name), and
//! `logs/<base>XXXXXXXX.log`. The manifest is written last; a set without one is incomplete
//! and no reader takes it for a set.
//!
//! One job per file: [`manifest`](BackupManifest) (the format), [`SetWriter`] (writing a set
//! in that format), [`verify_set`] (checking one), [`SetStore`] (the seam to where a set is
//! kept) and [`SetDir`] (a folder, through a [`Storage`](crate::io::Storage)). Restoring a
//! chain of sets is [`crate::restore::chain`].

mod dir;
pub mod frames;
mod manifest;
mod store;
mod verify;
mod writer;

use serde::{Deserialize, Serialize};

use crate::BackupBegin;

pub use dir::SetDir;
pub use manifest::{
    backup_id, image_name, log_name, BackupManifest, ManifestDatabase, ManifestLog, SetEntryRef,
    Stored, FORMAT,
};
pub use store::{Content, SetFile, SetStore};
pub use verify::{
    check_log_count, check_structure, compare_sums, read_manifest, verify_set, verify_set_with,
    VerifyDepth, VerifyReport,
};
pub use writer::{Reusable, SetFacts, SetWriter};

/// The manifest's name inside a set.
pub const MANIFEST: &str = "manifest.json";

/// Content bytes per compressed frame: a compressed file is a series of independent zstd
/// frames of this much content each, so any part of it can be read without the rest.
pub const FRAME: u64 = 8 << 20;

/// The folders inside a set.
const FOLDERS: [&str; 2] = ["databases", "logs"];

/// Which backup a set holds.
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
    /// Whether the set holds only logs (incremental and differential).
    pub fn incremental(self) -> bool {
        matches!(self, BackupKind::Incremental | BackupKind::Differential)
    }

    /// Whether the backup truncates the source's logs once the set is complete.
    pub fn truncates(self) -> bool {
        matches!(self, BackupKind::Full | BackupKind::Incremental)
    }

    /// The grbit the backup begins with.
    pub fn begin_grbit(self) -> BackupBegin {
        match self.incremental() {
            true => BackupBegin::INCREMENTAL,
            false => BackupBegin::empty(),
        }
    }

    /// Whether a chain can start with this set (a full or a copy).
    pub fn starts_chain(self) -> bool {
        matches!(self, BackupKind::Full | BackupKind::Copy)
    }
}
