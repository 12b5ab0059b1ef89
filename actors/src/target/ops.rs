//! The async calls on a [`BackupTarget`]: back up into it, list its sets, verify one,
//! restore a chain from it, prune it. Each opens the repository on the caller's runtime and
//! does the work on the blocking pool (the set code is synchronous; an object store's
//! requests are awaited from there).

use std::path::Path;

use ese::backup::repo::{catalog, prune, RepoSet};
use ese::backup::set::{
    check_log_count, verify_set_with, BackupKind, BackupManifest, VerifyDepth, VerifyReport,
};
use ese::restore::chain::{restore_chain_read, ChainReport};
use ese::restore::StopAt;
use ese::{Error, Result};

use super::url::BackupTarget;
use super::watch::{Counted, ReadProgress};
use crate::backup_set::{BackupHandle, BackupOptions};
use crate::engine::{Engine, Mode};
use crate::instance::Instance;
use std::sync::Arc;

pub use ese::backup::repo::catalog::{Listed, SetState};
pub use ese::backup::repo::prune::{PrunePlan, Retention, ORPHAN_GRACE_MS};

/// Which set a restore starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetChoice {
    /// The newest complete set, with its chain; refused if that chain is broken, or if a set
    /// of its log stream lies later in the log (a wrong clock), never an older chain instead.
    Latest,
    /// The set of this name, with the chain it continues.
    Named(String),
}

impl SetChoice {
    /// `latest` or a set's name.
    pub fn parse(s: &str) -> SetChoice {
        match s {
            "latest" => SetChoice::Latest,
            name => SetChoice::Named(name.to_string()),
        }
    }
}

impl Instance {
    /// Runs the streaming sequence into a new set of `target` (a folder of sets or an
    /// object store), named for the time it began and its kind
    /// (`20261202T071500.123Z-full-1a2b`), with `options`' rate, chunk size and
    /// compression. The sequence, its cancel safety and its errors are
    /// [`Instance::backup_to_dir`]'s; on an object store the set becomes visible only when
    /// its manifest, written last, exists, and a failure aborts the uploads and deletes
    /// what was written. An incremental (or differential) continues a chain of `target`:
    /// it references the logs an earlier set of that chain already holds instead of
    /// uploading them again, and is refused if its parent set is not there.
    ///
    /// # Errors
    ///
    /// [`Instance::backup_to_dir`]'s; a store that cannot be reached or refuses the
    /// credentials fails before the backup begins (`DiskIO` -1022, `FileAccessDenied`
    /// -1032, the detail naming the store), with nothing written; so does an incremental
    /// or differential whose parent (the last full or incremental the headers record) is
    /// not a complete set of `target` with a complete chain (`MissingFullBackup` -560: the
    /// set would truncate the source's logs, yet no chain of `target` would restore it).
    pub async fn backup_to(
        &self,
        target: &BackupTarget,
        kind: BackupKind,
        options: BackupOptions,
    ) -> Result<BackupManifest> {
        self.start_backup_to(target, kind, options)
            .await?
            .wait()
            .await
    }

    /// [`Instance::backup_to`] on a task of its own, behind a [`BackupHandle`] (as
    /// [`Instance::start_backup`]).
    ///
    /// # Errors
    ///
    /// [`Instance::start_backup`]'s refusals, and the store's (see [`Instance::backup_to`]).
    pub async fn start_backup_to(
        &self,
        target: &BackupTarget,
        kind: BackupKind,
        options: BackupOptions,
    ) -> Result<BackupHandle> {
        let repo = target.open()?;
        self.start_backup_in(crate::backup_set::Destination::Repo(repo), kind, options)
            .await
    }
}

/// Every set name of `target` with what it holds: complete sets, orphans (no manifest) and
/// damaged ones, in name (time) order, each orphan with when its newest file was written
/// (the time prune judges it by). One LIST and one manifest GET per set, one more LIST per
/// orphan.
///
/// # Errors
///
/// The store's (`DiskIO` -1022, `FileAccessDenied` -1032), naming it.
pub async fn list_sets(target: &BackupTarget) -> Result<Vec<Listed>> {
    let repo = target.open()?;
    blocking(move || catalog::list_dated(&*repo)).await
}

/// Verifies the set `set` of `target` as deep as `depth` says: [`VerifyDepth::Quick`] reads
/// nothing but the manifest (a LIST-free HEAD per file), [`VerifyDepth::Sample`] reads back
/// a share of the files, [`VerifyDepth::Full`] every byte (sizes, checksums, pages, the log
/// chain).
///
/// # Errors
///
/// [`ese::backup::set::verify_set_with`]'s; `InvalidBackup` (-526) for a manifest of
/// another set; `FileNotFound` (-1811) for a set without a manifest.
pub async fn verify_at(
    target: &BackupTarget,
    set: &str,
    depth: VerifyDepth,
    progress: Option<Arc<ReadProgress>>,
) -> Result<VerifyReport> {
    let repo = target.open()?;
    let set = set.to_string();
    let progress = progress.unwrap_or_default();
    blocking(move || {
        let s = RepoSet::open(&*repo, &set)?;
        if let (Ok(m), VerifyDepth::Full) = (s.manifest(), depth) {
            progress.add_total(m.content_bytes());
        }
        verify_set_with(&Counted { inner: s, progress }, depth)
    })
    .await
}

/// Restores from `target` the chain that ends with `choice` into the folder `to`: each file
/// is read straight from the store into its place (parallel ranged GETs, no local copy of
/// the set first), checked there, then replayed as [`crate::restore_backup_chain_to`]
/// does, stopping at `stop_at` if given.
///
/// # Errors
///
/// `RunningInOneInstanceMode` (-1080); `MissingFullBackup` (-560) when no complete chain
/// leads to the set (for `latest`: no complete set, or a parent of the newest missing);
/// for `latest`, a damaged set's error while a damaged set may be the newest, and
/// `InvalidBackupSequence` (-521) when a set of the newest set's log stream lies later in
/// its log (one of them made under a wrong clock); with `stop_at`, `latest` is the newest
/// chain whose full backup holds nothing past the stop point
/// ([`catalog::latest_chain_for`]), `EndingRestoreLogTooLow` (-553) if none does;
/// `InvalidParameter` (-1003) for a name that is not a complete set; then
/// [`restore_chain`](ese::restore::chain::restore_chain)'s.
pub async fn restore_from(
    engine: &Engine,
    target: &BackupTarget,
    choice: SetChoice,
    to: impl AsRef<Path>,
    stop_at: Option<StopAt>,
    progress: Option<Arc<ReadProgress>>,
) -> Result<ChainReport> {
    if engine.mode() == Mode::OneInstance {
        return Err(Error::RunningInOneInstanceMode);
    }
    let repo = target.open()?;
    let to = to.as_ref().to_path_buf();
    let progress = progress.unwrap_or_default();
    blocking(move || {
        let sets = catalog::list(&*repo)?;
        let chain = match &choice {
            SetChoice::Latest => match stop_at {
                Some(stop) => catalog::latest_chain_for(&sets, stop)?,
                None => catalog::latest_chain(&sets)?,
            },
            SetChoice::Named(n) => catalog::chain_of(&sets, n)?,
        };
        // The catalog read every manifest: the sets are opened on them, not read again.
        let opened = chain
            .into_iter()
            .map(|s| {
                let m = s.manifest().cloned().ok_or(Error::InternalError)?;
                RepoSet::with_manifest(&*repo, &s.name, m)
            })
            .collect::<Result<Vec<_>>>()?;
        restore_opened(opened, &to, stop_at, progress)
    })
    .await
}

/// Counts what the restore will read, and restores the chain of the opened sets.
fn restore_opened(
    sets: Vec<RepoSet<'_>>,
    to: &Path,
    stop_at: Option<StopAt>,
    progress: Arc<ReadProgress>,
) -> Result<ChainReport> {
    let mut manifests = Vec::new();
    for (i, s) in sets.iter().enumerate() {
        let m = s.manifest()?.clone();
        check_log_count(s, &m)?;
        let logs: u64 = m.logs.iter().map(|l| l.size).sum();
        let dbs: u64 = m.databases.iter().map(|d| d.size).sum();
        progress.add_total(logs + if i == 0 { dbs } else { 0 });
        manifests.push(m);
    }
    let sets: Vec<_> = sets
        .into_iter()
        .map(|inner| Counted {
            inner,
            progress: progress.clone(),
        })
        .collect();
    let storage = ese::io::os();
    restore_chain_read(&*storage, &sets, manifests, to, stop_at)
}

/// Restores the chain of the sets `sets` (each a target and a set's name in it, oldest
/// first) into the folder `to`, as [`restore_from`] does for a chain it finds itself.
///
/// # Errors
///
/// `RunningInOneInstanceMode` (-1080), `InvalidParameter` (-1003) for no set, then
/// [`restore_chain`](ese::restore::chain::restore_chain)'s.
pub async fn restore_sets(
    engine: &Engine,
    sets: &[(BackupTarget, String)],
    to: impl AsRef<Path>,
    stop_at: Option<StopAt>,
    progress: Option<Arc<ReadProgress>>,
) -> Result<ChainReport> {
    if engine.mode() == Mode::OneInstance {
        return Err(Error::RunningInOneInstanceMode);
    }
    if sets.is_empty() {
        return Err(Error::InvalidParameter.with_detail("no backup set to restore"));
    }
    let repos = sets
        .iter()
        .map(|(t, n)| Ok((t.open()?, n.clone())))
        .collect::<Result<Vec<_>>>()?;
    let to = to.as_ref().to_path_buf();
    let progress = progress.unwrap_or_default();
    blocking(move || {
        let sets = repos
            .iter()
            .map(|(r, n)| RepoSet::open(&**r, n))
            .collect::<Result<Vec<_>>>()?;
        restore_opened(sets, &to, stop_at, progress)
    })
    .await
}

/// Applies `retention` to `target`: removes whole sets that no kept chain needs and orphans
/// past their grace period; returns the plan and the number of files or objects removed.
///
/// # Errors
///
/// [`prune::plan`]'s (`InvalidParameter` -1003 when nothing is to be kept) and the store's.
pub async fn prune_sets(target: &BackupTarget, retention: Retention) -> Result<(PrunePlan, u64)> {
    let repo = target.open()?;
    blocking(move || prune::prune(&*repo, &retention, ese::backup::repo::name::now_ms())).await
}

/// Runs repository work on the blocking pool, never on the caller's async worker.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        Error::InternalError.with_detail(format!("a backup-target step did not finish: {e}"))
    })?
}
