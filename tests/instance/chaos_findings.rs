//! Directed reproductions of what `random_calls` found.

use std::path::Path;

use ese_actors::{Engine, Instance, KeyRange, Term};

use crate::support::actor::params;

/// A row whose key has the longest length allowed (1,024 bytes) and whose value is empty
/// is too long for a leaf of a 4 KiB page, so its value goes to an overflow chain. That chain
/// had no page (first page 0): reads and replacements walked to page 0, and after a clean
/// term and a reopen the table answered `ReadPgnoVerifyFailure` (-1118) to every scan.
#[tokio::test]
async fn an_empty_value_under_a_1024_byte_key_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let inst = engine
        .create_instance("long", params(dir.path()))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst
        .create_database(dir.path().join("a.edb"))
        .await
        .unwrap();
    let t = inst.ensure_table(db, "t").await.unwrap();
    let s = inst.begin_session().await.unwrap();
    let (k1, k2) = ([1u8; 1024], [2u8; 1024]);
    s.put(t, &k1, b"").await.unwrap();
    s.put(t, &k2, b"").await.unwrap();
    assert_eq!(s.get(t, &k1).await.unwrap().as_deref(), Some(&b""[..]));
    // Replacing and deleting free the chain.
    s.put(t, &k2, b"v2").await.unwrap();
    s.put(t, b"small", b"").await.unwrap();
    drop(s);
    inst.term(Term::empty()).await.unwrap();

    let inst = engine
        .create_instance("long", params(dir.path()))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst
        .attach_database(dir.path().join("a.edb"))
        .await
        .unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    let rows = inst.scan(t, KeyRange::all()).await.unwrap();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = rows
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (k1.to_vec(), vec![]),
            (k2.to_vec(), b"v2".to_vec()),
            (b"small".to_vec(), vec![]),
        ]
    );
    let s = inst.begin_session().await.unwrap();
    s.delete(t, &k1).await.unwrap();
    assert_eq!(s.get(t, &k1).await.unwrap(), None);
    drop(s);
    inst.term(Term::empty()).await.unwrap();
}

/// A `create_database` refused because its file cannot be made (a missing directory, a path
/// that is a directory) logged the attach before it tried: after a crash (a dirty term), soft
/// recovery made the database again, failed the same way, and every `init` answered
/// `FileNotFound` (-1811) or `FileAlreadyExists` (-1814): the instance and its acknowledged
/// rows were out of reach until someone edited its files.
#[tokio::test]
async fn a_create_database_refused_for_its_path_does_not_block_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let inst = started(&engine, dir.path()).await;
    create_with_row(&inst, dir.path(), "a.edb", b"v").await;
    let missing = inst
        .create_database(dir.path().join("no-such-dir/x.edb"))
        .await;
    assert_eq!(missing.unwrap_err().code(), -1811);
    let climbs = inst.create_database(dir.path().join("sub/../b.edb")).await;
    assert_eq!(climbs.unwrap_err().code(), -1811);
    let a_dir = inst.create_database(dir.path()).await;
    assert_eq!(a_dir.unwrap_err().code(), -1814);
    inst.term(Term::DIRTY).await.unwrap();
    assert_rows_after_recovery(&engine, dir.path(), &[("a.edb", b"v")]).await;
}

/// A `create_database` whose file the operating system refuses to make (here a name longer
/// than the file system allows, `ENAMETOOLONG`; a permission error is another way) logged
/// the attach first: after a crash, soft recovery tried to make the file again, failed the
/// same way, and every `init` failed with it. The file is now made before its attach is
/// logged, so a refusal leaves nothing in the log; the name is `InvalidPath` (-1023), as
/// ESE answers a path the system cannot take.
#[tokio::test]
async fn a_create_database_the_system_refuses_does_not_block_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let inst = started(&engine, dir.path()).await;
    create_with_row(&inst, dir.path(), "a.edb", b"v").await;
    let too_long = dir.path().join(format!("{}.edb", "x".repeat(300)));
    let refused = inst.create_database(&too_long).await;
    assert_eq!(refused.unwrap_err().code(), -1023);
    // The instance goes on serving, and a legal name works after the refusal.
    create_with_row(&inst, dir.path(), "b.edb", b"w").await;
    inst.term(Term::DIRTY).await.unwrap();
    assert_rows_after_recovery(&engine, dir.path(), &[("a.edb", b"v"), ("b.edb", b"w")]).await;
}

/// An instance named "c" on `dir`, initialised.
async fn started(engine: &Engine, dir: &Path) -> Instance {
    let inst = engine.create_instance("c", params(dir)).await.unwrap();
    inst.init().await.unwrap();
    inst
}

/// Creates the database `name` in `dir`, with a table `t` holding `k` = `value`.
async fn create_with_row(inst: &Instance, dir: &Path, name: &str, value: &[u8]) {
    let db = inst.create_database(dir.join(name)).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    let s = inst.begin_session().await.unwrap();
    s.put(t, b"k", value).await.unwrap();
}

/// A new instance on `dir` recovers, and each database named holds its `k` = value.
async fn assert_rows_after_recovery(engine: &Engine, dir: &Path, rows: &[(&str, &[u8])]) {
    let inst = started(engine, dir).await;
    for (name, value) in rows {
        let db = inst.attach_database(dir.join(name)).await.unwrap();
        let t = inst.open_table(db, "t").await.unwrap();
        assert_eq!(inst.get(t, b"k").await.unwrap().as_deref(), Some(*value));
    }
    inst.term(Term::empty()).await.unwrap();
}

/// A detach that names an attached database by another spelling of its path (`sub/../`)
/// answers `DatabaseNotFound` (-1203) and leaves it attached, but gave back the
/// engine's claim on it: another instance of the engine then got past the claim and met the
/// file's lock, `FileAccessDenied` (-1032) instead of `DatabaseSharingViolation` (-1215).
#[tokio::test]
async fn a_detach_by_another_spelling_keeps_the_claim() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    std::fs::create_dir_all(one.join("sub")).unwrap();
    let engine = Engine::new();
    let a = engine.create_instance("a", params(&one)).await.unwrap();
    a.init().await.unwrap();
    let p = one.join("a.edb");
    a.create_database(&p).await.unwrap();
    let r = a.detach_database(one.join("sub/../a.edb")).await;
    assert_eq!(r.unwrap_err().code(), -1203);
    let b = engine.create_instance("b", params(&two)).await.unwrap();
    b.init().await.unwrap();
    let r = b.attach_database(&p).await;
    assert_eq!(r.unwrap_err().code(), -1215);
    b.term(Term::empty()).await.unwrap();
    a.term(Term::empty()).await.unwrap();
}
