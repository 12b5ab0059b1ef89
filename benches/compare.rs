//! Ours against peers and baselines, in one run: prints one table
//! (figure | ours | peer or baseline | ratio | target | pass/fail), writes it as JSON to
//! `target/bench/compare.json` and a plot of durable commit throughput against concurrent
//! sessions to `target/bench/commit_throughput.svg` (both under the workspace root).
//!
//! `ESE_BENCH_QUICK=1` runs the quick scale (about three minutes on two cores). Every
//! figure is the median of several repetitions, ours and the peer interleaved, so ratios
//! compare runs taken under the same machine noise.

#[path = "peers/mod.rs"]
mod peers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ese_actors::bench::{self, fmt_num, median, percentile, Scale, Target};
use ese_actors::{Commit, Engine, Term};
use peers::AnyResult;
use plotters::prelude::*;
use serde_json::json;

/// One row of the table.
struct Row {
    figure: String,
    ours: f64,
    ours_unit: String,
    peer_name: String,
    peer: Option<f64>,
    peer_unit: String,
    /// The ratio column (how it is formed is in the figure's name).
    ratio: Option<f64>,
    target: Option<Target>,
    /// Whether the target applies to the ratio (else to `ours`).
    target_on_ratio: bool,
    detail: String,
}

impl Row {
    fn checked_value(&self) -> Option<f64> {
        if self.target_on_ratio {
            self.ratio
        } else {
            Some(self.ours)
        }
    }
    fn pass(&self) -> Option<bool> {
        Some(self.target?.met(self.checked_value()?))
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    figure: impl Into<String>,
    ours: f64,
    ours_unit: &str,
    peer_name: &str,
    peer: Option<f64>,
    peer_unit: &str,
    ratio: Option<f64>,
    target: Option<Target>,
    target_on_ratio: bool,
    detail: impl Into<String>,
) -> Row {
    Row {
        figure: figure.into(),
        ours,
        ours_unit: ours_unit.into(),
        peer_name: peer_name.into(),
        peer,
        peer_unit: peer_unit.into(),
        ratio,
        target,
        target_on_ratio,
        detail: detail.into(),
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn machine() -> (usize, String) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    (cpus, model)
}

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench")
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

const SWEEP: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

async fn run(scale: &Scale, tmp: &Path) -> AnyResult<(Vec<Row>, Vec<(String, Vec<(f64, f64)>)>)> {
    let engine = Engine::new();
    let reps = scale.reps;
    let mut rows = Vec::new();
    let t_all = Instant::now();
    let phase = |name: &str| eprintln!("[{:6.1}s] {name}", t_all.elapsed().as_secs_f64());

    // ---- 1. Full backup throughput.
    phase("fill ours");
    let f = bench::fill_database(
        &engine,
        "backup",
        &tmp.join("backup"),
        scale.backup_db_bytes,
    )
    .await?;
    eprintln!(
        "         {} rows, {:.1} MiB file, {:.1} s",
        f.rows,
        mib(f.file_bytes),
        f.seconds
    );
    phase("fill sqlite");
    let sq_path = tmp.join("backup.sqlite");
    let sq_size = blocking(|| peers::sqlite_fill(&sq_path, f.file_bytes))?;
    phase("backup streams");
    bench::raw_read(&f.path, 1 << 20)?;
    blocking(|| peers::sqlite_backup(&sq_path))?;
    let (mut ours, mut raw, mut sq) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let (n, s) = bench::raw_read(&f.path, 1 << 20)?;
        raw.push(mib(n) / s);
        ours.push(
            bench::stream_backup(&f.inst, &f.path, 1 << 20, None)
                .await?
                .mib_per_sec(),
        );
        let (n, s) = blocking(|| peers::sqlite_backup(&sq_path))?;
        sq.push(mib(n) / s);
    }
    let (o, r, s) = (median(&ours), median(&raw), median(&sq));
    rows.push(row(
        format!(
            "1a full backup (actor, verified, 1 MiB chunks) vs raw read, {:.0} MiB db",
            mib(f.file_bytes)
        ),
        o,
        "MiB/s",
        "std::fs 1 MiB reads, warm",
        Some(r),
        "MiB/s",
        Some(o / r),
        Some(Target::at_least(0.9)),
        true,
        format!("median of {reps}"),
    ));
    rows.push(row(
        format!(
            "1b full backup vs SQLite online backup, {:.0} MiB db",
            mib(sq_size)
        ),
        o,
        "MiB/s",
        "rusqlite Backup -> :memory:",
        Some(s),
        "MiB/s",
        Some(o / s),
        Some(Target::at_least(1.0)),
        true,
        format!("median of {reps}; 65,536 pages/step"),
    ));
    let _ = std::fs::remove_file(&sq_path);

    // ---- 8a. Memory growth while streaming.
    phase("memory growth while streaming");
    let (growth, stream) = if scale.memory_db_bytes == scale.backup_db_bytes {
        bench::backup_rss_growth(&f).await?
    } else {
        let m =
            bench::fill_database(&engine, "mem", &tmp.join("mem"), scale.memory_db_bytes).await?;
        let r = bench::backup_rss_growth(&m).await?;
        m.inst.term(Term::empty()).await?;
        let _ = std::fs::remove_dir_all(tmp.join("mem"));
        r
    };
    let note = if scale.quick {
        " (quick: not 1 GiB)"
    } else {
        ""
    };
    rows.push(row(
        format!(
            "8a RSS growth streaming a {:.0} MiB db backup{note}",
            mib(stream.bytes)
        ),
        mib(growth),
        "MiB",
        "",
        None,
        "",
        None,
        Some(Target::at_most(64.0)),
        false,
        format!("stream {:.0} MiB/s", stream.mib_per_sec()),
    ));

    // ---- 2/3. Durable commits.
    phase("durable commits: 1 session vs peers, 64 sessions");
    {
        let s = f.inst.begin_session().await?;
        s.create_table(f.db, "c").await?;
    }
    let redb = peers::redb_open(&tmp.join("commits.redb"))?;
    let sqlc = tmp.join("commits.sqlite");
    drop(peers::sqlite_conn(&sqlc)?);
    let w = scale.commit_window;
    let (mut o1, mut rd1, mut sq1, mut o64, mut fpc, mut bpc) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut run_id = 1000u32;
    let creps = reps.min(5);
    for _ in 0..creps {
        o1.push(
            bench::commit_run(&f.inst, f.db, "c", 1, w, Commit::Durable)
                .await?
                .rate(),
        );
        run_id += 1;
        rd1.push(blocking(|| peers::redb_commit_rate(&redb, run_id, 1, w))?);
        sq1.push(blocking(|| peers::sqlite_commit_rate(&sqlc, run_id, 1, w))?);
        let m = bench::commit_run(&f.inst, f.db, "c", 64, w, Commit::Durable).await?;
        o64.push(m.rate());
        fpc.push(m.fsyncs_per_commit());
        bpc.push(m.commits as f64 / m.batches.max(1) as f64);
    }
    let (o1, rd1, sq1, o64) = (median(&o1), median(&rd1), median(&sq1), median(&o64));
    rows.push(row(
        "2a durable commits, 1 session, 16 B key + 100 B value",
        o1,
        "commits/s",
        "redb Durability::Immediate",
        Some(rd1),
        "commits/s",
        Some(o1 / rd1),
        Some(Target::at_least(1.0)),
        true,
        format!("median of {creps}"),
    ));
    rows.push(row(
        "2b durable commits, 1 session, 16 B key + 100 B value",
        o1,
        "commits/s",
        "SQLite WAL synchronous=FULL",
        Some(sq1),
        "commits/s",
        Some(o1 / sq1),
        Some(Target::at_least(1.0)),
        true,
        format!("median of {creps}"),
    ));
    rows.push(row(
        "3  group commit: 64 sessions vs 1 session (ours)",
        o64,
        "commits/s",
        "ours, 1 session",
        Some(o1),
        "commits/s",
        Some(o64 / o1),
        Some(Target::at_least(20.0)),
        true,
        format!(
            "{} fsyncs/commit, {} commits/batch",
            fmt_num(median(&fpc)),
            fmt_num(median(&bpc))
        ),
    ));
    rows.push(row(
        "3f fsyncs per commit, 64 sessions",
        median(&fpc),
        "fsync/commit",
        "",
        None,
        "",
        None,
        None,
        false,
        "",
    ));

    // Sweep for the plot.
    phase("commit sweep 1..64 (ours, redb, SQLite)");
    let sweep_w = if scale.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_millis(1500)
    };
    let mut series: Vec<(String, Vec<(f64, f64)>)> = vec![
        ("ese (actor, tokio tasks)".into(), vec![]),
        ("redb (Immediate, threads)".into(), vec![]),
        ("SQLite (WAL, sync=FULL, threads)".into(), vec![]),
    ];
    for n in SWEEP {
        let o = bench::commit_run(&f.inst, f.db, "c", n, sweep_w, Commit::Durable)
            .await?
            .rate();
        run_id += 1;
        let r = blocking(|| peers::redb_commit_rate(&redb, run_id, n, sweep_w))?;
        let q = blocking(|| peers::sqlite_commit_rate(&sqlc, run_id, n, sweep_w))?;
        eprintln!(
            "         n={n:2}: ours {:8.0}  redb {:8.0}  sqlite {:8.0} commits/s",
            o, r, q
        );
        series[0].1.push((n as f64, o));
        series[1].1.push((n as f64, r));
        series[2].1.push((n as f64, q));
    }
    let (o64s, r64, q64) = (series[0].1[6].1, series[1].1[6].1, series[2].1[6].1);
    rows.push(row(
        "3r 64 concurrent committers vs redb (64 threads)",
        o64s,
        "commits/s",
        "redb, 64 threads",
        Some(r64),
        "commits/s",
        Some(o64s / r64),
        None,
        true,
        "sweep point",
    ));
    rows.push(row(
        "3s 64 concurrent committers vs SQLite (64 threads)",
        o64s,
        "commits/s",
        "SQLite, 64 connections",
        Some(q64),
        "commits/s",
        Some(o64s / q64),
        None,
        true,
        "sweep point",
    ));
    drop(redb);

    // ---- 4. p99 commit latency with a backup streaming.
    phase("p99 commit latency with / without backup");
    let (mut qs, mut ls, mut bytes) = (vec![], vec![], 0u64);
    // Quiet and loaded windows alternate (4 pairs) so that machine noise hits both alike.
    let pairs = 4;
    let lw = scale.latency_window / 2;
    for _ in 0..pairs {
        let l = bench::latency_under_backup(&f, "c", scale.latency_writers, lw).await?;
        qs.extend(l.quiet.latencies);
        ls.extend(l.loaded.latencies);
        bytes += l.backup_bytes;
    }
    let (q99, l99) = (percentile(&qs, 99.0), percentile(&ls, 99.0));
    rows.push(row(
        format!(
            "4  p99 durable commit latency, {} writers, with full backup streaming",
            scale.latency_writers
        ),
        l99 * 1e3,
        "ms",
        "without backup",
        Some(q99 * 1e3),
        "ms",
        Some(l99 / q99),
        Some(Target::at_most(1.25)),
        true,
        format!(
            "{} / {} commits; backup streamed {:.0} MiB/s; p50 {:.3} vs {:.3} ms",
            ls.len(),
            qs.len(),
            mib(bytes) / (pairs as f64 * lw.as_secs_f64()),
            percentile(&ls, 50.0) * 1e3,
            percentile(&qs, 50.0) * 1e3
        ),
    ));

    // ---- 6. Actor overhead.
    phase("actor overhead");
    for clients in [1usize, 16] {
        let n = if clients == 1 {
            scale.roundtrips
        } else {
            scale.roundtrips / 4
        };
        let (mut e, mut g) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            e.push(bench::echo_roundtrips(clients, n).await);
            g.push(bench::get_roundtrips(&f.inst, f.db, clients, n).await?);
        }
        let (e, g) = (median(&e), median(&g));
        rows.push(row(
            format!("6  Session::get of a cached key, {clients} client(s): cost / echo cost"),
            g,
            "round trips/s",
            "tokio mpsc+oneshot echo",
            Some(e),
            "round trips/s",
            Some(e / g),
            Some(Target::at_most(3.0)),
            true,
            format!(
                "median of {reps}; {:.2} us vs {:.2} us per round trip",
                1e6 / g,
                1e6 / e
            ),
        ));
    }
    f.inst.term(Term::empty()).await?;
    let _ = std::fs::remove_dir_all(tmp.join("backup"));
    let _ = std::fs::remove_file(&sqlc);

    // ---- 5. Restore.
    phase("restore");
    let r = bench::restore_run(&engine, &tmp.join("restore"), scale.restore_txns).await?;
    let replay_mib_s = r.replay.log_bytes_per_sec / (1 << 20) as f64;
    let workload_mib_s = mib(r.workload_log_bytes) / r.workload_secs;
    rows.push(row(
        format!(
            "5  restore replay vs the lazy-commit workload that wrote the log ({} txns)",
            r.txns
        ),
        replay_mib_s,
        "log MiB/s",
        "workload",
        Some(workload_mib_s),
        "log MiB/s",
        Some(r.workload_secs / r.replay.seconds.max(1e-9)),
        Some(Target::at_least(3.0)),
        true,
        format!(
            "ratio = workload {:.2} s / replay {:.2} s; replayed {:.1} MiB, {} commits; \
             whole restore_backup_chain {:.2} s",
            r.workload_secs,
            r.replay.seconds,
            mib(r.replay.log_bytes),
            r.replay.commits,
            r.chain_secs
        ),
    ));
    let _ = std::fs::remove_dir_all(tmp.join("restore"));

    // ---- 7. Stop latency.
    // One instance has at most one backup, so the 64 clients are 1 backup reader streaming
    // 1 MiB chunks plus 63 sessions committing durably, all on one instance (see
    // `bench::stop_latency`). The clock runs from sending stop_service until it is answered
    // AND every one of the 64 clients has had its first error; it is compared with the
    // median chunk-read time measured under the same load just before.
    phase("stop latency");
    let (mut ratios, mut lats, mut chunks, mut answers, mut got, mut others) =
        (vec![], vec![], vec![], vec![], 0usize, Vec::new());
    for i in 0..3 {
        let d = tmp.join(format!("stop{i}"));
        let sf =
            bench::fill_database(&engine, &format!("stop{i}"), &d, scale.stop_db_bytes).await?;
        let st = bench::stop_latency(sf, 64, Duration::from_millis(500)).await?;
        ratios.push(st.ratio());
        lats.push(st.answer_secs.max(st.all_clients_secs));
        chunks.push(st.median_chunk_secs);
        answers.push(st.answer_secs);
        got += st.clients_1329;
        others.extend(st.other_errors);
        let _ = std::fs::remove_dir_all(&d);
    }
    rows.push(row(
        "7  stop_service answered + all 64 clients have -1329 (1 reader + 63 committers)",
        median(&lats) * 1e3,
        "ms",
        "median chunk read",
        Some(median(&chunks) * 1e3),
        "ms",
        Some(median(&ratios)),
        Some(Target::at_most(2.0)),
        true,
        format!(
            "median of 3 runs; stop_service answered in {:.3} ms (median); \
             {got}/192 clients got -1329 first{}",
            median(&answers) * 1e3,
            if others.is_empty() {
                String::new()
            } else {
                format!(", other first errors (code, n): {others:?}")
            }
        ),
    ));

    // ---- 8b. Idle instances.
    phase("idle instances");
    let per = bench::idle_instance_rss(&engine, &tmp.join("idle"), scale.idle_instances).await?;
    rows.push(row(
        format!(
            "8b RSS per idle initialised instance ({} instances)",
            scale.idle_instances
        ),
        per / 1024.0,
        "KiB",
        "",
        None,
        "",
        None,
        Some(Target::at_most(256.0)),
        false,
        "",
    ));
    let _ = std::fs::remove_dir_all(tmp.join("idle"));
    phase("done");
    Ok((rows, series))
}

fn print_table(rows: &[Row]) {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                format!("{} {}", fmt_num(r.ours), r.ours_unit),
                match r.peer {
                    Some(p) => format!("{}: {} {}", r.peer_name, fmt_num(p), r.peer_unit),
                    None => "-".into(),
                },
                r.ratio.map_or("-".into(), |x| format!("{}x", fmt_num(x))),
                r.target.map_or("-".into(), |t| {
                    if r.target_on_ratio {
                        format!("ratio {t}")
                    } else {
                        format!("{t} {}", r.ours_unit)
                    }
                }),
                match r.pass() {
                    Some(true) => "PASS".into(),
                    Some(false) => "FAIL".into(),
                    None => "info".into(),
                },
            ]
        })
        .collect();
    let head = [
        "figure",
        "ours",
        "peer or baseline",
        "ratio",
        "target",
        "pass/fail",
    ];
    let mut w = head.map(|h| h.len());
    for c in &cells {
        for i in 0..6 {
            w[i] = w[i].max(c[i].chars().count());
        }
    }
    let line = |c: &[String; 6]| {
        let mut s = String::from("|");
        for i in 0..6 {
            s.push_str(&format!(" {:<w$} |", c[i], w = w[i]));
        }
        s
    };
    println!("{}", line(&head.map(String::from)));
    println!(
        "|{}|",
        w.iter()
            .map(|n| "-".repeat(n + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for c in &cells {
        println!("{}", line(c));
    }
    println!();
    for r in rows.iter().filter(|r| !r.detail.is_empty()) {
        println!("  {}: {}", &r.figure[..2].trim(), r.detail);
    }
}

fn plot(
    path: &Path,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let ymax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let ymin = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(f64::MAX, f64::min)
        .max(1.0);
    let root = SVGBackend::new(path, (960, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Durable commit throughput vs concurrent sessions (16 B key, 100 B value)",
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (1.0f64..64.0).log_scale(),
            (ymin / 2.0..ymax * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("concurrent sessions (ours: tokio tasks; peers: OS threads)")
        .y_desc("durable commits / s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let colors = [RED, BLUE, GREEN];
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> AnyResult<()> {
    // `cargo bench` passes --bench; there are no other options.
    let scale = Scale::from_env();
    let (cpus, model) = machine();
    let t0 = Instant::now();
    eprintln!(
        "ese compare: {} mode, {cpus} CPUs ({model})",
        if scale.quick { "quick" } else { "full" }
    );
    let tmp = tempfile::Builder::new().prefix("ese-compare").tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (rows, series) = rt.block_on(run(&scale, tmp.path()))?;
    drop(rt);
    let total = t0.elapsed().as_secs_f64();

    println!();
    println!(
        "ese compare ({} mode, {cpus} CPUs: {model}; {total:.0} s)",
        if scale.quick { "quick" } else { "full" }
    );
    print_table(&rows);

    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let json = json!({
        "mode": if scale.quick { "quick" } else { "full" },
        "machine": { "cpus": cpus, "cpu_model": model },
        "seconds": total,
        "rows": rows.iter().map(|r| json!({
            "figure": r.figure,
            "ours": r.ours,
            "ours_unit": r.ours_unit,
            "peer_name": r.peer_name,
            "peer": r.peer,
            "peer_unit": r.peer_unit,
            "ratio": r.ratio,
            "target": r.target,
            "target_on": if r.target_on_ratio { "ratio" } else { "ours" },
            "pass": r.pass(),
            "detail": r.detail,
        })).collect::<Vec<_>>(),
        "commit_sweep": series.iter().map(|(name, pts)| json!({
            "series": name,
            "points": pts.iter().map(|(n, r)| json!({"sessions": *n as u64, "commits_per_sec": r})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let jp = dir.join("compare.json");
    std::fs::write(&jp, serde_json::to_string_pretty(&json)?)?;
    let sp = dir.join("commit_throughput.svg");
    if let Err(e) = plot(&sp, &series) {
        eprintln!("plot failed: {e}");
    }
    println!();
    println!("wrote {} and {}", jp.display(), sp.display());
    let failed = rows.iter().filter(|r| r.pass() == Some(false)).count();
    println!(
        "{} targets, {} pass, {failed} fail",
        rows.iter().filter(|r| r.pass().is_some()).count(),
        rows.iter().filter(|r| r.pass() == Some(true)).count()
    );
    Ok(())
}
