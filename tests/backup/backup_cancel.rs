//! Dropping `backup_to_dir`'s future at any point ends its backup as aborted (`ABORT`,
//! event 215) and removes the partial set (issue 11.9): afterwards a new backup into the same
//! directory works, `term(Term::empty())` succeeds, and no source log is lost. A drop after
//! the set is complete keeps it (it may hold logs the truncation deleted), and it verifies.

use crate::support;

use std::path::{Path, PathBuf};

use ese_actors::{verify_backup_set, BackupBegin, BackupEnd, BackupKind, Engine, Instance, Term};
use support::actor::*;

/// How a test looks at an instance after the drop.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    /// Terminate at once: the term must not meet the dropped backup.
    Term,
    /// Begin a backup by hand, then take a new set into the same directory.
    BackUp,
}

struct Case {
    _dir: tempfile::TempDir,
    inst: Instance,
    home: PathBuf,
    db: PathBuf,
    set: PathBuf,
}

async fn case(engine: &Engine, gated: Option<&GatedStorage>) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("inst");
    let storage = gated.map_or_else(ese::io::os, |g| g.storage());
    let (inst, _, db) = instance_on(engine, storage, "i", &home, 60).await;
    let set = dir.path().join("set");
    Case {
        _dir: dir,
        inst,
        home,
        db,
        set,
    }
}

/// What a dropped call may leave: nothing, or a complete set (dropped after its manifest).
fn dropped_set_is_gone_or_complete(set: &Path, what: &str) -> bool {
    if !set.exists() {
        return true;
    }
    assert!(
        set.join("manifest.json").exists(),
        "{what}: a partial set stays: {:?}",
        std::fs::read_dir(set).unwrap().collect::<Vec<_>>()
    );
    verify_backup_set(set).unwrap_or_else(|e| panic!("{what}: the kept set: {e}"));
    false
}

/// The checks after a drop; whether the dropped set was removed (not kept complete).
async fn after_drop(c: &Case, then: Then, what: &str) -> bool {
    let os = ese::io::os();
    let before = archived_logs(&*os, &c.home);
    match then {
        Then::Term => {
            c.inst
                .term(Term::empty())
                .await
                .unwrap_or_else(|e| panic!("{what}: term: {e}"));
            let removed = dropped_set_is_gone_or_complete(&c.set, what);
            if removed {
                assert_logs_kept(&before, &archived_logs(&*os, &c.home), what);
            }
            removed
        }
        Then::BackUp => {
            // No backup is left running: a new one begins at once.
            c.inst
                .begin_external_backup(BackupBegin::empty())
                .await
                .unwrap_or_else(|e| panic!("{what}: begin: {e}"));
            c.inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
            let removed = dropped_set_is_gone_or_complete(&c.set, what);
            if removed {
                assert_logs_kept(&before, &archived_logs(&*os, &c.home), what);
                let info = c.inst.database_info(&c.db).await.unwrap();
                assert_eq!(
                    info.last_full, None,
                    "{what}: an aborted backup was recorded"
                );
                c.inst
                    .backup_to_dir(&c.set, BackupKind::Full)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: retry: {e}"));
                verify_backup_set(&c.set).unwrap();
            }
            c.inst
                .term(Term::empty())
                .await
                .unwrap_or_else(|e| panic!("{what}: term: {e}"));
            removed
        }
    }
}

/// Drops the call at its k-th wait; `false` when it finished first.
async fn drop_at(engine: &Engine, k: usize, then: Then) -> bool {
    let c = case(engine, None).await;
    let call = c.inst.backup_to_dir(&c.set, BackupKind::Full);
    match PauseAt::new(call, k).await {
        Ok(done) => {
            done.unwrap();
            c.inst.term(Term::empty()).await.unwrap();
            return false;
        }
        Err(paused) => drop(paused),
    }
    after_drop(&c, then, &format!("dropped at wait {k}, then {then:?}")).await;
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_to_dir_cancel_safety() {
    let engine = Engine::new();
    let mut waits = 0;
    for then in [Then::Term, Then::BackUp] {
        // How many waits a call makes varies a little from run to run (a blocking step may
        // be done before it is first polled): go on until three calls in a row finished first.
        let (mut k, mut finished) = (0, 0);
        while finished < 3 {
            k += 1;
            assert!(k < 500, "backup_to_dir never finishes");
            finished = if drop_at(&engine, k, then).await {
                0
            } else {
                finished + 1
            };
        }
        waits = waits.max(k - 3);
    }
    eprintln!("dropped at each of {waits} waits");
    // Begin, open, read, close (database and logs), log info, the writer's steps, manifest,
    // truncation, end: far more than a dozen waits.
    assert!(waits >= 12, "only {waits} waits");
}

/// Drops the call while a read of `held` is on disk (deterministic points of the sequence).
async fn drop_while_reading(held: &str, then: Then) {
    let engine = Engine::new();
    let gated = GatedStorage::new(ese::io::os());
    let c = case(&engine, Some(&gated)).await;
    let latch = gated.latch_reads(held);
    tokio::select! {
        r = c.inst.backup_to_dir(&c.set, BackupKind::Full) => panic!("finished while held: {r:?}"),
        _ = latch.arrived_at_least(1) => {}
    }
    assert!(c.set.exists(), "the call had begun writing its set");
    latch.release();
    gated.clear();
    let what = format!("dropped reading {held}, then {then:?}");
    assert!(
        after_drop(&c, then, &what).await,
        "{what}: the partial set was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_while_a_database_read_is_on_disk() {
    drop_while_reading("db.edb", Then::Term).await;
    drop_while_reading("db.edb", Then::BackUp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_while_a_log_read_is_on_disk() {
    drop_while_reading("/edb0", Then::Term).await;
    drop_while_reading("/edb0", Then::BackUp).await;
}
