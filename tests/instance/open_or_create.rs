//! Open-or-create (issue 13 item 5): `open_database` with `create` and `ensure_table` are
//! idempotent; the strict calls keep their exact ESE errors.

use ese_actors::{Engine, Error, OpenOptions, Term};

use crate::support::actor::{code, params};

#[tokio::test]
async fn open_database_creates_once_then_attaches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.edb");
    let engine = Engine::new();
    let inst = engine
        .create_instance("open", params(dir.path()))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let strict = OpenOptions::default();
    assert_eq!(
        code(inst.open_database(&path, strict).await),
        Error::FileNotFound.code()
    );
    let create = OpenOptions { create: true };
    let db = inst.open_database(&path, create).await.unwrap();
    let t = inst.ensure_table(db, "kv").await.unwrap();
    inst.open_table(db, "kv").await.unwrap();
    assert_eq!(inst.ensure_table(db, "kv").await.unwrap(), t);
    let s = inst.begin_session().await.unwrap();
    s.put(t, b"k", b"v").await.unwrap();
    drop(s);
    // Already attached here: the strict error, with or without `create`.
    assert_eq!(
        code(inst.open_database(&path, create).await),
        Error::DatabaseDuplicate.code()
    );
    inst.detach_database(&path).await.unwrap();
    // The file exists now: attached, not created again, and its rows are there.
    let db = inst.open_database(&path, create).await.unwrap();
    let t = inst.ensure_table(db, "kv").await.unwrap();
    assert_eq!(inst.get(t, b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn the_strict_calls_keep_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.edb");
    let engine = Engine::new();
    let inst = engine
        .create_instance("strict", params(dir.path()))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst.create_database(&path).await.unwrap();
    inst.create_table(db, "t").await.unwrap();
    assert_eq!(
        code(inst.create_table(db, "t").await),
        Error::TableDuplicate.code()
    );
    assert_eq!(
        code(inst.open_table(db, "missing").await),
        Error::ObjectNotFound.code()
    );
    assert_eq!(
        code(inst.ensure_table(db, "").await),
        Error::InvalidName.code()
    );
    inst.detach_database(&path).await.unwrap();
    assert_eq!(
        code(inst.create_database(&path).await),
        Error::FileAlreadyExists.code()
    );
    inst.attach_database(&path).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}
