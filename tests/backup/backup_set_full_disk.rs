//! A backup set written to a full or failing disk fails the backup with the specific error
//! before any log is truncated (issue 11.8; behaviour.md §2.7): `DiskFull` (-1808) for no space,
//! `DiskIO` (-1022) for an I/O error, at every write and every sync of the set. After each
//! failure nothing of the set is left, no source log is gone, and the next backup succeeds
//! and verifies. Once more on a real 2 MiB tmpfs.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ese::io::{Fault, FaultStorage, StorageRef};
use ese_actors::{verify_backup_set, verify_backup_set_on, BackupKind, Engine, Instance, Term};
use support::actor::*;

/// Where the sets of the fault-layer tests go.
const SETS: &str = "/f/sets";
/// Log file size of the test instances (`support::actor::params`).
const LOG: u64 = 128 * 1024;
/// Chunk size `backup_to_dir` streams with.
const CHUNK: u64 = 1 << 20;

struct Rig {
    fs: FaultStorage,
    storage: StorageRef,
    inst: Instance,
    home: PathBuf,
    tries: usize,
}

/// An instance on the fault layer with data and one full backup behind it.
async fn rig(engine: &Engine, name: &str) -> Rig {
    let fs = FaultStorage::new();
    let storage: StorageRef = Arc::new(fs.clone());
    let home = PathBuf::from(format!("/f/{name}"));
    let (inst, _, _) = instance_on(engine, storage.clone(), name, &home, 300).await;
    let base = PathBuf::from(format!("{SETS}/{name}-base"));
    inst.backup_to_dir(&base, BackupKind::Full).await.unwrap();
    Rig {
        fs,
        storage,
        inst,
        home,
        tries: 0,
    }
}

impl Rig {
    /// Arms `fault`, backs up into a fresh set, and checks what a failure leaves. `false` when
    /// the fault never fired (the set has fewer writes than it counts) and the backup worked.
    async fn fails_cleanly(&mut self, fault: Fault, kind: BackupKind, want: i32) -> bool {
        self.tries += 1;
        let set = PathBuf::from(format!("{SETS}/fail-{}", self.tries));
        let before = archived_logs(&*self.storage, &self.home);
        self.fs.arm(fault.clone());
        let res = self.inst.backup_to_dir(&set, kind).await;
        self.fs.disarm_all();
        let e = match res {
            Ok(_) => {
                verify_backup_set_on(self.storage.clone(), &set).unwrap();
                return false;
            }
            Err(e) => e,
        };
        let what = format!("{kind:?} with {fault:?}");
        assert_eq!(e.code(), want, "{what}: {e}");
        assert!(
            e.to_string().contains(SETS),
            "{what}: the error names no file: {e}"
        );
        assert!(
            tree(&*self.storage, &set).is_empty(),
            "{what}: left {:?}",
            tree(&*self.storage, &set)
        );
        assert!(!self.storage.is_dir(&set), "{what}: the set's folder stays");
        assert_logs_kept(&before, &archived_logs(&*self.storage, &self.home), &what);
        self.next_backup_works(kind).await;
        true
    }

    async fn next_backup_works(&mut self, kind: BackupKind) {
        let ok = PathBuf::from(format!("{SETS}/ok-{}", self.tries));
        self.inst.backup_to_dir(&ok, kind).await.unwrap();
        verify_backup_set_on(self.storage.clone(), &ok).unwrap();
    }

    /// Runs `fault(n)` for n = 0, 1, ... until the backup succeeds; every run before must fail
    /// cleanly with `want`. Returns how many failed.
    async fn every(&mut self, kind: BackupKind, want: i32, fault: impl Fn(u64) -> Fault) -> u64 {
        let mut n = 0;
        while self.fails_cleanly(fault(n), kind, want).await {
            n += 1;
            assert!(n < 200, "the fault keeps firing");
        }
        n
    }
}

fn on(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_space_at_every_write_of_the_set_fails_with_disk_full() {
    let engine = Engine::new();
    let mut r = rig(&engine, "nospace").await;
    let no_space = |path: &'static str, step: u64| {
        move |n: u64| Fault::NoSpace {
            path_contains: on(path),
            after_bytes: n * step,
        }
    };
    // Every chunk of the database image, every log; the manifest (one write) at every
    // 512 bytes of room.
    let images = r
        .every(BackupKind::Full, -1808, no_space("/databases/", CHUNK))
        .await;
    let logs = r
        .every(BackupKind::Full, -1808, no_space("/logs/", LOG))
        .await;
    let manifests = r
        .every(BackupKind::Full, -1808, no_space("manifest.json", 512))
        .await;
    eprintln!("no space: {images} image chunk(s), {logs} log(s), {manifests} manifest cut(s)");
    assert!(
        images >= 1 && logs >= 1 && manifests >= 2,
        "{images} {logs} {manifests}"
    );
    let incr_logs = r
        .every(BackupKind::Incremental, -1808, no_space("/logs/", LOG))
        .await;
    assert!(incr_logs >= 1);
    r.inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_error_at_every_write_and_sync_of_the_set_fails_with_disk_io() {
    let engine = Engine::new();
    let mut r = rig(&engine, "eio").await;
    let watched = format!("{SETS}/fail-");
    for kind in [BackupKind::Full, BackupKind::Incremental] {
        let w = watched.clone();
        let writes = r
            .every(kind, -1022, move |n| Fault::FailWrite {
                nth: n + 1,
                path_contains: Some(w.clone()),
            })
            .await;
        let w = watched.clone();
        let syncs = r
            .every(kind, -1022, move |n| Fault::FailSync {
                nth: n + 1,
                path_contains: Some(w.clone()),
            })
            .await;
        eprintln!("{kind:?}: failed at each of {writes} writes and {syncs} syncs");
        // Files and the manifest: at least a log and the manifest, each written and synced.
        assert!(
            writes >= 2 && syncs >= 2,
            "{kind:?}: {writes} writes, {syncs} syncs"
        );
    }
    r.inst.term(Term::empty()).await.unwrap();
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount could not run: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_full_tmpfs_fails_the_backup_and_keeps_every_log() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny");
    let _mount = match Tmpfs::mount(&tiny, "2m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: a 2 MiB tmpfs cannot be mounted here (needs root): {why}");
            return;
        }
    };
    let engine = Engine::new();
    let home = dir.path().join("inst");
    let (inst, tbl, _) = instance_with_data(&engine, "i", &home, 0).await;
    let mut s = inst.begin_session().await.unwrap();
    for t in 0..60u32 {
        let mut tx = s.transaction().await.unwrap();
        for i in 0..50u32 {
            let key = format!("k{t:03}-{i:03}");
            tx.put(tbl, key.as_bytes(), &[t as u8; 1000]).await.unwrap();
        }
        tx.commit(ese::Commit::Durable).await.unwrap();
    }
    let os = ese::io::os();
    let before = archived_logs(&*os, &home);
    let set = tiny.join("set");
    let e = inst
        .backup_to_dir(&set, BackupKind::Full)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -1808, "{e}");
    assert!(e.to_string().contains("tiny"), "{e}");
    assert!(!set.exists(), "the partial set stays");
    assert_eq!(std::fs::read_dir(&tiny).unwrap().count(), 0);
    assert_logs_kept(&before, &archived_logs(&*os, &home), "tmpfs");
    let good = dir.path().join("good");
    inst.backup_to_dir(&good, BackupKind::Full).await.unwrap();
    verify_backup_set(&good).unwrap();
    inst.term(Term::empty()).await.unwrap();
}
