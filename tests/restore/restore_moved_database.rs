//! A clean database moved to a new instance (whose log starts again at generation 1) keeps
//! the log positions its pages got under the old instance's longer log. The changes the new
//! instance makes must back up and restore all the same: redo must not take those pages for
//! newer than its records, and the image's trailer must not ask for a log the new stream
//! never had (`EndingRestoreLogTooLow`, -553).

use crate::support;

use std::path::Path;

use ese_actors::{restore_backup_chain, BackupBegin, BackupKind, Engine, Instance, Term};
use support::actor::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_moved_to_a_new_instance_backs_up_and_restores_its_new_changes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (a, t, path) = instance_with_data(&engine, "a", &dir.path().join("a"), 300).await;
    let rows = roll_logs(&a, t, 5, 300).await;
    let a_gen = a.instance_info().await.unwrap().current_gen;
    a.term(Term::empty()).await.unwrap();

    let b_dir = dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let moved = b_dir.join("db.edb");
    std::fs::rename(&path, &moved).unwrap();
    let b = engine.create_instance("b", params(&b_dir)).await.unwrap();
    b.init().await.unwrap();
    assert!(b.instance_info().await.unwrap().current_gen < a_gen);
    let db = b.attach_database(&moved).await.unwrap();
    let t = b.open_table(db, "t").await.unwrap();
    let changed = [0, rows / 2, rows - 1];
    let mut s = b.begin_session().await.unwrap();
    for i in changed {
        let mut tx = s.transaction().await.unwrap();
        tx.put(t, format!("k{i:06}").as_bytes(), b"changed by b")
            .await
            .unwrap();
        tx.commit(ese::Commit::Durable).await.unwrap();
    }
    drop(s);
    let set = dir.path().join("set");
    b.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    b.term(Term::empty()).await.unwrap();

    check_restored(
        &engine,
        &set,
        &dir.path().join("restored"),
        0..rows,
        |i| match changed.contains(&i) {
            true => b"changed by b".to_vec(),
            false => vec![(i % 251) as u8; 200],
        },
    )
    .await;
}

/// Restores the set at `set` into `target` and checks the rows of `keys` against `want`.
async fn check_restored(
    engine: &Engine,
    set: &Path,
    target: &Path,
    keys: std::ops::Range<u32>,
    want: impl Fn(u32) -> Vec<u8>,
) {
    let report = restore_backup_chain(engine, &[set], target).await.unwrap();
    let c = engine
        .create_instance("check", params(&target.join("inst")))
        .await
        .unwrap();
    c.init().await.unwrap();
    let db = c.attach_database(&report.databases[0].1).await.unwrap();
    let t = c.open_table(db, "t").await.unwrap();
    let s = c.begin_session().await.unwrap();
    for i in keys {
        let got = s.get(t, format!("k{i:06}").as_bytes()).await.unwrap();
        assert!(
            got.as_deref() == Some(&want(i)[..]),
            "row {i} after the restore"
        );
    }
    drop(s);
    c.term(Term::empty()).await.unwrap();
}

/// Instance B's log still holds the database's records from before it left: a restore
/// replays B's logs from the start of the backup's first one, and those records must not
/// undo what instance A changed meanwhile. Nor may B's last full backup from before the
/// move be the base of an incremental: it lacks A's changes (`MissingFullBackup`, -560).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_back_from_another_instance_keeps_its_changes_there_and_needs_a_full_backup() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (b, t, path) = instance_with_data(&engine, "b", &dir.path().join("b"), 300).await;
    b.backup_to_dir(dir.path().join("before"), BackupKind::Full)
        .await
        .unwrap();
    // In the log the next backup's replay starts from: the generation of the checkpoint the
    // detach writes.
    put_value(&b, t, b"changed by b").await;
    b.detach_database(&path).await.unwrap();

    let a = engine
        .create_instance("a", params(&dir.path().join("a")))
        .await
        .unwrap();
    a.init().await.unwrap();
    let db = a.attach_database(&path).await.unwrap();
    let t = a.open_table(db, "t").await.unwrap();
    put_value(&a, t, b"changed by a").await;
    a.term(Term::empty()).await.unwrap();

    attach_back(&engine, &b, &path, dir.path(), |_| b"changed by a".to_vec()).await;
}

/// Attaches `path` to `b` again, where it had been before: an incremental backup is refused
/// (`MissingFullBackup`, -560), and a full backup (into `dir`/after) restores rows
/// `k000000..k000300` to `want`. Terms `b`.
async fn attach_back(
    engine: &Engine,
    b: &Instance,
    path: &Path,
    dir: &Path,
    want: impl Fn(u32) -> Vec<u8>,
) {
    b.attach_database(path).await.unwrap();
    assert_eq!(
        code(b.begin_external_backup(BackupBegin::INCREMENTAL).await),
        -560
    );
    let set = dir.join("after");
    b.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    b.term(Term::empty()).await.unwrap();
    check_restored(engine, &set, &dir.join("restored"), 0..300, want).await;
}

/// Puts `value` in rows `k000000..k000300` of `t`, each its own durable transaction.
async fn put_value(inst: &Instance, t: ese_actors::TableId, value: &[u8]) {
    let mut s = inst.begin_session().await.unwrap();
    for i in 0..300u32 {
        let mut tx = s.transaction().await.unwrap();
        tx.put(t, format!("k{i:06}").as_bytes(), value)
            .await
            .unwrap();
        tx.commit(ese::Commit::Durable).await.unwrap();
    }
}

/// A restored copy put back into the instance its backup came from: that instance's log
/// still holds the database's later records (the changes the restore went back before), and
/// a restore of its next full backup replays from the start of that backup's first log, so
/// they must not land on the copy. Nor may the copy's record of the full backup before the
/// one restored be an incremental's base (`MissingFullBackup`, -560).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_copy_back_in_its_own_instance_is_not_overwritten_by_its_lost_changes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (b, t, path) = instance_with_data(&engine, "b", &dir.path().join("b"), 300).await;
    b.backup_to_dir(dir.path().join("full0"), BackupKind::Full)
        .await
        .unwrap();
    let full1 = dir.path().join("full1");
    b.backup_to_dir(&full1, BackupKind::Full).await.unwrap();
    // Changes the restore will go back before, then the database is lost.
    put_value(&b, t, b"lost").await;
    b.detach_database(&path).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    let report = restore_backup_chain(&engine, &[&full1], dir.path().join("r1"))
        .await
        .unwrap();
    std::fs::copy(&report.databases[0].1, &path).unwrap();

    attach_back(&engine, &b, &path, dir.path(), |i| {
        vec![(i % 251) as u8; 200]
    })
    .await;
}
