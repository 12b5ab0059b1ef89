//! The host's `stop_backup` at every step of `backup_to_dir`: the call either succeeds, or
//! fails having removed its set without costing the source a log, or (stopped after logs were
//! truncated) fails keeping its complete set, which verifies. Either way the instance takes the
//! next backup and terminates normally (behaviour.md §2.7; the decision in docs/design.md).

use crate::support;

use ese_actors::{verify_backup_set, BackupKind, Engine, Term};
use support::actor::*;

/// How a stopped call ended.
#[derive(Debug, Default)]
struct Outcomes {
    succeeded: usize,
    removed: usize,
    kept: usize,
}

/// Stops the backup at the call's k-th wait; `false` when the call finished first.
async fn stop_at(engine: &Engine, k: usize, seen: &mut Outcomes) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("inst");
    let (inst, _, _) = instance_on(engine, ese::io::os(), "i", &home, 60).await;
    let os = ese::io::os();
    let before = archived_logs(&*os, &home);
    let set = dir.path().join("set");
    let (res, stopped) = match PauseAt::new(inst.backup_to_dir(&set, BackupKind::Full), k).await {
        Ok(res) => (res, false),
        Err(paused) => {
            inst.stop_backup().await.unwrap();
            (paused.await, true)
        }
    };
    let what = format!("stopped at wait {k}");
    match res {
        Ok(_) => {
            seen.succeeded += 1;
            verify_backup_set(&set).unwrap();
        }
        Err(e) if set.exists() => {
            seen.kept += 1;
            assert!(e.to_string().contains("keep it"), "{what}: {e}");
            verify_backup_set(&set).unwrap_or_else(|v| panic!("{what}: kept set: {v}"));
        }
        Err(e) => {
            seen.removed += 1;
            assert_eq!(e.code(), -801, "{what}: {e}");
            assert_logs_kept(&before, &archived_logs(&*os, &home), &what);
        }
    }
    let next = dir.path().join("next");
    inst.backup_to_dir(&next, BackupKind::Full)
        .await
        .unwrap_or_else(|e| panic!("{what}: next: {e}"));
    verify_backup_set(&next).unwrap();
    inst.term(Term::empty()).await.unwrap();
    stopped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_backup_at_every_step_fails_cleanly_or_keeps_a_complete_set() {
    let engine = Engine::new();
    let mut seen = Outcomes::default();
    // How many waits a call makes varies a little from run to run (a blocking step may be
    // done before it is first polled): go on until three calls in a row finished first.
    let (mut k, mut finished) = (0, 0);
    while finished < 3 {
        k += 1;
        assert!(k < 500, "backup_to_dir never finishes");
        finished = if stop_at(&engine, k, &mut seen).await {
            0
        } else {
            finished + 1
        };
    }
    eprintln!("stopped at up to {k} waits: {seen:?}");
    assert!(k > 12 && seen.removed > 0);
}

/// Whether an incremental backup now would truncate logs (asked by a sequence that is then
/// aborted).
async fn truncation_due(inst: &ese_actors::Instance) -> bool {
    inst.begin_external_backup(ese_actors::BackupBegin::INCREMENTAL)
        .await
        .unwrap();
    let doomed = inst.get_truncate_log_info().await.unwrap();
    inst.end_external_backup(ese_actors::BackupEnd::ABORT)
        .await
        .unwrap();
    !doomed.is_empty()
}

/// Stopped while the truncation deletes logs: the end then fails (-801), and the set (an
/// incremental here) stays, complete, because it is the only copy of the logs deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_after_logs_were_truncated_keeps_the_complete_set() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let gated = GatedStorage::new(ese::io::os());
    let home = dir.path().join("inst");
    let (inst, t, _) = instance_on(&engine, gated.storage(), "i", &home, 400).await;
    let full = dir.path().join("full");
    inst.backup_to_dir(&full, BackupKind::Full).await.unwrap();
    let mut more = 400;
    while !truncation_due(&inst).await {
        put_rows(&inst, t, more..more + 400).await;
        more += 400;
        assert!(more < 20_000, "the checkpoint never moves past a log");
    }
    let latch = gated.latch_removes("/edb0");
    let set = dir.path().join("set");
    let call = inst.backup_to_dir(&set, BackupKind::Incremental);
    tokio::pin!(call);
    tokio::select! {
        r = &mut call => panic!("finished while a truncation is held: {r:?}"),
        _ = latch.arrived_at_least(1) => {}
    }
    inst.stop_backup().await.unwrap();
    latch.release();
    gated.clear();
    let e = call.await.unwrap_err();
    assert_eq!(e.code(), -801, "{e}");
    assert!(e.to_string().contains("keep it"), "{e}");
    verify_backup_set(&set).unwrap();
    let next = dir.path().join("next");
    inst.backup_to_dir(&next, BackupKind::Full).await.unwrap();
    verify_backup_set(&next).unwrap();
    inst.term(Term::empty()).await.unwrap();
}
