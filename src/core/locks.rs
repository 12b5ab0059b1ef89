//! Exclusive use of an instance's directories (behaviour.md §1.3): one lock file per directory
//! and role, locked through [`Storage::lock`] before recovery reads anything, held as long as
//! the core lives. Databases are locked on their own file (`databases.rs`, `recovery/soft.rs`).

use std::path::{Path, PathBuf};

use crate::io::{FileLock, OpenMode, Storage};
use crate::params::InstanceParams;
use crate::Result;

/// The lock file in the system (checkpoint) directory.
pub(crate) const SYSTEM_LOCK_FILE: &str = "ese-system.lck";
/// The lock file in the log directory.
pub(crate) const LOG_LOCK_FILE: &str = "ese-log.lck";

/// The locks on an instance's system and log directories; dropping it releases them.
///
/// One lock file per role, not per directory, so that two instances collide exactly where
/// ESE says they do: system path with system path, log path with log path. A directory that
/// is one instance's system path and another's log path holds no file of both.
#[derive(Debug)]
pub(crate) struct InstanceLocks {
    _system: FileLock,
    _log: FileLock,
}

impl InstanceLocks {
    /// Creates each directory if missing and locks its lock file: the system directory first,
    /// so a refusal leaves the log directory as it was. `FileAccessDenied` if another
    /// process or engine holds either.
    pub fn take(storage: &dyn Storage, params: &InstanceParams) -> Result<InstanceLocks> {
        let system = lock_dir(storage, params.system_dir(), SYSTEM_LOCK_FILE)?;
        let log = lock_dir(storage, params.log_dir(), LOG_LOCK_FILE)?;
        Ok(InstanceLocks {
            _system: system,
            _log: log,
        })
    }
}

/// Locks `dir/name`, creating the directory and an empty lock file if missing. The file is
/// never written, renamed or removed: removing it while held would let a newcomer lock a
/// fresh file of the same name.
fn lock_dir(storage: &dyn Storage, dir: &Path, name: &str) -> Result<FileLock> {
    storage.create_dir_all(dir)?;
    let path: PathBuf = dir.join(name);
    if !storage.exists(&path) {
        // Opening (not truncating) an existing file would be harmless too; checking first
        // keeps a refused instance from even opening the holder's file for writing.
        storage.open(&path, OpenMode::Create)?;
    }
    storage.lock(&path)
}
