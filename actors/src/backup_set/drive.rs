//! `Instance::backup_to_dir`: drives the streaming sequence into a set. The async side only
//! sends messages; every file step runs on the blocking pool through the set's writer, and a
//! chunk is written while the next one is read (two chunks in memory at most).

use std::path::{Path, PathBuf};

use ese::backup::set::{backup_id, BackupKind, BackupManifest, SetDir, SetFacts, SetWriter};
use ese::{BackupEnd, Error, Result};
use tokio::task::JoinHandle;

use super::guard::{SetGuard, SharedWriter};
use crate::instance::Instance;
use crate::messages::GetBackupRecord;
use crate::types::InstanceInfo;

/// Chunk size of the streaming reads.
const CHUNK: usize = 1 << 20;

/// A set whose manifest is visible, before truncation and the end.
struct Written {
    dir: PathBuf,
    manifest: BackupManifest,
    /// The logs `truncate_log` will delete: they live only in this set afterwards.
    doomed: Vec<PathBuf>,
}

/// Which file of the set a streamed file becomes.
enum SetEntry {
    Database,
    Log(u32),
}

impl Instance {
    /// Runs the whole streaming sequence into `dir` (which must be empty or absent) and
    /// writes `manifest.json` last: a set without a manifest is incomplete.
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
    /// logging, `MissingFullBackup` -560). Failures, after which the backup has ended as
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
        let dir = dir.as_ref().to_path_buf();
        self.settle_cleanups().await;
        let writer = SetWriter::new(Box::new(SetDir::new(self.storage().clone(), &dir)));
        let writer = blocking(move || writer.check_new().map(|()| writer)).await?;
        let me = self.instance_info().await?;
        let parent = match kind.incremental() {
            true => self.parent_of_incremental(&me).await?,
            false => None,
        };
        let mut guard = SetGuard::new(self.clone());
        guard.begin(kind.begin_grbit()).await?;
        let w = guard.attach(writer);
        match self.write_set(&w, &dir, kind, parent, &me).await {
            Ok(written) => self.finish_set(&mut guard, written, kind).await,
            Err(e) => {
                guard.fail().await;
                Err(e)
            }
        }
    }

    /// The last full or incremental backup recorded in the first database's header.
    async fn parent_of_incremental(&self, me: &InstanceInfo) -> Result<Option<String>> {
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

    /// Everything up to a visible manifest; nothing is truncated yet.
    async fn write_set(
        &self,
        w: &SharedWriter,
        dir: &Path,
        kind: BackupKind,
        parent_id: Option<String>,
        me: &InstanceInfo,
    ) -> Result<Written> {
        on_writer(w, SetWriter::prepare).await?;
        if !kind.incremental() {
            for path in self.get_attach_info().await? {
                self.copy_file(w, &path, SetEntry::Database).await?;
            }
        }
        let info = self.get_log_info().await?;
        for (gen, path) in (info.gen_low..=info.gen_high).zip(info.files.iter()) {
            self.copy_file(w, path, SetEntry::Log(gen)).await?;
        }
        on_writer(w, SetWriter::seal).await?;
        let doomed = match kind.truncates() {
            true => self.get_truncate_log_info().await?,
            false => Vec::new(),
        };
        // The id needs the record the headers will keep; ask for it before anything is
        // truncated, since the manifest must be durable first.
        let record = self.ask(GetBackupRecord {}).await?;
        let facts = SetFacts {
            kind,
            parent_id,
            instance: self.name().to_string(),
            base_name: me.base_name.clone(),
            page_size: me.page_size,
            log_signature: me.log_signature,
            gen_low: info.gen_low,
            gen_high: info.gen_high,
            record,
        };
        let manifest = on_writer(w, move |w| w.publish(facts)).await?;
        Ok(Written {
            dir: dir.to_path_buf(),
            manifest,
            doomed,
        })
    }

    /// Truncation and the end, once the set is complete. A failure that cost the source no
    /// log removes the set like any earlier failure; once logs are gone the set is their only
    /// copy, so it stays (and the error says so).
    async fn finish_set(
        &self,
        guard: &mut SetGuard,
        done: Written,
        kind: BackupKind,
    ) -> Result<BackupManifest> {
        guard.keep_set();
        if kind.truncates() {
            if let Err(e) = self.truncate_log().await {
                return self.after_failed_truncate(guard, &done, e).await;
            }
        }
        match self.end_external_backup(BackupEnd::NORMAL).await {
            Ok(()) => {
                guard.disarm();
                Ok(done.manifest)
            }
            Err(e) if done.doomed.is_empty() => {
                guard.fail().await;
                Err(e)
            }
            Err(e) => {
                guard.disarm();
                Err(kept(
                    e,
                    &done.dir,
                    "ending the backup failed after its logs were truncated",
                ))
            }
        }
    }

    async fn after_failed_truncate(
        &self,
        guard: &mut SetGuard,
        done: &Written,
        e: Error,
    ) -> Result<BackupManifest> {
        let storage = self.storage().clone();
        let doomed = done.doomed.clone();
        let deleted = blocking(move || Ok(doomed.iter().any(|p| !storage.exists(p))))
            .await
            .unwrap_or(true);
        if !deleted {
            guard.fail().await;
            return Err(e);
        }
        // Some logs are gone and live only in this set: record it in the headers and keep it.
        if let Err(end) = self.end_external_backup(BackupEnd::NORMAL).await {
            tracing::warn!(error = %end, "backup set kept, but not recorded in the headers");
        }
        guard.disarm();
        Err(kept(e, &done.dir, "truncating logs failed part way"))
    }

    /// Streams one file of the backup into the set: each chunk is written on a blocking
    /// thread while the next is read; the file is synced before it counts as copied.
    async fn copy_file(&self, w: &SharedWriter, from: &Path, entry: SetEntry) -> Result<()> {
        let (h, _) = self.open_file(from).await?;
        let source = from.to_path_buf();
        on_writer(w, move |w| match entry {
            SetEntry::Database => w.start_database(&source),
            SetEntry::Log(gen) => w.start_log(gen, &source),
        })
        .await?;
        let mut writing: Option<JoinHandle<Result<()>>> = None;
        loop {
            let chunk = self.read_file(h, CHUNK).await;
            if let Some(job) = writing.take() {
                joined(job).await?;
            }
            let chunk = chunk?;
            if chunk.is_empty() {
                break;
            }
            let w = w.clone();
            writing = Some(tokio::task::spawn_blocking(move || w.lock().append(&chunk)));
        }
        on_writer(w, SetWriter::finish_file).await?;
        self.close_file(h).await
    }
}

/// The error of a step after the set became complete and the source lost logs to it.
fn kept(e: Error, dir: &Path, what: &str) -> Error {
    let why = e.detail_or_message();
    e.with_detail(format!(
        "{what} ({why}); the set {} is complete and holds logs the source no longer has: keep it",
        dir.display()
    ))
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
