//! Retention and `latest` at their edges, on folder targets (the same code as a store): a
//! window every set aged out of, an incremental whose parent is not in its target, the
//! newest sets without their parent, an orphan that holds a kept set's logs, and `latest`
//! with a stop time.

use crate::support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ese_actors::ese::backup::repo::catalog;
use ese_actors::ese::backup::repo::prune::ORPHAN_GRACE_MS;
use ese_actors::{
    list_sets, prune_sets, restore_from, BackupKind, BackupManifest, BackupOptions, BackupTarget,
    ChainReport, Engine, Instance, Retention, SetChoice, StopAt, Term,
};
use support::actor::*;

/// A folder repository `name` under `dir`: its path and its target.
fn folder(dir: &Path, name: &str) -> (std::path::PathBuf, BackupTarget) {
    let path = dir.join(name);
    let target = BackupTarget::parse(path.to_str().unwrap()).unwrap();
    (path, target)
}

async fn backup(inst: &Instance, target: &BackupTarget, kind: BackupKind) -> BackupManifest {
    inst.backup_to(target, kind, BackupOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{kind:?} backup: {e}"))
}

async fn restore(
    engine: &Engine,
    target: &BackupTarget,
    choice: SetChoice,
    to: &Path,
) -> ese_actors::Result<ChainReport> {
    restore_from(engine, target, choice, to, None, None).await
}

/// `latest` restored to the time `at`.
async fn restore_latest_at(
    engine: &Engine,
    target: &BackupTarget,
    to: &Path,
    at: SystemTime,
) -> ese_actors::Result<ChainReport> {
    let stop = Some(StopAt::Time(at));
    restore_from(engine, target, SetChoice::Latest, to, stop, None).await
}

/// A full and an incremental, then backups pause for longer than the window: a prune with
/// `--keep-within` alone keeps them both (the newest set and its chain always stay), and
/// `latest` still restores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_within_alone_keeps_the_newest_chain_after_backups_paused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, target) = folder(dir.path(), "repo");
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let full = backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 100..200).await;
    let inc = backup(&inst, &target, BackupKind::Incremental).await;
    inst.term(Term::empty()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let keep = Retention {
        keep_full: None,
        keep_within_ms: Some(50),
        orphan_grace_ms: ORPHAN_GRACE_MS,
    };
    let (plan, removed) = prune_sets(&target, keep).await.unwrap();
    assert!(plan.remove.is_empty() && removed == 0, "{plan:?}");
    assert_eq!(plan.keep, [full.name.unwrap(), inc.name.unwrap()]);
    let r = restore(&engine, &target, SetChoice::Latest, &dir.path().join("r"))
        .await
        .unwrap_or_else(|e| panic!("latest after the prune: {e}"));
    assert_eq!(r.sets, [full.id, inc.id]);
    assert_eq!(
        rows_in(&engine, &r.databases[0].1, &dir.path().join("c")).await,
        200
    );
}

/// The full went to one folder, the incremental (or a differential) is asked of another:
/// refused with -560 right after the begin, nothing created there, no source log
/// truncated; the incremental into the full's folder then continues the full and restores
/// every row, and a full into the other folder starts a chain an incremental continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_onto_a_full_missing_from_the_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, first) = folder(dir.path(), "first");
    let (other_path, other) = folder(dir.path(), "other");
    let engine = Engine::new();
    let src = dir.path().join("src");
    let (inst, t, _) = instance_with_data(&engine, "src", &src, 100).await;
    let full = backup(&inst, &first, BackupKind::Full).await;
    let rows = roll_logs(&inst, t, 2, 100).await as usize;
    let logs = archived_logs(&*ese::io::os(), &src);
    assert!(!logs.is_empty(), "no archived log to lose");
    for kind in [BackupKind::Incremental, BackupKind::Differential] {
        let e = inst
            .backup_to(&other, kind, BackupOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), -560, "{kind:?}: {e}");
        let detail = e.detail_or_message();
        assert!(detail.contains(&full.id), "{detail}");
        assert!(detail.contains(other_path.to_str().unwrap()), "{detail}");
        assert!(detail.contains("full backup"), "{detail}");
    }
    assert!(list_sets(&other).await.unwrap().is_empty());
    assert!(tree(&*ese::io::os(), &other_path).is_empty());
    assert_logs_kept(&logs, &archived_logs(&*ese::io::os(), &src), "refused");

    let inc = backup(&inst, &first, BackupKind::Incremental).await;
    assert_eq!(inc.parent_id.as_deref(), Some(full.id.as_str()));
    let r = restore(&engine, &first, SetChoice::Latest, &dir.path().join("r"))
        .await
        .unwrap();
    assert_eq!(
        rows_in(&engine, &r.databases[0].1, &dir.path().join("c")).await,
        rows
    );

    let full2 = backup(&inst, &other, BackupKind::Full).await;
    let inc2 = backup(&inst, &other, BackupKind::Incremental).await;
    assert_eq!(inc2.parent_id.as_deref(), Some(full2.id.as_str()));
    inst.term(Term::empty()).await.unwrap();
}

/// F0, I0, F1, I1, then F1 is lost (removed by hand or by a bucket lifecycle rule):
/// `latest` refuses with -560 naming I1 instead of restoring the older F0 + I0, which a
/// restore by name still reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_refuses_when_the_newest_sets_lost_their_parent() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, target) = folder(dir.path(), "repo");
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let _f0 = backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 100..200).await;
    let i0 = backup(&inst, &target, BackupKind::Incremental).await;
    put_rows(&inst, t, 200..300).await;
    let f1 = backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 300..400).await;
    let i1 = backup(&inst, &target, BackupKind::Incremental).await;
    inst.term(Term::empty()).await.unwrap();
    std::fs::remove_dir_all(repo.join(f1.name.unwrap())).unwrap();
    let e = restore(&engine, &target, SetChoice::Latest, &dir.path().join("r"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), -560, "{e}");
    let detail = e.detail_or_message();
    assert!(detail.starts_with(i1.name.as_deref().unwrap()), "{detail}");
    assert!(
        detail.contains("naming a set restores an older chain"),
        "{detail}"
    );
    assert!(!dir.path().join("r").join("db.edb").exists());
    let named = SetChoice::Named(i0.name.unwrap());
    let r = restore(&engine, &target, named, &dir.path().join("r0"))
        .await
        .unwrap();
    assert_eq!(r.sets.last(), Some(&i0.id));
}

/// F, I1, D, I2 with I2 referencing a log D holds; D's manifest is lost (a prune of it cut
/// short, a hand clean-up), so D is an orphan: a prune past the grace period leaves it,
/// and I2 still restores instead of failing with -557 for D's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_an_orphan_a_kept_set_references() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, target) = folder(dir.path(), "repo");
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 100..200).await;
    backup(&inst, &target, BackupKind::Incremental).await;
    put_rows(&inst, t, 200..300).await;
    let d = backup(&inst, &target, BackupKind::Differential).await;
    put_rows(&inst, t, 300..400).await;
    let i2 = backup(&inst, &target, BackupKind::Incremental).await;
    inst.term(Term::empty()).await.unwrap();
    let dn = d.name.unwrap();
    assert!(
        catalog::references(&i2).any(|r| r == dn),
        "I2 references no log of {dn}"
    );
    std::fs::remove_file(repo.join(&dn).join("manifest.json")).unwrap();
    let keep = Retention {
        keep_full: Some(1),
        keep_within_ms: None,
        orphan_grace_ms: 0,
    };
    let (plan, _) = prune_sets(&target, keep).await.unwrap();
    assert!(plan.orphans.is_empty(), "{plan:?}");
    assert_eq!(plan.left, [dn]);
    let named = SetChoice::Named(i2.name.unwrap());
    let r = restore(&engine, &target, named, &dir.path().join("r"))
        .await
        .unwrap_or_else(|e| panic!("the kept I2 no longer restores ({}): {e}", e.code()));
    assert_eq!(r.sets.last(), Some(&i2.id));
    assert_eq!(
        rows_in(&engine, &r.databases[0].1, &dir.path().join("c")).await,
        400
    );
}

/// F1, I1, F2, I2 with F1 and I1 made while the source's clock ran a day ahead (their
/// manifests' times moved a day later): by time they are the newest sets, by the log the
/// oldest. `latest` refuses (-521) instead of restoring them, `--keep-full 1` removes no
/// complete set instead of F2 and I2, and I2 restores by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_made_under_a_clock_that_ran_ahead_neither_win_latest_nor_cost_the_newest_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, target) = folder(dir.path(), "repo");
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let f1 = backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 100..200).await;
    let i1 = backup(&inst, &target, BackupKind::Incremental).await;
    put_rows(&inst, t, 200..300).await;
    let f2 = backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 300..400).await;
    let i2 = backup(&inst, &target, BackupKind::Incremental).await;
    inst.term(Term::empty()).await.unwrap();
    for set in [&f1, &i1] {
        let path = repo.join(set.name.as_ref().unwrap()).join("manifest.json");
        edit_manifest(&path, |v| {
            let t = v["mark_time_ms"].as_u64().unwrap();
            v["mark_time_ms"] = serde_json::json!(t + 24 * 3600 * 1000);
        });
    }

    let e = restore(&engine, &target, SetChoice::Latest, &dir.path().join("r"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), -521, "{e}");
    assert!(
        e.detail_or_message().contains("name the set to restore"),
        "{e}"
    );
    let keep = Retention {
        keep_full: Some(1),
        keep_within_ms: None,
        orphan_grace_ms: ORPHAN_GRACE_MS,
    };
    let (plan, removed) = prune_sets(&target, keep).await.unwrap();
    assert!(plan.remove.is_empty() && removed == 0, "{plan:?}");
    assert!(plan.held_back.is_some(), "{plan:?}");
    assert_eq!(list_sets(&target).await.unwrap().len(), 4);
    let named = SetChoice::Named(i2.name.unwrap());
    let r = restore(&engine, &target, named, &dir.path().join("r2"))
        .await
        .unwrap();
    assert_eq!(r.sets, [f2.id, i2.id]);
    assert_eq!(
        rows_in(&engine, &r.databases[0].1, &dir.path().join("c")).await,
        400
    );
}

/// `latest` with a stop time is the newest chain that can stop there: F1, rows, the stop
/// time, more rows, I1, then F2, whose images hold the rows after the stop time. The
/// restore takes F1 + I1 and stops at the time: exactly the rows before it. Before, `latest`
/// took F2's chain, and the restore was refused with -553 (and before that, came back with
/// every row). Without a stop point `latest` is F2; a stop before every chain is -553.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_with_a_stop_time_restores_the_newest_chain_that_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, target) = folder(dir.path(), "repo");
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let full = backup(&inst, &target, BackupKind::Full).await;
    put_rows(&inst, t, 100..200).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stop = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    put_rows(&inst, t, 200..300).await;
    let inc = backup(&inst, &target, BackupKind::Incremental).await;
    let full2 = backup(&inst, &target, BackupKind::Full).await;
    inst.term(Term::empty()).await.unwrap();

    let r = restore_latest_at(&engine, &target, &dir.path().join("r"), stop)
        .await
        .unwrap();
    assert_eq!(r.sets, [full.id.clone(), inc.id]);
    assert!(r.restore.stopped);
    assert_eq!(
        rows_in(&engine, &r.databases[0].1, &dir.path().join("c")).await,
        200
    );
    let r = restore(&engine, &target, SetChoice::Latest, &dir.path().join("r2"))
        .await
        .unwrap();
    assert_eq!(r.sets, [full2.id]);
    assert_eq!(
        rows_in(&engine, &r.databases[0].1, &dir.path().join("c2")).await,
        300
    );
    let before = UNIX_EPOCH + Duration::from_millis(full.mark_time_ms - 1);
    let e = restore_latest_at(&engine, &target, &dir.path().join("r3"), before)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -553, "{e}");
}
