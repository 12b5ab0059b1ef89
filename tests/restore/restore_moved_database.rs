//! A clean database moved to a new instance (whose log starts again at generation 1) keeps
//! the log positions its pages got under the old instance's longer log. The changes the new
//! instance makes must back up and restore all the same: redo must not take those pages for
//! newer than its records, and the image's trailer must not ask for a log the new stream
//! never had (`EndingRestoreLogTooLow`, -553).

use crate::support;

use ese_actors::{restore_backup_chain, BackupKind, Engine, Term};
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

    let target = dir.path().join("restored");
    let report = restore_backup_chain(&engine, &[&set], &target)
        .await
        .unwrap();
    let c = engine
        .create_instance("c", params(&target.join("inst")))
        .await
        .unwrap();
    c.init().await.unwrap();
    let db = c.attach_database(&report.databases[0].1).await.unwrap();
    let t = c.open_table(db, "t").await.unwrap();
    let s = c.begin_session().await.unwrap();
    for i in 0..rows {
        let got = s.get(t, format!("k{i:06}").as_bytes()).await.unwrap();
        let want: &[u8] = match changed.contains(&i) {
            true => b"changed by b",
            false => &[(i % 251) as u8; 200],
        };
        assert!(got.as_deref() == Some(want), "row {i} after the restore");
    }
}
