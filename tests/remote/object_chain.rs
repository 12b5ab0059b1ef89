//! A full and two incrementals while a writer commits, to the cluster and to a folder
//! through the same code: `latest`, a named set and a point in time restore exactly an
//! acknowledged prefix; incrementals reference the logs earlier sets hold; compression and
//! every verify depth round-trip.

use crate::support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ese_actors::{
    list_sets, restore_from, verify_at, BackupKind, BackupManifest, BackupOptions, BackupTarget,
    Engine, Instance, SetChoice, StopAt, Term, VerifyDepth,
};
use support::actor::remote::*;
use support::actor::*;

/// One backup, with the writer's bounds around it.
async fn backup(
    inst: &Instance,
    w: &Writer,
    target: &BackupTarget,
    kind: BackupKind,
    compress: Option<i32>,
) -> (BackupManifest, (i64, i64)) {
    let before = w.acked.load(Ordering::SeqCst);
    let options = BackupOptions {
        compress,
        ..BackupOptions::default()
    };
    let m = inst.backup_to(target, kind, options).await.unwrap();
    (m, (before, w.next.load(Ordering::SeqCst)))
}

/// The scenario on any target.
async fn chain_restores(target: &BackupTarget, scratch: &Path, compress: Option<i32>) {
    let engine = Engine::new();
    let (inst, t) = writer_source(&engine, &scratch.join("src")).await;
    let db = t.db();
    let bulk = inst.create_table(db, "bulk").await.unwrap();
    // About 12 MiB of database: the image is several 5 MiB parts.
    bulk_load(&inst, bulk, 12_000).await;
    let w = spawn_writer(&inst, t);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (full, _) = backup(&inst, &w, target, BackupKind::Full, compress).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (inc1, b1) = backup(&inst, &w, target, BackupKind::Incremental, compress).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (inc2, b2) = backup(&inst, &w, target, BackupKind::Incremental, compress).await;
    w.stop().await;
    inst.term(Term::empty()).await.unwrap();

    assert!(full.content_bytes() > 10 << 20, "{}", full.content_bytes());
    assert_eq!(inc1.parent_id.as_deref(), Some(full.id.as_str()));
    assert_eq!(inc2.parent_id.as_deref(), Some(inc1.id.as_str()));
    if compress.is_some() {
        assert!(full.stored_bytes() < full.content_bytes() / 2, "compressed");
    }
    // Logs an earlier set holds are referenced, not stored again.
    let referenced = [&inc1, &inc2]
        .iter()
        .flat_map(|m| &m.logs)
        .filter(|l| l.stored.as_ref().is_some_and(|s| s.set.is_some()))
        .count();
    assert!(
        referenced > 0,
        "no log referenced: full {}..={}, inc1 {}..={}, inc2 {}..={}",
        full.gen_low,
        full.gen_high,
        inc1.gen_low,
        inc1.gen_high,
        inc2.gen_low,
        inc2.gen_high
    );
    for (prev, next) in [(&full, &inc1), (&inc1, &inc2)] {
        for l in &next.logs {
            if let Some(p) = prev.logs.iter().find(|p| p.gen == l.gen) {
                let held = l.stored.as_ref().and_then(|s| s.set.clone());
                let by = p
                    .stored
                    .as_ref()
                    .and_then(|s| s.set.clone())
                    .or(prev.name.clone());
                assert_eq!(held, by, "generation {} stored again", l.gen);
            }
        }
    }

    let sets = list_sets(target).await.unwrap();
    let names: Vec<_> = sets.iter().map(|s| s.name.clone()).collect();
    let want: Vec<_> = [&full, &inc1, &inc2]
        .iter()
        .map(|m| m.name.clone().unwrap())
        .collect();
    assert_eq!(names, want);
    for m in [&full, &inc1, &inc2] {
        let name = m.name.as_deref().unwrap();
        for depth in [
            VerifyDepth::Quick,
            VerifyDepth::Sample {
                percent: 30.0,
                seed: 7,
            },
            VerifyDepth::Full,
        ] {
            let r = verify_at(target, name, depth, None).await.unwrap();
            assert_eq!(&r.manifest, m);
        }
    }

    let r = restore_from(
        &engine,
        target,
        SetChoice::Latest,
        scratch.join("latest"),
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        r.sets,
        vec![full.id.clone(), inc1.id.clone(), inc2.id.clone()]
    );
    let k2 = check_prefix(&engine, &r.databases[0].1, &scratch.join("c2"), b2).await;

    let named = SetChoice::Named(inc1.name.clone().unwrap());
    let r = restore_from(&engine, target, named, scratch.join("inc1"), None, None)
        .await
        .unwrap();
    assert_eq!(r.sets.len(), 2);
    let k1 = check_prefix(&engine, &r.databases[0].1, &scratch.join("c1"), b1).await;
    assert!(k1 <= k2);

    // A point in time: no commit of a generation after the first incremental's last.
    let stop = Some(StopAt::Generation(inc1.gen_high));
    let r = restore_from(
        &engine,
        target,
        SetChoice::Latest,
        scratch.join("pit"),
        stop,
        None,
    )
    .await
    .unwrap();
    assert!(r.restore.stopped, "the stop point was not used");
    // Everything acknowledged before the first incremental's log roll is in, nothing begun
    // after it returned (the roll may take that one transaction itself).
    let kp = check_prefix(
        &engine,
        &r.databases[0].1,
        &scratch.join("cp"),
        (b1.0, b1.1 + 1),
    )
    .await;
    assert!(kp <= k2, "{kp} > {k2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_and_two_incrementals_to_the_cluster_restore_latest_and_a_point_in_time() {
    let c = ese_garage::shared();
    let b = bucket("chain");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    chain_restores(
        &s3_target(c, 1, &b, "ese/prod", Retries::Normal),
        dir.path(),
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_chain_in_a_folder_through_the_same_code() {
    let dir = tempfile::tempdir().unwrap();
    let target = BackupTarget::parse(dir.path().join("repo").to_str().unwrap()).unwrap();
    chain_restores(&target, dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_sets_on_the_cluster_restore_the_same() {
    let c = ese_garage::shared();
    let b = bucket("zstd");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    chain_restores(
        &s3_target(c, 2, &b, "z", Retries::Normal),
        dir.path(),
        Some(3),
    )
    .await;
}
