//! The set being written: [`SetWriter`] behind a lock, each step on the blocking pool or the
//! receiving thread (the writer does file and object-store I/O), and a guard that removes the set unless the run
//! kept it, also when the run's future is dropped.

use std::sync::{Arc, Mutex, MutexGuard};

use ese_actors::ese::backup::repo::{catalog, name, Repository};
use ese_actors::ese::backup::set::{BackupKind, SetStore, SetWriter};
use ese_actors::{BackupTarget, Error, Result};
use tokio::task::JoinHandle;

/// The writer as the run and its receiving thread share it.
pub(crate) type Shared = Arc<Mutex<SetWriter>>;

/// Locks the writer; a step that panicked left nothing the next step relies on, and the
/// writer refuses steps after `remove`, so a poisoned lock is used as is.
pub(crate) fn lock(w: &Mutex<SetWriter>) -> MutexGuard<'_, SetWriter> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// A new set's store in `target`, named for its kind and the time, like a local backup's,
/// with the repository it goes into.
pub(crate) async fn new_store(
    target: &BackupTarget,
    kind: BackupKind,
) -> Result<(Box<dyn SetStore>, Arc<dyn Repository>)> {
    let repo: Arc<dyn Repository> = target.open()?;
    let set = name::new_name(kind, name::now_ms());
    let r = repo.clone();
    let store = blocking(move || r.new_set(&set)).await?;
    Ok((store, repo))
}

/// Checks that `repo` holds the chain an incremental continuing `parent_id` (of the log
/// stream `log_signature`, hex) joins, listing it on the blocking pool: a set that no chain
/// of its repository restores must not be published, since publishing lets the server
/// truncate its logs.
///
/// # Errors
///
/// The listing's; [`catalog::continued_chain`]'s `MissingFullBackup` (-560).
pub(crate) async fn check_parent(
    repo: Arc<dyn Repository>,
    parent_id: String,
    log_signature: String,
) -> Result<()> {
    blocking(move || {
        let sets = catalog::list(&*repo)?;
        catalog::continued_chain(&sets, &parent_id, &log_signature, &repo.location())?;
        Ok(())
    })
    .await
}

/// A set being written, removed on drop unless kept.
pub(crate) struct PartialSet {
    w: Shared,
    location: String,
    /// Set once `prepare` may have created something: only then is there anything to remove.
    armed: bool,
}

impl PartialSet {
    /// Checks that the store can take a new set; creates nothing.
    pub async fn new(store: Box<dyn SetStore>, compress: Option<i32>) -> Result<PartialSet> {
        let mut writer = SetWriter::new(store);
        if let Some(level) = compress {
            writer.compress(level);
        }
        let writer = blocking(move || writer.check_new().map(|()| writer)).await?;
        Ok(PartialSet {
            location: writer.location(),
            w: Arc::new(Mutex::new(writer)),
            armed: false,
        })
    }

    /// Where the set goes, as a person reads it.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Makes the set's folders; from here on a failure removes the set.
    pub async fn prepare(&mut self) -> Result<()> {
        self.armed = true;
        self.step(SetWriter::prepare).await
    }

    /// Runs one step of the writer on the blocking pool.
    pub async fn step<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SetWriter) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let w = self.w.clone();
        blocking(move || f(&mut lock(&w))).await
    }

    /// The writer, for the receiving thread to append to (it writes outside any runtime).
    pub fn shared(&self) -> Shared {
        self.w.clone()
    }

    /// The set stays whatever happens next (it is complete and may hold the only copy of
    /// truncated logs).
    pub fn keep(&mut self) {
        self.armed = false;
    }

    /// Removes what was written, manifest first, and waits for it (also after
    /// [`PartialSet::keep`]: the run learned that keeping it is not needed after all).
    pub async fn remove(&mut self) {
        self.armed = false;
        let w = self.w.clone();
        let _ = tokio::task::spawn_blocking(move || lock(&w).remove()).await;
    }
}

impl Drop for PartialSet {
    /// A dropped run (its future cancelled) removes its set on a thread of its own; without
    /// a runtime, here.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let w = self.w.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || lock(&w).remove());
            }
            Err(_) => lock(&w).remove(),
        }
    }
}

/// Runs file work on the blocking pool, never on an async worker.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    joined(tokio::task::spawn_blocking(work)).await
}

/// The result of a blocking job.
pub(crate) async fn joined<T>(job: JoinHandle<Result<T>>) -> Result<T> {
    job.await.map_err(|e| {
        Error::InternalError.with_detail(format!("a backup-set file step did not finish: {e}"))
    })?
}
