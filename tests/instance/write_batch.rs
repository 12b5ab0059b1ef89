//! Write batches and table handles (issue 13 item 4): many rows over several tables in one
//! message and one commit, checked whole before anything is applied.

use ese_actors::{
    Commit, Engine, Error, Instance, KeyRange, OpenOptions, TableId, Term, WriteBatch,
};

use crate::support::actor::{code, params};

async fn instance(dir: &std::path::Path) -> (Engine, Instance, ese_actors::DbId) {
    let engine = Engine::new();
    let inst = engine.create_instance("batch", params(dir)).await.unwrap();
    inst.init().await.unwrap();
    let opts = OpenOptions { create: true };
    let db = inst.open_database(dir.join("db.edb"), opts).await.unwrap();
    (engine, inst, db)
}

fn keys(rows: Vec<ese_actors::Row>) -> Vec<Vec<u8>> {
    rows.into_iter().map(|r| r.0.to_vec()).collect()
}

#[tokio::test]
async fn a_batch_over_two_tables_is_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, db) = instance(dir.path()).await;
    let users = inst.create_table(db, "users").await.unwrap();
    let orders = inst.create_table(db, "orders").await.unwrap();
    assert_ne!(users, orders);
    inst.write(
        {
            let mut b = WriteBatch::new();
            b.put(users, b"old", b"x");
            b
        },
        Commit::Durable,
    )
    .await
    .unwrap();
    let before = inst.stats().await.unwrap().commits;
    let mut b = WriteBatch::with_capacity(1002);
    for i in 0..1000u32 {
        b.put(orders, format!("o{i:04}").as_bytes(), &[7; 100]);
    }
    b.put(users, b"ada", b"1").delete(users, b"old");
    b.delete(users, b"never-there");
    assert_eq!(b.len(), 1003);
    inst.write(b, Commit::Durable).await.unwrap();
    assert_eq!(inst.stats().await.unwrap().commits, before + 1);
    assert_eq!(
        inst.scan(orders, KeyRange::all()).await.unwrap().len(),
        1000
    );
    assert_eq!(
        keys(inst.scan(users, KeyRange::all()).await.unwrap()),
        [b"ada"]
    );
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_later_operation_on_a_key_wins_within_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, db) = instance(dir.path()).await;
    let t = inst.create_table(db, "t").await.unwrap();
    let mut b = WriteBatch::new();
    b.put(t, b"k", b"1")
        .put(t, b"k", b"2")
        .put(t, b"d", b"x")
        .delete(t, b"d");
    inst.write(b, Commit::Lazy).await.unwrap();
    assert_eq!(inst.get(t, b"k").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(inst.get(t, b"d").await.unwrap(), None);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_refused_batch_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, db) = instance(dir.path()).await;
    let t = inst.create_table(db, "t").await.unwrap();
    let mut b = WriteBatch::new();
    b.put(t, b"fine", b"1").put(t, &[1; 1025], b"key too big");
    assert_eq!(
        code(inst.write(b, Commit::Durable).await),
        Error::KeyTooBig.code()
    );
    assert_eq!(inst.get(t, b"fine").await.unwrap(), None);
    // A key of exactly 1,024 bytes is the limit, and allowed.
    let mut b = WriteBatch::new();
    b.put(t, &[2; 1024], b"ok");
    inst.write(b, Commit::Durable).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_handle_of_a_detached_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, db) = instance(dir.path()).await;
    let t = inst.create_table(db, "t").await.unwrap();
    inst.detach_database(dir.path().join("db.edb"))
        .await
        .unwrap();
    let mut b = WriteBatch::new();
    b.put(t, b"k", b"v");
    assert_eq!(
        code(inst.write(b, Commit::Durable).await),
        Error::InvalidDatabaseId.code()
    );
    assert_eq!(
        code(inst.get(t, b"k").await),
        Error::InvalidDatabaseId.code()
    );
    // Attached again, the database has a new id: its tables are opened again by name.
    let db = inst
        .open_database(dir.path().join("db.edb"), OpenOptions::default())
        .await
        .unwrap();
    let again: TableId = inst.open_table(db, "t").await.unwrap();
    assert_eq!(again.db(), db);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_batch_conflicts_with_a_transaction_that_wrote_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, db) = instance(dir.path()).await;
    let t = inst.create_table(db, "t").await.unwrap();
    let mut tx = inst.transaction().await.unwrap();
    tx.put(t, b"k", b"tx").await.unwrap();
    let mut b = WriteBatch::new();
    b.put(t, b"k", b"batch");
    inst.write(b, Commit::Durable).await.unwrap();
    assert_eq!(
        code(tx.commit(Commit::Durable).await),
        Error::WriteConflict.code()
    );
    assert_eq!(
        inst.get(t, b"k").await.unwrap().as_deref(),
        Some(&b"batch"[..])
    );
    inst.term(Term::empty()).await.unwrap();
}
