//! The end-to-end guarantee of behaviour.md §3.1: a writer commits transactions (each puts key `i`
//! and updates a running checksum row) while backups stream; the restored database holds
//! exactly keys `0..=k` with a consistent checksum row, where `k` is at least the last commit
//! acknowledged before `get_log_info` was called and below the first commit started after it
//! returned. For full, full + two incrementals, copy, and copy + differential backups.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use ese_actors::{
    restore_backup_chain, BackupBegin, BackupEnd, BackupKind, Engine, Instance, KeyRange, Term,
};
use support::actor::*;

/// Streams a backup by hand into `dir` in the layout of `backup_to_dir`... through
/// `backup_to_dir` itself, recording the bounds around `get_log_info`.
async fn backup(inst: &Instance, w: &Writer, dir: &Path, kind: BackupKind) -> (i64, i64) {
    // backup_to_dir calls get_log_info inside; bound k by the acknowledgements before the
    // whole call and the starts after it, which contain the tighter bounds.
    let before = w.acked.load(Ordering::SeqCst);
    inst.backup_to_dir(dir, kind).await.unwrap();
    let after = w.next.load(Ordering::SeqCst);
    (before, after)
}

async fn check_restored(
    engine: &Engine,
    sets: &[PathBuf],
    target: &Path,
    bounds: (i64, i64),
) -> i64 {
    let report = restore_backup_chain(engine, sets, target).await.unwrap();
    assert!(report.restore.commits > 0);
    check_prefix(engine, &report.databases[0].1, &target.join("inst"), bounds).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_backup_under_load_restores_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t) = writer_source(&engine, &dir.path().join("src")).await;
    let w = spawn_writer(&inst, t);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let b = backup(&inst, &w, &dir.path().join("full"), BackupKind::Full).await;
    w.stop.store(true, Ordering::Relaxed);
    w.task.await.unwrap();
    inst.term(Term::empty()).await.unwrap();
    let k = check_restored(
        &engine,
        &[dir.path().join("full")],
        &dir.path().join("restored"),
        b,
    )
    .await;
    assert!(k > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tight_bounds_around_get_log_info() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t) = writer_source(&engine, &dir.path().join("src")).await;
    let w = spawn_writer(&inst, t);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // The sequence by hand, so the bounds are read right around get_log_info.
    let set = dir.path().join("manual");
    std::fs::create_dir_all(set.join("logs")).unwrap();
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let path = inst.get_attach_info().await.unwrap().remove(0);
    let (f, _) = inst.open_file(&path).await.unwrap();
    let image = read_all(&inst, f, 1 << 20).await;
    inst.close_file(f).await.unwrap();
    let before = w.acked.load(Ordering::SeqCst);
    let info = inst.get_log_info().await.unwrap();
    let after = w.next.load(Ordering::SeqCst);
    let img_path = set.join("restored.edb");
    std::fs::write(&img_path, &image).unwrap();
    for p in &info.files {
        let (f, _) = inst.open_file(p).await.unwrap();
        let bytes = read_all(&inst, f, 1 << 20).await;
        inst.close_file(f).await.unwrap();
        std::fs::write(set.join("logs").join(p.file_name().unwrap()), bytes).unwrap();
    }
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    w.stop.store(true, Ordering::Relaxed);
    w.task.await.unwrap();
    inst.term(Term::empty()).await.unwrap();

    let report = engine
        .external_restore(ese_actors::RestoreSpec {
            checkpoint_dir: set.clone(),
            log_dir: set.join("logs"),
            backup_log_dir: set.join("logs"),
            gen_low: info.gen_low,
            gen_high: info.gen_high,
            base_name: "edb".into(),
            restore_map: vec![(path.clone(), img_path.clone())],
            stop_at: None,
        })
        .await
        .unwrap();
    assert!(report.log_bytes_per_sec > 0.0);
    let chk = engine
        .create_instance("check", params(&dir.path().join("chk")))
        .await
        .unwrap();
    chk.init().await.unwrap();
    let id = chk.attach_database(&img_path).await.unwrap();
    let t = chk.open_table(id, "t").await.unwrap();
    let s = chk.begin_session().await.unwrap();
    let keys = s.scan(t, KeyRange::all()).await.unwrap().len() as i64 - 1;
    let k = keys - 1;
    // `next` names the transaction being sent; the roll may take transaction `after` itself
    // when its commit was served before the writer advanced `next`, so `after` is inclusive.
    assert!(
        k >= before && k <= after,
        "k = {k}, bounds [{before}, {after}]"
    );
    drop(s);
    chk.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_plus_two_incrementals() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t) = writer_source(&engine, &dir.path().join("src")).await;
    let w = spawn_writer(&inst, t);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    backup(&inst, &w, &dir.path().join("full"), BackupKind::Full).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    backup(&inst, &w, &dir.path().join("inc1"), BackupKind::Incremental).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let b = backup(&inst, &w, &dir.path().join("inc2"), BackupKind::Incremental).await;
    w.stop.store(true, Ordering::Relaxed);
    w.task.await.unwrap();
    inst.term(Term::empty()).await.unwrap();
    let sets: Vec<PathBuf> = ["full", "inc1", "inc2"]
        .iter()
        .map(|s| dir.path().join(s))
        .collect();
    check_restored(&engine, &sets, &dir.path().join("restored"), b).await;
    // The chain must be in order.
    let wrong = [sets[0].clone(), sets[2].clone(), sets[1].clone()];
    let e = restore_backup_chain(&engine, &wrong, dir.path().join("wrong"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), -521);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_differential() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t) = writer_source(&engine, &dir.path().join("src")).await;
    let w = spawn_writer(&inst, t);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let b = backup(&inst, &w, &dir.path().join("copy"), BackupKind::Copy).await;
    check_restored(
        &engine,
        &[dir.path().join("copy")],
        &dir.path().join("r1"),
        b,
    )
    .await;
    // A differential needs a full backup first.
    backup(&inst, &w, &dir.path().join("full"), BackupKind::Full).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let b = backup(
        &inst,
        &w,
        &dir.path().join("diff"),
        BackupKind::Differential,
    )
    .await;
    w.stop.store(true, Ordering::Relaxed);
    w.task.await.unwrap();
    inst.term(Term::empty()).await.unwrap();
    let sets = [dir.path().join("full"), dir.path().join("diff")];
    check_restored(&engine, &sets, &dir.path().join("r2"), b).await;
}
