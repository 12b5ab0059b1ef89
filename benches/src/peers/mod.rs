//! The peers of the compare run (feature `peers`): SQLite (rusqlite, bundled) and redb,
//! driven with the same rows, keys and values as ours ([`crate::workloads`]), and a
//! thread-per-client runner for peers that serialize writers. [`SqliteRedb`] is the
//! [`crate::run::Peers`] the compare bench passes to the run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};

pub use crate::run::AnyResult;
use crate::workloads::{
    commit_key, random_key, row_key, row_value, BulkClock, BulkRun, BULK_TXN, BULK_VALUE,
    COMMIT_VALUE, FILL_VALUE,
};

/// SQLite and redb, as the run drives them: the commit figures' databases stay open between
/// [`crate::run::Peers::commit_open`] and [`crate::run::Peers::commit_close`].
#[derive(Default)]
pub struct SqliteRedb {
    redb: Option<Arc<redb::Database>>,
    sqlite_commits: Option<PathBuf>,
}

impl crate::run::Peers for SqliteRedb {
    fn sqlite_fill(&mut self, path: &Path, bytes: u64) -> AnyResult<u64> {
        sqlite_fill(path, bytes)
    }

    fn sqlite_backup(&mut self, path: &Path) -> AnyResult<(u64, f64)> {
        sqlite_backup(path)
    }

    fn commit_open(&mut self, dir: &Path) -> AnyResult<()> {
        self.redb = Some(redb_open(&dir.join("commits.redb"))?);
        let path = dir.join("commits.sqlite");
        drop(sqlite_conn(&path)?);
        self.sqlite_commits = Some(path);
        Ok(())
    }

    fn redb_commit_rate(&mut self, run: u32, threads: usize, window: Duration) -> AnyResult<f64> {
        let db = self
            .redb
            .as_ref()
            .ok_or("redb: commit_open was not called")?;
        redb_commit_rate(db, run, threads, window, redb::Durability::Immediate)
    }

    fn sqlite_commit_rate(&mut self, run: u32, threads: usize, window: Duration) -> AnyResult<f64> {
        let path = self
            .sqlite_commits
            .as_ref()
            .ok_or("SQLite: commit_open was not called")?;
        sqlite_commit_rate(path, run, threads, window)
    }

    fn redb_lazy_commit_rate(&mut self, run: u32, window: Duration) -> AnyResult<f64> {
        let db = self
            .redb
            .as_ref()
            .ok_or("redb: commit_open was not called")?;
        redb_commit_rate(db, run, 1, window, redb::Durability::None)
    }

    fn redb_bulk_load(&mut self, path: &Path, keys: u64) -> AnyResult<BulkRun> {
        redb_bulk_load(path, keys)
    }

    fn sqlite_bulk_load(&mut self, path: &Path, keys: u64) -> AnyResult<BulkRun> {
        sqlite_bulk_load(path, keys)
    }

    fn commit_close(&mut self) {
        self.redb = None;
        if let Some(p) = self.sqlite_commits.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One commit step of a worker thread: commit number `j`.
pub type Step = Box<dyn FnMut(u64) -> AnyResult<()> + Send>;

/// `n` OS threads, each built by `make(thread)`, commit in a loop for `window` (started
/// together): commits acknowledged inside the window per second.
pub fn threaded_commit_rate(
    n: usize,
    window: Duration,
    make: impl Fn(usize) -> AnyResult<Step>,
) -> AnyResult<f64> {
    let barrier = Arc::new(Barrier::new(n + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..n {
        let mut step = make(t)?;
        let (barrier, stop) = (barrier.clone(), stop.clone());
        handles.push(std::thread::spawn(move || -> AnyResult<u64> {
            barrier.wait();
            let mut j = 0u64;
            let mut counted = 0u64;
            while !stop.load(Ordering::Relaxed) {
                step(j)?;
                if !stop.load(Ordering::Relaxed) {
                    counted += 1;
                }
                j += 1;
            }
            Ok(counted)
        }));
    }
    barrier.wait();
    let t0 = Instant::now();
    std::thread::sleep(window);
    stop.store(true, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| "peer worker panicked")??;
    }
    Ok(total as f64 / secs)
}

// ---------------------------------------------------------------- redb

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("t");

/// A redb database for the commit workloads.
pub fn redb_open(path: &Path) -> AnyResult<Arc<redb::Database>> {
    let db = redb::Database::create(path)?;
    let tx = db.begin_write()?;
    tx.open_table(REDB_TABLE)?;
    tx.commit()?;
    Ok(Arc::new(db))
}

/// Commits with `durability` (`Immediate` for the durable figures, `None` for the lazy one),
/// one insert of a 16-byte key and a 100-byte value per transaction, from `n` threads sharing
/// the database (redb serializes writers).
pub fn redb_commit_rate(
    db: &Arc<redb::Database>,
    run: u32,
    n: usize,
    window: Duration,
    durability: redb::Durability,
) -> AnyResult<f64> {
    threaded_commit_rate(n, window, |t| {
        let db = db.clone();
        let value = row_value(t as u64, COMMIT_VALUE);
        Ok(Box::new(move |j| {
            let mut tx = db.begin_write()?;
            tx.set_durability(durability)?;
            {
                let mut table = tx.open_table(REDB_TABLE)?;
                table.insert(&commit_key(run, t as u32, j)[..], &value[..])?;
            }
            tx.commit()?;
            Ok(())
        }) as Step)
    })
}

/// The bulk load into a new redb database at `path`: [`BULK_TXN`] inserts per transaction
/// with `Durability::None`, and one durable commit at the end (as ours ends with a term).
pub fn redb_bulk_load(path: &Path, keys: u64) -> AnyResult<BulkRun> {
    let db = redb_open(path)?;
    let mut clock = BulkClock::start(keys);
    let mut i = 0;
    while i < keys {
        let n = BULK_TXN.min(keys - i);
        clock.before(i, n);
        let mut tx = db.begin_write()?;
        tx.set_durability(redb::Durability::None)?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            for j in i..i + n {
                table.insert(&random_key(j)[..], &row_value(j, BULK_VALUE)[..])?;
            }
        }
        tx.commit()?;
        i += n;
        clock.after(i);
    }
    let run = clock.finish();
    drop(db);
    let _ = std::fs::remove_file(path);
    Ok(run)
}

// ---------------------------------------------------------------- SQLite

/// Opens a connection in WAL mode with `synchronous=FULL` and a long busy timeout.
pub fn sqlite_conn(path: &Path) -> AnyResult<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(60))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute(
        "CREATE TABLE IF NOT EXISTS t (k BLOB PRIMARY KEY, v BLOB NOT NULL)",
        [],
    )?;
    Ok(c)
}

/// Durable commits (WAL, `synchronous=FULL`), one insert per `BEGIN IMMEDIATE` transaction,
/// from `n` threads, each with its own connection.
pub fn sqlite_commit_rate(path: &Path, run: u32, n: usize, window: Duration) -> AnyResult<f64> {
    threaded_commit_rate(n, window, |t| {
        let mut c = sqlite_conn(path)?;
        let value = row_value(t as u64, COMMIT_VALUE);
        Ok(Box::new(move |j| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("INSERT INTO t (k, v) VALUES (?1, ?2)")?
                .execute(params![&commit_key(run, t as u32, j)[..], &value[..]])?;
            tx.commit()?;
            Ok(())
        }) as Step)
    })
}

/// The bulk load into a new SQLite database at `path` (WAL, `synchronous=NORMAL`):
/// [`BULK_TXN`] inserts per transaction.
pub fn sqlite_bulk_load(path: &Path, keys: u64) -> AnyResult<BulkRun> {
    let mut c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.execute("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB NOT NULL)", [])?;
    let mut clock = BulkClock::start(keys);
    let mut i = 0;
    while i < keys {
        let n = BULK_TXN.min(keys - i);
        clock.before(i, n);
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT INTO t (k, v) VALUES (?1, ?2)")?;
            for j in i..i + n {
                st.execute(params![&random_key(j)[..], row_value(j, BULK_VALUE)])?;
            }
        }
        tx.commit()?;
        i += n;
        clock.after(i);
    }
    let run = clock.finish();
    drop(c);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    Ok(run)
}

/// An SQLite database (8 KiB pages, rollback journal) with the same rows as ours (16-byte
/// keys, 1000-byte values) until its file is at least `bytes`: returns its size.
pub fn sqlite_fill(path: &Path, bytes: u64) -> AnyResult<u64> {
    let mut c = Connection::open(path)?;
    c.pragma_update(None, "page_size", 8192)?;
    c.execute("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB NOT NULL)", [])?;
    let mut i = 0u64;
    loop {
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT INTO t (k, v) VALUES (?1, ?2)")?;
            for _ in 0..5000 {
                st.execute(params![&row_key(i)[..], row_value(i, FILL_VALUE)])?;
                i += 1;
            }
        }
        tx.commit()?;
        let size = std::fs::metadata(path)?.len();
        if size >= bytes {
            return Ok(size);
        }
    }
}

/// SQLite's online backup API (`rusqlite::backup::Backup`, run to completion with 65,536
/// pages per step, no pause) from the file into an in-memory database (no destination I/O:
/// the cheapest destination SQLite offers, like our stream that discards its chunks).
/// Returns (bytes, seconds).
pub fn sqlite_backup(path: &Path) -> AnyResult<(u64, f64)> {
    let src = Connection::open(path)?;
    let mut dst = Connection::open_in_memory()?;
    dst.pragma_update(None, "page_size", 8192)?;
    let pages: i64 = src.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let psize: i64 = src.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let t0 = Instant::now();
    {
        let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
        b.run_to_completion(65536, Duration::ZERO, None)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(((pages * psize) as u64, secs))
}
