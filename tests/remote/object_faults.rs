//! Requests that fail, hang or lose their answer in the middle of the work, injected in
//! front of the real cluster ([`FaultyStore`]): a backup either completes with a set that
//! restores or fails with the store's error and leaves no visible set and every source log;
//! a prune that planned before a backup published never breaks what that backup references.

use crate::support;

use std::path::Path;

use ese_actors::ese::backup::repo::catalog;
use ese_actors::ese::backup::repo::prune::ORPHAN_GRACE_MS;
use ese_actors::{
    list_sets, prune_sets, restore_from, BackupKind, BackupManifest, BackupOptions, BackupTarget,
    Engine, Instance, Retention, SetChoice, SetState, Term,
};
use support::actor::remote::*;
use support::actor::*;

/// The target `s3://bucket/p` through `faulty`.
fn through(faulty: &FaultyStore, bucket: &str) -> BackupTarget {
    BackupTarget::object_store(faulty.store(), "p", &format!("s3://{bucket}/p"))
        .with_options(small_parts())
}

async fn backup(inst: &Instance, target: &BackupTarget, kind: BackupKind) -> BackupManifest {
    inst.backup_to(target, kind, BackupOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{kind:?} backup: {e}"))
}

/// `latest` of `target` restored under `scratch`: the rows of table "t".
async fn latest_rows(engine: &Engine, target: &BackupTarget, scratch: &Path) -> usize {
    let r = restore_from(
        engine,
        target,
        SetChoice::Latest,
        scratch.join("r"),
        None,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("restore latest ({}): {e}", e.code()));
    rows_in(engine, &r.databases[0].1, &scratch.join("probe")).await
}

/// F, D (a differential), C (a copy), then a prune with a window every set aged out of
/// lists the repository and plans: D is needed by no set it sees. Before it removes
/// anything an incremental runs and publishes; it continues F and references the logs D
/// holds instead of uploading them again, and it truncates them from the source. The prune
/// then goes on. Before, it removed D as planned: the incremental, the newest set and the
/// only copy of the truncated logs, no longer restored (-1811 for the log D held).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_planned_before_an_incremental_published_keeps_the_sets_it_references() {
    let c = ese_garage::shared();
    let b = bucket("prune-race");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let target = s3_target(c, 1, &b, "p", Retries::Normal);
    backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 100..200).await;
    let d = backup(&inst, &target, BackupKind::Differential).await;
    put_rows(&inst, t, 200..300).await;
    backup(&inst, &target, BackupKind::Copy).await;
    put_rows(&inst, t, 300..400).await;

    let pruning = FaultyStore::new(store(c, 1, &b, Retries::Normal));
    let latch = Latch::default();
    pruning.add(Req::Delete, "", Fault::Hold(latch.clone()), usize::MAX);
    let window = Retention {
        keep_full: None,
        keep_within_ms: Some(1),
        orphan_grace_ms: ORPHAN_GRACE_MS,
    };
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let prune_target = through(&pruning, &b);
    let prune = tokio::spawn(async move { prune_sets(&prune_target, window).await });
    // The prune listed and planned: its first removal waits, or it had none to make.
    let t0 = std::time::Instant::now();
    while latch.arrived() == 0 && !prune.is_finished() {
        assert!(
            t0.elapsed().as_secs() < 30,
            "the prune neither removed nor ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let i = backup(&inst, &target, BackupKind::Incremental).await;
    let dn = d.name.clone().unwrap();
    assert!(
        catalog::references(&i).any(|r| r == dn),
        "the incremental references no log of {dn}: the scenario needs it to"
    );
    latch.release();
    let (plan, _) = prune.await.unwrap().unwrap();
    assert!(!plan.remove.contains(&dn), "{plan:?}");
    inst.term(Term::empty()).await.unwrap();

    assert_eq!(latest_rows(&engine, &target, dir.path()).await, 400);
}

/// F1, I1, F2: a prune keeping one full removes F1 and I1, and a DELETE of I1's fails. The
/// prune fails with the store's error (-1022), and every set it left complete still
/// restores. Before, it removed F1 first, so I1 was left looking complete without its
/// parent: `ese sets` listed it, and its restore was refused (-560).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_cut_short_leaves_only_sets_that_restore() {
    let c = ese_garage::shared();
    let b = bucket("prune-cut");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let target = s3_target(c, 1, &b, "p", Retries::Normal);
    backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 100..200).await;
    let i1 = backup(&inst, &target, BackupKind::Incremental).await;
    put_rows(&inst, t, 200..300).await;
    backup(&inst, &target, BackupKind::Full).await;
    inst.term(Term::empty()).await.unwrap();

    let pruning = FaultyStore::new(store(c, 1, &b, Retries::Fast));
    let i1_name = i1.name.clone().unwrap();
    pruning.add(Req::Delete, &i1_name, Fault::Fail, 1);
    let keep = Retention {
        keep_full: Some(1),
        keep_within_ms: None,
        orphan_grace_ms: ORPHAN_GRACE_MS,
    };
    let e = prune_sets(&through(&pruning, &b), keep).await.unwrap_err();
    assert_eq!(e.code(), -1022, "{e}");
    let listed = list_sets(&target).await.unwrap();
    for s in listed
        .iter()
        .filter(|s| matches!(s.state, SetState::Complete(_)))
    {
        let to = dir.path().join(format!("r-{}", s.name));
        restore_from(
            &engine,
            &target,
            SetChoice::Named(s.name.clone()),
            &to,
            None,
            None,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} is listed complete but does not restore ({}): {e}",
                s.name,
                e.code()
            )
        });
    }
}

/// A request of the upload failing at each step before the manifest, or the manifest's own
/// PUT failing (before or after it landed): the backup fails with the store's error
/// (-1022), no complete set is visible, the source keeps every log, and the next backup
/// completes and restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_failing_before_the_manifest_costs_no_log_and_leaves_no_set() {
    let c = ese_garage::shared();
    let b = bucket("fail-steps");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &src, 100).await;
    let bulk = inst.create_table(t.db(), "bulk").await.unwrap();
    bulk_load(&inst, bulk, 8_000).await;
    let faulty = FaultyStore::new(store(c, 1, &b, Retries::Fast));
    let target = through(&faulty, &b);
    let storage = ese_actors::ese::io::os();
    let cases = [
        (Req::Upload, "/databases/", Fault::Fail),
        (Req::Part, "/databases/", Fault::Fail),
        (Req::Part, "/databases/", Fault::AnswerLost),
        (Req::Complete, "/databases/", Fault::Fail),
        (Req::Put, "/logs/", Fault::Fail),
        (Req::Get, "/logs/", Fault::Fail),
        (Req::Put, "manifest.json", Fault::Fail),
        (Req::Put, "manifest.json", Fault::AnswerLost),
    ];
    let mut rows = 100;
    // An incremental has no database image.
    for (kind, (req, key, fault)) in [BackupKind::Full, BackupKind::Incremental]
        .into_iter()
        .flat_map(|k| cases.iter().map(move |c| (k, c)))
        .filter(|(k, c)| *k == BackupKind::Full || c.1 != "/databases/")
    {
        let what = format!("{kind:?}, {req:?} {key}");
        put_rows(&inst, t, rows..rows + 50).await;
        rows += 50;
        if kind == BackupKind::Incremental
            && !list_sets(&target)
                .await
                .unwrap()
                .iter()
                .any(|s| matches!(s.state, SetState::Complete(_)))
        {
            backup(&inst, &target, BackupKind::Full).await;
        }
        let complete = |l: &[ese_actors::Listed]| {
            l.iter()
                .filter(|s| matches!(s.state, SetState::Complete(_)))
                .count()
        };
        let sets_before = complete(&list_sets(&target).await.unwrap());
        let logs_before = archived_logs(&*storage, &src);
        faulty.add(*req, key, fault.clone(), 1);
        let r = inst
            .backup_to(&target, kind, BackupOptions::default())
            .await;
        faulty.clear();
        let e = r.expect_err(&what);
        assert_eq!(e.code(), -1022, "{what}: {e}");
        assert_logs_kept(&logs_before, &archived_logs(&*storage, &src), &what);
        assert_eq!(
            complete(&list_sets(&target).await.unwrap()),
            sets_before,
            "{what}: a set became visible"
        );
    }
    backup(&inst, &target, BackupKind::Incremental).await;
    inst.term(Term::empty()).await.unwrap();
    assert_eq!(
        latest_rows(&engine, &target, dir.path()).await,
        rows as usize
    );
}

/// A GET failing in the middle of a restore (an image's, a log's): the restore fails with
/// the store's error (-1022), leaves nothing in its target that looks restored, and the
/// same target then takes the restore that succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_failing_mid_restore_fails_it_and_the_target_takes_the_next() {
    let c = ese_garage::shared();
    let b = bucket("fail-reads");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let bulk = inst.create_table(t.db(), "bulk").await.unwrap();
    bulk_load(&inst, bulk, 3_000).await;
    let faulty = FaultyStore::new(store(c, 1, &b, Retries::Fast));
    let target = through(&faulty, &b);
    backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 100..200).await;
    backup(&inst, &target, BackupKind::Incremental).await;
    inst.term(Term::empty()).await.unwrap();
    let to = dir.path().join("r");
    for key in ["/databases/", "/logs/", "manifest.json"] {
        faulty.add(Req::Get, key, Fault::Fail, 1);
        let e = restore_from(&engine, &target, SetChoice::Latest, &to, None, None)
            .await
            .expect_err(key);
        faulty.clear();
        assert_eq!(e.code(), -1022, "{key}: {e}");
        let left = tree(&*ese_actors::ese::io::os(), &to);
        assert!(
            left.iter().all(|p| p.is_dir()),
            "{key}: the failed restore left {left:?}"
        );
    }
    let r = restore_from(&engine, &target, SetChoice::Latest, &to, None, None)
        .await
        .unwrap();
    assert_eq!(
        rows_in(&engine, &r.databases[0].1, &dir.path().join("probe")).await,
        200
    );
}

/// Repositories whose prefixes are prefixes of each other by name (`p`, `p2`) or by path
/// (the bucket's root above both): each lists, restores and prunes its own sets only; the
/// root sees the others' folders as orphans it cannot date, and leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_whose_prefixes_overlap_keep_to_their_own_sets() {
    let c = ese_garage::shared();
    let b = bucket("prefixes");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let p = s3_target(c, 1, &b, "p", Retries::Normal);
    let p2 = s3_target(c, 1, &b, "p2", Retries::Normal);
    let root = s3_target(c, 1, &b, "", Retries::Normal);
    let in_p2 = backup(&inst, &p2, BackupKind::Full).await;
    put_rows(&inst, t, 100..200).await;
    backup(&inst, &p, BackupKind::Full).await;
    put_rows(&inst, t, 200..300).await;
    let newest = backup(&inst, &p, BackupKind::Full).await;
    inst.term(Term::empty()).await.unwrap();
    let names = |l: Vec<ese_actors::Listed>| l.into_iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(names(list_sets(&p2).await.unwrap()), [in_p2.name.unwrap()]);
    assert_eq!(names(list_sets(&p).await.unwrap()).len(), 2);
    let keep = Retention {
        keep_full: Some(1),
        keep_within_ms: None,
        orphan_grace_ms: 0,
    };
    let (plan, _) = prune_sets(&root, keep).await.unwrap();
    assert!(
        plan.remove.is_empty() && plan.orphans.is_empty(),
        "{plan:?}"
    );
    let (plan, _) = prune_sets(&p, keep).await.unwrap();
    assert_eq!(plan.keep, [newest.name.unwrap()]);
    assert_eq!(list_sets(&p2).await.unwrap().len(), 1);
    assert_eq!(latest_rows(&engine, &p2, &dir.path().join("p2")).await, 100);
    assert_eq!(latest_rows(&engine, &p, &dir.path().join("p")).await, 300);
}

/// The completion of a database image's multipart upload is carried out, its answer is
/// lost, and object_store sends it again (it counts a completion as idempotent): Garage
/// answers the second one 404 NoSuchUpload, the upload being complete already. The object
/// is there, whole. Before, the backup failed with FileNotFound (-1811), a missing-file
/// error for a store that lost an answer, and threw the finished object away; now the object
/// is found complete and the backup goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_answered_twice_does_not_fail_the_backup() {
    let c = ese_garage::shared();
    let b = bucket("lost-complete");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let bulk = inst.create_table(t.db(), "bulk").await.unwrap();
    bulk_load(&inst, bulk, 8_000).await;
    let s3 = s3(c, 1, &b, Retries::Fast);
    let faulty = FaultyStore::new(s3.clone()).with_requests(s3);
    faulty.add(Req::Complete, "/databases/", Fault::AnswerLostRetried, 1);
    let target = through(&faulty, &b);
    let m = inst
        .backup_to(&target, BackupKind::Full, BackupOptions::default())
        .await
        .unwrap_or_else(|e| panic!("the backup failed ({}): {e}", e.code()));
    assert!(
        m.databases[0].size > small_parts().part_size as u64,
        "the image must be a multipart upload"
    );
    inst.term(Term::empty()).await.unwrap();
    assert_eq!(latest_rows(&engine, &target, dir.path()).await, 100);
    let listed = list_sets(&target).await.unwrap();
    assert!(
        matches!(listed.as_slice(), [s] if matches!(s.state, SetState::Complete(_))),
        "{listed:?}"
    );
}

/// The multipart upload of a database image is aborted behind the backup's back before its
/// completion (the lifecycle rule for incomplete uploads the README recommends, a clean-up
/// job): the store answers 404 NoSuchUpload. The backup fails with the store's I/O error
/// (-1022), costs the source no log and leaves no set. Before, it failed with
/// FileNotFound (-1811), as if a file of the source were missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_aborted_behind_the_backup_fails_it_with_an_io_error() {
    let c = ese_garage::shared();
    let b = bucket("upload-gone");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &src, 100).await;
    let bulk = inst.create_table(t.db(), "bulk").await.unwrap();
    bulk_load(&inst, bulk, 8_000).await;
    let s3 = s3(c, 1, &b, Retries::Fast);
    let faulty = FaultyStore::new(s3.clone()).with_requests(s3);
    faulty.add(Req::Complete, "/databases/", Fault::UploadGone, 1);
    let target = through(&faulty, &b);
    let storage = ese_actors::ese::io::os();
    let logs_before = archived_logs(&*storage, &src);
    let e = inst
        .backup_to(&target, BackupKind::Full, BackupOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), -1022, "{e}");
    assert_logs_kept(&logs_before, &archived_logs(&*storage, &src), "upload gone");
    let listed = list_sets(&target).await.unwrap();
    assert!(
        !listed
            .iter()
            .any(|s| matches!(s.state, SetState::Complete(_))),
        "{listed:?}"
    );
    backup(&inst, &target, BackupKind::Full).await;
    inst.term(Term::empty()).await.unwrap();
    assert_eq!(latest_rows(&engine, &target, dir.path()).await, 100);
}
