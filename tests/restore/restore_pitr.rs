//! Point-in-time restore (behaviour.md §3.2): a full backup, a long workload after it, then
//! restores that roll forward through the live instance's logs and stop at a generation or
//! at a time in the middle. The restored database is always a prefix `0..=k` with a
//! consistent checksum row, and `k` lies where the stop point says.

use crate::support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ese_actors::{BackupKind, Engine, KeyRange, RestoreSpec, StopAt, Term};
use support::actor::*;

struct Commit {
    gen_before: u32,
    gen_after: u32,
    begin_ms: u64,
    acked_at: SystemTime,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn restored_k(engine: &Engine, db: &Path, scratch: &Path) -> i64 {
    let inst = engine
        .create_instance("check", params(scratch))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let id = inst.attach_database(db).await.unwrap();
    let t = inst.open_table(id, "t").await.unwrap();
    let s = inst.begin_session().await.unwrap();
    let rows = s.scan(t, KeyRange::all()).await.unwrap();
    let (sum_row, keys) = rows.split_last().unwrap();
    let mut sum = 0u64;
    for (i, (k, _)) in keys.iter().enumerate() {
        assert_eq!(&k[..], format!("key{i:08}").as_bytes(), "not a prefix");
        sum += i as u64;
    }
    let k = keys.len() as i64 - 1;
    assert_eq!(
        &sum_row.1[..],
        &[(k as u64).to_le_bytes(), sum.to_le_bytes()].concat()[..],
        "checksum row"
    );
    drop(s);
    inst.term(Term::empty()).await.unwrap();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_at_a_generation_and_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    let inst = engine.create_instance("src", params(&src)).await.unwrap();
    inst.init().await.unwrap();
    let db = inst.create_database(src.join("db.edb")).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    let mut s = inst.begin_session().await.unwrap();
    let set = dir.path().join("full");
    let m = inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();

    let mut commits = Vec::new();
    let mut sum = 0u64;
    // At least 700 commits, and on until they span several generations: how much log a
    // commit writes varies with the flushes' timing (full page images after each).
    for i in 0..5000u64 {
        if i >= 700
            && commits
                .last()
                .is_some_and(|c: &Commit| c.gen_after > m.gen_high + 4)
        {
            break;
        }
        let gen_before = inst.instance_info().await.unwrap().current_gen;
        let begin_ms = ms(SystemTime::now());
        let mut tx = s.transaction().await.unwrap();
        tx.put(t, format!("key{i:08}").as_bytes(), &[9u8; 150])
            .await
            .unwrap();
        sum += i;
        tx.put(t, b"~sum", &[i.to_le_bytes(), sum.to_le_bytes()].concat())
            .await
            .unwrap();
        tx.commit(ese::Commit::Durable).await.unwrap();
        let acked_at = SystemTime::now();
        let gen_after = inst.instance_info().await.unwrap().current_gen;
        commits.push(Commit {
            gen_before,
            gen_after,
            begin_ms,
            acked_at,
        });
        if i == 350 {
            // Make sure the time stop point falls between distinct milliseconds.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    drop(s);
    inst.term(Term::empty()).await.unwrap();
    let last_gen = commits.last().unwrap().gen_after;
    assert!(
        last_gen > m.gen_high + 4,
        "the workload should span several generations"
    );

    let restore = |name: &str, stop: StopAt| {
        let target = dir.path().join(name);
        std::fs::create_dir_all(&target).unwrap();
        let img = target.join("db.edb");
        std::fs::copy(set.join(&m.databases[0].file), &img).unwrap();
        let spec = RestoreSpec {
            checkpoint_dir: target.clone(),
            log_dir: src.clone(),
            backup_log_dir: set.join("logs"),
            gen_low: m.gen_low,
            gen_high: m.gen_high,
            base_name: "edb".into(),
            restore_map: vec![(m.databases[0].original_path.clone(), img.clone())],
            stop_at: Some(stop),
        };
        (spec, img, target)
    };

    // A generation in the middle.
    let g = (m.gen_high + last_gen) / 2;
    let (spec, img, target) = restore("gen", StopAt::Generation(g));
    let r = engine.external_restore(spec).await.unwrap();
    assert!(r.stopped);
    let k = restored_k(&engine, &img, &target.join("probe")).await;
    for (i, c) in commits.iter().enumerate() {
        if c.gen_after <= g {
            assert!(
                k >= i as i64,
                "commit {i} lies in generation <= {g} but is missing (k = {k})"
            );
        }
        if c.gen_before > g {
            assert!(
                k < i as i64,
                "commit {i} lies after generation {g} but is present (k = {k})"
            );
        }
    }

    // A time in the middle.
    let t = commits[350].acked_at;
    let (spec, img, target) = restore("time", StopAt::Time(t));
    engine.external_restore(spec).await.unwrap();
    let k = restored_k(&engine, &img, &target.join("probe")).await;
    assert!(
        k >= 350,
        "commit 350 was acknowledged before the stop time (k = {k})"
    );
    let first_after = commits.iter().position(|c| c.begin_ms > ms(t)).unwrap();
    assert!(
        k < first_after as i64,
        "commit {first_after} began after the stop time (k = {k})"
    );

    // Without a stop point, everything comes back.
    let (mut spec, img, target) = restore("all", StopAt::Generation(u32::MAX));
    spec.stop_at = None;
    engine.external_restore(spec).await.unwrap();
    assert_eq!(restored_k(&engine, &img, &target.join("probe")).await, 699);

    // A stop point before the backup's own end would leave the copy inconsistent.
    let (spec, _, _) = restore("early", StopAt::Generation(m.gen_low.saturating_sub(1)));
    assert_eq!(
        engine.external_restore(spec).await.unwrap_err().code(),
        -553
    );
}
