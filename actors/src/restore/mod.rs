//! Restore through the engine: `Engine::external_restore` (behaviour.md §3) and
//! `restore_backup_chain`, which restores a chain of backup sets into a directory a new
//! instance can attach from (the chain's logic is the core's, [`ese::restore::chain`]; here
//! it runs on the blocking pool).

use std::path::Path;

use ese::backup::repo::{folder_set, RepoSet};
use ese::io::StorageRef;
use ese::restore::chain::restore_chain;
use ese::restore::{self, RestoreReport, RestoreSpec};
use ese::{Error, Result};

pub use ese::restore::chain::ChainReport;

use crate::engine::{Engine, Mode};

impl Engine {
    /// `JetExternalRestore2`: checks the spec, the backed-up logs and every mapped database
    /// image, then replays and leaves the databases clean. Runs on the blocking pool.
    ///
    /// # Errors
    ///
    /// The checks of behaviour.md §3, in order, each a distinct error: `RunningInOneInstanceMode`
    /// (-1080); `InvalidParameter` (-1003) for a bad spec, `InvalidPath` (-1023) for a target
    /// that escapes through `..`; the backed-up logs'
    /// (`MissingRestoreLogFiles` -557, or `FileNotFound` -1811 for the first;
    /// `GivenLogFileHasBadSignature` -555; `GivenLogFileIsNotContiguous` -556;
    /// `LogFileCorrupt` -501 or `LogCorruptDuringHardRestore` -573); each mapped database's
    /// (`DatabaseCorrupted` -1206, `RestoreOfNonBackupDatabase` -615,
    /// `DatabasePatchFileMismatch` -552, `StartingRestoreLogTooHigh` -554,
    /// `EndingRestoreLogTooLow` -553, also for a stop point before the copies' last
    /// generation); the later logs' in `log_dir` (`LogCorruptDuringHardRestore` -573 for a
    /// damaged one or an archived one with no end record, `MissingCurrentLogFiles` -565 for
    /// a generation missing while later ones of the stream are there); then replay's
    /// (`DiskFull` -1808, `DiskIO` -1022).
    pub async fn external_restore(&self, spec: RestoreSpec) -> Result<RestoreReport> {
        self.external_restore_on(ese::io::os(), spec).await
    }

    /// [`Engine::external_restore`] through a given storage (the fault-injecting one in
    /// tests).
    pub async fn external_restore_on(
        &self,
        storage: StorageRef,
        spec: RestoreSpec,
    ) -> Result<RestoreReport> {
        if self.mode() == Mode::OneInstance {
            return Err(Error::RunningInOneInstanceMode);
        }
        blocking(move || restore::external_restore(&*storage, &spec)).await
    }
}

/// Checks a chain of backup sets in folders — a full (or copy) backup, then incrementals or
/// differentials each continuing the one before — lays its databases out in `target_dir`
/// (logs in `target_dir/backup-logs`) and restores them there. Every database gets a file of
/// its own: its original file name, or, when two databases share one, every database its
/// image's name in the set (`00-db.edb`, `01-db.edb`); [`ChainReport::databases`] says which.
/// A new instance can then attach the databases found in `target_dir`.
///
/// # Errors
///
/// `RunningInOneInstanceMode` (-1080); then those of [`ese::restore::chain::restore_chain`]:
/// each set's [`verify_backup_set`](crate::verify_backup_set) errors, the chain's
/// (`MissingFullBackup` -560, `InvalidBackupSequence` -521, `GivenLogFileHasBadSignature`
/// -555, `GivenLogFileIsNotContiguous` -556), laying out the files and
/// [`Engine::external_restore`]'s.
pub async fn restore_backup_chain(
    engine: &Engine,
    sets: &[impl AsRef<Path>],
    target_dir: impl AsRef<Path>,
) -> Result<ChainReport> {
    restore_backup_chain_to(engine, sets, target_dir, None).await
}

/// Like [`restore_backup_chain`], stopping replay at a point in time.
pub async fn restore_backup_chain_to(
    engine: &Engine,
    sets: &[impl AsRef<Path>],
    target_dir: impl AsRef<Path>,
    stop_at: Option<restore::StopAt>,
) -> Result<ChainReport> {
    restore_backup_chain_on(engine, ese::io::os(), sets, target_dir, stop_at).await
}

/// [`restore_backup_chain_to`] through a given storage (the fault-injecting one in tests), on
/// the blocking pool.
pub async fn restore_backup_chain_on(
    engine: &Engine,
    storage: StorageRef,
    sets: &[impl AsRef<Path>],
    target_dir: impl AsRef<Path>,
    stop_at: Option<restore::StopAt>,
) -> Result<ChainReport> {
    if engine.mode() == Mode::OneInstance {
        return Err(Error::RunningInOneInstanceMode);
    }
    let target = target_dir.as_ref().to_path_buf();
    let folders = sets
        .iter()
        .map(|s| folder_set(storage.clone(), s.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    blocking(move || {
        let sets = folders
            .iter()
            .map(|(repo, name)| RepoSet::open(repo, name))
            .collect::<Result<Vec<_>>>()?;
        restore_chain(&*storage, &sets, &target, stop_at)
    })
    .await
}

/// Runs file work on the blocking pool, never on the caller's async worker.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        Error::InternalError.with_detail(format!("a restore file step did not finish: {e}"))
    })?
}
