//! Helpers for the backup-set tests: instances on any storage, what a directory holds, and
//! dropping a future at its k-th wait.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use ese::io::{Storage, StorageRef};
use ese_actors::{BackupKind, BackupManifest, Engine, Instance, InstanceParams, TableId};

use super::{params, put_rows, roll_logs, GatedStorage};

/// An initialised instance on `storage` with database `dir/db.edb` holding table "t" and
/// `rows` rows: the instance, the table and the database's path.
pub async fn instance_on(
    engine: &Engine,
    storage: StorageRef,
    name: &str,
    dir: &Path,
    rows: u32,
) -> (Instance, TableId, PathBuf) {
    instance_with(engine, storage, name, params(dir), rows).await
}

/// [`instance_on`] with parameters of the caller's (their system path is the directory).
pub async fn instance_with(
    engine: &Engine,
    storage: StorageRef,
    name: &str,
    params: InstanceParams,
    rows: u32,
) -> (Instance, TableId, PathBuf) {
    let dir = params.system_dir().clone();
    storage.create_dir_all(&dir).unwrap();
    let inst = engine
        .create_instance_on(name, params, storage)
        .await
        .unwrap();
    inst.init().await.unwrap();
    let path = dir.join("db.edb");
    let db = inst.create_database(&path).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    put_rows(&inst, t, 0..rows).await;
    (inst, t, path)
}

/// Rolls the log `rolls` times with the checkpoint held where it was, then runs `backup`:
/// its set holds the logs from that checkpoint on, `rolls + 1` at least. The checkpoint
/// file's writes (on `gated`) wait at a latch meanwhile, so the flush in flight cannot finish
/// and no other starts. Without it each flush moves the checkpoint to where that flush began,
/// and rows written before a backup do not make a set of several logs.
pub async fn with_rolls<T>(
    inst: &Instance,
    gated: &GatedStorage,
    t: TableId,
    rolls: u32,
    backup: impl Future<Output = T>,
) -> T {
    let latch = gated.latch_writes("edb.chk");
    roll_logs(inst, t, rolls, 500_000).await;
    let out = backup.await;
    gated.clear();
    latch.release();
    out
}

/// A copy backup into `set` holding at least `logs` log files ([`with_rolls`]).
pub async fn copy_with_logs(
    inst: &Instance,
    gated: &GatedStorage,
    t: TableId,
    set: &Path,
    logs: u32,
) -> BackupManifest {
    let copy = inst.backup_to_dir(set, BackupKind::Copy);
    let m = with_rolls(inst, gated, t, logs - 1, copy).await.unwrap();
    assert!(m.logs.len() >= logs as usize, "{} log(s)", m.logs.len());
    m
}

/// The archived logs (`edbXXXXXXXX.log`) in an instance's directory.
pub fn archived_logs(storage: &dyn Storage, dir: &Path) -> BTreeSet<PathBuf> {
    storage
        .list(dir)
        .unwrap()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".log") && name != "edb.log"
        })
        .collect()
}

/// Every file and folder under `dir` (empty if `dir` does not exist).
pub fn tree(storage: &dyn Storage, dir: &Path) -> Vec<PathBuf> {
    if !storage.is_dir(dir) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in storage.list_entries(dir).unwrap() {
        out.push(p.clone());
        out.extend(tree(storage, &p));
    }
    out
}

/// Asserts that no log the source had before is gone.
pub fn assert_logs_kept(before: &BTreeSet<PathBuf>, after: &BTreeSet<PathBuf>, what: &str) {
    let lost: Vec<_> = before.difference(after).collect();
    assert!(lost.is_empty(), "{what}: source logs lost: {lost:?}");
}

/// Polls `fut` until it has waited `k` times, then hands it back unfinished (`Err`), so the
/// caller can drop it at that wait, or do something and go on awaiting it. `Ok` when it
/// finished first.
pub struct PauseAt<F> {
    inner: Option<Pin<Box<F>>>,
    waits_left: usize,
}

impl<F: Future> PauseAt<F> {
    pub fn new(fut: F, k: usize) -> PauseAt<F> {
        PauseAt {
            inner: Some(Box::pin(fut)),
            waits_left: k,
        }
    }
}

impl<F: Future> Future for PauseAt<F> {
    type Output = Result<F::Output, Pin<Box<F>>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            panic!("PauseAt polled after it was ready");
        };
        match inner.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Ok(v)),
            Poll::Pending => {
                self.waits_left = self.waits_left.saturating_sub(1);
                match (self.waits_left, self.inner.take()) {
                    // Its wait is still open: the caller decides what happens to it.
                    (0, Some(f)) => Poll::Ready(Err(f)),
                    (_, f) => {
                        self.inner = f;
                        Poll::Pending
                    }
                }
            }
        }
    }
}
