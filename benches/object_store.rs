//! Backups to a real 3-node Garage S3 cluster (`ese_garage`, on loopback) against
//! object_store's own raw operations on the same cluster, in one run. Prints one table
//! (figure | ours | baseline | ratio | target | PASS/FAIL) and writes it as JSON to
//! `target/bench/object_store.json` (under the workspace root).
//!
//! `cargo bench -p ese-bench --bench object_store --features object`; `ESE_BENCH_QUICK=1`
//! runs the short form (64 MiB instead of 256 MiB, 256 MiB instead of 1 GiB for memory, 2
//! repetitions instead of 3); `ESE_BENCH_ONLY=memory` runs figure 3 alone.
//!
//! The figures, each with [`ObjectOptions::default`] (16 MiB parts, 8 in flight, 8 MiB
//! read blocks, 8 read ahead) and [`BackupOptions::default`] (1 MiB chunks, no
//! compression), which is what a host gets:
//!
//! 1. **Backup rate**: `Instance::backup_to` (full) of a database, MiB/s of content, against
//!    object_store's `WriteMultipart` of objects of the same sizes (the database file's own
//!    bytes, read from disk a part at a time), with the same part size and parts in flight
//!    (`wait_for_capacity`), one file after another, then a PUT of the manifest's size.
//! 2. **Restore rate**: `restore_from` (`SetChoice::Latest`) of that set (the catalog, the
//!    download, the checks, the log replay) against parallel ranged GETs of the same objects
//!    (same block size and read-ahead) into files that are then fsync'd. Shown too, as
//!    information: the download phase alone (2b, until the restore's `ReadProgress` reaches
//!    its total) and `restore_sets` of the set by name (2c, no catalog scan).
//! 3. **Memory**: growth of live heap bytes (the counting allocator) and of RSS (VmRSS of
//!    `/proc/self/status`, sampled every 2 ms) while a bigger database is backed up, against
//!    the bound parts in flight x part size + 16 MiB. Measured first, before the other
//!    figures have grown the allocator's arenas.
//! 4. **Requests**: PUT-type requests per GiB of content of the figure-1 backups, against
//!    parts (ceil(size / part) per file) + 3 per file + 2 per set. Counted twice: by
//!    `BackupTarget::requests` and by node 1 itself (Garage's `api_s3_request_counter`
//!    metrics, every request of the run going to node 1); the figure is the server's count,
//!    and the detail says whether the two agree.
//!
//! Before the figures, the latency of one small HEAD, GET and LIST is measured (shown in the
//! notes of 2): the fixed cost of each request a restore makes before its first byte.
//!
//! Ours and the baseline run interleaved (alternating which goes first), each repetition
//! under a fresh prefix, and the medians are reported. The objects of a repetition are
//! deleted once it is measured.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ese_actors::target::Requests;
use ese_actors::{
    restore_from, restore_sets, BackupKind, BackupManifest, BackupOptions, BackupPhase,
    BackupTarget, Commit, Engine, Instance, InstanceParams, ObjectOptions, ReadProgress, SetChoice,
    Term,
};
use ese_bench::figures::{Ratio, Row, Spec, Target};
use ese_bench::heap;
use ese_bench::run::AnyResult;
use ese_bench::table::{out_dir, print_table};
use ese_bench::workloads::{mib, row_key, row_value, Filled, FILL_ROW_FOOTPRINT, FILL_VALUE};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use serde_json::json;

/// Counts the heap's live bytes for the memory figure.
#[global_allocator]
static ALLOC: heap::CountingAlloc = heap::CountingAlloc;

const BUCKET: &str = "ese-bench";

static BACKUP_RATE: Spec = Spec {
    key: "object.backup_rate",
    label: "1",
    name: "full backup_to Garage (3 nodes), {} MiB db, {} MiB content",
    unit: "MiB/s",
    baseline: "object_store WriteMultipart",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(0.8)),
    peer: false,
};
static RESTORE_RATE: Spec = Spec {
    key: "object.restore_rate",
    label: "2",
    name: "restore_from Garage (download + checks + replay), {} MiB content",
    unit: "MiB/s",
    baseline: "object_store ranged GETs -> file",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(0.8)),
    peer: false,
};
static RESTORE_DOWNLOAD: Spec = Spec {
    key: "object.restore_download_rate",
    label: "2b",
    name: "restore_from, download phase only (to the last byte read), {} MiB",
    unit: "MiB/s",
    baseline: "object_store ranged GETs -> file",
    ratio: Ratio::OursOverBaseline,
    target: None,
    peer: false,
};
static RESTORE_NAMED: Spec = Spec {
    key: "object.restore_named_rate",
    label: "2c",
    name: "restore_sets of the set by name (no catalog scan), {} MiB content",
    unit: "MiB/s",
    baseline: "object_store ranged GETs -> file",
    ratio: Ratio::OursOverBaseline,
    target: None,
    peer: false,
};
static MEMORY_HEAP: Spec = Spec {
    key: "object.backup_heap_growth",
    label: "3a",
    name: "live heap growth, backup_to of a {} MiB db",
    unit: "MiB",
    baseline: "bound in_flight x part + 16 MiB",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_most(1.0)),
    peer: false,
};
static MEMORY_RSS: Spec = Spec {
    key: "object.backup_rss_growth",
    label: "3b",
    name: "RSS growth, backup_to of a {} MiB db",
    unit: "MiB",
    baseline: "bound in_flight x part + 16 MiB",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_most(1.0)),
    peer: false,
};
static REQUESTS: Spec = Spec {
    key: "object.put_requests_per_gib",
    label: "4",
    name: "PUT-type requests per GiB of content, {} MiB backup",
    unit: "req/GiB",
    baseline: "bound parts + 3/file + 2",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_most(1.0)),
    peer: false,
};

/// Sizes of a run.
struct Scale {
    quick: bool,
    /// The database of figures 1, 2 and 4.
    db_bytes: u64,
    /// The database of figure 3.
    mem_db_bytes: u64,
    reps: usize,
    /// `ESE_BENCH_ONLY=memory`: figure 3 alone (for looking into memory without waiting
    /// for the rates).
    memory_only: bool,
}

impl Scale {
    fn from_env() -> Scale {
        let quick = matches!(std::env::var("ESE_BENCH_QUICK"), Ok(v) if !v.is_empty() && v != "0");
        let memory_only = matches!(std::env::var("ESE_BENCH_ONLY"), Ok(v) if v == "memory");
        match quick {
            true => Scale {
                quick,
                db_bytes: 64 << 20,
                mem_db_bytes: 256 << 20,
                reps: 2,
                memory_only,
            },
            false => Scale {
                quick,
                db_bytes: 256 << 20,
                mem_db_bytes: 1 << 30,
                reps: 3,
                memory_only,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

/// The cluster's bucket through node 1, retrying as `ObjectOptions::default` says a target
/// built from a URL does.
fn store(c: &ese_garage::Cluster) -> AnyResult<Arc<dyn ObjectStore>> {
    let o = ObjectOptions::default();
    let retry = RetryConfig {
        max_retries: o.max_retries,
        retry_timeout: o.retry_timeout,
        ..Default::default()
    };
    Ok(Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(c.endpoint(1))
            .with_region(c.region())
            .with_bucket_name(BUCKET)
            .with_access_key_id(c.key_id())
            .with_secret_access_key(c.secret())
            .with_allow_http(true)
            .with_retry(retry)
            .build()?,
    ))
}

/// Node 1's own count of the S3 requests it served, by API endpoint (`PutObject`,
/// `UploadPart`, ...), from its Prometheus metrics (`api_s3_request_counter`): the requests
/// as the server saw them, retries included, to check what the client side counts. Every
/// request of the run goes to node 1, one workload at a time.
struct Metrics {
    addr: String,
    token: String,
}

impl Metrics {
    fn new(c: &ese_garage::Cluster) -> AnyResult<Metrics> {
        let config = std::fs::read_to_string(c.dir().join("node1").join("garage.toml"))?;
        let token = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("metrics_token = "))
            .map(|t| t.trim_matches('"').to_string())
            .ok_or("no metrics_token in node 1's garage.toml")?;
        let addr = c
            .admin_endpoint(1)
            .trim_start_matches("http://")
            .to_string();
        Ok(Metrics { addr, token })
    }

    /// The counters now (an HTTP/1.0 GET, so the body is neither chunked nor kept alive).
    fn scrape(&self) -> AnyResult<std::collections::BTreeMap<String, u64>> {
        use std::io::Read;
        let mut conn = std::net::TcpStream::connect(&self.addr)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            conn,
            "GET /metrics HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            self.addr, self.token
        )?;
        let mut text = String::new();
        conn.read_to_string(&mut text)?;
        let mut out = std::collections::BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("api_s3_request_counter{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let endpoint = labels
                .split(',')
                .find_map(|l| l.strip_prefix("api_endpoint=\""))
                .map(|e| e.trim_end_matches('"').to_string());
            if let (Some(e), Ok(v)) = (endpoint, value.trim().parse::<f64>()) {
                *out.entry(e).or_insert(0) += v as u64;
            }
        }
        Ok(out)
    }
}

/// Requests of each endpoint between two scrapes.
fn served(
    after: &std::collections::BTreeMap<String, u64>,
    before: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// The write requests among `served`: PUTs, upload starts, parts, completions.
fn served_writes(s: &std::collections::BTreeMap<String, u64>) -> u64 {
    [
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
    ]
    .iter()
    .map(|e| s.get(*e).copied().unwrap_or(0))
    .sum()
}

fn target(store: &Arc<dyn ObjectStore>, prefix: &str) -> BackupTarget {
    BackupTarget::object_store(store.clone(), prefix, &format!("s3://{BUCKET}/{prefix}"))
        .with_options(ObjectOptions::default())
}

/// A database of about `bytes` (16-byte keys, 1000-byte values that do not compress, 1,000
/// rows to a lazy transaction, a durable commit at the end), loaded with circular logging so
/// that the load leaves no gigabyte of logs for the first full backup to carry; then termed
/// and attached to a new instance of the same name without circular logging (the defaults
/// of `InstanceParams::new`), as a host that takes backups runs it.
async fn fill(engine: &Engine, name: &str, dir: &Path, bytes: u64) -> AnyResult<Filled> {
    let t0 = Instant::now();
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{name}.edb"));
    let load = InstanceParams::new(dir).circular_logging(true);
    let inst = engine.create_instance(name, load).await?;
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
            tx.commit(if i == rows {
                Commit::Durable
            } else {
                Commit::Lazy
            })
            .await?;
        }
    }
    inst.term(Term::empty()).await?;
    let inst = engine
        .create_instance(name, InstanceParams::new(dir))
        .await?;
    inst.init().await?;
    let db = inst.attach_database(&path).await?;
    let table = inst.open_table(db, "t").await?;
    let file_bytes = std::fs::metadata(&path)?.len();
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

// ---------------------------------------------------------------------------------------------
// Ours
// ---------------------------------------------------------------------------------------------

/// One `backup_to`, timed, with when each phase began.
struct OursBackup {
    manifest: BackupManifest,
    secs: f64,
    cpu: f64,
    phases: Vec<(BackupPhase, f64)>,
    requests: Requests,
}

impl OursBackup {
    fn rate(&self) -> f64 {
        mib(self.manifest.content_bytes()) / self.secs
    }

    /// `Databases 0.01 s, Logs 3.52 s, ...`: when each phase began.
    fn phases_text(&self) -> String {
        self.phases
            .iter()
            .map(|(p, t)| format!("{p:?} {t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `Instance::backup_to` as its two halves (`start_backup_to`, then `wait`), watching the
/// phases on the handle.
async fn ours_backup(inst: &Instance, target: &BackupTarget) -> AnyResult<OursBackup> {
    let before = target.requests();
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let handle = inst
        .start_backup_to(target, BackupKind::Full, BackupOptions::default())
        .await?;
    let mut rx = handle.subscribe();
    let watcher = tokio::spawn(async move {
        let mut seen: Vec<(BackupPhase, f64)> = Vec::new();
        loop {
            let p = *rx.borrow_and_update();
            if seen.last().map(|s| s.0) != Some(p.phase) {
                seen.push((p.phase, t0.elapsed().as_secs_f64()));
            }
            if p.phase.is_finished() || rx.changed().await.is_err() {
                break;
            }
        }
        seen
    });
    let manifest = handle.wait().await?;
    let secs = t0.elapsed().as_secs_f64();
    let phases = watcher.await.unwrap_or_default();
    let after = target.requests();
    Ok(OursBackup {
        manifest,
        secs,
        cpu: cpu_secs() - cpu0,
        phases,
        requests: diff(after, before),
    })
}

fn diff(a: Requests, b: Requests) -> Requests {
    Requests {
        puts: a.puts - b.puts,
        uploads: a.uploads - b.uploads,
        parts: a.parts - b.parts,
        completes: a.completes - b.completes,
        gets: a.gets - b.gets,
        heads: a.heads - b.heads,
        lists: a.lists - b.lists,
        deletes: a.deletes - b.deletes,
    }
}

/// One `restore_from`, timed: the whole call, and until the last byte was read from the
/// store (its `ReadProgress` reaching its total).
struct OursRestore {
    secs: f64,
    cpu: f64,
    /// Until the first byte was read (the LIST, the manifests, the first HEAD and GET).
    first_byte_secs: f64,
    download_secs: f64,
    requests: Requests,
}

async fn ours_restore(engine: &Engine, target: &BackupTarget, to: &Path) -> AnyResult<OursRestore> {
    let progress = ReadProgress::new();
    let stop = Arc::new(AtomicBool::new(false));
    let read_at = Arc::new(AtomicU64::new(u64::MAX));
    let first_at = Arc::new(AtomicU64::new(u64::MAX));
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let sampler = {
        let (progress, stop) = (progress.clone(), stop.clone());
        let (read_at, first_at) = (read_at.clone(), first_at.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (total, done) = (progress.total(), progress.done());
                // The manifest's bytes are counted too: "first" is past them.
                if done > 64 << 10 && first_at.load(Ordering::Relaxed) == u64::MAX {
                    first_at.store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                if total > 0 && done >= total {
                    read_at.store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let before = target.requests();
    let r = restore_from(
        engine,
        target,
        SetChoice::Latest,
        to,
        None,
        Some(progress.clone()),
    )
    .await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    r?;
    let at = |a: &AtomicU64| match a.load(Ordering::Relaxed) {
        u64::MAX => secs,
        us => us as f64 / 1e6,
    };
    Ok(OursRestore {
        secs,
        cpu,
        first_byte_secs: at(&first_at),
        download_secs: at(&read_at),
        requests: diff(target.requests(), before),
    })
}

// ---------------------------------------------------------------------------------------------
// The baseline: object_store alone
// ---------------------------------------------------------------------------------------------

/// The bytes the baseline uploads: the database file's own, read from disk (wrapping around
/// for the objects after the first).
struct Source {
    file: Arc<std::fs::File>,
    len: u64,
}

impl Source {
    fn open(path: &Path) -> AnyResult<Source> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Source {
            file: Arc::new(file),
            len,
        })
    }

    /// `n` bytes from `pos` (modulo the file's length), on the blocking pool.
    async fn read(&self, pos: u64, n: usize) -> AnyResult<Vec<u8>> {
        let (file, len) = (self.file.clone(), self.len);
        let buf = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; n];
            let mut filled = 0;
            while filled < n {
                let off = (pos + filled as u64) % len;
                let k = (n - filled).min((len - off) as usize);
                file.read_exact_at(&mut buf[filled..filled + k], off)?;
                filled += k;
            }
            Ok(buf)
        })
        .await??;
        Ok(buf)
    }
}

/// The files of a set, by name in the set and size: databases, then logs (the order the
/// backup writes them in).
fn set_files(m: &BackupManifest) -> Vec<(String, u64)> {
    let dbs = m.databases.iter().map(|d| (d.file.clone(), d.size));
    let logs = m.logs.iter().map(|l| (l.file.clone(), l.size));
    dbs.chain(logs)
        .map(|(f, s)| (f.to_string_lossy().into_owned(), s))
        .collect()
}

/// The keys a set holds in the store.
fn set_keys(prefix: &str, m: &BackupManifest) -> Vec<Key> {
    let set = m.name.clone().unwrap_or_default();
    set_files(m)
        .into_iter()
        .map(|(f, _)| f)
        .chain([ese_actors::ese::backup::set::MANIFEST.to_string()])
        .map(|f| Key::from(format!("{prefix}/{set}/{f}")))
        .collect()
}

/// A raw upload of objects of the sizes `files` says, one after another, the way the
/// backup does it: a file smaller than a part is one PUT; a larger one a `WriteMultipart`
/// with the same part size, waiting for fewer than `parts_in_flight` parts in flight before
/// reading the next part (so at most that many parts are in memory, as in the engine's
/// upload); then one PUT of `manifest_len` bytes.
struct RawUpload {
    secs: f64,
    cpu: f64,
    bytes: u64,
    writes: u64,
    keys: Vec<Key>,
}

impl RawUpload {
    fn rate(&self) -> f64 {
        mib(self.bytes) / self.secs
    }
}

async fn raw_upload(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    files: &[(String, u64)],
    manifest_len: usize,
    src: &Source,
    o: &ObjectOptions,
) -> AnyResult<RawUpload> {
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let (mut pos, mut writes, mut keys) = (0u64, 0u64, Vec::new());
    let part = o.part_size as u64;
    for (name, size) in files {
        let key = Key::from(format!("{prefix}/set/{name}"));
        if *size < part {
            let buf = src.read(pos, *size as usize).await?;
            store.put(&key, PutPayload::from(Bytes::from(buf))).await?;
            writes += 1;
        } else {
            let upload = store.put_multipart(&key).await?;
            writes += 1;
            let mut w = WriteMultipart::new_with_chunk_size(upload, o.part_size);
            let mut off = 0;
            while off < *size {
                let n = part.min(size - off);
                w.wait_for_capacity(o.parts_in_flight).await?;
                let buf = src.read(pos + off, n as usize).await?;
                w.put(Bytes::from(buf));
                writes += 1;
                off += n;
            }
            w.finish().await?;
            writes += 1;
        }
        pos += size;
        keys.push(key);
    }
    let key = Key::from(format!("{prefix}/set/manifest.json"));
    let buf = src.read(0, manifest_len).await?;
    store.put(&key, PutPayload::from(Bytes::from(buf))).await?;
    writes += 1;
    keys.push(key);
    Ok(RawUpload {
        secs: t0.elapsed().as_secs_f64(),
        cpu: cpu_secs() - cpu0,
        bytes: pos,
        writes,
        keys,
    })
}

/// Raw ranged GETs of the set's objects, one object after another, `read_block` bytes each
/// with `read_ahead` in flight, each object written in order into a file of `to` and
/// fsync'd: what a restore's download does, without the engine.
async fn raw_download(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    m: &BackupManifest,
    to: &Path,
    o: &ObjectOptions,
) -> AnyResult<(f64, f64)> {
    std::fs::create_dir_all(to)?;
    let set = m.name.clone().unwrap_or_default();
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let block = o.read_block as u64;
    for (i, (name, size)) in set_files(m).into_iter().enumerate() {
        let key = Key::from(format!("{prefix}/{set}/{name}"));
        let mut file = std::fs::File::create(to.join(format!("{i:03}")))?;
        let mut q = VecDeque::new();
        let mut next = 0u64;
        loop {
            while q.len() < o.read_ahead && next < size {
                let (s, k, start, end) =
                    (store.clone(), key.clone(), next, (next + block).min(size));
                q.push_back(tokio::spawn(
                    async move { s.get_range(&k, start..end).await },
                ));
                next = end;
            }
            let Some(job) = q.pop_front() else { break };
            let bytes = job.await??;
            tokio::task::block_in_place(|| file.write_all(&bytes))?;
        }
        tokio::task::block_in_place(|| file.sync_all())?;
    }
    Ok((t0.elapsed().as_secs_f64(), cpu_secs() - cpu0))
}

async fn delete_all(store: &Arc<dyn ObjectStore>, keys: &[Key]) {
    for k in keys {
        if let Err(e) = store.delete(k).await {
            eprintln!("  (could not delete {k}: {e})");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

/// CPU seconds (user + system, every thread) this process has used, from
/// `/proc/self/stat` (clock ticks of 10 ms): the bench's client side only, not Garage's.
fn cpu_secs() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `RssAnon`; 0 if unavailable).
fn status_bytes(text: &str, field: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// VmRSS and RssAnon now.
fn vm_rss() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (
        status_bytes(&text, "VmRSS:"),
        status_bytes(&text, "RssAnon:"),
    )
}

/// Peak growth while a workload runs.
struct Growth {
    heap: u64,
    rss: u64,
    anon: u64,
}

/// Peak growth of live heap bytes and of RSS (VmRSS, and its anonymous part) while `work`
/// runs.
async fn growth<T>(work: impl std::future::Future<Output = T>) -> (Growth, T) {
    let heap_base = heap::reset_peak().unwrap_or(0);
    let base = vm_rss();
    let peak = Arc::new((AtomicU64::new(base.0), AtomicU64::new(base.1)));
    let done = Arc::new(AtomicBool::new(false));
    let sample = |peak: &(AtomicU64, AtomicU64)| {
        let (rss, anon) = vm_rss();
        peak.0.fetch_max(rss, Ordering::Relaxed);
        peak.1.fetch_max(anon, Ordering::Relaxed);
    };
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                sample(&peak);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let out = work.await;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    sample(&peak);
    let g = Growth {
        heap: heap::peak().unwrap_or(0).saturating_sub(heap_base),
        rss: peak.0.load(Ordering::Relaxed).saturating_sub(base.0),
        anon: peak.1.load(Ordering::Relaxed).saturating_sub(base.1),
    };
    (g, out)
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// The median: the middle value, or the mean of the two middle ones (0 for none).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Median latency in ms of a HEAD, a 4 KiB GET and a LIST (with delimiter) on the cluster,
/// 20 of each one after another: the fixed cost of every request a restore makes before it
/// reads its first byte.
async fn latency_probe(store: &Arc<dyn ObjectStore>) -> AnyResult<(f64, f64, f64)> {
    let key = Key::from("probe/object");
    store.put(&key, PutPayload::from(vec![7u8; 4096])).await?;
    let (mut heads, mut gets, mut lists) = (vec![], vec![], vec![]);
    let prefix = Key::from("probe");
    for _ in 0..20 {
        let t = Instant::now();
        store.head(&key).await?;
        heads.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        store.get_range(&key, 0..4096).await?;
        gets.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        store.list_with_delimiter(Some(&prefix)).await?;
        lists.push(t.elapsed().as_secs_f64() * 1e3);
    }
    store.delete(&key).await?;
    Ok((median(&heads), median(&gets), median(&lists)))
}

fn mibs(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The write requests of one figure-1 backup.
struct Counted {
    /// As `BackupTarget::requests` counts them.
    client: Requests,
    /// As node 1 served them, by endpoint.
    served: std::collections::BTreeMap<String, u64>,
    /// Parts + 3 per file + 2.
    bound: u64,
    files: u64,
    /// object_store's own upload of the same objects: as the bench counts them, and served.
    raw_writes: u64,
    raw_served: u64,
}

struct Report {
    rows: Vec<Row>,
    raw: serde_json::Value,
}

async fn run(
    scale: &Scale,
    store: Arc<dyn ObjectStore>,
    metrics: &Metrics,
    tmp: &Path,
) -> AnyResult<Report> {
    // A failed scrape counts nothing (the figure then falls back to the client's count).
    let scrape = || {
        AnyResult::Ok(
            tokio::task::block_in_place(|| metrics.scrape()).unwrap_or_else(|e| {
                eprintln!("  (Garage metrics unavailable: {e})");
                Default::default()
            }),
        )
    };
    let o = ObjectOptions::default();
    let mem_bound = (o.parts_in_flight * o.part_size) as u64 + (16 << 20);
    let engine = Engine::new();
    let mut rows = Vec::new();
    let probe = latency_probe(&store).await?;
    eprintln!(
        "latency of one small request: HEAD {:.1} ms, 4 KiB GET {:.1} ms, LIST {:.1} ms",
        probe.0, probe.1, probe.2
    );

    // Figure 3 first: the allocator's arenas have not been grown by the other figures.
    eprintln!(
        "memory: loading a {} MiB database",
        scale.mem_db_bytes >> 20
    );
    let mem = fill(&engine, "mem", &tmp.join("mem"), scale.mem_db_bytes).await?;
    eprintln!("  {:.1} MiB in {:.1} s", mib(mem.file_bytes), mem.seconds);
    let t = target(&store, "mem/ours");
    let (g_ours, b) = growth(ours_backup(&mem.inst, &t)).await;
    let b = b?;
    eprintln!(
        "  ours: heap +{:.1} MiB, RSS +{:.1} MiB (anonymous +{:.1} MiB), {:.1} MiB/s ({})",
        mib(g_ours.heap),
        mib(g_ours.rss),
        mib(g_ours.anon),
        b.rate(),
        b.phases_text()
    );
    let src = Source::open(&mem.path)?;
    let manifest_len = b.manifest.to_json()?.len();
    let files = set_files(&b.manifest);
    let (g_raw, r) = growth(raw_upload(
        &store,
        "mem/raw",
        &files,
        manifest_len,
        &src,
        &o,
    ))
    .await;
    let r = r?;
    eprintln!(
        "  raw: heap +{:.1} MiB, RSS +{:.1} MiB (anonymous +{:.1} MiB), {:.1} MiB/s",
        mib(g_raw.heap),
        mib(g_raw.rss),
        mib(g_raw.anon),
        r.rate()
    );
    delete_all(&store, &set_keys("mem/ours", &b.manifest)).await;
    delete_all(&store, &r.keys).await;
    mem.inst.term(Term::empty()).await?;
    let _ = std::fs::remove_dir_all(tmp.join("mem"));
    let mem_db = mem.file_bytes >> 20;
    let note = format!(
        "bound = {} parts in flight x {} MiB + 16 MiB; {:.0} MiB content at {:.1} MiB/s; \
         object_store's own WriteMultipart of the same objects (run after ours, in the same \
         process): heap +{:.1} MiB, RSS +{:.1} MiB",
        o.parts_in_flight,
        o.part_size >> 20,
        mib(b.manifest.content_bytes()),
        b.rate(),
        mib(g_raw.heap),
        mib(g_raw.rss)
    );
    rows.push(
        MEMORY_HEAP
            .row(&[&mem_db], mib(g_ours.heap))
            .baseline(mib(mem_bound))
            .detail(note.clone()),
    );
    rows.push(
        MEMORY_RSS
            .row(&[&mem_db], mib(g_ours.rss))
            .baseline(mib(mem_bound))
            .detail(format!(
                "VmRSS sampled every 2 ms, same run as 3a; of it anonymous (RssAnon) +{:.1} MiB",
                mib(g_ours.anon)
            )),
    );

    if scale.memory_only {
        let raw = json!({ "memory": {
            "db_bytes": mem.file_bytes, "bound_bytes": mem_bound,
            "ours_heap_bytes": g_ours.heap, "ours_rss_bytes": g_ours.rss,
            "ours_rss_anon_bytes": g_ours.anon,
            "raw_heap_bytes": g_raw.heap, "raw_rss_bytes": g_raw.rss,
        }});
        return Ok(Report { rows, raw });
    }

    // Figures 1, 2 and 4.
    eprintln!("rates: loading a {} MiB database", scale.db_bytes >> 20);
    let f = fill(&engine, "rate", &tmp.join("rate"), scale.db_bytes).await?;
    eprintln!("  {:.1} MiB in {:.1} s", mib(f.file_bytes), f.seconds);
    let src = Source::open(&f.path)?;
    // A warm-up of each (connections, the cluster's first writes), not measured.
    let mut shape = {
        let b = ours_backup(&f.inst, &target(&store, "warm/ours")).await?;
        let shape = (set_files(&b.manifest), b.manifest.to_json()?.len());
        let r = raw_upload(&store, "warm/raw", &shape.0, shape.1, &src, &o).await?;
        eprintln!(
            "  warm-up: ours {:.1} MiB/s, raw {:.1} MiB/s",
            b.rate(),
            r.rate()
        );
        delete_all(&store, &set_keys("warm/ours", &b.manifest)).await;
        delete_all(&store, &r.keys).await;
        shape
    };
    let (mut up_ours, mut up_raw, mut rs_ours, mut rs_dl, mut rs_raw) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut rs_named = vec![];
    // CPU seconds of this process, (ours, raw), per repetition.
    let mut cpu_backup: Vec<(f64, f64)> = vec![];
    let mut cpu_restore: Vec<(f64, f64)> = vec![];
    let mut reqs: Vec<Counted> = Vec::new();
    let mut phases = Vec::new();
    let mut restore_reqs = Vec::new();
    let mut restore_phases = Vec::new();
    let mut content = 0u64;
    for rep in 0..scale.reps {
        let ours_first = rep % 2 == 0;
        let (po, pr) = (format!("r{rep}/ours"), format!("r{rep}/raw"));
        let t = target(&store, &po);
        // The baseline uploads objects of the sizes of the latest backup of ours: this
        // repetition's when ours goes first, else the previous one's (the same database,
        // the logs of one backup).
        let mut b = None;
        if ours_first {
            let s0 = scrape()?;
            let ob = ours_backup(&f.inst, &t).await?;
            let seen = served(&scrape()?, &s0);
            shape = (set_files(&ob.manifest), ob.manifest.to_json()?.len());
            b = Some((ob, seen));
        }
        let s0 = scrape()?;
        let r = raw_upload(&store, &pr, &shape.0, shape.1, &src, &o).await?;
        let raw_seen = served(&scrape()?, &s0);
        let (b, seen) = match b {
            Some(b) => b,
            None => {
                let s0 = scrape()?;
                let ob = ours_backup(&f.inst, &t).await?;
                (ob, served(&scrape()?, &s0))
            }
        };
        let m = &b.manifest;
        content = m.content_bytes();
        let files = set_files(m);
        let parts: u64 = files
            .iter()
            .map(|(_, s)| s.div_ceil(o.part_size as u64).max(1))
            .sum();
        let bound = parts + 3 * files.len() as u64 + 2;
        reqs.push(Counted {
            client: b.requests,
            served: seen,
            bound,
            files: files.len() as u64,
            raw_writes: r.writes,
            raw_served: served_writes(&raw_seen),
        });
        up_ours.push(b.rate());
        up_raw.push(r.rate());
        cpu_backup.push((b.cpu, r.cpu));
        phases.push(b.phases_text());
        shape = (files, m.to_json()?.len());
        eprintln!(
            "  rep {rep} backup: ours {:.1} MiB/s ({:.0} MiB in {:.2} s: {}), raw {:.1} MiB/s \
             ({:.0} MiB in {:.2} s); {} writes counted by the target, {} served, bound {bound}",
            b.rate(),
            mib(content),
            b.secs,
            b.phases_text(),
            r.rate(),
            mib(r.bytes),
            r.secs,
            b.requests.writes(),
            served_writes(&reqs[reqs.len() - 1].served)
        );

        let (dir_ours, dir_raw) = (
            tmp.join(format!("restore{rep}")),
            tmp.join(format!("raw{rep}")),
        );
        let t = target(&store, &po);
        let restore = || async {
            let s0 = scrape()?;
            let ro = ours_restore(&engine, &t, &dir_ours).await?;
            AnyResult::Ok((ro, served(&scrape()?, &s0)))
        };
        let ((ro, ro_seen), (rr, rr_cpu)) = if ours_first {
            let ro = restore().await?;
            let rr = raw_download(&store, &po, m, &dir_raw, &o).await?;
            (ro, rr)
        } else {
            let rr = raw_download(&store, &po, m, &dir_raw, &o).await?;
            let ro = restore().await?;
            (ro, rr)
        };
        let mb = mib(content);
        rs_ours.push(mb / ro.secs);
        rs_dl.push(mb / ro.download_secs);
        rs_raw.push(mb / rr);
        cpu_restore.push((ro.cpu, rr_cpu));
        restore_phases.push((ro.first_byte_secs, ro.download_secs, ro.secs));
        restore_reqs.push((ro.requests, ro_seen));
        eprintln!(
            "  rep {rep} restore: ours {:.1} MiB/s ({:.2} s: first data {:.2} s, last byte \
             {:.2} s), raw {:.1} MiB/s ({rr:.2} s); counted by the target {:?}; served {:?}",
            mb / ro.secs,
            ro.secs,
            ro.first_byte_secs,
            ro.download_secs,
            mb / rr,
            ro.requests,
            restore_reqs[restore_reqs.len() - 1].1
        );
        // The same set restored by name: `restore_sets` skips the catalog (the LIST and a
        // manifest read per set) that `SetChoice::Latest` needs. Diagnostic, not a target.
        let dir_named = tmp.join(format!("named{rep}"));
        let t0 = Instant::now();
        let s0 = scrape()?;
        restore_sets(
            &engine,
            &[(t.clone(), m.name.clone().unwrap_or_default())],
            &dir_named,
            None,
            None,
        )
        .await?;
        let named_secs = t0.elapsed().as_secs_f64();
        let named_seen = served(&scrape()?, &s0);
        let _ = std::fs::remove_dir_all(&dir_named);
        rs_named.push(mb / named_secs);
        eprintln!(
            "  rep {rep} restore_sets by name: {:.1} MiB/s ({named_secs:.2} s); served \
             {named_seen:?}",
            mb / named_secs
        );
        let _ = std::fs::remove_dir_all(&dir_ours);
        let _ = std::fs::remove_dir_all(&dir_raw);
        delete_all(&store, &set_keys(&po, m)).await;
        delete_all(&store, &r.keys).await;
    }
    f.inst.term(Term::empty()).await?;

    let db = f.file_bytes >> 20;
    let reps = scale.reps;
    rows.push(
        BACKUP_RATE
            .row(&[&db, &format!("{:.0}", mib(content))], median(&up_ours))
            .baseline(median(&up_raw))
            .detail(format!(
                "medians of {reps}, interleaved; ours {} MiB/s, raw {} MiB/s; CPU of this \
                 process (median): ours {:.2} s, raw {:.2} s; phases of the last (s from \
                 start): {}",
                mibs(&up_ours),
                mibs(&up_raw),
                median(&cpu_backup.iter().map(|c| c.0).collect::<Vec<_>>()),
                median(&cpu_backup.iter().map(|c| c.1).collect::<Vec<_>>()),
                phases.last().cloned().unwrap_or_default()
            )),
    );
    let med = |i: usize| {
        median(
            &restore_phases
                .iter()
                .map(|p: &(f64, f64, f64)| [p.0, p.1, p.2][i])
                .collect::<Vec<_>>(),
        )
    };
    rows.push(
        RESTORE_RATE
            .row(&[&format!("{:.0}", mib(content))], median(&rs_ours))
            .baseline(median(&rs_raw))
            .detail(format!(
                "medians of {reps}, interleaved; ours {} MiB/s, raw {} MiB/s; CPU of this \
                 process (median): ours {:.2} s, raw {:.2} s; median times: \
                 first data read {:.2} s (after the LIST, the manifests, a HEAD and the whole \
                 first 8 MiB block), last byte read {:.2} s ({:.1} MiB/s between), \
                 done {:.2} s; one small request alone: HEAD {:.1} ms, GET {:.1} ms, LIST \
                 {:.1} ms; requests of the last restore, counted by the target: {:?}, served: \
                 {:?}",
                mibs(&rs_ours),
                mibs(&rs_raw),
                median(&cpu_restore.iter().map(|c| c.0).collect::<Vec<_>>()),
                median(&cpu_restore.iter().map(|c| c.1).collect::<Vec<_>>()),
                med(0),
                med(1),
                mib(content) / (med(1) - med(0)).max(1e-9),
                med(2),
                probe.0,
                probe.1,
                probe.2,
                restore_reqs.last().map(|r| r.0).unwrap_or_default(),
                restore_reqs.last().map(|r| r.1.clone()).unwrap_or_default()
            )),
    );
    rows.push(
        RESTORE_DOWNLOAD
            .row(&[&format!("{:.0}", mib(content))], median(&rs_dl))
            .baseline(median(&rs_raw))
            .detail(format!(
                "ours {} MiB/s: from the call until the restore's ReadProgress reached its \
                 total (LIST, manifests, HEADs, GETs, copies); the rest of 2 is the copies' \
                 checks and the log replay",
                mibs(&rs_dl)
            )),
    );
    rows.push(
        RESTORE_NAMED
            .row(&[&format!("{:.0}", mib(content))], median(&rs_named))
            .baseline(median(&rs_raw))
            .detail(format!(
                "ours {} MiB/s, run after 2 and its baseline in each repetition",
                mibs(&rs_named)
            )),
    );
    // The repetition with the most writes.
    let worst = reqs
        .iter()
        .max_by_key(|r| served_writes(&r.served).max(r.client.writes()));
    if let Some(c) = worst {
        let gib = content as f64 / (1u64 << 30) as f64;
        let (client, served) = (c.client.writes(), served_writes(&c.served));
        let agree = match (client == served, served) {
            (true, _) => "they agree".to_string(),
            (false, 0) => "the server's metrics were unavailable: the figure is the \
                           client's count"
                .to_string(),
            (false, _) => format!(
                "MISMATCH: BackupTarget::requests() says {client}; the figure is the \
                 server's count"
            ),
        };
        let figure = if served == 0 { client } else { served };
        rows.push(
            REQUESTS
                .row(&[&db], figure as f64 / gib)
                .baseline(c.bound as f64 / gib)
                .detail(format!(
                    "{served} writes served by node 1 ({:?}) for {} files, bound {}; \
                     BackupTarget::requests(): {client} writes ({} PUTs, {} uploads, {} parts, \
                     {} completes), {agree}; object_store's own upload of the same objects: \
                     {} writes ({} served)",
                    c.served,
                    c.files,
                    c.bound,
                    c.client.puts,
                    c.client.uploads,
                    c.client.parts,
                    c.client.completes,
                    c.raw_writes,
                    c.raw_served
                )),
        );
    }

    let raw = json!({
        "options": {
            "part_size": o.part_size, "parts_in_flight": o.parts_in_flight,
            "read_block": o.read_block, "read_ahead": o.read_ahead,
        },
        "memory": {
            "db_bytes": mem.file_bytes, "bound_bytes": mem_bound,
            "ours_heap_bytes": g_ours.heap, "ours_rss_bytes": g_ours.rss,
            "ours_rss_anon_bytes": g_ours.anon,
            "raw_heap_bytes": g_raw.heap, "raw_rss_bytes": g_raw.rss,
            "raw_rss_anon_bytes": g_raw.anon,
        },
        "backup_mib_s": { "ours": up_ours, "raw": up_raw },
        "backup_phases": phases,
        "client_cpu_secs": {
            "backup": cpu_backup.iter().map(|c| json!({"ours": c.0, "raw": c.1})).collect::<Vec<_>>(),
            "restore": cpu_restore.iter().map(|c| json!({"ours": c.0, "raw": c.1})).collect::<Vec<_>>(),
        },
        "restore_mib_s": {
            "ours": rs_ours, "ours_download": rs_dl, "ours_by_name": rs_named, "raw": rs_raw,
        },
        "restore_secs": restore_phases.iter().map(|p| json!({
            "first_byte": p.0, "last_byte": p.1, "done": p.2,
        })).collect::<Vec<_>>(),
        "content_bytes": content,
        "small_request_ms": { "head": probe.0, "get_4k": probe.1, "list": probe.2 },
        "db_bytes": f.file_bytes,
        "requests": reqs.iter().map(|c| json!({
            "client": {
                "puts": c.client.puts, "uploads": c.client.uploads, "parts": c.client.parts,
                "completes": c.client.completes, "writes": c.client.writes(),
            },
            "served": c.served,
            "served_writes": served_writes(&c.served),
            "bound": c.bound, "files": c.files,
            "raw_writes": c.raw_writes, "raw_served_writes": c.raw_served,
        })).collect::<Vec<_>>(),
    });
    Ok(Report { rows, raw })
}

fn main() -> AnyResult<()> {
    let scale = Scale::from_env();
    let mode = if scale.quick { "quick" } else { "full" };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let t0 = Instant::now();
    eprintln!("ese object_store bench: {mode} mode, {cpus} CPUs; starting a 3-node Garage cluster");
    let cluster = ese_garage::Cluster::start()?;
    cluster.create_bucket(BUCKET)?;
    let tmp = tempfile::Builder::new()
        .prefix("ese-object-bench")
        .tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let store = store(&cluster)?;
        let metrics = Metrics::new(&cluster)?;
        run(&scale, store, &metrics, tmp.path()).await
    })?;
    drop(rt);
    drop(cluster);
    let total = t0.elapsed().as_secs_f64();

    let o = ObjectOptions::default();
    println!();
    println!(
        "ese object_store bench ({mode} mode, {cpus} CPUs; {total:.0} s); a 3-node Garage \
         cluster on loopback; ObjectOptions::default() (part {} MiB, {} parts in flight, read \
         block {} MiB, read-ahead {}), BackupOptions::default()",
        o.part_size >> 20,
        o.parts_in_flight,
        o.read_block >> 20,
        o.read_ahead
    );
    print_table(&report.rows, "baseline");

    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let out = json!({
        "mode": mode,
        "machine": { "cpus": cpus },
        "seconds": total,
        "rows": report.rows,
        "measured": report.raw,
    });
    let path = dir.join("object_store.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
    println!();
    println!("wrote {}", path.display());
    let failed = report.rows.iter().filter(|r| r.pass == Some(false)).count();
    println!(
        "{} targets, {} pass, {failed} fail",
        report.rows.iter().filter(|r| r.pass.is_some()).count(),
        report.rows.iter().filter(|r| r.pass == Some(true)).count()
    );
    Ok(())
}
