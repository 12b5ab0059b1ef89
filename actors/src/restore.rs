//! Restore through the engine: `Engine::external_restore` (contract 3) and
//! `restore_backup_chain`, which checks a chain of backup sets and restores it into a
//! directory a new instance can attach from.

use std::path::{Path, PathBuf};

use ese::restore::{self, RestoreReport, RestoreSpec};
use ese::{Error, Result};

use crate::backup_set::{verify_backup_set, BackupKind, BackupManifest};
use crate::engine::{Engine, Mode};

impl Engine {
    /// `JetExternalRestore2`: checks the spec, the backed-up logs and every mapped database
    /// image, then replays and leaves the databases clean. Runs on the blocking pool.
    pub async fn external_restore(&self, spec: RestoreSpec) -> Result<RestoreReport> {
        if self.mode() == Mode::OneInstance {
            return Err(Error::RunningInOneInstanceMode);
        }
        let storage = ese::io::os();
        tokio::task::spawn_blocking(move || restore::external_restore(&*storage, &spec))
            .await
            .map_err(|_| Error::InternalError)?
    }
}

/// What `restore_backup_chain` restored.
#[derive(Clone, Debug)]
pub struct ChainReport {
    /// The sets, in order (their ids).
    pub sets: Vec<String>,
    /// The restored databases: original path and restored file.
    pub databases: Vec<(PathBuf, PathBuf)>,
    /// The replay.
    pub restore: RestoreReport,
}

/// Checks a chain of backup sets — a full (or copy) backup, then incrementals or
/// differentials each continuing the one before — lays its databases out in `target_dir`
/// (logs in `target_dir/backup-logs`) and restores them there. A new instance can then
/// attach the databases found in `target_dir`.
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
    let target = target_dir.as_ref().to_path_buf();
    let dirs: Vec<PathBuf> = sets.iter().map(|s| s.as_ref().to_path_buf()).collect();
    let manifests =
        tokio::task::spawn_blocking(move || -> Result<Vec<(PathBuf, BackupManifest)>> {
            dirs.into_iter()
                .map(|d| verify_backup_set(&d).map(|r| (d, r.manifest)))
                .collect()
        })
        .await
        .map_err(|_| Error::InternalError)??;
    check_chain(&manifests)?;
    let layout = {
        let target = target.clone();
        let manifests = manifests.clone();
        tokio::task::spawn_blocking(move || lay_out(&manifests, &target))
            .await
            .map_err(|_| Error::InternalError)??
    };
    let first = &manifests[0].1;
    let last = &manifests[manifests.len() - 1].1;
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
    let restore = engine.external_restore(spec).await?;
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

/// Copies the images to `target/<file name>` and every log once to `target/backup-logs`.
fn lay_out(sets: &[(PathBuf, BackupManifest)], target: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let logs = target.join("backup-logs");
    let is_link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    if is_link(&logs) {
        return Err(Error::InvalidPath);
    }
    std::fs::create_dir_all(&logs).map_err(Error::from_io)?;
    let (dir0, full) = &sets[0];
    let mut map = Vec::new();
    for d in &full.databases {
        let name = d.original_path.file_name().ok_or(Error::InvalidPath)?;
        let to = target.join(name);
        if !restore::inside(target, &to) || is_link(&to) {
            return Err(Error::InvalidPath);
        }
        std::fs::copy(dir0.join(&d.file), &to).map_err(Error::from_io)?;
        map.push((d.original_path.clone(), to));
    }
    for (dir, m) in sets {
        for l in &m.logs {
            let name = l.file.file_name().ok_or(Error::InvalidPath)?;
            let to = logs.join(name);
            if is_link(&to) {
                return Err(Error::InvalidPath);
            }
            if !to.exists() {
                std::fs::copy(dir.join(&l.file), &to).map_err(Error::from_io)?;
            }
        }
    }
    Ok(map)
}
