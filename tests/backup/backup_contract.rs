//! contract.md §1.2 and §2, the corners no other test pinned: which error wins inside
//! `open_file` and `truncate_log`, handles of an ended backup, `create_database` during a
//! backup, ABORT with TRUNCATE_DONE, a normal end with a file still open, TRUNCATE_DONE
//! deleting nothing, the truncation bound for a database not copied (two databases),
//! incremental ranges and records, `stop_backup` after a refused term and during
//! `stop_service`, the legacy calls in OneInstance mode, a full backup under circular logging,
//! and another base name.

use crate::support;

use ese_actors::{BackupBegin, BackupEnd, Engine, Term};
use support::actor::*;

async fn read_logs(inst: &ese_actors::Instance, files: &[std::path::PathBuf]) {
    for p in files {
        let (f, _) = inst.open_file(p).await.unwrap();
        read_all(inst, f, 64 * 1024).await;
        inst.close_file(f).await.unwrap();
    }
}

#[tokio::test]
async fn open_and_truncate_check_in_the_contracts_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, db) = instance_with_data(&engine, "i", dir.path(), 100).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(&db).await.unwrap();
    assert_eq!(
        code(inst.open_file("").await),
        -1003,
        "empty before out of memory"
    );
    assert_eq!(code(inst.open_file(dir.path().join("x.edb")).await), -1011);
    read_all(&inst, f, 64 * 1024).await;
    inst.close_file(f).await.unwrap();
    roll_logs(&inst, t, 1, 1000).await;
    let info = inst.get_log_info().await.unwrap();
    let (lf, _) = inst.open_file(&info.files[0]).await.unwrap();
    assert_eq!(
        code(inst.open_file(&db).await),
        -1011,
        "out of memory before -521"
    );
    assert_eq!(
        code(inst.truncate_log().await),
        -521,
        "truncate with a file open"
    );
    assert_eq!(code(inst.get_truncate_log_info().await), -521);
    inst.close_file(lf).await.unwrap();
    read_logs(&inst, &info.files).await;
    inst.truncate_log().await.unwrap();
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    assert!(inst.database_info(&db).await.unwrap().last_full.is_some());
    // The old handle after the end: NoBackup; in a new backup: InvalidParameter.
    assert_eq!(code(inst.read_file(f, PAGE * 4).await), -520);
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    assert_eq!(code(inst.read_file(f, PAGE * 4).await), -1003);
    assert_eq!(code(inst.close_file(f).await), -1003);
    // get_truncate_log_info after stop_backup: -801.
    inst.stop_backup().await.unwrap();
    assert_eq!(code(inst.get_truncate_log_info().await), -801);
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::empty()).await),
        -505
    );
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn create_database_is_refused_during_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", dir.path(), 10).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    assert_eq!(
        code(inst.create_database(dir.path().join("n.edb")).await),
        -505
    );
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn abort_with_truncate_done_writes_nothing_and_truncate_done_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, db) = instance_with_data(&engine, "i", dir.path(), 100).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(&db).await.unwrap();
    read_all(&inst, f, 64 * 1024).await;
    inst.close_file(f).await.unwrap();
    let info = inst.get_log_info().await.unwrap();
    read_logs(&inst, &info.files).await;
    inst.end_external_backup(BackupEnd::ABORT | BackupEnd::TRUNCATE_DONE)
        .await
        .unwrap();
    let i = inst.database_info(&db).await.unwrap();
    assert_eq!((i.last_full, i.last_copy), (None, None));
    // A file still open at a normal end: headers updated, file closed.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(&db).await.unwrap();
    read_all(&inst, f, 64 * 1024).await;
    inst.close_file(f).await.unwrap();
    let info = inst.get_log_info().await.unwrap();
    read_logs(&inst, &info.files).await;
    let (g, _) = inst.open_file(&info.files[0]).await.unwrap();
    inst.end_external_backup(BackupEnd::NORMAL | BackupEnd::TRUNCATE_DONE)
        .await
        .unwrap();
    assert!(inst.database_info(&db).await.unwrap().last_full.is_some());
    assert_eq!(code(inst.close_file(g).await), -520);
    for p in &info.files {
        assert!(p.exists(), "TRUNCATE_DONE deletes nothing");
    }
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn truncation_keeps_what_a_database_not_copied_still_needs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, db) = instance_with_data(&engine, "i", dir.path(), 100).await;
    let db2 = dir.path().join("db2.edb");
    let id2 = inst.create_database(&db2).await.unwrap();
    let t2 = inst.create_table(id2, "t").await.unwrap();
    put_rows(&inst, t2, 0..50).await;
    // A first full backup of both.
    run_backup(&inst, false, true).await;
    let full2 = inst.database_info(&db2).await.unwrap().last_full.unwrap();
    roll_logs(&inst, t, 3, 1000).await;
    // Now only db is copied; db2 opened and closed early.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(&db).await.unwrap();
    read_all(&inst, f, 64 * 1024).await;
    inst.close_file(f).await.unwrap();
    let (f2, _) = inst.open_file(&db2).await.unwrap();
    inst.read_file(f2, PAGE * 3).await.unwrap();
    inst.close_file(f2).await.unwrap();
    let info = inst.get_log_info().await.unwrap();
    let doomed = inst.get_truncate_log_info().await.unwrap();
    for p in &doomed {
        let name = p.file_name().unwrap().to_str().unwrap();
        let gen = u32::from_str_radix(&name[3..11], 16).unwrap();
        assert!(
            gen < full2.gen_high,
            "{name} needed by db2 (full gen_high {})",
            full2.gen_high
        );
    }
    read_logs(&inst, &info.files).await;
    inst.truncate_log().await.unwrap();
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    assert_eq!(
        inst.database_info(&db2).await.unwrap().last_full,
        Some(full2)
    );
    assert!(
        inst.database_info(&db)
            .await
            .unwrap()
            .last_full
            .unwrap()
            .gen_high
            > full2.gen_high
    );
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn stop_backup_after_a_refused_term_and_during_stop_service() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", dir.path(), 10).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    assert_eq!(code(inst.term(Term::empty()).await), -505);
    // The instance keeps running: sessions work.
    let s = inst.begin_session().await.unwrap();
    drop(s);
    inst.stop_backup().await.unwrap();
    assert_eq!(
        code(inst.term(Term::COMPLETE).await),
        -505,
        "stopped but not ended"
    );
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::empty()).await),
        -523
    );
    inst.stop_service().await.unwrap();
    inst.stop_service().await.unwrap();
    inst.stop_backup().await.unwrap();
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::empty()).await),
        -1329
    );
    assert_eq!(code(inst.init().await), -1329);
    inst.term(Term::STOP_BACKUP).await.unwrap();
    assert_eq!(code(inst.stop_backup().await), -1115);
    assert_eq!(code(inst.stop_service().await), -1115);
    assert_eq!(code(inst.term(Term::empty()).await), -1115);
    assert_eq!(
        code(
            inst.end_external_backup(BackupEnd::NORMAL | BackupEnd::ABORT)
                .await
        ),
        -1115
    );
    assert_eq!(engine.mode(), ese_actors::Mode::Unset);
    assert_eq!(code(engine.legacy().stop_backup().await), -1003);
}

#[tokio::test]
async fn incremental_copies_from_the_oldest_log_and_records_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, db) = instance_with_data(&engine, "i", dir.path(), 100).await;
    run_backup(&inst, false, true).await;
    let full = inst.database_info(&db).await.unwrap().last_full.unwrap();
    roll_logs(&inst, t, 2, 1000).await;
    inst.begin_external_backup(BackupBegin::INCREMENTAL)
        .await
        .unwrap();
    let info = inst.get_log_info().await.unwrap();
    assert!(info.gen_low <= full.gen_high + 1, "{info:?} {full:?}");
    assert!(!info.files.iter().any(|p| p.ends_with("edb.log")));
    read_logs(&inst, &info.files).await;
    inst.truncate_log().await.unwrap();
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    let i = inst.database_info(&db).await.unwrap();
    let inc = i.last_incremental.unwrap();
    assert_eq!((inc.gen_low, inc.gen_high), (info.gen_low, info.gen_high));
    assert_eq!(i.last_full, Some(full));
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_full_backup_under_circular_logging_keeps_every_log_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let p = params(dir.path()).circular_logging(true);
    let (inst, t, db) = instance_with(&engine, ese::io::os(), "i", p, 100).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(&db).await.unwrap();
    read_all(&inst, f, 64 * 1024).await;
    inst.close_file(f).await.unwrap();
    roll_logs(&inst, t, 8, 1000).await;
    let info = inst.get_log_info().await.unwrap();
    assert!(info.gen_high - info.gen_low >= 7, "{info:?}");
    read_logs(&inst, &info.files).await;
    inst.truncate_log().await.unwrap();
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    assert!(inst.database_info(&db).await.unwrap().last_full.is_some());
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn the_legacy_calls_drive_a_whole_backup_in_one_instance_mode() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let l = engine.legacy();
    assert_eq!(
        code(l.begin_external_backup(BackupBegin::empty()).await),
        -1003
    );
    let inst = engine.init_legacy(params(dir.path())).await.unwrap();
    let db = dir.path().join("db.edb");
    let id = inst.create_database(&db).await.unwrap();
    let t = inst.create_table(id, "t").await.unwrap();
    put_rows(&inst, t, 0..50).await;
    assert_eq!(
        code(
            engine
                .create_instance("x", params(&dir.path().join("x")))
                .await
        ),
        -1080
    );
    l.begin_external_backup(BackupBegin::empty()).await.unwrap();
    for p in l.get_attach_info().await.unwrap() {
        let (f, _) = l.open_file(&p).await.unwrap();
        loop {
            if l.read_file(f, 64 * 1024).await.unwrap().is_empty() {
                break;
            }
        }
        l.close_file(f).await.unwrap();
    }
    let info = l.get_log_info().await.unwrap();
    for p in &info.files {
        let (f, _) = l.open_file(p).await.unwrap();
        loop {
            if l.read_file(f, 64 * 1024).await.unwrap().is_empty() {
                break;
            }
        }
        l.close_file(f).await.unwrap();
    }
    l.truncate_log().await.unwrap();
    l.end_external_backup().await.unwrap();
    assert!(inst.database_info(&db).await.unwrap().last_full.is_some());
    l.stop_backup().await.unwrap();
    l.stop_service().await.unwrap();
    assert_eq!(
        code(l.begin_external_backup(BackupBegin::empty()).await),
        -1329
    );
    l.term(Term::empty()).await.unwrap();
    assert_eq!(code(l.stop_service().await), -1003);
}

#[tokio::test]
async fn another_base_name_and_an_unaligned_log_size() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let p = params(dir.path()).base_name("e00");
    let (inst, t, _db) = instance_with(&engine, ese::io::os(), "i", p, 100).await;
    roll_logs(&inst, t, 2, 1000).await;
    run_backup(&inst, false, true).await;
    run_backup(&inst, true, true).await;
    inst.term(Term::empty()).await.unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let p = params(dir2.path()).log_file_size(128 * 1024 + 1000);
    let (inst, t, _db) = instance_with(&engine, ese::io::os(), "j", p, 100).await;
    roll_logs(&inst, t, 2, 1000).await;
    run_backup(&inst, false, true).await;
    inst.term(Term::empty()).await.unwrap();
}

/// Contract §2.3: an incremental copies "every archived log on disk". After a full backup
/// whose client truncated the logs itself (it deleted what `get_truncate_log_info` named and
/// ended with `TRUNCATE_DONE`), the next incremental listed the deleted logs still (the
/// instance's memory of its archived logs), so opening the first failed with
/// `MissingFileToBackup` -569 and aborted it: no incremental could succeed until a restart or
/// a full backup that truncated.
#[tokio::test]
async fn an_incremental_after_the_client_truncated_lists_only_logs_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, db) = instance_with_data(&engine, "i", dir.path(), 100).await;
    roll_logs(&inst, t, 3, 1000).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(&db).await.unwrap();
    read_all(&inst, f, 64 * 1024).await;
    inst.close_file(f).await.unwrap();
    let info = inst.get_log_info().await.unwrap();
    read_logs(&inst, &info.files).await;
    let doomed = inst.get_truncate_log_info().await.unwrap();
    assert!(!doomed.is_empty());
    for p in &doomed {
        std::fs::remove_file(p).unwrap();
    }
    inst.end_external_backup(BackupEnd::NORMAL | BackupEnd::TRUNCATE_DONE)
        .await
        .unwrap();
    let full = inst.database_info(&db).await.unwrap().last_full.unwrap();
    roll_logs(&inst, t, 2, 5000).await;
    inst.begin_external_backup(BackupBegin::INCREMENTAL)
        .await
        .unwrap();
    let info = inst.get_log_info().await.unwrap();
    let gone = doomed.iter().filter(|p| info.files.contains(p)).count();
    assert_eq!(gone, 0, "deleted logs listed: {info:?}");
    assert!(info.gen_low <= full.gen_high + 1, "{info:?} {full:?}");
    read_logs(&inst, &info.files).await;
    inst.truncate_log().await.unwrap();
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    let inc = inst.database_info(&db).await.unwrap().last_incremental;
    assert_eq!(
        inc.map(|i| (i.gen_low, i.gen_high)),
        Some((info.gen_low, info.gen_high))
    );
    inst.term(Term::empty()).await.unwrap();
}

/// Contract §2.3: an incremental whose oldest log on disk is newer than the previous backup's
/// last generation + 1 is refused at `get_log_info` with `MissingFileToBackup` -569 and the
/// backup aborts. Logs deleted behind the instance's back make that gap: before the log phase
/// read the directory, `get_log_info` answered the deleted logs as if they were there.
#[tokio::test]
async fn an_incremental_over_logs_deleted_behind_the_instance_is_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, db) = instance_with_data(&engine, "i", dir.path(), 100).await;
    run_backup(&inst, false, true).await;
    let full = inst.database_info(&db).await.unwrap().last_full.unwrap();
    roll_logs(&inst, t, 3, 1000).await;
    // Every archived log up to two past the full backup's last is deleted by someone else.
    for g in 1..=full.gen_high + 2 {
        let p = dir.path().join(format!("edb{g:08X}.log"));
        let _ = std::fs::remove_file(p);
    }
    inst.begin_external_backup(BackupBegin::INCREMENTAL)
        .await
        .unwrap();
    assert_eq!(code(inst.get_log_info().await), -569);
    assert_eq!(
        code(inst.get_log_info().await),
        -520,
        "the backup was aborted"
    );
    inst.term(Term::empty()).await.unwrap();
}
