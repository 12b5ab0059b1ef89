//! A dropped `Session` is always ended and its open transaction rolled back, whatever the
//! mailbox holds (issue 11.6): the end is sent on a channel a full mailbox cannot refuse. A
//! session dropped with its transaction open is one whose transaction owns it
//! (`Session::into_transaction`): dropping the transaction drops the session.

use crate::support;

use std::time::Duration;

use ese_actors::{Commit, Engine, Term};
use support::actor::{params, put_rows, GatedStorage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_session_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, path) = support::actor::instance_with_data(&engine, "a", dir.path(), 10).await;
    let s = inst.begin_session().await.unwrap();
    let mut tx = s.into_transaction().await.unwrap();
    tx.put(t, b"rolled-back", b"x").await.unwrap();
    drop(tx);
    inst.detach_database(&path).await.unwrap();
    let db = inst.attach_database(&path).await.unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    let r = inst.begin_session().await.unwrap();
    assert_eq!(r.get(t, b"rolled-back").await.unwrap(), None);
    inst.term(Term::empty()).await.unwrap();
}

/// The mailbox is full (1,100 calls queued behind a handler held at a read) when the session
/// is dropped: its end must still be served, so the database detaches afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_session_ends_with_full_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let gated = GatedStorage::new(ese::io::os());
    let p = params(dir.path()).cache_pages(64);
    let path = dir.path().join("db.edb");
    {
        let engine = Engine::new();
        let inst = engine
            .create_instance_on("fill", p.clone(), gated.storage())
            .await
            .unwrap();
        inst.init().await.unwrap();
        let db = inst.create_database(&path).await.unwrap();
        let t = inst.create_table(db, "t").await.unwrap();
        put_rows(&inst, t, 0..3000).await;
        inst.term(Term::empty()).await.unwrap();
    }
    // A fresh instance: its cache is cold.
    let engine = Engine::new();
    let inst = engine
        .create_instance_on("cold", p, gated.storage())
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst.attach_database(&path).await.unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    let mut held = inst
        .begin_session()
        .await
        .unwrap()
        .into_transaction()
        .await
        .unwrap();
    held.put(t, b"rolled-back", b"x").await.unwrap();

    // A commit that touches cold pages reads them inside its handler: hold it at the latch,
    // so the actor serves nothing while the mailbox fills.
    let latch = gated.latch_reads("db.edb");
    let writer = inst.begin_session().await.unwrap();
    let blocked =
        tokio::spawn(async move { writer.put(t, b"k001500", b"new").await.map(|()| writer) });
    latch.arrived_at_least(1).await;
    let callers: Vec<_> = (0..1100)
        .map(|_| {
            let i = inst.clone();
            tokio::spawn(async move { i.stats().await })
        })
        .collect();
    // Let the callers fill the mailbox's 1,024 slots (the rest wait for room).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!blocked.is_finished());
    drop(held);
    latch.release();

    let writer = blocked.await.unwrap().unwrap();
    for c in callers {
        c.await.unwrap().unwrap();
    }
    drop(writer);
    inst.detach_database(&path)
        .await
        .expect("the dropped session's transaction was rolled back");
    let db = inst.attach_database(&path).await.unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    let mut r = inst.begin_session().await.unwrap();
    assert_eq!(r.get(t, b"rolled-back").await.unwrap(), None);
    assert_eq!(
        r.get(t, b"k001500").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
    let mut tx = r.transaction().await.unwrap();
    tx.put(t, b"after", b"y").await.unwrap();
    tx.commit(Commit::Durable).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}
