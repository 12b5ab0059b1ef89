//! Retention on real sets: random backups and prunes on a folder target, and after each
//! prune every set left restores (its whole chain is there) and nothing a kept set
//! references is gone. Orphans of failed backups on the cluster are removed by prune once
//! past their grace period, never before.

use crate::support;

use rand::{Rng, SeedableRng};

use ese_actors::{
    list_sets, prune_sets, restore_from, BackupKind, BackupOptions, BackupTarget, Engine,
    Retention, SetChoice, SetState, Term,
};
use support::actor::remote::*;
use support::actor::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_backups_and_prunes_keep_every_kept_set_restorable() {
    let dir = tempfile::tempdir().unwrap();
    let target = BackupTarget::parse(dir.path().join("repo").to_str().unwrap()).unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let seed = rand::random::<u64>();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut rows = 100;
    let mut restores = 0;
    let mut have_full = false;
    // Each set made and still there: name, kind, when it began (its manifest's mark time,
    // which the window is measured from).
    let mut made: Vec<(String, BackupKind, u64)> = Vec::new();
    for step in 0..24 {
        put_rows(&inst, t, rows..rows + 30).await;
        rows += 30;
        let kind = match rng.gen_range(0..6) {
            0 | 1 => BackupKind::Incremental,
            2 => BackupKind::Differential,
            3 => BackupKind::Copy,
            _ => BackupKind::Full,
        };
        let r = inst
            .backup_to(&target, kind, BackupOptions::default())
            .await;
        if !have_full && kind.incremental() {
            // Nothing to continue yet (a copy is not recorded as a full).
            assert_eq!(r.unwrap_err().code(), -560);
            continue;
        }
        let m = r.unwrap();
        have_full |= kind == BackupKind::Full;
        made.push((m.name.clone().unwrap(), kind, m.mark_time_ms));
        if rng.gen_bool(0.3) {
            let keep_full = rng.gen_range(1..3);
            let window = rng.gen_bool(0.3).then_some(1000);
            let keep = Retention {
                keep_full: Some(keep_full),
                keep_within_ms: window,
                orphan_grace_ms: 0,
            };
            prune_sets(&target, keep).await.unwrap();
            // The prune judged the window at a time no later than this.
            let after = ese_actors::ese::backup::repo::name::now_ms();
            let sets = list_sets(&target).await.unwrap();
            let left = |n: &str| sets.iter().any(|s| s.name == n);
            // What must stay: the newest fulls, and every set of the window.
            let fulls = made.iter().rev().filter(|(_, k, _)| *k == BackupKind::Full);
            for (n, _, _) in fulls.take(keep_full) {
                assert!(left(n), "seed {seed}: full {n} pruned");
            }
            if let Some(w) = window {
                for (n, _, began) in &made {
                    if began + w >= after {
                        assert!(left(n), "seed {seed}: {n} of the window pruned");
                    }
                }
            }
            made.retain(|(n, _, _)| left(n));
            for s in &sets {
                let SetState::Complete(m) = &s.state else {
                    panic!("{}: {:?}", s.name, s.state)
                };
                let to = dir.path().join(format!("r{step}-{}", s.name));
                let r = restore_from(
                    &engine,
                    &target,
                    SetChoice::Named(s.name.clone()),
                    &to,
                    None,
                    None,
                )
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: {} no longer restores: {e}", s.name));
                assert_eq!(r.sets.last(), Some(&m.id));
                restores += 1;
            }
        }
    }
    inst.term(Term::empty()).await.unwrap();
    eprintln!("{restores} restores after prunes");
    assert!(restores > 0, "seed {seed}: no prune ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_orphans_on_the_cluster_only_past_their_grace() {
    let c = ese_garage::shared();
    let b = bucket("orphans");
    c.create_bucket(&b).unwrap();
    let target = s3_target(c, 1, &b, "o", Retries::Normal);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 200).await;
    inst.backup_to(&target, BackupKind::Full, BackupOptions::default())
        .await
        .unwrap();
    // An orphan: a set whose backup was cut before its manifest (dropped mid-run would
    // remove it; a killed process cannot, so write one the way a killed run leaves it).
    let raw = store(c, 1, &b, Retries::Normal);
    let orphan = "20200101T000000.000Z-full-dead";
    let before = ese_actors::ese::backup::repo::name::now_ms();
    object_store::ObjectStoreExt::put(
        &*raw,
        &object_store::path::Path::from(format!("o/{orphan}/databases/00-db.edb")),
        bytes::Bytes::from_static(b"half").into(),
    )
    .await
    .unwrap();
    let listed = list_sets(&target).await.unwrap();
    let found = listed.iter().find(|s| s.name == orphan).unwrap();
    assert!(matches!(found.state, SetState::Orphan));
    // Its name says 2020, its file was written just now: the listing says when (the store's
    // clock is this machine's), so a dry run judges it as the prune does.
    let written = found.modified_ms.unwrap();
    assert!(
        written >= before && written <= ese_actors::ese::backup::repo::name::now_ms(),
        "{written} not in the test's span from {before}"
    );
    let keep = |grace| Retention {
        keep_full: Some(1),
        keep_within_ms: None,
        orphan_grace_ms: grace,
    };
    let hour = 3_600_000;
    let dry = ese_actors::ese::backup::repo::prune::plan(
        &listed,
        &keep(hour),
        ese_actors::ese::backup::repo::name::now_ms(),
    )
    .unwrap();
    assert_eq!(dry.left, vec![orphan.to_string()]);
    let (p, _) = prune_sets(&target, keep(hour)).await.unwrap();
    assert_eq!(p.left, vec![orphan.to_string()]);
    let (p, _) = prune_sets(&target, keep(u64::MAX / 2)).await.unwrap();
    assert_eq!(p.left, vec![orphan.to_string()]);
    let (p, removed) = prune_sets(&target, keep(0)).await.unwrap();
    assert_eq!(p.orphans, vec![orphan.to_string()]);
    assert_eq!(removed, 1);
    let listed = list_sets_without(&target, &[orphan]).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    inst.term(Term::empty()).await.unwrap();
}
