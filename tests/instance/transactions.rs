//! Transactions as values (issue 13 item 1) and sessions without a pool (item 2): a
//! transaction ends exactly once — by commit, rollback or drop — and a dropped or cancelled
//! one leaves nothing open and nothing applied. Sessions are capped by `max_sessions`.

use ese_actors::messages::Put;
use ese_actors::{Commit, Engine, Error, Instance, KeyRange, OpenOptions, TableId, Term};

use crate::support::actor::{code, params};

async fn instance(dir: &std::path::Path, max_sessions: usize) -> (Engine, Instance, TableId) {
    let engine = Engine::new();
    let p = params(dir).max_sessions(max_sessions);
    let inst = engine.create_instance("tx", p).await.unwrap();
    inst.init().await.unwrap();
    let opts = OpenOptions { create: true };
    let db = inst.open_database(dir.join("db.edb"), opts).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    (engine, inst, t)
}

#[tokio::test]
async fn a_committed_transaction_is_seen_by_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, t) = instance(dir.path(), 16).await;
    let mut tx = inst.transaction().await.unwrap();
    tx.put(t, b"a", b"1").await.unwrap();
    tx.put(t, b"b", b"2").await.unwrap();
    assert_eq!(inst.get(t, b"a").await.unwrap(), None, "not before commit");
    assert_eq!(tx.get(t, b"a").await.unwrap().as_deref(), Some(&b"1"[..]));
    tx.commit(Commit::Durable).await.unwrap();
    assert_eq!(inst.get(t, b"a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(inst.scan(t, KeyRange::all()).await.unwrap().len(), 2);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_dropped_transaction_rolls_back_and_frees_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, t) = instance(dir.path(), 16).await;
    let mut s = inst.begin_session().await.unwrap();
    {
        let mut tx = s.transaction().await.unwrap();
        tx.put(t, b"gone", b"x").await.unwrap();
    }
    // The session is free at once: a new transaction begins (no TransTooDeep -1103), and it
    // does not see the dropped one's write.
    let mut tx = s.transaction().await.unwrap();
    assert_eq!(tx.get(t, b"gone").await.unwrap(), None);
    tx.put(t, b"kept", b"y").await.unwrap();
    tx.commit(Commit::Durable).await.unwrap();
    let rows = inst.scan(t, KeyRange::all()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0].0[..], b"kept");
    // An explicit rollback too.
    let mut tx = s.transaction().await.unwrap();
    tx.put(t, b"kept", b"changed").await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        inst.get(t, b"kept").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_cancelled_request_leaves_nothing_open_or_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, t) = instance(dir.path(), 16).await;
    let before = inst.stats().await.unwrap().commits;
    let i2 = inst.clone();
    let (wrote, written) = tokio::sync::oneshot::channel();
    let request = tokio::spawn(async move {
        let mut tx = i2.transaction().await.unwrap();
        for i in 0..100u32 {
            tx.put(t, &i.to_be_bytes(), b"half-done").await.unwrap();
        }
        let _ = wrote.send(());
        std::future::pending::<()>().await;
    });
    // Cancel the request mid-transaction, as a server drops a request whose client went
    // away.
    written.await.unwrap();
    request.abort();
    let _ = request.await;
    // Nothing of it is visible or was committed, and its session is gone: with a cap of 16,
    // 16 sessions can still be opened (the instance's own reader session is one of them).
    assert!(inst.scan(t, KeyRange::all()).await.unwrap().is_empty());
    assert_eq!(inst.stats().await.unwrap().commits, before);
    let mut held = Vec::new();
    for _ in 0..15 {
        held.push(inst.begin_session().await.unwrap());
    }
    assert_eq!(
        code(inst.begin_session().await),
        Error::OutOfSessions.code()
    );
    drop(held);
    inst.term(Term::empty()).await.unwrap();
}

/// A put of a transaction that reaches the instance after the transaction is gone (its
/// rollback went ahead of it) is refused, not committed on its own.
#[tokio::test]
async fn a_transactions_put_after_its_rollback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, t) = instance(dir.path(), 16).await;
    let s = inst.begin_session().await.unwrap();
    let stale = Put {
        session: s.key(),
        table: t,
        key: b"late".to_vec(),
        value: b"x".to_vec(),
        in_transaction: true,
    };
    assert_eq!(code(inst.ask(stale).await), Error::NotInTransaction.code());
    assert_eq!(inst.get(t, b"late").await.unwrap(), None);
    // The session's own put, outside a transaction, is its own durable commit.
    s.put(t, b"now", b"y").await.unwrap();
    assert_eq!(
        inst.get(t, b"now").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_write_conflict_ends_the_transaction_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, t) = instance(dir.path(), 16).await;
    let mut s = inst.begin_session().await.unwrap();
    let mut first = inst.transaction().await.unwrap();
    let mut second = s.transaction().await.unwrap();
    first.put(t, b"k", b"first").await.unwrap();
    second.put(t, b"k", b"second").await.unwrap();
    first.commit(Commit::Durable).await.unwrap();
    let e = second.commit(Commit::Durable).await.unwrap_err();
    assert_eq!(e.code(), Error::WriteConflict.code());
    assert!(e.is_retryable());
    // Retried on the same session: a new transaction begins and commits.
    let mut retry = s.transaction().await.unwrap();
    retry.put(t, b"k", b"second").await.unwrap();
    retry.commit(Commit::Durable).await.unwrap();
    assert_eq!(
        inst.get(t, b"k").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_transaction_sees_its_own_writes_in_scans() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, t) = instance(dir.path(), 16).await;
    let mut batch = ese_actors::WriteBatch::new();
    for k in [&b"a"[..], b"c", b"e"] {
        batch.put(t, k, b"committed");
    }
    inst.write(batch, Commit::Durable).await.unwrap();
    let mut tx = inst.transaction().await.unwrap();
    tx.put(t, b"b", b"mine").await.unwrap();
    tx.delete(t, b"c").await.unwrap();
    let keys = |rows: Vec<ese_actors::Row>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
    let mine = keys(tx.scan(t, KeyRange::all()).await.unwrap());
    assert_eq!(mine, [&b"a"[..], b"b", b"e"]);
    let theirs = keys(inst.scan(t, KeyRange::all()).await.unwrap());
    assert_eq!(theirs, [&b"a"[..], b"c", b"e"]);
    assert_eq!(
        code(tx.delete(t, b"zz").await),
        Error::RecordNotFound.code()
    );
    drop(tx);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn sessions_past_the_cap_get_out_of_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, _t) = instance(dir.path(), 3).await;
    let a = inst.begin_session().await.unwrap();
    let b = inst.begin_session().await.unwrap();
    let c = inst.transaction().await.unwrap();
    let e = inst.begin_session().await.unwrap_err();
    assert_eq!(e.code(), Error::OutOfSessions.code());
    assert!(e.is_retryable());
    assert_eq!(code(inst.transaction().await), Error::OutOfSessions.code());
    // A transaction's own session ends with it; a dropped session frees its place.
    c.commit(Commit::Durable).await.unwrap();
    let d = inst.begin_session().await.unwrap();
    drop((a, d));
    let _e2 = inst.begin_session().await.unwrap();
    drop(b);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_zero_session_cap_is_an_invalid_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let p = params(dir.path()).max_sessions(0);
    let inst = engine.create_instance("zero", p).await;
    let e = match inst {
        Ok(i) => i.init().await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(e.code(), Error::InvalidParameter.code());
}

/// A durable commit that changes no page (a transaction without writes, one whose only
/// write puts a new key and deletes it again, a batch deleting a missing row) after a lazy
/// commit: its answer waits for the log to be durable up to the tip, which holds the lazy
/// commit. Nothing asked the log writer for that fsync, so the answer never came while
/// nothing else committed durably.
#[tokio::test]
async fn a_durable_commit_that_changes_nothing_after_a_lazy_one_is_answered() {
    use ese_actors::WriteBatch;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, t) = instance(dir.path(), 16).await;
    // A hang guard only: each commit below takes milliseconds.
    let guard = Duration::from_secs(60);

    let mut tx = inst.transaction().await.unwrap();
    tx.put(t, b"lazy", b"1").await.unwrap();
    tx.commit(Commit::Lazy).await.unwrap();
    let tx = inst.transaction().await.unwrap();
    let answered = tokio::time::timeout(guard, tx.commit(Commit::Durable)).await;
    assert!(
        matches!(answered, Ok(Ok(()))),
        "empty transaction: {answered:?}"
    );

    let mut tx = inst.transaction().await.unwrap();
    tx.put(t, b"lazy2", b"1").await.unwrap();
    tx.commit(Commit::Lazy).await.unwrap();
    let mut tx = inst.transaction().await.unwrap();
    tx.put(t, b"new", b"x").await.unwrap();
    tx.delete(t, b"new").await.unwrap();
    let answered = tokio::time::timeout(guard, tx.commit(Commit::Durable)).await;
    assert!(
        matches!(answered, Ok(Ok(()))),
        "put and delete: {answered:?}"
    );

    let mut tx = inst.transaction().await.unwrap();
    tx.put(t, b"lazy3", b"1").await.unwrap();
    tx.commit(Commit::Lazy).await.unwrap();
    let mut batch = WriteBatch::new();
    batch.delete(t, b"missing");
    let answered = tokio::time::timeout(guard, inst.write(batch, Commit::Durable)).await;
    assert!(matches!(answered, Ok(Ok(()))), "batch: {answered:?}");
    inst.term(Term::empty()).await.unwrap();
}

/// Eight tasks each add 1 to one counter 25 times, in transactions that read it, write it and
/// commit, retrying on `WriteConflict` (-1102): no increment is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_retried_on_write_conflict_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_e, inst, t) = instance(dir.path(), 64).await;
    inst.begin_session()
        .await
        .unwrap()
        .put(t, b"n", &0u64.to_le_bytes())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8u8 {
        let inst = inst.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..25 {
                loop {
                    let mut tx = inst.transaction().await.unwrap();
                    let v = tx.get(t, b"n").await.unwrap().unwrap();
                    let n = u64::from_le_bytes(v[..].try_into().unwrap());
                    tx.put(t, b"n", &(n + 1).to_le_bytes()).await.unwrap();
                    tx.put(t, &[b'w', w], b"x").await.unwrap();
                    let how = if n % 2 == 0 {
                        Commit::Durable
                    } else {
                        Commit::Lazy
                    };
                    match tx.commit(how).await {
                        Ok(()) => break,
                        Err(e) if e.code() == Error::WriteConflict.code() => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let v = inst.get(t, b"n").await.unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(v[..].try_into().unwrap()), 200);
    inst.term(Term::empty()).await.unwrap();
}
