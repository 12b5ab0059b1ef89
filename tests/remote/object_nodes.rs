//! Garage nodes dying under a backup, on a cluster of the test's own. One node SIGKILLed in
//! the middle of an upload: the writes still reach a quorum (2 of 3) and the backup completes
//! and restores. Two nodes down: the backup fails in bounded time with an error naming the
//! store, leaves no visible set, and the instance is unharmed.

use crate::support;

use std::time::{Duration, Instant};

use ese_actors::{
    list_sets, restore_from, BackupKind, BackupOptions, BackupPhase, Engine, SetChoice, SetState,
    Term, VerifyDepth,
};
use ese_garage::Cluster;
use support::actor::remote::*;
use support::actor::*;

/// A writer's source with `rows` KiB of bulk rows beside its table.
async fn loaded_source(
    engine: &Engine,
    dir: &std::path::Path,
    rows: u32,
) -> (ese_actors::Instance, ese_actors::TableId) {
    let (inst, t) = writer_source(engine, dir).await;
    let bulk = inst.create_table(t.db(), "bulk").await.unwrap();
    bulk_load(&inst, bulk, rows).await;
    (inst, t)
}

/// Waits until the backup has streamed more than `bytes` of its database image; it must
/// still be running then, so that what follows lands mid-upload.
async fn into_the_image(h: &mut ese_actors::BackupHandle, bytes: u64) {
    loop {
        let p = h.changed().await;
        assert!(!p.phase.is_finished(), "the backup ended before the kill");
        if p.phase == BackupPhase::Databases && p.bytes_done > bytes {
            return;
        }
    }
}

/// Throttled so that a kill lands while parts are in flight.
fn throttled() -> BackupOptions {
    BackupOptions {
        max_rate: Some(20 << 20),
        ..BackupOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_killed_mid_upload_the_backup_completes_and_restores() {
    let mut c = Cluster::start().unwrap();
    c.create_bucket("nodes").unwrap();
    let target = s3_target(&c, 1, "nodes", "one", Retries::Normal);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t) = loaded_source(&engine, &dir.path().join("src"), 30_000).await;
    let w = spawn_writer(&inst, t);
    let before = w.acked.load(std::sync::atomic::Ordering::SeqCst);
    let mut h = inst
        .start_backup_to(&target, BackupKind::Full, throttled())
        .await
        .unwrap();
    into_the_image(&mut h, 8 << 20).await;
    c.kill(3).unwrap();
    let m = h.wait().await.unwrap();
    let after = w.next.load(std::sync::atomic::Ordering::SeqCst);
    w.stop().await;
    inst.term(Term::empty()).await.unwrap();
    assert!(m.content_bytes() > 25 << 20);
    ese_actors::verify_at(&target, m.name.as_deref().unwrap(), VerifyDepth::Full, None)
        .await
        .unwrap();
    let r = restore_from(
        &engine,
        &target,
        SetChoice::Latest,
        dir.path().join("r"),
        None,
        None,
    )
    .await
    .unwrap();
    check_prefix(
        &engine,
        &r.databases[0].1,
        &dir.path().join("chk"),
        (before, after),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_down_the_backup_fails_clearly_and_leaves_no_set() {
    let mut c = Cluster::start().unwrap();
    c.create_bucket("nodes").unwrap();
    let target = s3_target(&c, 1, "nodes", "two", Retries::Fast);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t) = loaded_source(&engine, &dir.path().join("src"), 20_000).await;
    // Slower than `throttled`: at 8 MiB/s the 14 MiB of image left after the trigger take
    // close to two seconds, far more than the kill takes to land.
    let slow = BackupOptions {
        max_rate: Some(8 << 20),
        ..BackupOptions::default()
    };
    let mut h = inst
        .start_backup_to(&target, BackupKind::Full, slow)
        .await
        .unwrap();
    into_the_image(&mut h, 6 << 20).await;
    c.kill_nodes(&[2, 3]).unwrap();
    let t0 = Instant::now();
    let e = h.wait().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    assert_eq!(e.code(), -1022, "{e}");
    let detail = e.detail().unwrap_or_default();
    assert!(
        detail.contains("object store") && detail.contains("s3://nodes/two"),
        "{detail}"
    );
    // The instance is unharmed: writes commit, and a backup works once the nodes are back.
    put_rows(&inst, t, 0..50).await;
    c.restart(2).unwrap();
    c.restart(3).unwrap();
    let sets = list_sets(&target).await.unwrap();
    assert!(
        sets.iter()
            .all(|s| !matches!(s.state, SetState::Complete(_))),
        "a set is visible after the failed backup: {sets:?}"
    );
    let m = inst
        .backup_to(&target, BackupKind::Full, BackupOptions::default())
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();
    let complete: Vec<_> = list_sets(&target)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| matches!(s.state, SetState::Complete(_)))
        .map(|s| s.name)
        .collect();
    assert_eq!(complete, vec![m.name.unwrap()]);
}
