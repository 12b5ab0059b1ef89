//! Backup sets from a running instance: [`Instance::backup_to_dir`](crate::Instance) drives
//! the streaming sequence into a set, [`Instance::start_backup`](crate::Instance) runs it on a
//! task of its own behind a [`BackupHandle`]; [`verify_backup_set`] checks a set in a folder.
//! The set format, its writer and its verification are the core's ([`ese::backup::set`]);
//! here is only the async side: [`drive`] (the sequence of messages), [`guard`] (cancel
//! safety), [`handle`] (the task, its cancel and its result), [`progress`], [`rate`] (the
//! pacer), [`options`], and [`shutdown`] (the instance's runs, `Instance::shutdown`).

mod drive;
mod guard;
mod handle;
mod options;
mod progress;
mod rate;
mod shutdown;

use std::path::Path;

use ese::backup::repo::{folder_set, RepoSet};
use ese::backup::set::verify_set;
use ese::io::StorageRef;
use ese::Result;

pub(crate) use drive::Destination;
pub use ese::backup::set::{
    BackupKind, BackupManifest, ManifestDatabase, ManifestLog, VerifyReport,
};
pub use handle::BackupHandle;
pub use options::BackupOptions;
pub use progress::{BackupPhase, BackupProgress};
pub use rate::Pacer;
pub(crate) use shutdown::BackupRuns;

/// Checks the backup set in the folder `dir` without restoring it: every file's size and
/// checksum, the logs' contiguity and signatures, each database image's header, trailer and
/// pages ([`ese::backup::set::verify_set`] on the folder's set, read as its manifest says:
/// compressed files decompressed, referenced logs found in their sibling set).
///
/// # Errors
///
/// Those of [`verify_set`]: the ones restore would give for the same damage, each with the
/// file and what is wrong with it ([`ese::Error::detail`]); `FileNotFound` (-1811) when the
/// set has no manifest (incomplete, or not a set).
pub fn verify_backup_set(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    verify_backup_set_on(ese::io::os(), dir)
}

/// [`verify_backup_set`] through a given storage (the fault-injecting one in tests).
pub fn verify_backup_set_on(storage: StorageRef, dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let (repo, name) = folder_set(storage, dir.as_ref())?;
    verify_set(&RepoSet::open(&repo, &name)?)
}
