//! Point-in-time edges (behaviour.md §3.2, §3 step 5): stop points that lie before what a
//! backup's image already holds. The image holds every commit made before the backup began,
//! including those in logs older than the set's first log, which replay never sees: a stop
//! point before them cannot be honoured and must be refused (`EndingRestoreLogTooLow` -553),
//! never answered with a database that holds commits made after it.

use crate::support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ese_actors::{restore_backup_chain_to, BackupKind, BackupManifest, Engine, StopAt, Term};
use support::actor::*;

/// 100 rows, then (after `stop`) 100 more, a clean term and a new instance on the same files,
/// a full backup (no commit in its logs), 100 more rows and an incremental.
struct Quiet {
    engine: Engine,
    dir: tempfile::TempDir,
    full: PathBuf,
    inc: PathBuf,
    full_m: BackupManifest,
    /// A time after the first 100 rows' commits and before the next ones.
    stop: SystemTime,
    /// The generation the first 100 rows' commits ended in.
    gen_a: u32,
}

async fn quiet() -> Quiet {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    let (inst, t, db) = instance_with_data(&engine, "src", &src, 100).await;
    let gen_a = inst.instance_info().await.unwrap().current_gen;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stop = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    roll_logs(&inst, t, 3, 100).await;
    // An earlier backup rolls the log past the last commit; a clean term then moves the
    // checkpoint there: the next full backup's logs hold no commit.
    inst.backup_to_dir(dir.path().join("earlier"), BackupKind::Copy)
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();

    let inst = engine.create_instance("src", params(&src)).await.unwrap();
    inst.init().await.unwrap();
    let id = inst.attach_database(&db).await.unwrap();
    let t = inst.open_table(id, "t").await.unwrap();
    let full = dir.path().join("full");
    let full_m = inst.backup_to_dir(&full, BackupKind::Full).await.unwrap();
    assert!(
        full_m.gen_low > gen_a + 1,
        "the set's logs start after the commits made after the stop point"
    );
    put_rows(&inst, t, 100_000..100_100).await;
    let inc = dir.path().join("inc");
    inst.backup_to_dir(&inc, BackupKind::Incremental)
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();
    Quiet {
        engine,
        dir,
        full,
        inc,
        full_m,
        stop,
        gen_a,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_before_commits_the_full_image_holds_is_refused() {
    let q = quiet().await;
    let stops = [
        ("time", StopAt::Time(q.stop)),
        ("generation", StopAt::Generation(q.gen_a)),
        (
            "position",
            StopAt::LogPosition(ese::Lsn::new(q.gen_a + 1, 0)),
        ),
    ];
    for (name, stop) in stops {
        for (chain, sets) in [
            ("full", vec![q.full.clone()]),
            ("chain", vec![q.full.clone(), q.inc.clone()]),
        ] {
            let target = q.dir.path().join(format!("{name}-{chain}"));
            let r = restore_backup_chain_to(&q.engine, &sets, &target, Some(stop)).await;
            let what = match &r {
                Ok(rep) => {
                    let rows = rows_in(&q.engine, &rep.databases[0].1, &target.join("probe")).await;
                    format!("restored {rows} rows (stopped: {})", rep.restore.stopped)
                }
                Err(e) => format!("{e}"),
            };
            assert_eq!(
                r.as_ref().err().map(|e| e.code()),
                Some(-553),
                "{name} stop, {chain}: {what}; only the first 100 rows were committed before \
                 the stop point (full set gen_low {})",
                q.full_m.gen_low
            );
        }
    }
}

/// A full backup, then the source's log rolled five times (rows after it in every later
/// log). Returns the engine, the folder, the source, the set and its manifest.
async fn rolled_after_full() -> (Engine, tempfile::TempDir, PathBuf, PathBuf, BackupManifest) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    let (inst, t, _) = instance_with_data(&engine, "src", &src, 100).await;
    let set = dir.path().join("full");
    let m = inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    roll_logs(&inst, t, 5, 1000).await;
    inst.term(Term::empty()).await.unwrap();
    (engine, dir, src, set, m)
}

/// A stop point before a gap in the later logs: every commit the restore asks for is in the
/// logs before the gap, so the gap costs nothing (behaviour.md §3.2); refusing it with
/// `MissingCurrentLogFiles` makes the caller move the source's logs aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_point_before_a_gap_in_the_later_logs_restores() {
    let (engine, dir, src, set, m) = rolled_after_full().await;
    let stop_gen = m.gen_high + 1;
    let gap = m.gen_high + 3;
    std::fs::remove_file(src.join(format!("edb{gap:08X}.log"))).unwrap();
    let target = dir.path().join("r");
    std::fs::create_dir_all(&target).unwrap();
    let img = target.join("db.edb");
    std::fs::copy(set.join(&m.databases[0].file), &img).unwrap();
    let spec = ese_actors::RestoreSpec {
        checkpoint_dir: target.clone(),
        log_dir: src.clone(),
        backup_log_dir: set.join("logs"),
        gen_low: m.gen_low,
        gen_high: m.gen_high,
        base_name: "edb".into(),
        restore_map: vec![(m.databases[0].original_path.clone(), img.clone())],
        stop_at: Some(StopAt::Generation(stop_gen)),
    };
    let r = engine.external_restore(spec).await;
    let r = r.unwrap_or_else(|e| panic!("stop at generation {stop_gen}, gap at {gap}: {e}"));
    assert!(r.stopped);
    assert!(rows_in(&engine, &img, &target.join("probe")).await > 100);
}

/// A restore the replay's checks refuse (here a stop point before the image, -553) removes
/// what it copied into the target, as every other refused restore does (behaviour.md §2.7):
/// nothing there looks restored, and the same target takes the next restore. The folders it
/// made go too (the target and two above it here): they used to stay, empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_refused_for_its_stop_point_leaves_its_target_empty() {
    let q = quiet().await;
    let target = q.dir.path().join("refused/a/b");
    let sets = [q.full.clone(), q.inc.clone()];
    let e = restore_backup_chain_to(&q.engine, &sets, &target, Some(StopAt::Time(q.stop)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), -553, "{e}");
    assert!(!q.dir.path().join("refused").exists());
    // A target the operator made stays, empty.
    std::fs::create_dir_all(&target).unwrap();
    let e = restore_backup_chain_to(&q.engine, &sets, &target, Some(StopAt::Time(q.stop)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), -553, "{e}");
    assert!(target.is_dir());
    let left: Vec<_> = std::fs::read_dir(&target).unwrap().collect();
    assert!(left.is_empty(), "the refused restore left {left:?}");
    let r = restore_backup_chain_to(&q.engine, &sets, &target, None)
        .await
        .unwrap();
    let rows = rows_in(&q.engine, &r.databases[0].1, &target.join("probe")).await;
    assert_eq!(rows, 900);
}

/// Stop points exactly at, just past and at the end of single commits, through a chain
/// (full, two incrementals): each restore holds exactly the commits before the stop
/// (behaviour.md §3.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_at_commit_boundaries_through_a_chain() {
    use ese::internals::log::{reader, Record};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    let (inst, t, _) = instance_with_data(&engine, "src", &src, 10).await;
    let p = |n: &str| dir.path().join(n);
    let f = inst.backup_to_dir(p("f"), BackupKind::Full).await.unwrap();
    const N: u32 = 60;
    for i in 0..N {
        put_rows(&inst, t, 1000 + i..1001 + i).await;
        if i == N / 2 {
            inst.backup_to_dir(p("i1"), BackupKind::Incremental)
                .await
                .unwrap();
        }
    }
    let i2 = inst
        .backup_to_dir(p("i2"), BackupKind::Incremental)
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();
    // Every commit after the full backup's logs, in log order: one a row.
    let mut commits = Vec::new();
    for g in f.gen_high + 1..=i2.gen_high {
        let name = format!("logs/edb{g:08X}.log");
        let held = ["i2", "i1"].map(|s| p(s).join(&name));
        let path = held.iter().find(|f| f.exists()).unwrap();
        let log = reader::read_file(&*ese::io::os(), path).unwrap();
        for r in &log.records {
            if let Record::Commit { .. } = r.record {
                commits.push((r.start, r.end));
            }
        }
    }
    assert_eq!(commits.len(), N as usize, "one commit per row");
    let sets = [p("f"), p("i1"), p("i2")];
    let mut n = 0;
    for k in [0usize, 1, 30, 31, 32, 59] {
        let (start, end) = commits[k];
        let cases = [
            (StopAt::LogPosition(start), k),
            (StopAt::LogPosition(ese::Lsn(start.0 + 1)), k + 1),
            (StopAt::LogPosition(end), k + 1),
            (StopAt::Generation(start.gen()), {
                commits.iter().filter(|c| c.0.gen() <= start.gen()).count()
            }),
        ];
        for (stop, want) in cases {
            n += 1;
            let target = p(&format!("r{n}"));
            let r = restore_backup_chain_to(&engine, &sets, &target, Some(stop))
                .await
                .unwrap_or_else(|e| panic!("{stop:?}: {e}"));
            let rows = rows_in(&engine, &r.databases[0].1, &target.join("probe")).await;
            assert_eq!(
                rows,
                10 + want,
                "{stop:?}, commit {k} at {start:?}..{end:?}"
            );
        }
    }
}

/// Transactions of 800 rows (more than a log file) whose page records span log rolls: a stop between a
/// transaction's first page record and its commit (a generation, a position) leaves it out
/// whole; the rows are always whole transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_spanning_the_stop_point_comes_back_whole_or_not_at_all() {
    use ese::internals::log::{reader, Record};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    let (inst, t, _) = instance_with_data(&engine, "src", &src, 10).await;
    let p = |n: &str| dir.path().join(n);
    let f = inst.backup_to_dir(p("f"), BackupKind::Full).await.unwrap();
    const TX: u32 = 4;
    const ROWS: u32 = 800;
    for i in 0..TX {
        let mut s = inst.begin_session().await.unwrap();
        let mut tx = s.transaction().await.unwrap();
        for j in 0..ROWS {
            let k = 10_000 + i * ROWS + j;
            tx.put(t, format!("k{k:06}").as_bytes(), &[(k % 251) as u8; 200])
                .await
                .unwrap();
        }
        tx.commit(ese::Commit::Durable).await.unwrap();
    }
    let i = inst
        .backup_to_dir(p("i"), BackupKind::Incremental)
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();
    // Each transaction: where its first record starts, and its commit's position.
    let mut txs = Vec::new();
    let mut first = None;
    for g in f.gen_high + 1..=i.gen_high {
        let log = reader::read_file(
            &*ese::io::os(),
            &p("i").join(format!("logs/edb{g:08X}.log")),
        )
        .unwrap();
        for r in &log.records {
            match r.record {
                Record::Pages(_) | Record::Deltas(_) => {
                    first.get_or_insert(r.start);
                }
                Record::Commit { .. } => txs.push((first.take().unwrap_or(r.start), r.start)),
                _ => {}
            }
        }
    }
    assert_eq!(txs.len(), TX as usize);
    let spanning: Vec<usize> = (0..txs.len())
        .filter(|&k| txs[k].0.gen() < txs[k].1.gen())
        .collect();
    assert!(!spanning.is_empty(), "no transaction spans a roll: {txs:?}");
    let sets = [p("f"), p("i")];
    let mut n = 0;
    for k in spanning {
        let (begin, commit) = txs[k];
        let mid = ese::Lsn(begin.0 + 1);
        assert!(mid < commit);
        for stop in [StopAt::Generation(begin.gen()), StopAt::LogPosition(mid)] {
            n += 1;
            let target = p(&format!("r{n}"));
            let r = restore_backup_chain_to(&engine, &sets, &target, Some(stop))
                .await
                .unwrap_or_else(|e| panic!("{stop:?}: {e}"));
            let rows = rows_in(&engine, &r.databases[0].1, &target.join("probe")).await;
            assert_eq!(
                rows,
                10 + ROWS as usize * k,
                "{stop:?}: transaction {k} from {begin:?} to {commit:?}"
            );
        }
    }
}

/// A writer commits while a full and two incrementals are taken; a stop time between them
/// restores, through the whole chain, exactly a prefix of the writer's transactions: every
/// one acknowledged before the time, none begun after it (behaviour.md §3.1, §3.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_time_under_load_restores_an_acknowledged_prefix() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let p = |n: &str| dir.path().join(n);
    let (inst, t) = writer_source(&engine, &p("src")).await;
    let w = spawn_writer(&inst, t);
    tokio::time::sleep(Duration::from_millis(30)).await;
    inst.backup_to_dir(p("f"), BackupKind::Full).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut stops = Vec::new();
    for s in ["i1", "i2"] {
        let acked = w.acked.load(SeqCst);
        let at = SystemTime::now();
        // Past the stop time's millisecond: a transaction begun now commits after it.
        while SystemTime::now() < at + Duration::from_millis(2) {
            tokio::task::yield_now().await;
        }
        let next = w.next.load(SeqCst) + 1;
        stops.push((acked, at, next));
        tokio::time::sleep(Duration::from_millis(20)).await;
        inst.backup_to_dir(p(s), BackupKind::Incremental)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.stop().await;
    inst.term(Term::empty()).await.unwrap();
    let sets = [p("f"), p("i1"), p("i2")];
    for (n, (acked, at, next)) in stops.into_iter().enumerate() {
        let target = p(&format!("r{n}"));
        let r = restore_backup_chain_to(&engine, &sets, &target, Some(StopAt::Time(at)))
            .await
            .unwrap();
        assert!(r.restore.stopped);
        check_prefix(
            &engine,
            &r.databases[0].1,
            &target.join("probe"),
            (acked, next),
        )
        .await;
    }
}

/// Two map entries whose images are one database (the same signature: a copy mapped twice):
/// replay can bring only one of them up to the logs. Before, the restore succeeded and left
/// the other unreplayed and unattachable (DatabaseCorrupted), though §3 promises every mapped
/// database consistent and attachable; now the spec is refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_database_mapped_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    let (inst, t, db) = instance_with_data(&engine, "src", &src, 100).await;
    let set = dir.path().join("full");
    let m = inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    put_rows(&inst, t, 100..300).await;
    inst.term(Term::empty()).await.unwrap();
    let target = dir.path().join("r");
    std::fs::create_dir_all(&target).unwrap();
    let (a, b) = (target.join("a.edb"), target.join("b.edb"));
    for img in [&a, &b] {
        std::fs::copy(set.join(&m.databases[0].file), img).unwrap();
    }
    let spec = ese_actors::RestoreSpec {
        checkpoint_dir: target.clone(),
        log_dir: src.clone(),
        backup_log_dir: set.join("logs"),
        gen_low: m.gen_low,
        gen_high: m.gen_high,
        base_name: "edb".into(),
        restore_map: vec![(db.clone(), a.clone()), (src.join("other.edb"), b.clone())],
        stop_at: None,
    };
    let e = engine.external_restore(spec.clone()).await.unwrap_err();
    assert_eq!(e.code(), -1003, "{e}");
    // Nothing was written: the first image still restores on its own.
    let mut one = spec;
    one.restore_map.truncate(1);
    engine.external_restore(one).await.unwrap();
    assert_eq!(rows_in(&engine, &a, &target.join("probe")).await, 300);
}
