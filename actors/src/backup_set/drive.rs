//! The backup-set run behind `Instance::backup_to_dir` and `Instance::start_backup`: drives
//! the streaming sequence into a set. The async side only sends messages; every file step
//! runs on the blocking pool through the set's writer, and a chunk is written while the next
//! one is read (two chunks in memory at most). `backup_to_dir` runs it in the caller's
//! future, `start_backup` on a task of its own (`handle.rs`): one sequence either way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ese::backup::repo::{catalog, name, Repository};
use ese::backup::set::{
    backup_id, BackupKind, BackupManifest, Reusable, SetDir, SetFacts, SetStore, SetWriter,
};
use ese::{BackupEnd, Error, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::guard::{SetGuard, SharedWriter};
use super::handle::Cancel;
use super::options::BackupOptions;
use super::progress::{BackupPhase, BackupProgress, Tracker};
use super::rate::Pacer;
use super::shutdown::{shutting_down, Running};
use crate::instance::Instance;
use crate::messages::GetBackupRecord;
use crate::types::InstanceInfo;

/// A set whose manifest is visible, before truncation and the end.
struct Written {
    manifest: BackupManifest,
    /// The logs `truncate_log` will delete: they live only in this set afterwards.
    doomed: Vec<PathBuf>,
}

/// Which file of the set a streamed file becomes.
enum SetEntry {
    Database,
    Log(u32),
}

/// A backup begun for a set: everything the rest of the sequence needs.
pub(crate) struct SetRun {
    inst: Instance,
    guard: SetGuard,
    w: SharedWriter,
    /// Where the set goes, as a person reads it.
    location: String,
    kind: BackupKind,
    parent_id: Option<String>,
    me: InstanceInfo,
    chunk: usize,
    pacer: Option<Pacer>,
    stops: watch::Receiver<u64>,
    progress: Tracker,
    _running: Running,
}

impl Instance {
    /// Runs the whole streaming sequence into `dir` (which must be empty or absent) and
    /// writes `manifest.json` last: a set without a manifest is incomplete. The sequence is
    /// [`Instance::start_backup`]'s, run in this future, unthrottled
    /// ([`BackupOptions::default`]).
    ///
    /// Every file is written and synced, then the folders, then the manifest and the set's
    /// folder, and only then are logs truncated, so a failure (`DiskFull` -1808, `DiskIO`
    /// -1022, ...) never costs the source a log: the backup ends as aborted and what this call
    /// created is removed. A refusal (`BackupInProgress`, a target that is a file or not empty)
    /// creates nothing. Dropping the future ends the backup as aborted and removes the
    /// partial set, on a thread of its own; [`Instance::term`] and the next backup wait for it.
    ///
    /// # Errors
    ///
    /// Refusals, before anything is created: `InvalidPath` (-1023) for a target that is a
    /// file; `BackupDirectoryNotEmpty` (-504) for one that is not empty; the gate's errors
    /// ([`Instance`]); [`Instance::begin_external_backup`]'s (`BackupInProgress` -505,
    /// `BackupNotAllowedYet` -523, `InvalidBackup` -526 for an incremental under circular
    /// logging, `MissingFullBackup` -560); `TermInProgress` (-1000) once
    /// [`Instance::shutdown`] began. Failures, after which the backup has ended as
    /// aborted and the partial set is removed: `DiskFull` (-1808) or `DiskIO` (-1022) writing
    /// the set; the streaming calls' errors (`ReadVerifyFailure` -1018 for a damaged database
    /// page, `LogReadVerifyFailure` -612, `MissingFileToBackup` -569); `BackupAbortByServer`
    /// (-801) after [`Instance::stop_backup`]; the gate's errors if the instance stops
    /// meanwhile. A failure once logs were truncated keeps the complete set, the only copy of
    /// those logs, and its detail says so ("keep it").
    pub async fn backup_to_dir(
        &self,
        dir: impl AsRef<Path>,
        kind: BackupKind,
    ) -> Result<BackupManifest> {
        let run = self
            .begin_set(self.folder(dir.as_ref()), kind, &BackupOptions::default())
            .await?;
        run.run(Cancel::never()).await
    }

    /// A set written into the folder `dir` of its own.
    pub(crate) fn folder(&self, dir: &Path) -> Destination {
        Destination::Store(Box::new(SetDir::new(self.storage().clone(), dir)))
    }

    /// The refusals, then the begin: nothing is created before the backup runs.
    pub(crate) async fn begin_set(
        &self,
        to: Destination,
        kind: BackupKind,
        options: &BackupOptions,
    ) -> Result<SetRun> {
        let running = self.run_started()?;
        // Before the begin, so that no stop of this backup goes unseen.
        let stops = self.backup_stops();
        self.settle_cleanups().await;
        let (store, repo) = match to {
            Destination::Store(store) => (store, None),
            Destination::Repo(repo) => {
                let set = name::new_name(kind, name::now_ms());
                let r = repo.clone();
                (blocking(move || r.new_set(&set)).await?, Some(repo))
            }
        };
        let mut writer = SetWriter::new(store);
        if let Some(level) = options.compress {
            writer.compress(level);
        }
        let mut writer = blocking(move || writer.check_new().map(|()| writer)).await?;
        let location = writer.location();
        let me = self.instance_info().await?;
        let (chunk, pacer) = options.plan(me.page_size)?;
        let mut guard = SetGuard::new(self.clone());
        guard.begin(kind.begin_grbit()).await?;
        // After the begin: a backup that ended normally just before it may have changed the
        // headers' records, and until this backup ends no other can.
        let parent_id = match kind.incremental() {
            true => match self.incremental_parent().await {
                Ok(p) => p,
                Err(e) => return Err(failed(&mut guard, e).await),
            },
            false => None,
        };
        if let (Some(repo), Some(parent)) = (repo, parent_id.clone()) {
            let signature = me.log_signature.to_hex();
            match blocking(move || continued(&*repo, &parent, &signature)).await {
                Ok(reusable) => writer.reuse(reusable),
                Err(e) => return Err(failed(&mut guard, e).await),
            }
        }
        let w = guard.attach(writer);
        // A shutdown that began meanwhile may have sent its stop before this backup began.
        if self.closing() {
            guard.fail().await;
            return Err(shutting_down());
        }
        Ok(SetRun {
            inst: self.clone(),
            guard,
            w,
            location,
            kind,
            parent_id,
            me,
            chunk,
            pacer,
            stops,
            progress: Tracker::new(),
            _running: running,
        })
    }

    /// The id of the set an incremental begun now continues: the last full or incremental
    /// backup that the first attached database's header records, named as
    /// [`backup_id`] names it; `None` without a database or such a backup. While a backup
    /// runs the headers change only at its normal end, so during one the answer is its
    /// parent.
    ///
    /// # Errors
    ///
    /// The gate's errors; [`Instance::database_info`]'s.
    pub async fn incremental_parent(&self) -> Result<Option<String>> {
        let me = self.instance_info().await?;
        let Some(first) = me.databases.first() else {
            return Ok(None);
        };
        let info = self.database_info(first).await?;
        let prev = [info.last_full, info.last_incremental]
            .into_iter()
            .flatten()
            .max_by_key(|b| b.mark);
        Ok(prev.map(|b| backup_id(&me.log_signature, &b)))
    }
}

impl SetRun {
    pub(crate) fn subscribe(&self) -> watch::Receiver<BackupProgress> {
        self.progress.subscribe()
    }

    /// The rest of the sequence. A cancel is honoured until the run commits to finishing,
    /// just before truncation (or, for the kinds that do not truncate, the normal end) is
    /// asked for: past that the set may be the only copy of deleted logs, so the run
    /// finishes instead.
    pub(crate) async fn run(mut self, mut cancel: Cancel) -> Result<BackupManifest> {
        let written = tokio::select! {
            biased;
            () = cancel.requested() => None,
            r = self.write_set() => Some(r),
        };
        let (result, phase) = match written {
            None => (Err(self.cancelled().await), BackupPhase::Cancelled),
            // The point of no return: either a cancel came first, or none will count.
            Some(Ok(_)) if !cancel.commit() => {
                (Err(self.cancelled().await), BackupPhase::Cancelled)
            }
            Some(Ok(written)) => {
                let r = self.finish_set(written).await;
                let phase = match r {
                    Ok(_) => BackupPhase::Done,
                    Err(_) => BackupPhase::Failed,
                };
                (r, phase)
            }
            Some(Err(e)) => {
                self.guard.fail().await;
                (Err(e), BackupPhase::Failed)
            }
        };
        self.progress.phase(phase);
        result
    }

    async fn cancelled(&mut self) -> Error {
        self.guard.fail().await;
        Error::BackupAbortByCaller.with_detail(format!(
            "cancelled through its BackupHandle: the backup ended as aborted and the partial \
             set {} was removed",
            self.location
        ))
    }

    /// Everything up to a visible manifest; nothing is truncated yet.
    async fn write_set(&mut self) -> Result<Written> {
        on_writer(&self.w, SetWriter::prepare).await?;
        if !self.kind.incremental() {
            self.progress.phase(BackupPhase::Databases);
            let databases = self.inst.get_attach_info().await?;
            self.progress.databases_listed(databases.len());
            for path in databases {
                self.copy_file(&path, SetEntry::Database).await?;
            }
        }
        let info = self.inst.get_log_info().await?;
        self.progress.phase(BackupPhase::Logs);
        let logs: Vec<_> = (info.gen_low..=info.gen_high).zip(info.files).collect();
        self.progress.logs_listed(logs.len());
        for (gen, path) in logs {
            self.copy_file(&path, SetEntry::Log(gen)).await?;
        }
        self.progress.phase(BackupPhase::Publishing);
        on_writer(&self.w, SetWriter::seal).await?;
        let doomed = match self.kind.truncates() {
            true => self.inst.get_truncate_log_info().await?,
            false => Vec::new(),
        };
        // The id needs the record the headers will keep; ask for it before anything is
        // truncated, since the manifest must be durable first.
        let record = self.inst.ask(GetBackupRecord {}).await?;
        let facts = SetFacts {
            kind: self.kind,
            parent_id: self.parent_id.clone(),
            instance: self.inst.name().to_string(),
            base_name: self.me.base_name.clone(),
            page_size: self.me.page_size,
            log_signature: self.me.log_signature,
            gen_low: info.gen_low,
            gen_high: info.gen_high,
            record,
        };
        let manifest = on_writer(&self.w, move |w| w.publish(facts)).await?;
        Ok(Written { manifest, doomed })
    }

    /// Truncation and the end, once the set is complete. A failure that cost the source no
    /// log removes the set like any earlier failure; once logs are gone the set is their only
    /// copy, so it stays (and the error says so).
    async fn finish_set(&mut self, done: Written) -> Result<BackupManifest> {
        self.guard.keep_set();
        self.progress.phase(BackupPhase::Finishing);
        if self.kind.truncates() {
            if let Err(e) = self.inst.truncate_log().await {
                return self.after_failed_truncate(&done, e).await;
            }
        }
        match self.inst.end_external_backup(BackupEnd::NORMAL).await {
            Ok(()) => {
                self.guard.disarm();
                Ok(done.manifest)
            }
            Err(e) if done.doomed.is_empty() => {
                self.guard.fail().await;
                Err(e)
            }
            Err(e) => {
                self.guard.disarm();
                Err(kept(
                    e,
                    &self.location,
                    "ending the backup failed after its logs were truncated",
                ))
            }
        }
    }

    async fn after_failed_truncate(&mut self, done: &Written, e: Error) -> Result<BackupManifest> {
        let storage = self.inst.storage().clone();
        let doomed = done.doomed.clone();
        let deleted = blocking(move || Ok(doomed.iter().any(|p| !storage.exists(p))))
            .await
            .unwrap_or(true);
        if !deleted {
            self.guard.fail().await;
            return Err(e);
        }
        // Some logs are gone and live only in this set: record it in the headers and keep it.
        if let Err(end) = self.inst.end_external_backup(BackupEnd::NORMAL).await {
            tracing::warn!(error = %end, "backup set kept, but not recorded in the headers");
        }
        self.guard.disarm();
        Err(kept(e, &self.location, "truncating logs failed part way"))
    }

    /// Streams one file of the backup into the set: each chunk is written on a blocking
    /// thread while the next is read; the file is synced before it counts as copied.
    async fn copy_file(&mut self, from: &Path, entry: SetEntry) -> Result<()> {
        let (h, size) = self.inst.open_file(from).await?;
        match entry {
            SetEntry::Database => self.progress.database_opened(size),
            SetEntry::Log(_) => self.progress.log_opened(size),
        }
        let source = from.to_path_buf();
        on_writer(&self.w, move |w| match entry {
            SetEntry::Database => w.start_database(&source),
            SetEntry::Log(gen) => w.start_log(gen, &source),
        })
        .await?;
        let mut writing: Option<(JoinHandle<Result<()>>, u64)> = None;
        loop {
            let chunk = self.inst.read_file(h, self.chunk).await;
            if let Some((job, n)) = writing.take() {
                joined(job).await?;
                self.progress.written(n);
            }
            let chunk = chunk?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len() as u64;
            let w = self.w.clone();
            writing = Some((
                tokio::task::spawn_blocking(move || w.lock().append(&chunk)),
                n,
            ));
            // The chunk is written while the run waits out its rate.
            self.pace(n).await;
        }
        on_writer(&self.w, SetWriter::finish_file).await?;
        self.progress.file_done();
        self.inst.close_file(h).await
    }

    /// Waits as long as the rate limit asks; a `stop_backup` cuts the wait short, so the
    /// next call meets `BackupAbortByServer` at once.
    async fn pace(&mut self, bytes: u64) {
        let Some(pacer) = self.pacer.as_mut() else {
            return;
        };
        let wait = pacer.take(bytes, Instant::now());
        if wait.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            Ok(()) = self.stops.changed() => {}
        }
    }
}

/// Ends the backup `guard` began as aborted and answers `e`: a refusal found after the
/// begin, before anything was written or truncated.
async fn failed(guard: &mut SetGuard, e: Error) -> Error {
    guard.fail().await;
    e
}

/// The error of a step after the set became complete and the source lost logs to it.
fn kept(e: Error, location: &str, what: &str) -> Error {
    let why = e.detail_or_message();
    e.with_detail(format!(
        "{what} ({why}); the set {location} is complete and holds logs the source no longer has: keep it"
    ))
}

/// Where a backup-set run writes.
pub(crate) enum Destination {
    /// A set store of its own (a folder).
    Store(Box<dyn SetStore>),
    /// A new set of a repository, named when the run begins.
    Repo(Arc<dyn Repository>),
}

/// Checks that `repo` holds the chain an incremental or differential continuing
/// `parent_id` (of the log stream `log_signature`) joins, and answers the logs it may
/// reference there. One listing of the repository for both.
///
/// # Errors
///
/// The listing's; [`catalog::continued_chain`]'s `MissingFullBackup` (-560).
fn continued(repo: &dyn Repository, parent_id: &str, log_signature: &str) -> Result<Vec<Reusable>> {
    let sets = catalog::list(repo)?;
    let chain = catalog::continued_chain(&sets, parent_id, log_signature, &repo.location())?;
    let root = chain.first().map(|s| s.name.as_str()).unwrap_or_default();
    Ok(reusable_logs(&sets, root))
}

/// The logs an incremental may reference instead of uploading again: those of every
/// complete set of `sets` whose chain starts with the set `root` (its parent's chain and
/// the sets that continue the same full), each with the set that holds its object.
fn reusable_logs(sets: &[catalog::Listed], root: &str) -> Vec<Reusable> {
    let root_of = |name: &str| {
        catalog::chain_of(sets, name)
            .ok()
            .and_then(|c| c.first().map(|s| s.name.clone()))
    };
    let mut out = Vec::new();
    for s in sets {
        let Some(m) = s.manifest() else { continue };
        if root_of(&s.name).as_deref() != Some(root) {
            continue;
        }
        for log in &m.logs {
            let holder = log.stored.as_ref().and_then(|st| st.set.clone());
            out.push(Reusable {
                log: log.clone(),
                set: holder.unwrap_or_else(|| s.name.clone()),
            });
        }
    }
    out
}

/// Runs one step of the set's writer on the blocking pool.
async fn on_writer<T: Send + 'static>(
    w: &SharedWriter,
    step: impl FnOnce(&mut SetWriter) -> Result<T> + Send + 'static,
) -> Result<T> {
    let w = w.clone();
    blocking(move || step(&mut w.lock())).await
}

/// Runs file work on the blocking pool, never on the caller's async worker.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    joined(tokio::task::spawn_blocking(work)).await
}

async fn joined<T>(job: JoinHandle<Result<T>>) -> Result<T> {
    job.await.map_err(|e| {
        Error::InternalError.with_detail(format!("a backup-set file step did not finish: {e}"))
    })?
}
