//! A writer that commits while backups stream, and the check of a restored database
//! against it (behaviour.md §3.1): transaction `i` puts key `i` and a running checksum row, so
//! a restore must hold exactly keys `0..=k` with the checksum of that prefix.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use ese_actors::{Commit, Engine, Instance, KeyRange, TableId, Term};

use super::params;

/// The writer task and what it has done.
pub struct Writer {
    pub stop: Arc<AtomicBool>,
    /// Last transaction acknowledged (-1: none).
    pub acked: Arc<AtomicI64>,
    /// Next transaction to start.
    pub next: Arc<AtomicI64>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn spawn_writer(inst: &Instance, t: TableId) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicI64::new(-1));
    let next = Arc::new(AtomicI64::new(0));
    let task = {
        let (inst, stop, acked, next) = (inst.clone(), stop.clone(), acked.clone(), next.clone());
        tokio::spawn(async move {
            let mut s = inst.begin_session().await.unwrap();
            let mut i: i64 = 0;
            let mut sum: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                next.store(i, Ordering::SeqCst);
                let mut tx = s.transaction().await.unwrap();
                tx.put(
                    t,
                    format!("key{i:08}").as_bytes(),
                    &(i as u64 * 7).to_le_bytes(),
                )
                .await
                .unwrap();
                sum += i as u64 * 7;
                let mut row = (i as u64).to_le_bytes().to_vec();
                row.extend_from_slice(&sum.to_le_bytes());
                tx.put(t, b"~sum", &row).await.unwrap();
                let d = if i % 3 == 0 {
                    Commit::Lazy
                } else {
                    Commit::Durable
                };
                tx.commit(d).await.unwrap();
                acked.store(i, Ordering::SeqCst);
                i += 1;
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    Writer {
        stop,
        acked,
        next,
        task,
    }
}

impl Writer {
    /// Stops the writer and waits for it.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

/// A source instance in `dir` with database `src.edb` and its table `t`.
pub async fn writer_source(engine: &Engine, dir: &Path) -> (Instance, TableId) {
    let inst = engine.create_instance("src", params(dir)).await.unwrap();
    inst.init().await.unwrap();
    let db = inst.create_database(dir.join("src.edb")).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    (inst, t)
}

/// Opens the restored database `db` in a new instance in `scratch` and checks it holds
/// exactly the writer's keys `0..=k` with a consistent checksum row, `k` within `bounds`
/// (the last commit acknowledged before the backup, the first started after it); returns k.
pub async fn check_prefix(engine: &Engine, db: &Path, scratch: &Path, bounds: (i64, i64)) -> i64 {
    let inst = engine
        .create_instance("check", params(scratch))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst.attach_database(db).await.unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    let s = inst.begin_session().await.unwrap();
    let rows = s.scan(t, KeyRange::all()).await.unwrap();
    let (sum_row, keys) = rows.split_last().expect("rows");
    assert_eq!(&sum_row.0[..], b"~sum");
    let k = keys.len() as i64 - 1;
    let mut sum = 0u64;
    for (i, (key, v)) in keys.iter().enumerate() {
        assert_eq!(
            &key[..],
            format!("key{i:08}").as_bytes(),
            "keys must be exactly 0..=k"
        );
        assert_eq!(&v[..], &(i as u64 * 7).to_le_bytes());
        sum += i as u64 * 7;
    }
    assert_eq!(
        &sum_row.1[..8],
        &(k as u64).to_le_bytes(),
        "checksum row names the last transaction"
    );
    assert_eq!(
        &sum_row.1[8..],
        &sum.to_le_bytes(),
        "checksum row is consistent"
    );
    assert!(
        k >= bounds.0,
        "k = {k} but commit {} was acknowledged before the backup",
        bounds.0
    );
    assert!(
        k < bounds.1,
        "k = {k} but commit {} started after the backup",
        bounds.1
    );
    drop(s);
    inst.term(Term::empty()).await.unwrap();
    k
}
