//! The power fails at each folder sync of a backup set, the last one included: between the
//! manifest's rename and the sync of the set's folder that makes the rename durable (issue
//! 12.2). Whatever the crash point, after recovery no complete set is visible, no source log
//! is gone (truncation only follows a durable manifest), every acknowledged row is there, and
//! a set whose backup finished survives a crash whole.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ese::io::{Fault, FaultStorage, StorageRef};
use ese_actors::{verify_backup_set_on, BackupKind, Engine, Instance, TableId, Term};
use support::actor::*;

const HOME: &str = "/c/home";
const SETS: &str = "/c/sets";
const ROWS: u32 = 300;

/// The instance of `HOME` after soft recovery, with its database attached: its table "t".
async fn reopen(storage: &StorageRef) -> (Engine, Instance, TableId) {
    let engine = Engine::new();
    let inst = engine
        .create_instance_on("c", params(Path::new(HOME)), storage.clone())
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst
        .attach_database(Path::new(HOME).join("db.edb"))
        .await
        .unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    (engine, inst, t)
}

/// Every row `put_rows` wrote is there.
async fn assert_rows(inst: &Instance, t: TableId, what: &str) {
    let s = inst.begin_session().await.unwrap();
    for i in [0, ROWS / 2, ROWS - 1] {
        let got = s.get(t, format!("k{i:06}").as_bytes()).await.unwrap();
        assert_eq!(
            got.as_deref(),
            Some(&[(i % 251) as u8; 200][..]),
            "{what}: row {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_folder_sync_of_a_set_leaves_no_set_and_every_log() {
    let fs = FaultStorage::new();
    let storage: StorageRef = Arc::new(fs.clone());
    let engine = Engine::new();
    let (inst, _, _) = instance_on(&engine, storage.clone(), "c", Path::new(HOME), ROWS).await;
    inst.term(Term::empty()).await.unwrap();
    drop(engine);
    let mut between_rename_and_sync = 0;
    for n in 1.. {
        assert!(n < 50, "the crash keeps coming");
        let (_engine, inst, _) = reopen(&storage).await;
        let what = format!("crash at folder sync {n}");
        let before = archived_logs(&*storage, Path::new(HOME));
        let set = PathBuf::from(format!("{SETS}/full-{n}"));
        fs.arm(Fault::CrashAtDirSync {
            nth: n,
            path_contains: Some(set.display().to_string()),
        });
        let res = inst.backup_to_dir(&set, BackupKind::Full).await;
        if !fs.is_dead() {
            // Past the last folder sync: the backup finished, and its set survives a crash.
            let manifest = res.unwrap();
            fs.disarm_all();
            inst.term(Term::empty()).await.unwrap();
            fs.crash();
            let report = verify_backup_set_on(storage.clone(), &set).unwrap();
            assert_eq!(report.manifest, manifest);
            let (_engine, inst, t) = reopen(&storage).await;
            assert_rows(&inst, t, "after the finished backup").await;
            inst.term(Term::empty()).await.unwrap();
            // Five folder syncs: the set's folder once databases/ and once logs/ are made, both
            // at the seal, the set's folder after the manifest's rename.
            assert!(n > 5, "only {} crash points", n - 1);
            break;
        }
        assert_eq!(res.unwrap_err().code(), -1022, "{what}");
        let _ = inst.term(Term::empty()).await;
        fs.restart();
        fs.disarm_all();
        assert_logs_kept(&before, &archived_logs(&*storage, Path::new(HOME)), &what);
        let err = verify_backup_set_on(storage.clone(), &set).unwrap_err();
        assert_eq!(err.code(), -1811, "{what}: a set is visible: {err}");
        let left = tree(&*storage, &set);
        if left.contains(&set.join("manifest.json.tmp")) {
            between_rename_and_sync += 1;
        }
        let (_engine, inst, t) = reopen(&storage).await;
        assert_rows(&inst, t, &what).await;
        inst.term(Term::empty()).await.unwrap();
    }
    assert_eq!(
        between_rename_and_sync, 1,
        "exactly one crash point lies between the manifest's rename and its folder's sync"
    );
}
