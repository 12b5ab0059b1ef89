//! The workloads: every figure's measurement of ours, and the baselines that need no peer
//! engine. The run in [`crate::run`] calls them in the order of [`crate::figures::TABLE`].
//!
//! Everything goes through the public actor API (`Engine`, `Instance`, `Session`, the backup
//! calls), on real files in the directory the caller gives, with real fsyncs. The baselines
//! that need no peer engine live here too: a raw `std::fs` sequential read of the same file
//! ([`raw_read`]) and a bare tokio mpsc + oneshot echo task ([`echo_roundtrips`]).
//!
//! - [`Scale`]: sizes and windows (`Scale::quick()`, `Scale::full()`, `Scale::from_env()`).
//! - The workloads: [`fill_database`], [`stream_backup`], [`raw_read`], [`commit_run`],
//!   [`latency_under_backup`], [`restore_run`], [`get_roundtrips`], [`echo_roundtrips`],
//!   [`stop_latency`], [`backup_rss_growth`], [`idle_instance_rss`], plus [`median`],
//!   [`percentile`], [`rss_bytes`], [`mib`].
//! - The rows and keys the peers write too, so both sides store the same data: [`row_key`],
//!   [`row_value`], [`commit_key`], [`FILL_VALUE`], [`COMMIT_VALUE`].
//!
//! Every async function needs a multi-thread tokio runtime (durable commits wait on log
//! writer threads; backup reads run on the blocking pool).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use ese_actors::{
    restore_backup_chain, BackupBegin, BackupEnd, BackupKind, Commit, DbId, Engine, Error,
    Instance, InstanceParams, RestoreReport, Result, TableId, Term,
};

/// Sizes and windows of a run.
#[derive(Clone, Debug)]
pub struct Scale {
    /// Quick mode (smaller sizes, shorter windows).
    pub quick: bool,
    /// Size of the database streamed by the backup figures.
    pub backup_db_bytes: u64,
    /// Size of the database streamed by the memory figure (1 GiB in full mode).
    pub memory_db_bytes: u64,
    /// Repetitions whose median is reported.
    pub reps: usize,
    /// Window of one commit-rate measurement.
    pub commit_window: Duration,
    /// Window of one latency measurement (with or without a backup).
    pub latency_window: Duration,
    /// Concurrent durable writers in the latency measurement.
    pub latency_writers: usize,
    /// Lazy transactions of the restore workload.
    pub restore_txns: usize,
    /// Round trips per client in the actor-overhead figure.
    pub roundtrips: usize,
    /// Size of the database each stop-latency run streams.
    pub stop_db_bytes: u64,
    /// Instances in the idle-memory figure.
    pub idle_instances: usize,
    /// Interleaved pairs (one `WriteBatch`, one transaction of single puts) of the write-batch
    /// figure.
    pub batch_reps: usize,
    /// Size of the table the streaming-scan memory figure streams (1 GiB in full mode).
    pub stream_table_bytes: u64,
    /// Keys of the bulk-load figure.
    pub bulk_keys: u64,
}

impl Scale {
    /// Quick mode: the whole compare run fits in about three minutes on two cores.
    pub fn quick() -> Scale {
        Scale {
            quick: true,
            backup_db_bytes: 64 << 20,
            memory_db_bytes: 64 << 20,
            reps: 5,
            commit_window: Duration::from_millis(700),
            latency_window: Duration::from_millis(1500),
            latency_writers: 8,
            restore_txns: 20_000,
            roundtrips: 20_000,
            stop_db_bytes: 16 << 20,
            idle_instances: 100,
            batch_reps: 21,
            stream_table_bytes: 128 << 20,
            bulk_keys: 200_000,
        }
    }
    /// Full mode.
    pub fn full() -> Scale {
        Scale {
            quick: false,
            backup_db_bytes: 256 << 20,
            memory_db_bytes: 1 << 30,
            reps: 7,
            commit_window: Duration::from_millis(2000),
            latency_window: Duration::from_millis(4000),
            latency_writers: 8,
            restore_txns: 80_000,
            roundtrips: 40_000,
            stop_db_bytes: 32 << 20,
            idle_instances: 100,
            batch_reps: 41,
            stream_table_bytes: 1 << 30,
            bulk_keys: 1_000_000,
        }
    }
    /// `Scale::quick()` when `ESE_BENCH_QUICK` is set to anything but `0` or empty.
    pub fn from_env() -> Scale {
        match std::env::var("ESE_BENCH_QUICK") {
            Ok(v) if !v.is_empty() && v != "0" => Scale::quick(),
            _ => Scale::full(),
        }
    }
}

/// Median of a sample (0 for an empty one).
pub fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// The `p`-th percentile (nearest rank) of a sample (0 for an empty one).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Resident memory of this process, from `/proc/self/statm` (4 KiB pages); 0 if unavailable.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// CPU time this process has used, in seconds: `CLOCK_PROCESS_CPUTIME_ID`, every thread's
/// on-CPU time to the nanosecond, threads that have ended included (a runtime's blocking
/// thread that retires inside a measured span keeps its time in the sum). `None` where the
/// clock reads zero.
pub fn cpu_secs() -> Option<f64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    let secs = t.tv_sec as f64 + t.tv_nsec as f64 / 1e9;
    (secs > 0.0).then_some(secs)
}

/// Key of row `i` of a filled table: 16 bytes.
pub fn row_key(i: u64) -> [u8; 16] {
    let mut k = *b"r000000000000000";
    let s = format!("{i:015}");
    k[1..].copy_from_slice(s.as_bytes());
    k
}

/// A value of `len` bytes that varies with `i` (not all-equal, not compressible by accident).
pub fn row_value(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The log file size of [`bench_params`] (`InstanceParams::new`'s default).
pub const BENCH_LOG_FILE: u64 = 5 << 20;

/// Instance parameters the benchmarks use: the defaults of `InstanceParams::new` (8 KiB
/// pages, 5 MiB log files, 64 MiB cache).
pub fn bench_params(dir: &Path) -> InstanceParams {
    InstanceParams::new(dir)
}

/// A database filled by [`fill_database`], attached to a freshly initialised instance.
#[derive(Debug)]
pub struct Filled {
    /// The instance (re-initialised after the fill, so every page is in the file).
    pub inst: Instance,
    /// The database.
    pub db: DbId,
    /// Its table `t`.
    pub table: TableId,
    /// Its file.
    pub path: PathBuf,
    /// Rows in table `t`.
    pub rows: u64,
    /// File size in bytes.
    pub file_bytes: u64,
    /// Seconds the fill took (inserts, term, init, attach).
    pub seconds: f64,
}

/// Value length of the rows [`fill_database`] writes.
pub const FILL_VALUE: usize = 1000;

/// File bytes one filled row takes, measured: 16 + 1000 bytes of row in leaves that
/// sequential inserts leave about half full (66,052 rows made a 129.7 MiB file).
pub const FILL_ROW_FOOTPRINT: u64 = 2060;

/// Creates instance `name` in `dir`, a database `dir/<name>.edb` with table `t`, fills it with
/// 16-byte keys and 1000-byte values until the file is about `bytes` (see
/// [`FILL_ROW_FOOTPRINT`]; [`Filled::file_bytes`] has the real size) (lazy commits, 1,000
/// rows per transaction, one durable commit at the end), then terms the instance cleanly and
/// attaches the database to a new instance of the same name, so the file holds every page.
pub async fn fill_database(engine: &Engine, name: &str, dir: &Path, bytes: u64) -> Result<Filled> {
    let t0 = Instant::now();
    let path = dir.join(format!("{name}.edb"));
    let inst = engine.create_instance(name, bench_params(dir)).await?;
    inst.init().await?;
    let db = inst.create_database(&path).await?;
    let rows = bytes / FILL_ROW_FOOTPRINT;
    {
        let t = inst.create_table(db, "t").await?;
        let mut s = inst.begin_session().await?;
        let mut i = 0;
        while i < rows {
            let mut tx = s.transaction().await?;
            let end = (i + 1000).min(rows);
            while i < end {
                tx.put(t, &row_key(i), &row_value(i, FILL_VALUE)).await?;
                i += 1;
            }
            let d = if i == rows {
                Commit::Durable
            } else {
                Commit::Lazy
            };
            tx.commit(d).await?;
        }
    }
    inst.term(Term::empty()).await?;
    let inst = engine.create_instance(name, bench_params(dir)).await?;
    inst.init().await?;
    let db = inst.attach_database(&path).await?;
    let table = inst.open_table(db, "t").await?;
    let file_bytes = std::fs::metadata(&path).map_err(Error::from_io)?.len();
    Ok(Filled {
        inst,
        db,
        table,
        path,
        rows,
        file_bytes,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// One full backup stream of a database file.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    /// Bytes streamed.
    pub bytes: u64,
    /// Seconds from `open_file` to the empty read that ends the file.
    pub seconds: f64,
    /// Seconds of each `read_file` call.
    pub chunk_secs: Vec<f64>,
}

impl Stream {
    /// MiB per second.
    pub fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.seconds.max(1e-9)
    }
}

/// A full external backup of one database through the actor: `begin_external_backup`
/// (full), `open_file`, `read_file(f, chunk)` until the end (every page verified by the
/// engine), `close_file`, then `end_external_backup(ABORT)` (the stream is the measured
/// part; a normal end would also want the log phase). `stop` ends the stream early (between
/// chunks) when set.
pub async fn stream_backup(
    inst: &Instance,
    db_path: &Path,
    chunk: usize,
    stop: Option<&AtomicBool>,
) -> Result<Stream> {
    inst.begin_external_backup(BackupBegin::empty()).await?;
    let res = stream_open_file(inst, db_path, chunk, stop).await;
    let end = inst.end_external_backup(BackupEnd::ABORT).await;
    let s = res?;
    end?;
    Ok(s)
}

async fn stream_open_file(
    inst: &Instance,
    path: &Path,
    chunk: usize,
    stop: Option<&AtomicBool>,
) -> Result<Stream> {
    let t0 = Instant::now();
    let (f, _size) = inst.open_file(path).await?;
    let mut s = Stream::default();
    loop {
        if stop.is_some_and(|x| x.load(Ordering::Relaxed)) {
            break;
        }
        let c0 = Instant::now();
        let b = inst.read_file(f, chunk).await?;
        s.chunk_secs.push(c0.elapsed().as_secs_f64());
        if b.is_empty() {
            break;
        }
        s.bytes += b.len() as u64;
    }
    s.seconds = t0.elapsed().as_secs_f64();
    inst.close_file(f).await?;
    Ok(s)
}

/// Raw sequential read of a file with `std::fs`, `chunk` bytes per read (into one reused
/// buffer): bytes and seconds. Call it once first to warm the page cache.
pub fn raw_read(path: &Path, chunk: usize) -> Result<(u64, f64)> {
    use std::io::Read;
    let t0 = Instant::now();
    let mut f = std::fs::File::open(path).map_err(Error::from_io)?;
    let mut buf = vec![0u8; chunk];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(Error::from_io)?;
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    std::hint::black_box(&buf);
    Ok((n, t0.elapsed().as_secs_f64()))
}

/// A commit-rate measurement.
#[derive(Clone, Debug, Default)]
pub struct CommitRun {
    /// Concurrent sessions.
    pub sessions: usize,
    /// Commits acknowledged inside the window.
    pub commits: u64,
    /// Window length in seconds.
    pub seconds: f64,
    /// Latency of each commit (transaction + put + commit), seconds.
    pub latencies: Vec<f64>,
    /// Log fsyncs and log batches during the window (from `Instance::stats`).
    pub fsyncs: u64,
    /// Log write batches during the window.
    pub batches: u64,
    /// Log bytes appended during the window (from `Instance::stats`).
    pub log_bytes: u64,
}

impl CommitRun {
    /// Commits per second.
    pub fn rate(&self) -> f64 {
        self.commits as f64 / self.seconds.max(1e-9)
    }
    /// Log fsyncs per commit.
    pub fn fsyncs_per_commit(&self) -> f64 {
        self.fsyncs as f64 / (self.commits.max(1)) as f64
    }
}

/// Key size and value size of the commit workloads (the peers use the same).
pub const COMMIT_KEY: usize = 16;
/// Value size of the commit workloads.
pub const COMMIT_VALUE: usize = 100;

/// The 16-byte key of commit `j` of writer `w` in run `run`.
pub fn commit_key(run: u32, w: u32, j: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&run.to_be_bytes());
    k[4..8].copy_from_slice(&w.to_be_bytes());
    k[8..].copy_from_slice(&j.to_be_bytes());
    k
}

static RUN_ID: AtomicU64 = AtomicU64::new(1);

/// `sessions` tokio tasks, each with its own session, commit in a loop for `window`: one
/// transaction = `Session::transaction`, one put (16-byte key, 100-byte value), `commit(d)`.
/// Every task starts together (barrier); commits acknowledged inside the window count.
pub async fn commit_run(
    inst: &Instance,
    table: TableId,
    sessions: usize,
    window: Duration,
    durability: Commit,
) -> Result<CommitRun> {
    let run = RUN_ID.fetch_add(1, Ordering::Relaxed) as u32;
    let barrier = Arc::new(tokio::sync::Barrier::new(sessions + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..sessions {
        let (inst, barrier, stop) = (inst.clone(), barrier.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = inst.begin_session().await?;
            let value = row_value(w as u64, COMMIT_VALUE);
            let mut lat = Vec::with_capacity(4096);
            barrier.wait().await;
            let mut j = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let mut tx = s.transaction().await?;
                tx.put(table, &commit_key(run, w as u32, j), &value).await?;
                tx.commit(durability).await?;
                if !stop.load(Ordering::Relaxed) {
                    lat.push(t.elapsed().as_secs_f64());
                }
                j += 1;
            }
            Ok::<_, Error>(lat)
        }));
    }
    let before = inst.stats().await?;
    barrier.wait().await;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let after = inst.stats().await?;
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.map_err(|_| Error::InternalError)??);
    }
    Ok(CommitRun {
        sessions,
        commits: latencies.len() as u64,
        seconds,
        latencies,
        fsyncs: after.log_fsyncs - before.log_fsyncs,
        batches: after.log_batches - before.log_batches,
        log_bytes: after.log_bytes - before.log_bytes,
    })
}

/// The raw baseline of a durable commit: `bytes` written at the next offset of a
/// preallocated file (zeros to `file_size`, synced, as the engine's log files are; wrapping
/// to the start at its end) with one `write_at` and one `fdatasync` per commit, for
/// `window`, on a thread of its own (the engine's log writer is a thread too): commits per
/// second. Preallocated, the fdatasync writes no file metadata, as the engine's does not.
pub fn raw_append_rate(path: &Path, bytes: usize, file_size: u64, window: Duration) -> Result<f64> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).map_err(Error::from_io)?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < file_size {
        let n = (file_size - at).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], at).map_err(Error::from_io)?;
        at += n as u64;
    }
    f.sync_all().map_err(Error::from_io)?;
    let rec = row_value(7, bytes.max(1));
    let t0 = Instant::now();
    let (mut at, mut n) = (0u64, 0u64);
    while t0.elapsed() < window {
        if at + rec.len() as u64 > file_size {
            at = 0;
        }
        f.write_all_at(&rec, at).map_err(Error::from_io)?;
        f.sync_data().map_err(Error::from_io)?;
        at += rec.len() as u64;
        n += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(path);
    Ok(n as f64 / secs)
}

/// Key `i` of the bulk load: 16 bytes in a random order (SplitMix64 of `i`, twice), so
/// inserts land all over the tree as they do in the peers' bulk-load benchmarks.
pub fn random_key(i: u64) -> [u8; 16] {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&mix(i).to_be_bytes());
    k[8..].copy_from_slice(&mix(i ^ 0xA5A5_A5A5).to_be_bytes());
    k
}

/// Value length of the bulk load.
pub const BULK_VALUE: usize = 200;
/// Puts per transaction of the bulk load.
pub const BULK_TXN: u64 = 100;

/// A bulk load: how long it took, and its first and last tenth.
#[derive(Clone, Debug, Default)]
pub struct BulkRun {
    /// Keys put.
    pub keys: u64,
    /// Seconds of the whole load.
    pub seconds: f64,
    /// Puts per second over the first tenth of the keys.
    pub first_tenth: f64,
    /// Puts per second over the last tenth of the keys.
    pub last_tenth: f64,
}

impl BulkRun {
    /// Puts per second over the whole load.
    pub fn rate(&self) -> f64 {
        self.keys as f64 / self.seconds
    }
}

/// The clock of a bulk load: the whole load, its first tenth and its last tenth of the keys.
/// Ours and the peers run the same loop: `for` each transaction of keys `i..i + n`,
/// [`BulkClock::before`], the puts and the commit, [`BulkClock::after`].
pub struct BulkClock {
    keys: u64,
    tenth: u64,
    t0: Instant,
    first_tenth: f64,
    last_start: f64,
}

impl BulkClock {
    /// Starts the clock of a load of `keys` keys.
    pub fn start(keys: u64) -> BulkClock {
        BulkClock {
            keys,
            tenth: (keys / 10).max(1),
            t0: Instant::now(),
            first_tenth: 0.0,
            last_start: 0.0,
        }
    }

    /// The next transaction puts keys `i..i + n`: the last tenth's clock starts with the
    /// transaction that holds its first key.
    pub fn before(&mut self, i: u64, n: u64) {
        let from = self.keys - self.tenth;
        if (i..i + n).contains(&from) {
            self.last_start = self.t0.elapsed().as_secs_f64();
        }
    }

    /// Keys `..done` are committed.
    pub fn after(&mut self, done: u64) {
        if self.first_tenth == 0.0 && done >= self.tenth {
            self.first_tenth = done as f64 / self.t0.elapsed().as_secs_f64();
        }
    }

    /// The load is done.
    pub fn finish(self) -> BulkRun {
        let seconds = self.t0.elapsed().as_secs_f64();
        BulkRun {
            keys: self.keys,
            seconds,
            first_tenth: self.first_tenth,
            last_tenth: self.tenth as f64 / (seconds - self.last_start).max(1e-9),
        }
    }
}

/// Ours: a fresh instance in `dir`, one table, `keys` random keys ([`random_key`]) with
/// [`BULK_VALUE`]-byte values, [`BULK_TXN`] puts per lazy transaction through one session.
pub async fn bulk_load(engine: &Engine, dir: &Path, keys: u64) -> Result<BulkRun> {
    let inst = engine.create_instance("bulk", bench_params(dir)).await?;
    inst.init().await?;
    let db = inst.create_database(dir.join("bulk.edb")).await?;
    let t = inst.create_table(db, "t").await?;
    let mut s = inst.begin_session().await?;
    let mut clock = BulkClock::start(keys);
    let mut i = 0;
    while i < keys {
        let n = BULK_TXN.min(keys - i);
        clock.before(i, n);
        let mut tx = s.transaction().await?;
        for j in i..i + n {
            tx.put(t, &random_key(j), &row_value(j, BULK_VALUE)).await?;
        }
        tx.commit(Commit::Lazy).await?;
        i += n;
        clock.after(i);
    }
    let run = clock.finish();
    drop(s);
    inst.term(Term::empty()).await?;
    Ok(run)
}

/// p99 commit latency of `writers` durable committers with and without a full backup
/// streaming at full speed (1 MiB chunks, one backup after another) on the same instance.
#[derive(Clone, Debug, Default)]
pub struct LatencyRun {
    /// Commits without a backup.
    pub quiet: CommitRun,
    /// Commits while backups stream.
    pub loaded: CommitRun,
    /// Bytes the backups streamed during `loaded`.
    pub backup_bytes: u64,
}

/// Runs the quiet window, then the loaded window (see [`LatencyRun`]).
pub async fn latency_under_backup(
    f: &Filled,
    table: TableId,
    writers: usize,
    window: Duration,
) -> Result<LatencyRun> {
    let quiet = commit_run(&f.inst, table, writers, window, Commit::Durable).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let backup = {
        let (inst, path, stop) = (f.inst.clone(), f.path.clone(), stop.clone());
        tokio::spawn(async move {
            let mut bytes = 0;
            while !stop.load(Ordering::Relaxed) {
                bytes += stream_backup(&inst, &path, 1 << 20, Some(&stop))
                    .await?
                    .bytes;
            }
            Ok::<_, Error>(bytes)
        })
    };
    // Let the first stream start before the window opens.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let loaded = commit_run(&f.inst, table, writers, window, Commit::Durable).await;
    stop.store(true, Ordering::Relaxed);
    let backup_bytes = backup.await.map_err(|_| Error::InternalError)??;
    Ok(LatencyRun {
        quiet,
        loaded: loaded?,
        backup_bytes,
    })
}

/// What the restore figure measured.
#[derive(Clone, Debug)]
pub struct RestoreRun {
    /// Lazy transactions of the workload.
    pub txns: usize,
    /// Wall time of the workload.
    pub workload_secs: f64,
    /// Log bytes the workload's incremental backup holds (what it produced).
    pub workload_log_bytes: u64,
    /// The replay, as `restore_backup_chain` reports it.
    pub replay: RestoreReport,
    /// Wall time of the whole `restore_backup_chain` call (verify sets, copy, replay).
    pub chain_secs: f64,
}

/// Restore workload: an instance with a fresh database takes a full backup
/// (`backup_to_dir`), then 8 sessions run `txns` lazy transactions (4 puts of 16-byte keys
/// and 100-byte values each) — timed — and one durable commit; an incremental backup
/// collects the logs; `restore_backup_chain` replays them into `dir/target`.
pub async fn restore_run(engine: &Engine, dir: &Path, txns: usize) -> Result<RestoreRun> {
    let src = dir.join("src");
    let inst = engine
        .create_instance("bench-restore", bench_params(&src))
        .await?;
    inst.init().await?;
    let db = inst.create_database(src.join("restore.edb")).await?;
    let t = inst.create_table(db, "t").await?;
    let full = dir.join("full");
    inst.backup_to_dir(&full, BackupKind::Full).await?;
    let sessions = 8;
    let per = txns.div_ceil(sessions);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..sessions {
        let inst = inst.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = inst.begin_session().await?;
            for j in 0..per as u64 {
                let mut tx = s.transaction().await?;
                for r in 0..4u64 {
                    let i = j * 4 + r;
                    tx.put(t, &commit_key(0, w as u32, i), &row_value(i, 100))
                        .await?;
                }
                tx.commit(Commit::Lazy).await?;
            }
            let mut tx = s.transaction().await?;
            // Each session its own key: concurrent writers of one key conflict (-1102).
            tx.put(t, &commit_key(1, w as u32, 0), b"x").await?;
            tx.commit(Commit::Durable).await?;
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|_| Error::InternalError)??;
    }
    let workload_secs = t0.elapsed().as_secs_f64();
    let incr = dir.join("incr");
    let m = inst.backup_to_dir(&incr, BackupKind::Incremental).await?;
    let workload_log_bytes = m.logs.iter().map(|l| l.size).sum();
    inst.term(Term::empty()).await?;
    let t1 = Instant::now();
    let chain = restore_backup_chain(engine, &[full, incr], dir.join("target")).await?;
    Ok(RestoreRun {
        txns: per * sessions,
        workload_secs,
        workload_log_bytes,
        replay: chain.restore,
        chain_secs: t1.elapsed().as_secs_f64(),
    })
}

/// `clients` tasks, each with its own session, call `Session::get` of one cached key `n`
/// times each: round trips per second (all clients together). The key is put into `table`
/// (table `t`, which [`fill_database`] creates) first.
pub async fn get_roundtrips(
    inst: &Instance,
    table: TableId,
    clients: usize,
    n: usize,
) -> Result<f64> {
    {
        let s = inst.begin_session().await?;
        s.put(table, b"cached-key-00001", &row_value(7, COMMIT_VALUE))
            .await?;
        s.get(table, b"cached-key-00001").await?;
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (inst, barrier) = (inst.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let s = inst.begin_session().await?;
            barrier.wait().await;
            for _ in 0..n {
                let v = s.get(table, b"cached-key-00001").await?;
                std::hint::black_box(v);
            }
            Ok::<_, Error>(())
        }));
    }
    barrier.wait().await;
    let t0 = Instant::now();
    for t in tasks {
        t.await.map_err(|_| Error::InternalError)??;
    }
    Ok((clients * n) as f64 / t0.elapsed().as_secs_f64())
}

/// The baseline of the actor-overhead figure: one echo task behind a bounded tokio mpsc
/// (depth 1024, like the instance mailbox); each request carries a 16-byte key and a oneshot
/// sender, the task answers with a `Bytes` value. `clients` tasks make `n` round trips each:
/// round trips per second.
pub async fn echo_roundtrips(clients: usize, n: usize) -> f64 {
    type Req = (Vec<u8>, oneshot::Sender<Option<Bytes>>);
    let (tx, mut rx) = mpsc::channel::<Req>(1024);
    let value = Bytes::from(row_value(7, COMMIT_VALUE));
    let server = tokio::spawn(async move {
        while let Some((key, reply)) = rx.recv().await {
            let _ = reply.send((key.len() == 16).then(|| value.clone()));
        }
    });
    let barrier = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (tx, barrier) = (tx.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for _ in 0..n {
                let (otx, orx) = oneshot::channel();
                if tx.send((b"cached-key-00001".to_vec(), otx)).await.is_err() {
                    return;
                }
                std::hint::black_box(orx.await.ok());
            }
        }));
    }
    drop(tx);
    barrier.wait().await;
    let t0 = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let rate = (clients * n) as f64 / t0.elapsed().as_secs_f64();
    let _ = server.await;
    rate
}

/// What one stop-latency run measured.
#[derive(Clone, Debug, Default)]
pub struct StopRun {
    /// Clients: one backup reader and the rest durable committers.
    pub clients: usize,
    /// Median `read_file` time of the reader under load before the stop, seconds.
    pub median_chunk_secs: f64,
    /// Time from sending `stop_service` to its answer, seconds.
    pub answer_secs: f64,
    /// Time from sending `stop_service` until the last client had its error, seconds.
    pub all_clients_secs: f64,
    /// Clients whose first error was -1329 (`ClientRequestToStopJetService`).
    pub clients_1329: usize,
    /// Other first errors, as (code, count).
    pub other_errors: Vec<(i32, usize)>,
}

impl StopRun {
    /// `max(answer, last client)` over the median chunk time.
    pub fn ratio(&self) -> f64 {
        self.answer_secs.max(self.all_clients_secs) / self.median_chunk_secs.max(1e-9)
    }
}

/// Stop latency under load. One instance can have one backup, so the 64 clients are one
/// backup reader streaming the database in 1 MiB chunks (backup after backup) and 63
/// sessions committing durably in a loop. After `warmup`, `stop_service` is sent; the run
/// records when it is answered and when each client gets its first error (every later call
/// must fail with -1329). The instance is termed at the end.
pub async fn stop_latency(f: Filled, clients: usize, warmup: Duration) -> Result<StopRun> {
    let committers = clients.saturating_sub(1);
    let stopped = Arc::new(AtomicBool::new(false));
    type Out = (Option<(Instant, i32)>, Vec<f64>);
    let mut tasks: Vec<tokio::task::JoinHandle<Out>> = Vec::new();
    {
        let (inst, path, stopped) = (f.inst.clone(), f.path.clone(), stopped.clone());
        tasks.push(tokio::spawn(async move {
            let mut chunks = Vec::new();
            let e = reader_loop(&inst, &path, &stopped, &mut chunks).await;
            (Some((Instant::now(), e.code())), chunks)
        }));
    }
    let run = RUN_ID.fetch_add(1, Ordering::Relaxed) as u32;
    for w in 0..committers {
        let (inst, table) = (f.inst.clone(), f.table);
        tasks.push(tokio::spawn(async move {
            let mut s = match inst.begin_session().await {
                Ok(s) => s,
                Err(e) => return (Some((Instant::now(), e.code())), vec![]),
            };
            let value = row_value(w as u64, COMMIT_VALUE);
            let mut j = 0u64;
            loop {
                let r = async {
                    let mut tx = s.transaction().await?;
                    tx.put(table, &commit_key(run, w as u32, j), &value).await?;
                    tx.commit(Commit::Durable).await
                }
                .await;
                if let Err(e) = r {
                    return (Some((Instant::now(), e.code())), vec![]);
                }
                j += 1;
            }
        }));
    }
    tokio::time::sleep(warmup).await;
    let t0 = Instant::now();
    stopped.store(true, Ordering::Relaxed);
    let answer = f.inst.stop_service().await;
    let answer_secs = t0.elapsed().as_secs_f64();
    answer?;
    let mut out = StopRun {
        clients,
        answer_secs,
        ..StopRun::default()
    };
    let mut chunks = Vec::new();
    for t in tasks {
        let (first, c) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .map_err(|_| Error::InternalError)?
            .map_err(|_| Error::InternalError)?;
        chunks.extend(c);
        if let Some((at, code)) = first {
            out.all_clients_secs = out
                .all_clients_secs
                .max(at.saturating_duration_since(t0).as_secs_f64());
            if code == Error::ClientRequestToStopJetService.code() {
                out.clients_1329 += 1;
            } else if let Some(e) = out.other_errors.iter_mut().find(|e| e.0 == code) {
                e.1 += 1;
            } else {
                out.other_errors.push((code, 1));
            }
        }
    }
    out.median_chunk_secs = median(&chunks);
    let _ = f.inst.term(Term::STOP_BACKUP).await;
    Ok(out)
}

/// Streams backup after backup until a call fails; records each chunk's time while `stopped`
/// is not yet set. Returns the first error.
async fn reader_loop(
    inst: &Instance,
    path: &Path,
    stopped: &AtomicBool,
    chunks: &mut Vec<f64>,
) -> Error {
    loop {
        let r: Result<()> = async {
            inst.begin_external_backup(BackupBegin::empty()).await?;
            let (f, _) = inst.open_file(path).await?;
            loop {
                let c0 = Instant::now();
                let b = inst.read_file(f, 1 << 20).await?;
                if !stopped.load(Ordering::Relaxed) {
                    chunks.push(c0.elapsed().as_secs_f64());
                }
                if b.is_empty() {
                    break;
                }
            }
            inst.close_file(f).await?;
            inst.end_external_backup(BackupEnd::ABORT).await
        }
        .await;
        if let Err(e) = r {
            return e;
        }
    }
}

/// Peak growth of resident memory (sampled every 2 ms from `/proc/self/statm`) while one
/// full backup of `f` streams (1 MiB chunks): (growth in bytes, the peak growth of live heap
/// bytes where the binary counts them ([`crate::heap`]), the stream).
pub async fn backup_rss_growth(f: &Filled) -> Result<(u64, Option<u64>, Stream)> {
    let heap_base = crate::heap::reset_peak();
    let base = rss_bytes();
    let peak = Arc::new(AtomicU64::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let s = stream_backup(&f.inst, &f.path, 1 << 20, None).await;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
    let heap = heap_base.and_then(|b| Some(crate::heap::peak()?.saturating_sub(b)));
    Ok((peak.load(Ordering::Relaxed).saturating_sub(base), heap, s?))
}

/// Resident memory per idle initialised instance: `n` instances (4 KiB pages, 64-page cache,
/// 128 KiB log files) created and initialised in `dir`, RSS delta / `n`, then all termed.
pub async fn idle_instance_rss(engine: &Engine, dir: &Path, n: usize) -> Result<f64> {
    let base = rss_bytes();
    let mut insts = Vec::with_capacity(n);
    for i in 0..n {
        let p = InstanceParams::new(dir.join(format!("i{i}")))
            .page_size(4096)
            .cache_pages(64)
            .log_file_size(128 << 10);
        let inst = engine.create_instance(&format!("idle-{i}"), p).await?;
        inst.init().await?;
        insts.push(inst);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let grown = rss_bytes().saturating_sub(base);
    for i in insts {
        i.term(Term::empty()).await?;
    }
    Ok(grown as f64 / n as f64)
}

/// Bytes in MiB.
pub fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}
