//! Restore through the engine: `Engine::external_restore` (contract 3) and
//! `restore_backup_chain`, which checks a chain of backup sets and restores it into a
//! directory a new instance can attach from.

mod layout;

use std::path::{Path, PathBuf};

use ese::io::StorageRef;
use ese::restore::{self, RestoreReport, RestoreSpec};
use ese::{Error, Result};

use crate::backup_set::{verify_backup_set_on, BackupKind, BackupManifest};
use crate::engine::{Engine, Mode};

impl Engine {
    /// `JetExternalRestore2`: checks the spec, the backed-up logs and every mapped database
    /// image, then replays and leaves the databases clean. Runs on the blocking pool.
    ///
    /// # Errors
    ///
    /// Contract 3's checks, in order, each a distinct error: `RunningInOneInstanceMode`
    /// (-1080); `InvalidParameter` (-1003) for a bad spec, `InvalidPath` (-1023) for a target
    /// that escapes through `..`; the backed-up logs'
    /// (`MissingRestoreLogFiles` -557, or `FileNotFound` -1811 for the first;
    /// `GivenLogFileHasBadSignature` -555; `GivenLogFileIsNotContiguous` -556;
    /// `LogFileCorrupt` -501 or `LogCorruptDuringHardRestore` -573); each mapped database's
    /// (`DatabaseCorrupted` -1206, `RestoreOfNonBackupDatabase` -615,
    /// `DatabasePatchFileMismatch` -552, `StartingRestoreLogTooHigh` -554,
    /// `EndingRestoreLogTooLow` -553, also for a stop point before the copies' last
    /// generation); then replay's (`DiskFull` -1808, `DiskIO` -1022).
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

/// What `restore_backup_chain` restored.
#[derive(Clone, Debug)]
pub struct ChainReport {
    /// The sets, in order (their ids).
    pub sets: Vec<String>,
    /// The restored databases: each original path with its own restored file.
    pub databases: Vec<(PathBuf, PathBuf)>,
    /// The replay.
    pub restore: RestoreReport,
}

/// Checks a chain of backup sets — a full (or copy) backup, then incrementals or
/// differentials each continuing the one before — lays its databases out in `target_dir`
/// (logs in `target_dir/backup-logs`) and restores them there. Every database gets a file of
/// its own: its original file name, or, when two databases share one, every database its
/// image's name in the set (`00-db.edb`, `01-db.edb`); [`ChainReport::databases`] says which.
/// A new instance can then attach the databases found in `target_dir`.
///
/// # Errors
///
/// Each set's [`verify_backup_set`](crate::verify_backup_set) errors. The chain:
/// `InvalidParameter` (-1003) for no set; `MissingFullBackup` (-560) if the first is not a
/// full or copy set with databases; `InvalidBackupSequence` (-521) for a later set that is not
/// incremental or differential, or not the previous set's child; `GivenLogFileHasBadSignature`
/// (-555) for a set of another log stream; `GivenLogFileIsNotContiguous` (-556) for a gap in
/// the logs. Then laying out the files (`InvalidPath` -1023 for a symbolic link or a name
/// outside `target_dir`, `DiskFull` -1808, `DiskIO` -1022) and [`Engine::external_restore`]'s
/// errors.
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

/// [`restore_backup_chain_to`] through a given storage (the fault-injecting one in tests).
/// Every file step runs on the blocking pool.
pub async fn restore_backup_chain_on(
    engine: &Engine,
    storage: StorageRef,
    sets: &[impl AsRef<Path>],
    target_dir: impl AsRef<Path>,
    stop_at: Option<restore::StopAt>,
) -> Result<ChainReport> {
    let target = target_dir.as_ref().to_path_buf();
    let dirs: Vec<PathBuf> = sets.iter().map(|s| s.as_ref().to_path_buf()).collect();
    let manifests = {
        let storage = storage.clone();
        blocking(move || {
            dirs.into_iter()
                .map(|d| verify_backup_set_on(&*storage, &d).map(|r| (d, r.manifest)))
                .collect::<Result<Vec<(PathBuf, BackupManifest)>>>()
        })
        .await?
    };
    check_chain(&manifests)?;
    let layout = {
        let (storage, target, manifests) = (storage.clone(), target.clone(), manifests.clone());
        blocking(move || layout::lay_out(&*storage, &manifests, &target)).await?
    };
    let (Some((_, first)), Some((_, last))) = (manifests.first(), manifests.last()) else {
        return Err(Error::InvalidParameter);
    };
    let logs = target.join("backup-logs");
    let spec = RestoreSpec {
        checkpoint_dir: target.clone(),
        log_dir: logs.clone(),
        backup_log_dir: logs,
        gen_low: first.gen_low,
        gen_high: last.gen_high,
        base_name: first.base_name.clone(),
        restore_map: layout.clone(),
        stop_at,
    };
    let restore = engine.external_restore_on(storage, spec).await?;
    Ok(ChainReport {
        sets: manifests.iter().map(|(_, m)| m.id.clone()).collect(),
        databases: layout,
        restore,
    })
}

/// The chain rules: starts with a full or copy set; each later set is incremental or
/// differential, from the same log stream, names the previous set as its parent, and its logs
/// continue the previous set's without a gap.
fn check_chain(sets: &[(PathBuf, BackupManifest)]) -> Result<()> {
    let (_, first) = sets.first().ok_or(Error::InvalidParameter)?;
    if !matches!(first.kind, BackupKind::Full | BackupKind::Copy) || first.databases.is_empty() {
        return Err(Error::MissingFullBackup);
    }
    for w in sets.windows(2) {
        let (prev, next) = (&w[0].1, &w[1].1);
        if !matches!(
            next.kind,
            BackupKind::Incremental | BackupKind::Differential
        ) {
            return Err(Error::InvalidBackupSequence);
        }
        if next.log_signature != prev.log_signature {
            return Err(Error::GivenLogFileHasBadSignature);
        }
        if next.parent_id.as_deref() != Some(prev.id.as_str()) && prev.kind != BackupKind::Copy {
            return Err(Error::InvalidBackupSequence);
        }
        if next.gen_low > prev.gen_high + 1 || next.gen_high < prev.gen_high {
            return Err(Error::GivenLogFileIsNotContiguous);
        }
    }
    Ok(())
}

/// Runs file work on the blocking pool, never on the caller's async worker.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        Error::InternalError.with_detail(format!("a restore file step did not finish: {e}"))
    })?
}
