//! `Instance::start_backup` and its `BackupHandle` while writers commit: the progress (phases
//! in order, bytes that add up to the manifest), the rate limit (a lower bound on the time,
//! from the limit), a cancel or a drop mid-stream (`BackupAbortByCaller` -800, the partial
//! set removed, no source log lost, the next backup works), a cancel once truncation began (too
//! late: the backup finishes), `term` during the backup (`BackupInProgress` -505 saying what to do) and
//! `Instance::shutdown` during it (`BackupAbortByServer` -801, a clean term, no recovery
//! needed). behaviour.md §1.2, §2.7.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ese_actors::{
    verify_backup_set, BackupBegin, BackupEnd, BackupHandle, BackupKind, BackupManifest,
    BackupOptions, BackupPhase, BackupProgress, Commit, Engine, Error, Instance, TableId, Term,
};
use parking_lot::Mutex;
use support::actor::*;

/// Slow enough that every phase of a set of a few hundred KiB lasts a good part of a second.
const SLOW: u64 = 256 * 1024;

fn throttled(rate: u64) -> BackupOptions {
    BackupOptions {
        max_rate: Some(rate),
        ..BackupOptions::default()
    }
}

struct Case {
    dir: tempfile::TempDir,
    engine: Engine,
    inst: Instance,
    table: TableId,
    home: PathBuf,
    path: PathBuf,
    set: PathBuf,
}

async fn case(rows: u32) -> Case {
    case_on(rows, ese::io::os()).await
}

async fn case_on(rows: u32, storage: ese::io::StorageRef) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let home = dir.path().join("inst");
    let (inst, table, path) = instance_on(&engine, storage, "i", &home, rows).await;
    let set = dir.path().join("set");
    Case {
        dir,
        engine,
        inst,
        table,
        home,
        path,
        set,
    }
}

/// Sessions committing durably, paced, until stopped (or until the instance refuses them); each
/// remembers the keys it committed.
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    committed: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Writers {
    fn start(inst: &Instance, table: TableId, n: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..n)
            .map(|w| {
                let (inst, stop, committed) = (inst.clone(), stop.clone(), committed.clone());
                tokio::spawn(async move {
                    let Ok(mut s) = inst.begin_session().await else {
                        return;
                    };
                    let mut i = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("w{w}-{i:06}").into_bytes();
                        let ok = async {
                            let mut tx = s.transaction().await?;
                            tx.put(table, &key, &[w as u8; 300]).await?;
                            tx.commit(Commit::Durable).await
                        }
                        .await;
                        if ok.is_err() {
                            return;
                        }
                        committed.lock().push(key);
                        i += 1;
                        // Paced, so the logs a throttled backup lists stay a few files.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Writers {
            stop,
            tasks,
            committed,
        }
    }

    /// Stops the writers; the keys they committed.
    async fn stop(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let keys = self.committed.lock().clone();
        assert!(!keys.is_empty(), "the writers committed nothing");
        keys
    }
}

/// Waits until the progress satisfies `cond`; panics if the run ends first.
async fn until(h: &mut BackupHandle, cond: impl Fn(&BackupProgress) -> bool) -> BackupProgress {
    let mut p = h.progress();
    while !cond(&p) {
        assert!(!p.phase.is_finished(), "the run ended first: {p:?}");
        p = h.changed().await;
    }
    p
}

fn mid_stream(p: &BackupProgress) -> bool {
    matches!(p.phase, BackupPhase::Databases | BackupPhase::Logs) && p.bytes_done > 0
}

fn set_bytes(m: &BackupManifest) -> u64 {
    let dbs: u64 = m.databases.iter().map(|d| d.size).sum();
    dbs + m.logs.iter().map(|l| l.size).sum::<u64>()
}

fn assert_set_gone(set: &Path, what: &str) {
    assert!(
        !set.exists(),
        "{what}: the partial set stays: {:?}",
        tree(&*ese::io::os(), set)
    );
}

/// The new full backup after a cancelled or dropped one: it works and verifies, and the
/// cancelled one left no record in the header.
async fn next_backup_works(c: &Case, what: &str) {
    let info = c.inst.database_info(&c.path).await.unwrap();
    assert_eq!(
        info.last_full, None,
        "{what}: a cancelled backup was recorded"
    );
    let next = c.dir.path().join("next");
    c.inst
        .backup_to_dir(&next, BackupKind::Full)
        .await
        .unwrap_or_else(|e| panic!("{what}: next backup: {e}"));
    verify_backup_set(&next).unwrap_or_else(|e| panic!("{what}: next set: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_goes_through_the_phases_in_order_and_adds_up_to_the_manifest() {
    let c = case(400).await;
    let writers = Writers::start(&c.inst, c.table, 2);
    let h = c
        .inst
        .start_backup(&c.set, BackupKind::Full, throttled(2 * SLOW))
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let watcher = tokio::spawn(async move {
        let mut seen = vec![*rx.borrow_and_update()];
        while rx.changed().await.is_ok() {
            seen.push(*rx.borrow_and_update());
        }
        seen
    });
    let m = h.wait().await.unwrap();
    let seen = watcher.await.unwrap();
    writers.stop().await;

    for w in seen.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert!(a.phase <= b.phase, "phases out of order: {a:?} then {b:?}");
        assert!(
            a.bytes_done <= b.bytes_done,
            "bytes_done fell: {a:?} then {b:?}"
        );
        assert!(
            a.files_done <= b.files_done,
            "files_done fell: {a:?} then {b:?}"
        );
    }
    for p in &seen {
        assert!(p.bytes_total >= p.bytes_done, "total below done: {p:?}");
        assert!(
            p.files_total >= p.files_done,
            "files total below done: {p:?}"
        );
    }
    let phases: Vec<BackupPhase> = seen.iter().map(|p| p.phase).collect();
    for phase in [BackupPhase::Databases, BackupPhase::Logs] {
        assert!(phases.contains(&phase), "{phase:?} never seen: {phases:?}");
    }
    let last = *seen.last().unwrap();
    let files = m.databases.len() + m.logs.len();
    assert_eq!(last.phase, BackupPhase::Done, "{seen:?}");
    assert_eq!(last.bytes_done, set_bytes(&m));
    assert_eq!(last.bytes_total, last.bytes_done);
    assert!(last.total_known);
    assert_eq!((last.files_done, last.files_total), (files, files));
    verify_backup_set(&c.set).unwrap();
    c.inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_makes_the_backup_take_at_least_its_size_over_the_rate() {
    let c = case(400).await;
    let writers = Writers::start(&c.inst, c.table, 2);
    let t = Instant::now();
    let mut h = c
        .inst
        .start_backup(&c.set, BackupKind::Full, throttled(SLOW))
        .await
        .unwrap();
    while !h.changed().await.phase.is_finished() {}
    let m = h.wait().await.unwrap();
    let took = t.elapsed();
    writers.stop().await;
    let bytes = set_bytes(&m);
    let least = Duration::from_secs_f64(bytes as f64 / SLOW as f64);
    eprintln!("{bytes} bytes at {SLOW} B/s: {took:?} (at least {least:?})");
    // The limit is a lower bound; the tolerance is the timer's granularity, nothing more.
    assert!(
        took + Duration::from_millis(20) >= least,
        "{bytes} bytes in {took:?}, faster than {SLOW} B/s allows ({least:?})"
    );
    assert!(
        bytes > SLOW,
        "the set ({bytes} bytes) is too small to show the limit"
    );
    verify_backup_set(&c.set).unwrap();
    c.inst.term(Term::empty()).await.unwrap();
}

/// Cancels a run once `when` holds; checks the clean-up and that the next backup works.
async fn cancel_when(when: fn(&BackupProgress) -> bool, what: &str) {
    let c = case(400).await;
    let writers = Writers::start(&c.inst, c.table, 2);
    let os = ese::io::os();
    let before = archived_logs(&*os, &c.home);
    let mut h = c
        .inst
        .start_backup(&c.set, BackupKind::Full, throttled(SLOW))
        .await
        .unwrap();
    let at = until(&mut h, when).await;
    assert!(h.cancel(), "{what}: a cancel mid-stream is in time");
    assert!(h.cancel(), "{what}: a second cancel answers as the first");
    let e = h.wait().await.unwrap_err();
    assert_eq!(e, Error::BackupAbortByCaller, "{what} (at {at:?}): {e}");
    assert_eq!(e.code(), -800);
    assert_set_gone(&c.set, what);
    assert_logs_kept(&before, &archived_logs(&*os, &c.home), what);
    next_backup_works(&c, what).await;
    writers.stop().await;
    c.inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_stream_aborts_and_removes_the_partial_set() {
    cancel_when(
        |p| p.phase == BackupPhase::Databases && p.bytes_done > 0,
        "cancelled copying the database",
    )
    .await;
    cancel_when(
        |p| p.phase == BackupPhase::Logs,
        "cancelled in the log phase",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_mid_stream_cleans_up_before_term_and_the_next_backup() {
    for then_term in [true, false] {
        let c = case(400).await;
        let writers = Writers::start(&c.inst, c.table, 2);
        let os = ese::io::os();
        let before = archived_logs(&*os, &c.home);
        let mut h = c
            .inst
            .start_backup(&c.set, BackupKind::Full, throttled(SLOW))
            .await
            .unwrap();
        until(&mut h, mid_stream).await;
        drop(h);
        let what = format!(
            "dropped, then {}",
            if then_term { "term" } else { "backup" }
        );
        if then_term {
            // The writers are stopped first: the term is about the dropped backup.
            writers.stop().await;
            c.inst
                .term(Term::empty())
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_set_gone(&c.set, &what);
            assert_logs_kept(&before, &archived_logs(&*os, &c.home), &what);
        } else {
            // The next backup begins at once: the dropped one is over by then.
            c.inst
                .begin_external_backup(BackupBegin::empty())
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            c.inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
            assert_set_gone(&c.set, &what);
            assert_logs_kept(&before, &archived_logs(&*os, &c.home), &what);
            next_backup_works(&c, &what).await;
            writers.stop().await;
            c.inst.term(Term::empty()).await.unwrap();
        }
    }
}

/// Whether an incremental backup now would truncate logs (asked by a sequence that is then
/// aborted).
async fn truncation_due(inst: &Instance) -> bool {
    inst.begin_external_backup(BackupBegin::INCREMENTAL)
        .await
        .unwrap();
    let doomed = inst.get_truncate_log_info().await.unwrap();
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    !doomed.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_once_truncation_began_lets_the_backup_finish() {
    let gated = GatedStorage::new(ese::io::os());
    let c = case_on(400, gated.storage()).await;
    let full = c.dir.path().join("full");
    c.inst.backup_to_dir(&full, BackupKind::Full).await.unwrap();
    let mut more = 400;
    while !truncation_due(&c.inst).await {
        put_rows(&c.inst, c.table, more..more + 400).await;
        more += 400;
        assert!(more < 20_000, "the checkpoint never moves past a log");
    }
    let latch = gated.latch_removes("/edb0");
    let mut h = c
        .inst
        .start_backup(&c.set, BackupKind::Incremental, BackupOptions::default())
        .await
        .unwrap();
    tokio::select! {
        p = until(&mut h, |p| p.phase.is_finished()) => panic!("finished while a truncation is held: {p:?}"),
        _ = latch.arrived_at_least(1) => {}
    }
    assert_eq!(h.progress().phase, BackupPhase::Finishing);
    assert!(!h.cancel(), "a cancel once truncation began comes too late");
    latch.release();
    gated.clear();
    let m = h.wait().await.unwrap();
    verify_backup_set(&c.set).unwrap();
    let info = c.inst.database_info(&c.path).await.unwrap();
    let recorded = info
        .last_incremental
        .expect("the finished backup is recorded");
    assert_eq!(recorded.mark, m.mark);
    c.inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_during_a_handles_backup_is_refused_and_says_what_to_do() {
    let c = case(400).await;
    let mut h = c
        .inst
        .start_backup(&c.set, BackupKind::Full, throttled(SLOW))
        .await
        .unwrap();
    until(&mut h, mid_stream).await;
    let e = c.inst.term(Term::empty()).await.unwrap_err();
    assert_eq!(e, Error::BackupInProgress, "{e}");
    assert_eq!(e.code(), -505);
    let detail = e.detail().expect("the refusal says what to do");
    assert!(detail.contains("STOP_BACKUP"), "{detail}");
    assert!(detail.contains("stop_backup"), "{detail}");
    // The instance keeps running and the backup ends as it would have.
    h.wait().await.unwrap();
    verify_backup_set(&c.set).unwrap();
    c.inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_backup_stops_it_removes_its_set_and_terms_cleanly() {
    let c = case(400).await;
    let writers = Writers::start(&c.inst, c.table, 2);
    let os = ese::io::os();
    let mut h = c
        .inst
        .start_backup(&c.set, BackupKind::Full, throttled(SLOW))
        .await
        .unwrap();
    until(&mut h, mid_stream).await;
    // The log prepared for the next generation (`edbtmp.log`) is not an archived log: a
    // clean term removes it.
    let mut before = archived_logs(&*os, &c.home);
    before.retain(|p| !p.ends_with("edbtmp.log"));
    c.inst.shutdown().await.unwrap();
    let e = h.wait().await.unwrap_err();
    assert_eq!(e, Error::BackupAbortByServer, "{e}");
    assert_eq!(e.code(), -801);
    assert_set_gone(&c.set, "shut down");
    assert_logs_kept(&before, &archived_logs(&*os, &c.home), "shut down");
    // The writers met the term; what they committed is durable.
    let committed = writers.stop().await;
    assert_eq!(
        code(c.inst.init().await),
        -1115,
        "the instance is terminated"
    );

    // The header says clean shutdown: the next init has nothing to recover.
    let other = c
        .engine
        .create_instance("j", params(&c.dir.path().join("other")))
        .await
        .unwrap();
    other.init().await.unwrap();
    let info = other.database_info(&c.path).await.unwrap();
    other.term(Term::empty()).await.unwrap();
    assert!(info.clean_shutdown, "shutdown left the database dirty");

    let again = c
        .engine
        .create_instance("i", params(&c.home))
        .await
        .unwrap();
    again.init().await.unwrap();
    let db = again.attach_database(&c.path).await.unwrap();
    let t = again.open_table(db, "t").await.unwrap();
    let s = again.begin_session().await.unwrap();
    for key in &committed {
        assert!(
            s.get(t, key).await.unwrap().is_some(),
            "committed row {} lost",
            String::from_utf8_lossy(key)
        );
    }
    drop(s);
    again.shutdown().await.unwrap();
    assert_eq!(code(again.shutdown().await), -1115);
}

/// While a shutdown waits for a run (held reading the database), a new backup is refused and
/// creates nothing; after it, the instance is terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_started_during_shutdown_is_refused_and_creates_nothing() {
    let gated = GatedStorage::new(ese::io::os());
    let c = case_on(60, gated.storage()).await;
    let latch = gated.latch_reads("db.edb");
    let h = c
        .inst
        .start_backup(&c.set, BackupKind::Full, BackupOptions::default())
        .await
        .unwrap();
    latch.arrived_at_least(1).await;
    let shutdown = {
        let inst = c.inst.clone();
        tokio::spawn(async move { inst.shutdown().await })
    };
    let other = c.dir.path().join("other-set");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .inst
            .start_backup(&other, BackupKind::Full, BackupOptions::default())
            .await;
        // Until the shutdown closed the door, the running backup refuses the new one.
        match r.map(|_| ()).unwrap_err().code() {
            -1000 => break,
            -505 => {}
            e => panic!("start_backup during shutdown: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the shutdown never refused a backup"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        code(c.inst.backup_to_dir(&other, BackupKind::Full).await),
        -1000
    );
    assert_set_gone(&other, "started during shutdown");
    assert!(
        !shutdown.is_finished(),
        "the shutdown waits for the held run"
    );
    latch.release();
    gated.clear();
    shutdown.await.unwrap().unwrap();
    assert_eq!(h.wait().await.unwrap_err(), Error::BackupAbortByServer);
    assert_set_gone(&c.set, "stopped by shutdown");
    let r = c
        .inst
        .start_backup(&other, BackupKind::Full, BackupOptions::default())
        .await;
    assert_eq!(
        code(r),
        -1115,
        "after the shutdown, the instance is terminated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_that_do_not_fit_are_refused_before_anything_is_created() {
    let c = case(60).await;
    for options in [
        BackupOptions {
            max_rate: Some(0),
            chunk_size: None,
            compress: None,
        },
        BackupOptions {
            max_rate: None,
            chunk_size: Some(PAGE * 3 + 1),
            compress: None,
        },
        BackupOptions {
            max_rate: None,
            chunk_size: Some(PAGE * 2),
            compress: None,
        },
    ] {
        let r = c
            .inst
            .start_backup(&c.set, BackupKind::Full, options.clone())
            .await;
        assert_eq!(code(r), -1003, "{options:?}");
        assert_set_gone(&c.set, &format!("{options:?}"));
    }
    // Small chunks that fit: the set is the same as with the default.
    let options = BackupOptions {
        max_rate: None,
        chunk_size: Some(PAGE * 3),
        compress: None,
    };
    let m = c
        .inst
        .start_backup(&c.set, BackupKind::Full, options)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(verify_backup_set(&c.set).unwrap().logs, m.logs.len());
    c.inst.term(Term::empty()).await.unwrap();
}
