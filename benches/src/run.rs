//! The run: every figure of [`crate::figures::TABLE`], measured in the table's order on one
//! engine in one directory. `ese bench` runs it without peers (the engine-only figures); the
//! compare bench (`benches/compare.rs`) runs it with SQLite and redb ([`Peers`]), each peer
//! measured between repetitions of ours so that machine noise hits both alike.

use std::path::Path;
use std::time::{Duration, Instant};

use ese_actors::{Commit, Engine, Term};

use crate::figures::{self, Row};
use crate::host_api::{batch_vs_puts, stream_memory, BATCH_ROWS, STREAM_CACHE_PAGES};
use crate::workloads::{
    backup_rss_growth, bulk_load, commit_run, echo_roundtrips, fill_database, get_roundtrips,
    idle_instance_rss, latency_under_backup, median, mib, percentile, raw_append_rate, raw_read,
    restore_run, stop_latency, stream_backup, BulkRun, Scale, BENCH_LOG_FILE,
};

/// An error of ours or of a peer.
pub type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The peer engines, driven with the same rows, keys and values as ours. Their methods block
/// (the run calls them through `block_in_place`). `peers::SqliteRedb` implements it, behind the
/// `peers` feature.
pub trait Peers {
    /// SQLite: a database at `path` with the rows of our filled database, until its file is at
    /// least `bytes`; returns its size.
    fn sqlite_fill(&mut self, path: &Path, bytes: u64) -> AnyResult<u64>;
    /// SQLite: one online backup of the database at `path`: (bytes, seconds).
    fn sqlite_backup(&mut self, path: &Path) -> AnyResult<(u64, f64)>;
    /// Opens (creates) the databases of the commit figures in `dir`.
    fn commit_open(&mut self, dir: &Path) -> AnyResult<()>;
    /// redb: durable commits per second of `threads` writers for `window`; `run` makes keys
    /// unique across calls.
    fn redb_commit_rate(&mut self, run: u32, threads: usize, window: Duration) -> AnyResult<f64>;
    /// SQLite: as [`Peers::redb_commit_rate`], one connection per thread.
    fn sqlite_commit_rate(&mut self, run: u32, threads: usize, window: Duration) -> AnyResult<f64>;
    /// redb: lazy commits (`Durability::None`) per second of one writer for `window`.
    fn redb_lazy_commit_rate(&mut self, run: u32, window: Duration) -> AnyResult<f64>;
    /// Closes and removes the databases of the commit figures.
    fn commit_close(&mut self);
    /// redb: the bulk load of [`crate::workloads::bulk_load`] into a new database at `path`
    /// (`Durability::None` per transaction).
    fn redb_bulk_load(&mut self, path: &Path, keys: u64) -> AnyResult<BulkRun>;
    /// SQLite: the same bulk load (WAL, `synchronous=NORMAL`).
    fn sqlite_bulk_load(&mut self, path: &Path, keys: u64) -> AnyResult<BulkRun>;
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// One row per figure, in the table's order (without peers, the peers' rows are absent).
    pub rows: Vec<Row>,
    /// Durable commits per second against concurrent sessions, as (series, [(sessions,
    /// rate)]): ours, redb, SQLite. Empty without peers.
    pub sweep: Vec<(String, Vec<(f64, f64)>)>,
}

/// The concurrent sessions of the commit sweep.
pub const SWEEP: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Runs every figure in `dir` (created; what the run leaves there is the caller's to remove).
/// `log` receives progress lines. Needs a multi-thread tokio runtime.
pub async fn run(
    scale: &Scale,
    dir: &Path,
    mut peers: Option<&mut (dyn Peers + Send)>,
    log: &(dyn Fn(&str) + Sync),
) -> AnyResult<Report> {
    std::fs::create_dir_all(dir)?;
    let with_peers = peers.is_some();
    let engine = Engine::new();
    let reps = scale.reps;
    let mut rows = Vec::new();
    let t_all = Instant::now();
    let phase = |name: &str| log(&format!("[{:6.1}s] {name}", t_all.elapsed().as_secs_f64()));

    // ---- 1. Full backup throughput.
    phase("fill ours");
    let f = fill_database(
        &engine,
        "backup",
        &dir.join("backup"),
        scale.backup_db_bytes,
    )
    .await?;
    log(&format!(
        "         {} rows, {:.1} MiB file, {:.1} s",
        f.rows,
        mib(f.file_bytes),
        f.seconds
    ));
    let sq_path = dir.join("backup.sqlite");
    let sq_size = match peers.as_deref_mut() {
        Some(p) => {
            phase("fill sqlite");
            Some(blocking(|| p.sqlite_fill(&sq_path, f.file_bytes))?)
        }
        None => None,
    };
    phase("backup streams");
    raw_read(&f.path, 1 << 20)?;
    if let Some(p) = peers.as_deref_mut() {
        blocking(|| p.sqlite_backup(&sq_path))?;
    }
    let (mut ours, mut raw, mut sq) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let (n, s) = raw_read(&f.path, 1 << 20)?;
        raw.push(mib(n) / s);
        ours.push(
            stream_backup(&f.inst, &f.path, 1 << 20, None)
                .await?
                .mib_per_sec(),
        );
        if let Some(p) = peers.as_deref_mut() {
            let (n, s) = blocking(|| p.sqlite_backup(&sq_path))?;
            sq.push(mib(n) / s);
        }
    }
    let o = median(&ours);
    rows.push(
        figures::BACKUP_VS_RAW
            .row(&[&format!("{:.0}", mib(f.file_bytes))], o)
            .baseline(median(&raw))
            .detail(format!("median of {reps}")),
    );
    if let Some(size) = sq_size {
        rows.push(
            figures::BACKUP_VS_SQLITE
                .row(&[&format!("{:.0}", mib(size))], o)
                .baseline(median(&sq))
                .detail(format!("median of {reps}; 65,536 pages/step")),
        );
        let _ = std::fs::remove_file(&sq_path);
    }

    // ---- 8a. Memory growth while streaming.
    phase("memory growth while streaming");
    let (growth, heap, stream) = if scale.memory_db_bytes == scale.backup_db_bytes {
        backup_rss_growth(&f).await?
    } else {
        let m = fill_database(&engine, "mem", &dir.join("mem"), scale.memory_db_bytes).await?;
        let r = backup_rss_growth(&m).await?;
        m.inst.term(Term::empty()).await?;
        let _ = std::fs::remove_dir_all(dir.join("mem"));
        r
    };
    let note = if scale.quick {
        " (quick: not 1 GiB)"
    } else {
        ""
    };
    rows.push(
        figures::MEMORY_BACKUP
            .row(&[&format!("{:.0}", mib(stream.bytes)), &note], mib(growth))
            .detail(format!(
                "stream {:.0} MiB/s; live heap growth (counting allocator): {}",
                stream.mib_per_sec(),
                heap.map_or("not counted".to_string(), |h| format!("{:.2} MiB", mib(h)))
            )),
    );

    // ---- 2/3. Durable commits.
    phase(if with_peers {
        "durable commits: 1 session vs peers, 64 sessions"
    } else {
        "durable commits: 1 session, 64 sessions"
    });
    let c = f.inst.create_table(f.db, "c").await?;
    if let Some(p) = peers.as_deref_mut() {
        p.commit_open(dir)?;
    }
    let w = scale.commit_window;
    let (mut o1, mut rd1, mut sq1, mut o64, mut fpc, mut bpc) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut raw1, mut per_commit, mut lazy64, mut rdlazy) = (vec![], vec![], vec![], vec![]);
    let mut run_id = 1000u32;
    let creps = reps.min(5);
    for _ in 0..creps {
        let one = commit_run(&f.inst, c, 1, w, Commit::Durable).await?;
        o1.push(one.rate());
        // The raw baseline appends what our log appended per commit in that window.
        let bytes = (one.log_bytes / one.commits.max(1)) as usize;
        per_commit.push(bytes as f64);
        raw1.push(blocking(|| {
            raw_append_rate(&dir.join("raw.log"), bytes, BENCH_LOG_FILE, w)
        })?);
        run_id += 1;
        if let Some(p) = peers.as_deref_mut() {
            rd1.push(blocking(|| p.redb_commit_rate(run_id, 1, w))?);
            sq1.push(blocking(|| p.sqlite_commit_rate(run_id, 1, w))?);
        }
        let m = commit_run(&f.inst, c, 64, w, Commit::Durable).await?;
        o64.push(m.rate());
        fpc.push(m.fsyncs_per_commit());
        bpc.push(m.commits as f64 / m.batches.max(1) as f64);
        if let Some(p) = peers.as_deref_mut() {
            lazy64.push(commit_run(&f.inst, c, 64, w, Commit::Lazy).await?.rate());
            run_id += 1;
            rdlazy.push(blocking(|| p.redb_lazy_commit_rate(run_id, w))?);
        }
    }
    let (o1, o64) = (median(&o1), median(&o64));
    if with_peers {
        for (spec, peer) in [
            (&figures::COMMIT_1_VS_REDB, &rd1),
            (&figures::COMMIT_1_VS_SQLITE, &sq1),
        ] {
            rows.push(
                spec.row(&[], o1)
                    .baseline(median(peer))
                    .detail(format!("median of {creps}")),
            );
        }
    }
    let bytes = median(&per_commit);
    rows.push(
        figures::COMMIT_1_VS_RAW
            .row(&[&format!("{bytes:.0}")], o1)
            .baseline(median(&raw1))
            .detail(format!(
                "median of {creps}; raw runs: {}",
                raw1.iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
    );
    if with_peers {
        rows.push(
            figures::LAZY_64_VS_REDB
                .row(&[], median(&lazy64))
                .baseline(median(&rdlazy))
                .detail(format!("median of {creps}")),
        );
    }
    rows.push(
        figures::GROUP_COMMIT
            .row(&[], o64)
            .baseline(o1)
            .detail(format!(
                "{} fsyncs/commit, {} commits/batch",
                figures::fmt_num(median(&fpc)),
                figures::fmt_num(median(&bpc))
            )),
    );
    rows.push(figures::FSYNCS_PER_COMMIT.row(&[], median(&fpc)));

    // Sweep for the plot, with the peers only.
    let mut sweep = Vec::new();
    if let Some(p) = peers.as_deref_mut() {
        phase("commit sweep 1..64 (ours, redb, SQLite)");
        let sweep_w = if scale.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_millis(1500)
        };
        sweep = vec![
            ("ese (actor, tokio tasks)".to_string(), vec![]),
            ("redb (Immediate, threads)".to_string(), vec![]),
            ("SQLite (WAL, sync=FULL, threads)".to_string(), vec![]),
        ];
        for n in SWEEP {
            let o = commit_run(&f.inst, c, n, sweep_w, Commit::Durable)
                .await?
                .rate();
            run_id += 1;
            let r = blocking(|| p.redb_commit_rate(run_id, n, sweep_w))?;
            let q = blocking(|| p.sqlite_commit_rate(run_id, n, sweep_w))?;
            log(&format!(
                "         n={n:2}: ours {o:8.0}  redb {r:8.0}  sqlite {q:8.0} commits/s"
            ));
            sweep[0].1.push((n as f64, o));
            sweep[1].1.push((n as f64, r));
            sweep[2].1.push((n as f64, q));
        }
        let (o64s, r64, q64) = (sweep[0].1[6].1, sweep[1].1[6].1, sweep[2].1[6].1);
        for (spec, peer) in [
            (&figures::COMMIT_64_VS_REDB, r64),
            (&figures::COMMIT_64_VS_SQLITE, q64),
        ] {
            rows.push(spec.row(&[], o64s).baseline(peer).detail("sweep point"));
        }
        p.commit_close();
    }

    // ---- 4. p99 commit latency with a backup streaming.
    phase("p99 commit latency with / without backup");
    let (mut qs, mut ls, mut bytes) = (vec![], vec![], 0u64);
    // Quiet and loaded windows alternate (4 pairs) so that machine noise hits both alike.
    let pairs = 4;
    let lw = scale.latency_window / 2;
    for _ in 0..pairs {
        let l = latency_under_backup(&f, c, scale.latency_writers, lw).await?;
        qs.extend(l.quiet.latencies);
        ls.extend(l.loaded.latencies);
        bytes += l.backup_bytes;
    }
    let (q99, l99) = (percentile(&qs, 99.0), percentile(&ls, 99.0));
    rows.push(
        figures::P99_UNDER_BACKUP
            .row(&[&scale.latency_writers], l99 * 1e3)
            .baseline(q99 * 1e3)
            .detail(format!(
                "{} / {} commits; backup streamed {:.0} MiB/s; p50 {:.3} vs {:.3} ms",
                ls.len(),
                qs.len(),
                mib(bytes) / (pairs as f64 * lw.as_secs_f64()),
                percentile(&ls, 50.0) * 1e3,
                percentile(&qs, 50.0) * 1e3
            )),
    );

    // ---- 6. Actor overhead.
    phase("actor overhead");
    for (clients, spec) in [
        (1usize, &figures::GET_VS_ECHO_1),
        (16, &figures::GET_VS_ECHO_16),
    ] {
        let n = if clients == 1 {
            scale.roundtrips
        } else {
            scale.roundtrips / 4
        };
        let (mut e, mut g) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            e.push(echo_roundtrips(clients, n).await);
            g.push(get_roundtrips(&f.inst, f.table, clients, n).await?);
        }
        let (e, g) = (median(&e), median(&g));
        rows.push(spec.row(&[], g).baseline(e).detail(format!(
            "median of {reps}; {:.2} us vs {:.2} us per round trip",
            1e6 / g,
            1e6 / e
        )));
    }
    f.inst.term(Term::empty()).await?;
    let _ = std::fs::remove_dir_all(dir.join("backup"));

    // ---- 5. Restore.
    phase("restore");
    let r = restore_run(&engine, &dir.join("restore"), scale.restore_txns).await?;
    rows.push(
        figures::RESTORE_REPLAY
            .row(&[&r.txns], r.replay.log_bytes_per_sec / (1 << 20) as f64)
            .baseline(mib(r.workload_log_bytes) / r.workload_secs)
            .ratio(r.workload_secs / r.replay.seconds.max(1e-9))
            .detail(format!(
                "ratio = workload {:.2} s / replay {:.2} s; replayed {:.1} MiB, {} commits; \
                 whole restore_backup_chain {:.2} s",
                r.workload_secs,
                r.replay.seconds,
                mib(r.replay.log_bytes),
                r.replay.commits,
                r.chain_secs
            )),
    );
    let _ = std::fs::remove_dir_all(dir.join("restore"));

    // ---- 7. Stop latency.
    // One instance has at most one backup, so the 64 clients are 1 backup reader streaming
    // 1 MiB chunks plus 63 sessions committing durably, all on one instance (see
    // `workloads::stop_latency`). The clock runs from sending stop_service until it is
    // answered AND every one of the 64 clients has had its first error; it is compared with
    // the median chunk-read time measured under the same load just before.
    phase("stop latency");
    let (mut ratios, mut lats, mut chunks, mut answers, mut got, mut others) =
        (vec![], vec![], vec![], vec![], 0usize, Vec::new());
    for i in 0..3 {
        let d = dir.join(format!("stop{i}"));
        let sf = fill_database(&engine, &format!("stop{i}"), &d, scale.stop_db_bytes).await?;
        let st = stop_latency(sf, 64, Duration::from_millis(500)).await?;
        ratios.push(st.ratio());
        lats.push(st.answer_secs.max(st.all_clients_secs));
        chunks.push(st.median_chunk_secs);
        answers.push(st.answer_secs);
        got += st.clients_1329;
        others.extend(st.other_errors);
        let _ = std::fs::remove_dir_all(&d);
    }
    rows.push(
        figures::STOP_LATENCY
            .row(&[], median(&lats) * 1e3)
            .baseline(median(&chunks) * 1e3)
            .ratio(median(&ratios))
            .detail(format!(
                "median of 3 runs; stop_service answered in {:.3} ms (median); \
                 {got}/192 clients got -1329 first{}",
                median(&answers) * 1e3,
                if others.is_empty() {
                    String::new()
                } else {
                    format!(", other first errors (code, n): {others:?}")
                }
            )),
    );

    // ---- 8b. Idle instances.
    phase("idle instances");
    let per = idle_instance_rss(&engine, &dir.join("idle"), scale.idle_instances).await?;
    rows.push(figures::IDLE_INSTANCE.row(&[&scale.idle_instances], per / 1024.0));
    let _ = std::fs::remove_dir_all(dir.join("idle"));

    // ---- 9. A WriteBatch against single puts.
    phase("write batch vs single puts");
    let b = batch_vs_puts(&engine, &dir.join("batch"), scale.batch_reps).await?;
    rows.push(
        figures::BATCH_VS_PUTS
            .row(&[], b.batch_rate())
            .baseline(b.puts_rate())
            .detail(format!(
                "median of {} interleaved pairs, {BATCH_ROWS} fresh rows each, Commit::Durable; \
                 {:.2} ms vs {:.2} ms per 1,000 rows; median of the pairs' ratios {:.2}x",
                b.batch.len(),
                1e3 * BATCH_ROWS as f64 / b.batch_rate(),
                1e3 * BATCH_ROWS as f64 / b.puts_rate(),
                b.pair_ratio()
            )),
    );
    let _ = std::fs::remove_dir_all(dir.join("batch"));

    // ---- 10. Memory of a streaming scan.
    phase("streaming scan memory");
    let m = stream_memory(&engine, &dir.join("stream"), scale.stream_table_bytes).await?;
    log(&format!(
        "         loaded {} rows, {:.1} MiB file, {:.1} s",
        m.rows,
        mib(m.file_bytes),
        m.load_secs
    ));
    let note = if scale.quick {
        " (quick: not 1 GiB)"
    } else {
        ""
    };
    let (what, held) = match m.warm.heap_growth {
        Some(h) => ("live heap", h),
        None => ("RSS", m.warm.rss_growth),
    };
    let heap =
        |h: Option<u64>| h.map_or("not counted".to_string(), |h| format!("{:.2} MiB", mib(h)));
    rows.push(
        figures::MEMORY_STREAM
            .row(
                &[
                    &what,
                    &format!("{:.0}", mib(m.warm.bytes)),
                    &m.warm.rows,
                    &note,
                ],
                mib(held),
            )
            .detail(format!(
                "second of two passes, {} rows, {:.1} MiB of values, {:.0} MiB/s, instance \
                 cache cache_pages({STREAM_CACHE_PAGES}) = {:.0} MiB already full after the \
                 first. Live heap growth (counting allocator): {}; peak RSS growth of the \
                 process over its value just before the pass (statm sampled every 1 ms, VmHWM \
                 reset through clear_refs, heap trimmed first: {}): {:.2} MiB, which includes \
                 the allocator's arenas refilling. The first, cold pass (the cache filling \
                 included): heap {}, RSS {:.2} MiB, {:.0} MiB/s; for contrast, \
                 Instance::scan(limit {}) collecting {:.0} MiB: RSS {:.1} MiB",
                m.warm.rows,
                mib(m.warm.bytes),
                m.warm.mib_per_sec(),
                mib(STREAM_CACHE_PAGES as u64 * 8192),
                heap(m.warm.heap_growth),
                if crate::host_api::HEAP_TRIM {
                    "malloc_trim"
                } else {
                    "no"
                },
                mib(m.warm.rss_growth),
                heap(m.cold.heap_growth),
                mib(m.cold.rss_growth),
                m.cold.mib_per_sec(),
                crate::host_api::SCAN_PREFIX_ROWS,
                mib(m.scan_prefix_bytes),
                mib(m.scan_prefix_growth)
            )),
    );
    let _ = std::fs::remove_dir_all(dir.join("stream"));

    // ---- 11. Bulk load.
    phase("bulk load (ours, then the peers)");
    let bulk_dir = dir.join("bulk");
    std::fs::create_dir_all(&bulk_dir)?;
    let ours = bulk_load(&engine, &bulk_dir, scale.bulk_keys).await?;
    log(&format!(
        "         ours {:.0} puts/s (first tenth {:.0}, last tenth {:.0})",
        ours.rate(),
        ours.first_tenth,
        ours.last_tenth
    ));
    let _ = std::fs::remove_dir_all(&bulk_dir);
    let keys = scale.bulk_keys;
    if let Some(p) = peers {
        let redb = blocking(|| p.redb_bulk_load(&dir.join("bulk.redb"), keys))?;
        let sqlite = blocking(|| p.sqlite_bulk_load(&dir.join("bulk.sqlite"), keys))?;
        for (spec, peer) in [
            (&figures::BULK_VS_REDB, &redb),
            (&figures::BULK_VS_SQLITE, &sqlite),
        ] {
            rows.push(
                spec.row(&[&keys], ours.rate())
                    .baseline(peer.rate())
                    .detail(format!(
                        "one run each; peer's first tenth {:.0}, last tenth {:.0} puts/s",
                        peer.first_tenth, peer.last_tenth
                    )),
            );
        }
    }
    rows.push(
        figures::BULK_TAIL
            .row(&[&keys], ours.last_tenth)
            .baseline(ours.first_tenth)
            .detail(format!(
                "whole load {:.0} puts/s in {:.1} s, 64 MiB cache",
                ours.rate(),
                ours.seconds
            )),
    );
    phase("done");
    debug_assert!(with_peers || rows.iter().all(|r| !r.spec().peer));
    Ok(Report { rows, sweep })
}
