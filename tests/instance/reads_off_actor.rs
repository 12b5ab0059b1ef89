//! Reads that miss the cache run off the actor, and scans are served in bounded slices
//! (issue 11 item 5). Every check is by order, not by time: a database read is held at a
//! latch, and the instance must answer `stop_service` while it is held.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;
use std::ops::Bound;

use ese_actors::messages::{CloseScan, Scan, ScanNext};
use ese_actors::{Commit, Engine, Instance, InstanceParams, KeyRange, TableId, Term};
use rand::{Rng, SeedableRng};
use support::actor::{GatedStorage, Latch};

const ROWS: u32 = 3000;
/// A value stored in overflow pages (more than a quarter of a 4 KiB page).
const BIG: usize = 20_000;

fn params(dir: &Path) -> InstanceParams {
    support::actor::params(dir).cache_pages(64)
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:06}").into_bytes()
}

/// Releases the latch when the test ends, even by a failed assertion, so that a read held
/// in a blocked thread cannot hang the runtime's shutdown.
struct ReleaseOnDrop(Latch);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Fills `db.edb` (table "t": `ROWS` rows of 200 bytes and one big value under "big") with
/// a first instance, terminates it, and attaches the database with a second one: every page
/// but the header, the meta page and the catalog is then on disk only.
async fn cold_instance(engine: &Engine, gated: &GatedStorage, dir: &Path) -> (Instance, TableId) {
    let path: PathBuf = dir.join("db.edb");
    let first = engine
        .create_instance_on("fill", params(dir), gated.storage())
        .await
        .unwrap();
    first.init().await.unwrap();
    let db = first.create_database(&path).await.unwrap();
    let t = first.create_table(db, "t").await.unwrap();
    support::actor::put_rows(&first, t, 0..ROWS).await;
    let s = first.begin_session().await.unwrap();
    s.put(t, b"big", &vec![9u8; BIG]).await.unwrap();
    drop(s);
    first.term(Term::empty()).await.unwrap();

    let inst = engine
        .create_instance_on("cold", params(dir), gated.storage())
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst.attach_database(&path).await.unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    (inst, t)
}

/// `stop_service` is answered while the read `op` started is held at the latch; then `op`
/// completes normally (it was being served when `stop_service` came) and is checked.
async fn stop_service_while_held<T, F>(op: F, check: impl FnOnce(T))
where
    T: Send + 'static,
    F: FnOnce(Instance, TableId) -> tokio::task::JoinHandle<ese::Result<T>>,
{
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let gated = GatedStorage::new(ese::io::os());
    let (inst, t) = cold_instance(&engine, &gated, dir.path()).await;
    let latch = gated.latch_reads("db.edb");
    let _guard = ReleaseOnDrop(latch.clone());
    let task = op(inst.clone(), t);
    latch.arrived_at_least(1).await;
    // The timeout only turns a hang (the actor blocked in the read) into a failure.
    let stopped = tokio::time::timeout(Duration::from_secs(20), inst.stop_service()).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "stop_service was not answered while a database read was held: {stopped:?}"
    );
    assert!(
        !task.is_finished(),
        "the read finished while its page was held"
    );
    assert!(latch.arrived() >= 1);
    latch.release();
    let got = task.await.unwrap().expect("the read completes normally");
    check(got);
    assert_eq!(
        inst.begin_session().await.unwrap_err().code(),
        -1329,
        "later calls are refused"
    );
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_scan_does_not_block_stop_service() {
    stop_service_while_held(
        |inst, t| {
            tokio::spawn(async move {
                let s = inst.begin_session().await?;
                s.scan(t, KeyRange::all()).await
            })
        },
        |rows| {
            assert_eq!(rows.len(), ROWS as usize + 1, "every row, and the big one");
            assert_eq!(rows[0].0.as_ref(), b"big");
            assert_eq!(rows[0].1.len(), BIG);
            for (i, (k, v)) in rows[1..].iter().enumerate() {
                assert_eq!(k.as_ref(), key(i as u32).as_slice());
                assert_eq!(v.as_ref(), &[(i % 251) as u8; 200]);
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_get_of_an_overflow_value_does_not_block_stop_service() {
    stop_service_while_held(
        |inst, t| {
            tokio::spawn(async move {
                let s = inst.begin_session().await?;
                s.get(t, b"big").await
            })
        },
        |v| assert_eq!(v.as_deref(), Some(&vec![9u8; BIG][..])),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_get_does_not_block_stop_service() {
    stop_service_while_held(
        |inst, t| {
            tokio::spawn(async move {
                let s = inst.begin_session().await?;
                s.get(t, &key(1234)).await
            })
        },
        |v| assert_eq!(v.as_deref(), Some(&[(1234 % 251) as u8; 200][..])),
    )
    .await;
}

/// A durable commit sent once the scan has served part of its rows is served between two
/// slices: the scan's later slice sees it (read committed across slices).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_interleaves_with_a_long_warm_scan() {
    const N: u32 = 256 * 40;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let inst = engine
        .create_instance("warm", support::actor::params(dir.path()).cache_pages(4096))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst
        .create_database(dir.path().join("db.edb"))
        .await
        .unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    let mut s = inst.begin_session().await.unwrap();
    support::actor::put_rows(&inst, t, 0..N).await;
    let marker = [0xAAu8; 200];
    // The stream asks for a slice only when the rows before it were taken, so the commit is
    // served after the first slice and before the last one whatever the machine's load (a
    // scan racing the commit on its own task finished first on a loaded machine).
    let reader = inst.begin_session().await.unwrap();
    let mut rows = reader.stream(t, KeyRange::all());
    let first = rows.next().await.unwrap().unwrap();
    s.put(t, &key(N - 1), &marker).await.unwrap();
    let mut all = vec![first];
    while let Some(row) = rows.next().await {
        all.push(row.unwrap());
    }
    drop(rows);
    drop(reader);
    assert_eq!(all.len(), N as usize);
    assert!(
        all[N as usize - 1].1.as_ref() == marker,
        "the commit was served before the scan's last slice"
    );
    let tx = s.transaction().await.unwrap();
    tx.commit(Commit::Lazy).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_delete_in_a_transaction_does_not_block_stop_service() {
    stop_service_while_held(
        |inst, t| {
            tokio::spawn(async move {
                let mut s = inst.begin_session().await?;
                let mut tx = s.transaction().await?;
                tx.delete(t, &key(2345)).await?;
                // Dropped, not rolled back: a rollback would meet the stopped gate.
                Ok(())
            })
        },
        |()| {},
    )
    .await;
}

/// The rows `support::actor::put_rows` wrote, as a model.
fn committed(n: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..n)
        .map(|i| (key(i), vec![(i % 251) as u8; 200]))
        .collect()
}

fn as_vecs(rows: Vec<(bytes::Bytes, bytes::Bytes)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    rows.into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn first<'a>(
    it: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
    n: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.take(n).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[tokio::test]
async fn scan_limit_returns_the_first_rows_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = support::actor::instance_with_data(&engine, "lim", dir.path(), 1000).await;
    let model = committed(1000);
    let s = inst.begin_session().await.unwrap();
    let ten = as_vecs(s.scan(t, KeyRange::all().limit(10)).await.unwrap());
    assert_eq!(ten, first(model.iter(), 10));
    let from = key(500);
    let more = as_vecs(
        s.scan(t, KeyRange::from_key(&from).limit(300))
            .await
            .unwrap(),
    );
    assert_eq!(
        more,
        first(model.range(from..), 300),
        "a limit across two slices"
    );
    assert!(s
        .scan(t, KeyRange::all().limit(0))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.scan(t, KeyRange::all().limit(5000)).await.unwrap().len(),
        1000
    );
    // A table that does not exist is refused when its handle is asked for.
    assert_eq!(
        inst.open_table(t.db(), "missing").await.unwrap_err().code(),
        -1305
    );
    inst.term(Term::empty()).await.unwrap();
}

/// A transaction's puts and deletes spread over many slices' worth of keys: every scan
/// shows them merged in, whatever slice they fall in.
#[tokio::test]
async fn a_scan_merges_the_sessions_own_writes_across_slices() {
    const N: u32 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = support::actor::instance_with_data(&engine, "merge", dir.path(), N).await;
    let mut model = committed(N);
    let mut s = inst.begin_session().await.unwrap();
    // Large values make the byte budget end slices early, between rows the session wrote.
    for i in (500..700).step_by(10) {
        s.put(t, &key(i), &[7u8; 40_000]).await.unwrap();
        model.insert(key(i), vec![7u8; 40_000]);
    }
    let committed_now = model.clone();
    let mut tx = s.transaction().await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..600 {
        let i = rng.gen_range(0..N);
        match rng.gen_range(0..3) {
            0 => {
                let k = format!("k{i:06}x").into_bytes(); // between two tree keys
                tx.put(t, &k, b"new").await.unwrap();
                model.insert(k, b"new".to_vec());
            }
            1 => {
                tx.put(t, &key(i), b"changed").await.unwrap();
                model.insert(key(i), b"changed".to_vec());
            }
            _ if model.contains_key(&key(i)) => {
                tx.delete(t, &key(i)).await.unwrap();
                model.remove(&key(i));
            }
            _ => {}
        }
    }
    // A run longer than a slice hidden by deletes, and writes past both ends of the tree.
    for i in 1000..1400 {
        if model.remove(&key(i)).is_some() {
            tx.delete(t, &key(i)).await.unwrap();
        }
    }
    for k in [&b"a-first"[..], b"z-last-1", b"z-last-2"] {
        tx.put(t, k, b"edge").await.unwrap();
        model.insert(k.to_vec(), b"edge".to_vec());
    }
    let all = as_vecs(tx.scan(t, KeyRange::all()).await.unwrap());
    assert_eq!(all, first(model.iter(), usize::MAX));
    let (lo, hi) = (key(100), key(1500));
    let both = KeyRange::new(Bound::Included(&lo), Bound::Included(&hi));
    let part = as_vecs(tx.scan(t, both).await.unwrap());
    assert_eq!(
        part,
        first(model.range(lo.clone()..=hi.clone()), usize::MAX)
    );
    let limited = as_vecs(
        tx.scan(t, KeyRange::from_key(&lo).limit(700))
            .await
            .unwrap(),
    );
    assert_eq!(limited, first(model.range(lo..), 700));
    let other = inst.begin_session().await.unwrap();
    assert_eq!(
        as_vecs(other.scan(t, KeyRange::all()).await.unwrap()),
        first(committed_now.iter(), usize::MAX),
        "another session sees none of it"
    );
    tx.rollback().await.unwrap();
    assert_eq!(s.scan(t, KeyRange::all()).await.unwrap().len(), N as usize);
    inst.term(Term::empty()).await.unwrap();
}

/// The slices of a scan that began before `stop_service` are served after it; a new scan
/// is not; a closed or unknown cursor is `InvalidTableId`; after term, `InvalidInstance`.
#[tokio::test]
async fn later_slices_of_a_scan_follow_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = support::actor::instance_with_data(&engine, "gate", dir.path(), 1000).await;
    let s = inst.begin_session().await.unwrap();
    let scan = Scan {
        session: s.key(),
        table: t,
        lo: Bound::Unbounded,
        hi: Bound::Unbounded,
        max_rows: 10,
        reverse: false,
    };
    let closed = inst.ask(scan.clone()).await.unwrap().next.unwrap();
    inst.ask(CloseScan { cursor: closed }).await.unwrap();
    let next = |cursor| ScanNext {
        cursor,
        max_rows: 10,
    };
    assert_eq!(inst.ask(next(closed)).await.unwrap_err().code(), -1310);
    let open = inst.ask(scan.clone()).await.unwrap();
    assert_eq!(open.rows.len(), 10);
    let cursor = open.next.unwrap();
    inst.stop_service().await.unwrap();
    let after = inst.ask(next(cursor)).await.unwrap();
    assert_eq!(
        after.rows[0].0.as_ref(),
        key(10).as_slice(),
        "resumes after the last key"
    );
    assert_eq!(after.next, Some(cursor));
    assert_eq!(inst.ask(scan).await.unwrap_err().code(), -1329);
    assert_eq!(inst.ask(next(closed)).await.unwrap_err().code(), -1329);
    inst.term(Term::empty()).await.unwrap();
    assert_eq!(inst.ask(next(cursor)).await.unwrap_err().code(), -1115);
}

/// The header read of `database_info` for a database no one attached runs off the actor; a
/// term that comes while it is on disk waits for it, so its caller gets the header, not
/// `InvalidInstance`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_waits_for_a_database_info_read_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let gated = GatedStorage::new(ese::io::os());
    let engine = Engine::new();
    let inst = engine
        .create_instance_on("info", params(dir.path()), gated.storage())
        .await
        .unwrap();
    inst.init().await.unwrap();
    let other = dir.path().join("other.edb");
    inst.create_database(&other).await.unwrap();
    inst.detach_database(&other).await.unwrap();

    let latch = ReleaseOnDrop(gated.latch_reads("other.edb"));
    let info = {
        let (inst, other) = (inst.clone(), other.clone());
        tokio::spawn(async move { inst.database_info(&other).await })
    };
    latch.0.arrived_at_least(1).await;
    let term = {
        let inst = inst.clone();
        tokio::spawn(async move { inst.term(Term::empty()).await })
    };
    // Give the term time to reach the actor while the read is held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!term.is_finished(), "term waits for the read on disk");
    latch.0.release();
    let info = info
        .await
        .unwrap()
        .expect("the header, not InvalidInstance");
    assert!(info.clean_shutdown);
    term.await.unwrap().unwrap();
}

/// A transaction's delete whose existence check is on disk when the transaction is dropped
/// (rolled back) and the session begins the next one: when the check comes back, the delete
/// must be refused (`NotInTransaction` -1054), not buffered into the next transaction, which
/// never asked for it and would commit it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transactions_delete_held_on_disk_does_not_join_the_next_transaction() {
    use ese_actors::messages::{BeginTransaction, CommitTransaction, Delete, Rollback};
    use ese_actors::Commit;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let gated = GatedStorage::new(ese::io::os());
    let (inst, t) = cold_instance(&engine, &gated, dir.path()).await;
    let s = inst.begin_session().await.unwrap();
    let session = s.key();
    inst.ask(BeginTransaction { session }).await.unwrap();
    let latch = gated.latch_reads("db.edb");
    let _guard = ReleaseOnDrop(latch.clone());
    let delete = tokio::spawn({
        let inst = inst.clone();
        async move {
            let m = Delete {
                session,
                table: t,
                key: key(5),
                in_transaction: true,
            };
            inst.ask(m).await
        }
    });
    latch.arrived_at_least(1).await;
    // What a drop of the transaction and a new one on the session send.
    inst.ask(Rollback { session }).await.unwrap();
    inst.ask(BeginTransaction { session }).await.unwrap();
    latch.release();
    let answer = delete.await.unwrap();
    let durability = Commit::Durable;
    inst.ask(CommitTransaction {
        session,
        durability,
    })
    .await
    .unwrap();
    assert!(
        inst.get(t, &key(5)).await.unwrap().is_some(),
        "the dropped transaction's delete was committed by the next one"
    );
    assert_eq!(answer.map_err(|e| e.code()), Err(-1054));
    drop(s);
    inst.term(Term::empty()).await.unwrap();
}
