//! A backup restored into the directory of the instance that lost its database, and that
//! instance started again there: its soft recovery finds the restored copy at the path its log
//! names. The copy's header names no log stream (behaviour.md §3), so recovery leaves it as
//! found and the attach stamps it. Before, recovery replayed the instance's log from its
//! checkpoint into the older copy: the pages changed after the checkpoint came back, those
//! changed between the backup and the checkpoint stayed as the backup had them, and a
//! transaction whose pages fell on both sides came back in part.

use crate::support;

use std::path::Path;

use bytes::Bytes;
use ese_actors::{restore_backup_chain, BackupKind, Engine, Instance, KeyRange, TableId, Term};
use support::actor::*;

fn checkpoint_gen(dir: &Path) -> u32 {
    let chk = ese::internals::log::checkpoint::path(dir, "edb");
    ese::internals::log::checkpoint::read(&*ese::io::os(), &chk)
        .unwrap()
        .unwrap()
        .lsn
        .gen()
}

async fn keys(inst: &Instance, t: TableId) -> Vec<Bytes> {
    let s = inst.begin_session().await.unwrap();
    let rows = s.scan(t, KeyRange::all()).await.unwrap();
    rows.into_iter().map(|(k, _)| k).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_over_a_lost_database_comes_back_whole_after_init() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let inst = engine.create_instance("src", params(&src)).await.unwrap();
    inst.init().await.unwrap();
    let db = inst.create_database(src.join("db.edb")).await.unwrap();
    let a = inst.create_table(db, "a").await.unwrap();
    let b = inst.create_table(db, "b").await.unwrap();
    let filler = inst.create_table(db, "filler").await.unwrap();
    let set = dir.path().join("full");
    inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();

    // X writes both tables after the backup; the checkpoint then moves past it.
    let mut s = inst.begin_session().await.unwrap();
    let mut tx = s.transaction().await.unwrap();
    tx.put(a, b"x", b"X").await.unwrap();
    tx.put(b, b"x", b"X").await.unwrap();
    tx.commit(ese::Commit::Durable).await.unwrap();
    let x_gen = inst.instance_info().await.unwrap().current_gen;
    let mut n = 0u32;
    while checkpoint_gen(&src) <= x_gen + 1 {
        assert!(n < 200_000, "the checkpoint never moved past X");
        let mut tx = s.transaction().await.unwrap();
        for _ in 0..20 {
            tx.put(filler, format!("f{n:08}").as_bytes(), &[7u8; 200])
                .await
                .unwrap();
            n += 1;
        }
        tx.commit(ese::Commit::Durable).await.unwrap();
    }
    // Y writes table a only, after the checkpoint: its page images come from the log.
    let mut tx = s.transaction().await.unwrap();
    tx.put(a, b"y", b"Y").await.unwrap();
    tx.commit(ese::Commit::Durable).await.unwrap();
    drop(s);
    inst.term(Term::DIRTY).await.unwrap();
    drop(inst);

    // The database is lost; the backup goes back in its place; the instance starts there.
    std::fs::remove_file(src.join("db.edb")).unwrap();
    restore_backup_chain(&engine, std::slice::from_ref(&set), &src)
        .await
        .unwrap();
    let again = engine.create_instance("again", params(&src)).await.unwrap();
    again.init().await.unwrap();
    let id = again.attach_database(src.join("db.edb")).await.unwrap();
    let a = again.open_table(id, "a").await.unwrap();
    let b = again.open_table(id, "b").await.unwrap();
    // The backup's state, whole: neither X nor Y, in either table.
    assert_eq!(keys(&again, a).await, Vec::<Bytes>::new(), "table a");
    assert_eq!(keys(&again, b).await, Vec::<Bytes>::new(), "table b");
    // And the instance goes on: a commit on it survives a crash.
    let mut s = again.begin_session().await.unwrap();
    let mut tx = s.transaction().await.unwrap();
    tx.put(b, b"after", b"restore").await.unwrap();
    tx.commit(ese::Commit::Durable).await.unwrap();
    drop(s);
    again.term(Term::DIRTY).await.unwrap();
    drop(again);
    let third = engine.create_instance("third", params(&src)).await.unwrap();
    third.init().await.unwrap();
    let id = third.attach_database(src.join("db.edb")).await.unwrap();
    let b = third.open_table(id, "b").await.unwrap();
    assert_eq!(keys(&third, b).await, vec![Bytes::from_static(b"after")]);
    third.term(Term::empty()).await.unwrap();
}
