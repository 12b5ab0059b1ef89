//! The workloads of the host API's figures (issue 13): a [`WriteBatch`] committed with one
//! message against the same rows put one call at a time in a transaction
//! ([`batch_vs_puts`]), and the resident memory of [`Instance::stream`] over a table far
//! larger than the cache ([`stream_memory`]).
//!
//! Like [`crate::workloads`], everything goes through the public actor API on real files with
//! real fsyncs, and needs a multi-thread tokio runtime.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ese_actors::{Commit, Engine, Error, Instance, KeyRange, Result, TableId, Term, WriteBatch};

use crate::workloads::{bench_params, commit_key, median, row_key, row_value, rss_bytes};
use crate::workloads::{COMMIT_KEY, COMMIT_VALUE};

/// Rows of one repetition of [`batch_vs_puts`].
pub const BATCH_ROWS: usize = 1000;

/// What [`batch_vs_puts`] measured: rows per second of each repetition.
#[derive(Clone, Debug, Default)]
pub struct BatchRun {
    /// One `WriteBatch` of [`BATCH_ROWS`] rows through `Instance::write(_, Commit::Durable)`.
    pub batch: Vec<f64>,
    /// [`BATCH_ROWS`] `tx.put` calls in one `Instance::transaction`, `commit(Commit::Durable)`.
    pub puts: Vec<f64>,
}

impl BatchRun {
    /// Median rows/s of the batches.
    pub fn batch_rate(&self) -> f64 {
        median(&self.batch)
    }
    /// Median rows/s of the transactions of single puts.
    pub fn puts_rate(&self) -> f64 {
        median(&self.puts)
    }
    /// Median over the repetitions of batch rows/s over puts rows/s, each pair measured back
    /// to back.
    pub fn pair_ratio(&self) -> f64 {
        let r: Vec<f64> = self
            .batch
            .iter()
            .zip(&self.puts)
            .map(|(b, p)| b / p.max(1e-9))
            .collect();
        median(&r)
    }
}

/// `reps` pairs, interleaved (the order flips each repetition so that neither side always
/// follows the other): [`BATCH_ROWS`] rows of 16-byte keys and 100-byte values, fresh keys
/// every time, committed durably (a) as one [`WriteBatch`] with `Instance::write` — one
/// message; the clock includes building the batch — and (b) as [`BATCH_ROWS`] `tx.put` calls
/// in one `Instance::transaction`, then `commit(Commit::Durable)`. The instance is created in
/// `dir` (a database with table `wb`) and termed at the end.
pub async fn batch_vs_puts(engine: &Engine, dir: &Path, reps: usize) -> Result<BatchRun> {
    let inst = engine
        .create_instance("bench-batch", bench_params(dir))
        .await?;
    inst.init().await?;
    let db = inst.create_database(dir.join("batch.edb")).await?;
    let t = inst.ensure_table(db, "wb").await?;
    let value = row_value(13, COMMIT_VALUE);
    let mut out = BatchRun::default();
    let res = async {
        // One of each first, unmeasured: the table's first pages, the log's first files.
        one_batch(&inst, t, 0, &value).await?;
        one_transaction(&inst, t, 1, &value).await?;
        for r in 0..reps as u32 {
            let (b, p) = (2 + 2 * r, 3 + 2 * r);
            if r % 2 == 0 {
                out.batch.push(one_batch(&inst, t, b, &value).await?);
                out.puts.push(one_transaction(&inst, t, p, &value).await?);
            } else {
                out.puts.push(one_transaction(&inst, t, p, &value).await?);
                out.batch.push(one_batch(&inst, t, b, &value).await?);
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    let term = inst.term(Term::empty()).await;
    res?;
    term?;
    Ok(out)
}

/// One durable `WriteBatch` of [`BATCH_ROWS`] fresh rows (keys of run `run`): rows/s.
async fn one_batch(inst: &Instance, t: TableId, run: u32, value: &[u8]) -> Result<f64> {
    let t0 = Instant::now();
    let mut batch = WriteBatch::with_capacity(BATCH_ROWS);
    for j in 0..BATCH_ROWS as u64 {
        batch.put(t, &commit_key(run, 0, j), value);
    }
    inst.write(batch, Commit::Durable).await?;
    Ok(BATCH_ROWS as f64 / t0.elapsed().as_secs_f64())
}

/// One transaction of [`BATCH_ROWS`] `tx.put` calls (keys of run `run`), durable: rows/s.
async fn one_transaction(inst: &Instance, t: TableId, run: u32, value: &[u8]) -> Result<f64> {
    let t0 = Instant::now();
    let mut tx = inst.transaction().await?;
    for j in 0..BATCH_ROWS as u64 {
        tx.put(t, &commit_key(run, 0, j), value).await?;
    }
    tx.commit(Commit::Durable).await?;
    Ok(BATCH_ROWS as f64 / t0.elapsed().as_secs_f64())
}

/// Value length of the rows of the streamed table.
pub const STREAM_VALUE: usize = 64 << 10;

/// Cache of the instance that streams the table, in pages (8 KiB): 8 MiB, so that the table
/// is many times the cache.
pub const STREAM_CACHE_PAGES: usize = 1024;

/// Rows of the bounded prefix that [`stream_memory`] collects with `Instance::scan`, for
/// contrast: 512 rows of 64 KiB, 32 MiB of values.
pub const SCAN_PREFIX_ROWS: usize = 512;

/// One pass over the table with `Instance::stream`.
#[derive(Clone, Debug, Default)]
pub struct StreamPass {
    /// Rows streamed.
    pub rows: u64,
    /// Bytes of values streamed.
    pub bytes: u64,
    /// Seconds from `Instance::stream` to the end of the stream.
    pub seconds: f64,
    /// Peak resident memory growth over the value just before the pass, bytes.
    pub rss_growth: u64,
    /// Peak growth of the bytes live on the heap over the value just before the pass;
    /// `None` in a binary without the counting allocator ([`crate::heap`]).
    pub heap_growth: Option<u64>,
}

impl StreamPass {
    /// MiB of values per second.
    pub fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.seconds.max(1e-9)
    }
}

/// What [`stream_memory`] measured.
#[derive(Clone, Debug, Default)]
pub struct StreamMemory {
    /// Rows of the table.
    pub rows: u64,
    /// Seconds the load took (batches, the durable flush, term, init, attach).
    pub load_secs: f64,
    /// Size of the database file, bytes.
    pub file_bytes: u64,
    /// The first pass, cold: the cache fills up to its capacity during it.
    pub cold: StreamPass,
    /// The measured pass, with the cache at its capacity.
    pub warm: StreamPass,
    /// Peak resident memory growth of `Instance::scan(KeyRange::all().limit(N))` collecting
    /// [`SCAN_PREFIX_ROWS`] rows, held until the sample, bytes.
    pub scan_prefix_growth: u64,
    /// Bytes of values that scan collected.
    pub scan_prefix_bytes: u64,
}

/// Streaming scan memory. Loads a table of `bytes / 64 KiB` rows (16-byte keys, 64 KiB
/// values) into a database in `dir` with `WriteBatch`es of 32 rows (2 MiB) committed lazily,
/// the last one durably; terms the instance and attaches the database to a new one with a
/// cache of [`STREAM_CACHE_PAGES`] pages. Then streams every row with `Instance::stream` and
/// `KeyRange::all()` twice — a cold pass that also fills the cache, then the measured pass —
/// each time sampling the process's resident memory every millisecond (`/proc/self/statm`,
/// and `VmHWM` of `/proc/self/status` after resetting it through `/proc/self/clear_refs`
/// where the kernel allows) against the value just before, the allocator's free memory
/// handed back to the kernel first ([`HEAP_TRIM`]). Last, for contrast, collects a
/// bounded prefix with `Instance::scan(KeyRange::all().limit(SCAN_PREFIX_ROWS))`. The instance
/// is termed at the end.
pub async fn stream_memory(engine: &Engine, dir: &Path, bytes: u64) -> Result<StreamMemory> {
    let t0 = Instant::now();
    let path = dir.join("stream.edb");
    let rows = (bytes / STREAM_VALUE as u64).max(1);
    {
        let inst = engine
            .create_instance("bench-stream", bench_params(dir))
            .await?;
        inst.init().await?;
        let db = inst.create_database(&path).await?;
        let t = inst.ensure_table(db, "s").await?;
        let per_batch = 32u64;
        let mut i = 0;
        while i < rows {
            let end = (i + per_batch).min(rows);
            let mut batch = WriteBatch::with_capacity((end - i) as usize);
            while i < end {
                batch.put(t, &row_key(i), &row_value(i, STREAM_VALUE));
                i += 1;
            }
            let d = if i == rows {
                Commit::Durable
            } else {
                Commit::Lazy
            };
            inst.write(batch, d).await?;
        }
        inst.term(Term::empty()).await?;
    }
    let inst = engine
        .create_instance(
            "bench-stream",
            bench_params(dir).cache_pages(STREAM_CACHE_PAGES),
        )
        .await?;
    inst.init().await?;
    let res = async {
        let db = inst.attach_database(&path).await?;
        let t = inst.open_table(db, "s").await?;
        let load_secs = t0.elapsed().as_secs_f64();
        let file_bytes = std::fs::metadata(&path).map_err(Error::from_io)?.len();
        let cold = stream_pass(&inst, t).await?;
        let warm = stream_pass(&inst, t).await?;
        let sampler = Sampler::start();
        let prefix = inst
            .scan(t, KeyRange::all().limit(SCAN_PREFIX_ROWS))
            .await?;
        let scan_prefix_growth = sampler.stop();
        let scan_prefix_bytes = prefix.iter().map(|(_, v)| v.len() as u64).sum();
        drop(prefix);
        Ok::<_, Error>(StreamMemory {
            rows,
            load_secs,
            file_bytes,
            cold,
            warm,
            scan_prefix_growth,
            scan_prefix_bytes,
        })
    }
    .await;
    let term = inst.term(Term::empty()).await;
    let m = res?;
    term?;
    Ok(m)
}

/// Streams every row of `t`, consuming each (its value's length counted, the row dropped),
/// with the resident memory sampled.
async fn stream_pass(inst: &Instance, t: TableId) -> Result<StreamPass> {
    let heap_base = crate::heap::reset_peak();
    let sampler = Sampler::start();
    let t0 = Instant::now();
    let mut pass = StreamPass::default();
    let res = async {
        let mut s = inst.stream(t, KeyRange::all()).await?;
        while let Some(row) = s.next().await {
            let (k, v) = row?;
            debug_assert_eq!(k.len(), COMMIT_KEY);
            pass.rows += 1;
            pass.bytes += v.len() as u64;
        }
        Ok::<_, Error>(())
    }
    .await;
    pass.seconds = t0.elapsed().as_secs_f64();
    pass.rss_growth = sampler.stop();
    pass.heap_growth = heap_base.and_then(|b| Some(crate::heap::peak()?.saturating_sub(b)));
    res?;
    Ok(pass)
}

/// `VmHWM` of `/proc/self/status` (peak resident memory), bytes; `None` if unavailable.
fn vm_hwm() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Hands the allocator's free memory back to the kernel (glibc's `malloc_trim(0)`, every
/// arena), so that what the measured code allocates shows as resident growth instead of
/// reusing pages earlier work freed but the allocator kept; a no-op elsewhere
/// ([`HEAP_TRIM`]).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: glibc's `int malloc_trim(size_t pad)`: no pointer, no precondition.
        unsafe { malloc_trim(0) };
    }
}

/// Whether [`trim_heap`] does anything on this target (glibc).
pub const HEAP_TRIM: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// Peak resident memory growth over the value at [`Sampler::start`]: the heap is trimmed
/// first ([`trim_heap`]); a thread samples `/proc/self/statm` every millisecond; where
/// `/proc/self/clear_refs` accepts `5` (which resets `VmHWM` to the current RSS), the
/// kernel's own peak is taken too, so a peak shorter than the sampling period is not missed.
struct Sampler {
    base: u64,
    hwm_reset: bool,
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start() -> Sampler {
        trim_heap();
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let base = rss_bytes();
        let peak = Arc::new(AtomicU64::new(base));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Sampler {
            base,
            hwm_reset,
            peak,
            done,
            thread,
        }
    }

    /// Stops sampling: the peak growth in bytes.
    fn stop(self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let mut peak = self.peak.load(Ordering::Relaxed).max(rss_bytes());
        if self.hwm_reset {
            peak = peak.max(vm_hwm().unwrap_or(0));
        }
        peak.saturating_sub(self.base)
    }
}
