//! `ese demo`: the engine's main job in one run. Writers commit (durable and lazy) while a
//! full backup streams; an incremental follows once they stop; the chain is restored into a
//! fresh directory, attached by a new instance, and compared with the source row by row.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ese_actors::{
    restore_backup_chain, BackupKind, BackupManifest, Commit, DbId, Engine, Instance,
    InstanceParams, KeyRange, TableId, Term,
};
use serde::Serialize;

use crate::progress::Step;
use crate::{Failure, Out};

/// The demo's report.
#[derive(Debug, Serialize)]
struct Report {
    dir: PathBuf,
    writers: usize,
    seconds: f64,
    commits: u64,
    commits_per_sec: f64,
    durable_commits: u64,
    log_fsyncs: u64,
    full_backup: SetReport,
    incremental_backup: SetReport,
    restore_mb_per_sec: f64,
    restore_seconds: f64,
    restored_commits_replayed: u64,
    rows_compared: usize,
    verdict: String,
}

#[derive(Debug, Serialize)]
struct SetReport {
    id: String,
    gen_low: u32,
    gen_high: u32,
    bytes: u64,
    seconds: f64,
    mb_per_sec: f64,
}

fn set_report(m: &BackupManifest, secs: f64) -> SetReport {
    let bytes = m
        .databases
        .iter()
        .map(|d| d.size)
        .chain(m.logs.iter().map(|l| l.size))
        .sum();
    SetReport {
        id: m.id.clone(),
        gen_low: m.gen_low,
        gen_high: m.gen_high,
        bytes,
        seconds: secs,
        mb_per_sec: bytes as f64 / 1e6 / secs.max(1e-9),
    }
}

/// Sessions committing orders (`order-WW-NNNNNNNN`, and `~last-WW` naming each writer's
/// newest) until stopped; `ese serve --writers` runs them too.
pub(crate) struct Writers {
    stop: Arc<AtomicBool>,
    pub(crate) commits: Arc<AtomicU64>,
    durable: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), ese_actors::Error>>>,
}

pub(crate) fn start_writers(inst: &Instance, orders: TableId, n: usize) -> Writers {
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let durable = Arc::new(AtomicU64::new(0));
    let tasks = (0..n)
        .map(|w| {
            let (inst, stop, commits, durable) =
                (inst.clone(), stop.clone(), commits.clone(), durable.clone());
            tokio::spawn(async move {
                let mut s = inst.begin_session().await?;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut tx = s.transaction().await?;
                    let order = format!("order-{w:02}-{n:08}");
                    tx.put(
                        orders,
                        order.as_bytes(),
                        format!("customer={} amount={}", n % 97, n * 3 + w as u64).as_bytes(),
                    )
                    .await?;
                    tx.put(orders, format!("~last-{w:02}").as_bytes(), order.as_bytes())
                        .await?;
                    // Half the writers ask for durable commits, half for lazy ones.
                    let d = if w % 2 == 0 {
                        Commit::Durable
                    } else {
                        Commit::Lazy
                    };
                    tx.commit(d).await?;
                    commits.fetch_add(1, Ordering::Relaxed);
                    if d == Commit::Durable {
                        durable.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
                Ok(())
            })
        })
        .collect();
    Writers {
        stop,
        commits,
        durable,
        tasks,
    }
}

impl Writers {
    pub(crate) async fn stop(self) -> Result<(), Failure> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.map_err(|e| Failure::Other(e.to_string()))??;
        }
        Ok(())
    }
}

/// Runs the demo.
pub async fn run(
    dir: Option<PathBuf>,
    seconds: u64,
    writers: usize,
    out: Out,
) -> Result<(), Failure> {
    let tmp = tempfile::tempdir().map_err(|e| Failure::Other(e.to_string()))?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    if dir.exists() && !dir.is_dir() {
        return Err(Failure::Other(format!(
            "{} is a file; give --dir an empty or new directory",
            dir.display()
        )));
    }
    for sub in ["source", "backups", "restored", "check"] {
        let p = dir.join(sub);
        if p.exists()
            && std::fs::read_dir(&p)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        {
            return Err(Failure::Other(format!(
                "{} is not empty; give --dir an empty or new directory",
                p.display()
            )));
        }
    }
    let report = demo(&dir, seconds, writers, out).await?;
    if out.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_report(&report);
    }
    if report.verdict != "OK" {
        return Err(Failure::Check(report.verdict));
    }
    Ok(())
}

async fn demo(dir: &Path, seconds: u64, writers: usize, out: Out) -> Result<Report, Failure> {
    let engine = Engine::new();
    let src = dir.join("source");
    let params = InstanceParams::new(&src).log_file_size(1 << 20);
    let inst = engine.create_instance("source", params).await?;
    inst.init().await?;
    let db_path = src.join("orders.edb");
    let db = inst.create_database(&db_path).await?;
    let orders = inst.create_table(db, "orders").await?;

    let step = Step::start(out, &format!("{writers} writers committing"));
    let t0 = Instant::now();
    let w = start_writers(&inst, orders, writers);
    let third = Duration::from_millis(seconds * 1000 / 3);
    tokio::time::sleep(third).await;
    step.note("online full backup while the writers commit");
    let tb = Instant::now();
    let full = inst
        .backup_to_dir(dir.join("backups/full"), BackupKind::Full)
        .await?;
    let full_secs = tb.elapsed().as_secs_f64();
    let rest = Duration::from_millis(seconds * 1000).saturating_sub(t0.elapsed());
    tokio::time::sleep(rest.max(third)).await;
    let commits = w.commits.load(Ordering::Relaxed);
    let durable = w.durable.load(Ordering::Relaxed);
    let run_secs = t0.elapsed().as_secs_f64();
    w.stop().await?;
    step.done(&format!(
        "{commits} commits in {run_secs:.1}s; full backup {} took {full_secs:.2}s",
        full.id
    ));

    let step = Step::start(out, "incremental backup");
    let tb = Instant::now();
    let incr = inst
        .backup_to_dir(dir.join("backups/incremental"), BackupKind::Incremental)
        .await?;
    let incr_secs = tb.elapsed().as_secs_f64();
    step.done(&format!(
        "incremental {} (parent {})",
        incr.id,
        incr.parent_id.clone().unwrap_or_default()
    ));

    let source_rows = scan(&inst, db).await?;
    let fsyncs = inst.stats().await?.log_fsyncs;
    inst.term(Term::empty()).await?;

    let step = Step::start(out, "restoring the chain into a fresh directory");
    let tr = Instant::now();
    let chain = restore_backup_chain(
        &engine,
        &[dir.join("backups/full"), dir.join("backups/incremental")],
        dir.join("restored"),
    )
    .await?;
    let restore_secs = tr.elapsed().as_secs_f64();
    let restored_bytes: u64 =
        full.databases.iter().map(|d| d.size).sum::<u64>() + chain.restore.log_bytes;
    step.done(&format!("restored in {restore_secs:.2}s"));

    let step = Step::start(out, "checking the restored database against the source");
    let check = engine
        .create_instance(
            "check",
            InstanceParams::new(dir.join("check")).log_file_size(1 << 20),
        )
        .await?;
    check.init().await?;
    let restored_db = chain
        .databases
        .first()
        .map(|(_, p)| p.clone())
        .ok_or(Failure::Other("nothing restored".into()))?;
    let rdb = check.attach_database(&restored_db).await?;
    let restored_rows = scan(&check, rdb).await?;
    check.term(Term::empty()).await?;
    let verdict = if restored_rows == source_rows {
        "OK".to_string()
    } else {
        format!(
            "restored database differs from the source ({} rows restored, {} in the source)",
            restored_rows.len(),
            source_rows.len()
        )
    };
    step.done(&format!("{} rows compared", source_rows.len()));

    Ok(Report {
        dir: dir.to_path_buf(),
        writers,
        seconds: run_secs,
        commits,
        commits_per_sec: commits as f64 / run_secs.max(1e-9),
        durable_commits: durable,
        log_fsyncs: fsyncs,
        full_backup: set_report(&full, full_secs),
        incremental_backup: set_report(&incr, incr_secs),
        restore_mb_per_sec: restored_bytes as f64 / 1e6 / restore_secs.max(1e-9),
        restore_seconds: restore_secs,
        restored_commits_replayed: chain.restore.commits,
        rows_compared: source_rows.len(),
        verdict,
    })
}

/// Every row of "orders", opened by name: the restored database is another instance's.
async fn scan(inst: &Instance, db: DbId) -> Result<Vec<(bytes::Bytes, bytes::Bytes)>, Failure> {
    let orders = inst.open_table(db, "orders").await?;
    Ok(inst.scan(orders, KeyRange::all()).await?)
}

fn print_report(r: &Report) {
    println!("ese demo");
    // Even-numbered writers commit durably, odd ones lazily (see `start_writers`).
    let lazy = r.writers / 2;
    println!(
        "  writers            {} sessions ({} with durable, {lazy} with lazy commits)",
        r.writers,
        r.writers - lazy
    );
    println!(
        "  commits            {} in {:.1}s = {:.0} commits/s ({} durable, {} log fsyncs)",
        r.commits, r.seconds, r.commits_per_sec, r.durable_commits, r.log_fsyncs
    );
    let f = &r.full_backup;
    println!("  full backup        {} logs {}..={}  {:.1} MB in {:.2}s = {:.1} MB/s (online, writers running)", f.id, f.gen_low, f.gen_high, f.bytes as f64 / 1e6, f.seconds, f.mb_per_sec);
    let i = &r.incremental_backup;
    println!(
        "  incremental backup {} logs {}..={}  {:.1} MB in {:.2}s = {:.1} MB/s",
        i.id,
        i.gen_low,
        i.gen_high,
        i.bytes as f64 / 1e6,
        i.seconds,
        i.mb_per_sec
    );
    println!(
        "  restore            {:.2}s = {:.1} MB/s, {} commits replayed",
        r.restore_seconds, r.restore_mb_per_sec, r.restored_commits_replayed
    );
    println!(
        "  check              {} rows compared with the source: {}",
        r.rows_compared, r.verdict
    );
}
