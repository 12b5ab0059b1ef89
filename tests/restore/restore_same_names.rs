//! Two databases with the same file name (`a/db.edb`, `b/db.edb`) restore into two files, and
//! both keep their rows (issue 11.2; behaviour.md §2.7: every database of a set restores to its
//! own file).

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ese_actors::{
    restore_backup_chain, BackupKind, Commit, DbId, Engine, Instance, KeyRange, Term,
};
use support::actor::params;

/// Rows of database `tag`: keys and values both name it, so two databases never match.
fn rows(tag: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..40)
        .map(|i| {
            let k = format!("{tag}-key-{i:03}").into_bytes();
            let v = format!("{tag}-value-{i}").into_bytes();
            (k, v)
        })
        .collect()
}

async fn fill(inst: &Instance, db: DbId, tag: &str) {
    let t = inst.create_table(db, "t").await.unwrap();
    let mut tx = inst.transaction().await.unwrap();
    for (k, v) in rows(tag) {
        tx.put(t, &k, &v).await.unwrap();
    }
    tx.commit(Commit::Durable).await.unwrap();
}

async fn read(inst: &Instance, path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = inst.attach_database(path).await.unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    let s = inst.begin_session().await.unwrap();
    let got = s.scan(t, KeyRange::all()).await.unwrap();
    got.into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

#[tokio::test]
async fn restore_same_names() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let home = dir.path().join("inst");
    let inst = engine.create_instance("i", params(&home)).await.unwrap();
    inst.init().await.unwrap();
    let (a, b) = (home.join("a/db.edb"), home.join("b/db.edb"));
    for (path, tag) in [(&a, "a"), (&b, "b")] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let db = inst.create_database(path).await.unwrap();
        fill(&inst, db, tag).await;
    }
    let set = dir.path().join("set");
    let m = inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    assert_eq!(m.databases.len(), 2);
    inst.term(Term::empty()).await.unwrap();

    let target = dir.path().join("target");
    let report = restore_backup_chain(&engine, &[&set], &target)
        .await
        .unwrap();
    let originals: BTreeSet<PathBuf> = report.databases.iter().map(|(o, _)| o.clone()).collect();
    assert_eq!(originals, BTreeSet::from([a.clone(), b.clone()]));
    let restored: BTreeSet<&PathBuf> = report.databases.iter().map(|(_, r)| r).collect();
    assert_eq!(restored.len(), 2, "two databases, two files: {report:?}");

    let check = engine
        .create_instance("check", params(&dir.path().join("check")))
        .await
        .unwrap();
    check.init().await.unwrap();
    for (original, tag) in [(&a, "a"), (&b, "b")] {
        let (_, file) = report
            .databases
            .iter()
            .find(|(o, _)| o == original)
            .unwrap();
        assert_eq!(read(&check, file).await, rows(tag), "rows of {tag}/db.edb");
    }
    check.term(Term::empty()).await.unwrap();
}
