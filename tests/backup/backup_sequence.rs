//! behaviour.md §2 call by call: every refusal with ESE's exact code, and the sequence
//! that works.

use crate::support;

use ese::internals::page;
use std::path::{Path, PathBuf};

use ese_actors::{BackupBegin, BackupEnd, BackupFile, BackupKind, DbId, Engine, Instance, Term};
use support::actor::*;

#[tokio::test]
async fn calls_without_a_backup_are_no_backup() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, db) = instance_with_data(&engine, "i", dir.path(), 10).await;
    assert_eq!(code(inst.get_attach_info().await), -520);
    assert_eq!(code(inst.open_file(&db).await), -520);
    assert_eq!(
        code(inst.read_file(BackupFile::from_raw(1), PAGE * 4).await),
        -520
    );
    assert_eq!(code(inst.close_file(BackupFile::from_raw(1)).await), -520);
    assert_eq!(code(inst.get_log_info().await), -520);
    assert_eq!(code(inst.get_truncate_log_info().await), -520);
    assert_eq!(code(inst.truncate_log().await), -520);
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -520
    );
    // The grbit check comes first, even with no backup.
    assert_eq!(
        code(
            inst.end_external_backup(BackupEnd::NORMAL | BackupEnd::ABORT)
                .await
        ),
        -1003
    );
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::TRUNCATE_DONE).await),
        -1003
    );
    inst.stop_backup().await.unwrap();
    // stop_backup with no backup has no lasting effect.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    assert!(inst.get_attach_info().await.is_ok());
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn begin_checks() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", dir.path(), 10).await;
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::ATOMIC).await),
        -900
    );
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::SNAPSHOT).await),
        -900
    );
    assert_eq!(
        code(
            inst.begin_external_backup(BackupBegin::from_bits_retain(0x80))
                .await
        ),
        -900
    );
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::INCREMENTAL).await),
        -560
    );
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::empty()).await),
        -505
    );
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::INCREMENTAL).await),
        -505
    );
    // The running backup was not disturbed.
    assert_eq!(inst.get_attach_info().await.unwrap().len(), 1);
    // Attach and detach are refused while it runs.
    assert_eq!(
        code(inst.attach_database(dir.path().join("other.edb")).await),
        -505
    );
    assert_eq!(
        code(inst.detach_database(dir.path().join("db.edb")).await),
        -505
    );
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();

    let circ = engine
        .create_instance("c", params(&dir.path().join("c")).circular_logging(true))
        .await
        .unwrap();
    circ.init().await.unwrap();
    assert_eq!(
        code(circ.begin_external_backup(BackupBegin::INCREMENTAL).await),
        -526
    );
    circ.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn database_phase() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, db) = instance_with_data(&engine, "i", dir.path(), 300).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    assert_eq!(inst.get_attach_info().await.unwrap(), vec![db.clone()]);
    assert_eq!(code(inst.open_file("").await), -1003);
    // Not an attached database: -1203, the backup continues.
    assert_eq!(
        code(inst.open_file(dir.path().join("nope.edb")).await),
        -1203
    );
    assert_eq!(
        code(inst.open_file(dir.path().join("edb00000001.log")).await),
        -1203
    );
    let (f, size) = inst.open_file(&db).await.unwrap();
    assert_eq!(size % PAGE as u64, 0);
    // One file at a time (max_open_backup_files = 1): OutOfMemory, as ESE documents.
    assert_eq!(code(inst.open_file(&db).await), -1011);
    // Read sizes.
    assert_eq!(code(inst.read_file(f, 0).await), -1003);
    assert_eq!(code(inst.read_file(f, PAGE * 3 + 1).await), -1003);
    assert_eq!(
        code(inst.read_file(f, PAGE * 2).await),
        -1003,
        "first database read needs 3 pages"
    );
    assert_eq!(
        code(inst.read_file(BackupFile::from_raw(999), PAGE * 4).await),
        -1003
    );
    let first = inst.read_file(f, PAGE * 3).await.unwrap();
    assert_eq!(first.len(), PAGE * 3);
    // The header twice, carrying the backup mark.
    assert_eq!(&first[..PAGE], &first[PAGE..2 * PAGE]);
    let h = ese::internals::db::DbHeader::decode(&first[..PAGE]).unwrap();
    assert!(h.backup_mark.is_some());
    // Later reads may be one page.
    let one = inst.read_file(f, PAGE).await.unwrap();
    assert_eq!(one.len(), PAGE);
    let rest = read_all(&inst, f, 8 * PAGE).await;
    assert_eq!((3 * PAGE + PAGE + rest.len()) as u64, size);
    let last_page = (size / PAGE as u64 - 3) as u32;
    // Every data page verifies; the trailer matches the header.
    let mut image = first.to_vec();
    image.extend_from_slice(&one);
    image.extend_from_slice(&rest);
    for p in 1..=last_page {
        let off = (p as usize + 1) * PAGE;
        page::verify(&image[off..off + PAGE], p).unwrap();
    }
    let t = ese::internals::db::Trailer::decode(&image[image.len() - PAGE..]).unwrap();
    assert_eq!(t.db_signature, h.db_signature);
    assert_eq!(t.last_page, last_page);
    assert_eq!(t.backup.mark, h.backup_mark.unwrap().mark);
    // Past the end: empty, not an error.
    assert!(inst.read_file(f, PAGE).await.unwrap().is_empty());
    // get_log_info with a file open: -521, no abort.
    assert_eq!(code(inst.get_log_info().await), -521);
    inst.close_file(f).await.unwrap();
    assert_eq!(code(inst.close_file(f).await), -1003);
    let info = inst.get_log_info().await.unwrap();
    assert!(info.gen_low <= info.gen_high);
    assert_eq!(info.base_name, "edb");
    assert_eq!(info.files.len() as u32, info.gen_high - info.gen_low + 1);
    // A database after the log phase began: -521 and the backup is gone.
    assert_eq!(code(inst.open_file(&db).await), -521);
    assert_eq!(code(inst.get_log_info().await), -520);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn log_phase() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "i", dir.path(), 500).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    // The checkpoint at begin is the first log listed, and a flush that finished just before
    // may have moved it to the current log (CI saw one log): a roll after begin makes several.
    roll_logs(&inst, t, 1, 500).await;
    assert_eq!(
        code(inst.truncate_log().await),
        -521,
        "truncate before get_log_info"
    );
    let info = inst.get_log_info().await.unwrap();
    assert!(
        info.gen_high > info.gen_low,
        "several logs expected: {info:?}"
    );
    // Same ranges again, no new roll.
    assert_eq!(inst.get_log_info().await.unwrap(), info);
    let log = &info.files[0];
    let (f, size) = inst.open_file(log).await.unwrap();
    assert_eq!(size, 128 * 1024);
    assert_eq!(
        code(inst.read_file(f, PAGE).await),
        -1003,
        "first log read needs 2 pages"
    );
    let part = inst.read_file(f, PAGE * 2).await.unwrap();
    assert_eq!(part.len(), PAGE * 2);
    assert_eq!(code(inst.get_truncate_log_info().await), -521);
    inst.close_file(f).await.unwrap();
    // Every listed log must be read to its end before truncation.
    assert_eq!(code(inst.truncate_log().await), -616);
    for p in &info.files {
        let (f, _) = inst.open_file(p).await.unwrap();
        read_all(&inst, f, 64 * 1024).await;
        inst.close_file(f).await.unwrap();
    }
    let doomed = inst.get_truncate_log_info().await.unwrap();
    inst.truncate_log().await.unwrap();
    inst.truncate_log().await.unwrap();
    for p in &doomed {
        assert!(!p.exists(), "{} should be truncated", p.display());
    }
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn log_phase_refuses_anything_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, db) = instance_with_data(&engine, "i", dir.path(), 300).await;
    let d = dir.path();
    let bad = [
        d.join("edb.log"),
        d.join("..")
            .join(d.file_name().unwrap())
            .join("edb00000001.log"),
        d.join("sub/../edb00000001.log"),
        std::path::PathBuf::from("/etc/passwd"),
        d.join("edb.chk"),
        d.join("edbFFFFFFF0.log"),
    ];
    for p in bad {
        inst.begin_external_backup(BackupBegin::empty())
            .await
            .unwrap();
        inst.get_log_info().await.unwrap();
        assert_eq!(code(inst.open_file(&p).await), -1003, "{}", p.display());
        assert_eq!(
            code(inst.get_log_info().await),
            -520,
            "refusing {} aborts the backup",
            p.display()
        );
    }
    // A listed log that is missing: -569, aborted.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let info = inst.get_log_info().await.unwrap();
    std::fs::remove_file(&info.files[0]).unwrap();
    assert_eq!(code(inst.open_file(&info.files[0]).await), -569);
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -520
    );
    let _ = db;
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn end_outcomes_and_server_stop() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, db) = instance_with_data(&engine, "i", dir.path(), 50).await;
    // NORMAL before the log phase: -800, no header change.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -800
    );
    assert_eq!(inst.database_info(&db).await.unwrap().last_copy, None);
    // NORMAL with a listed log not read: -800.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    inst.get_log_info().await.unwrap();
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -800
    );
    // stop_backup: later calls -801, close still works, end(NORMAL) -801, no header change.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(&db).await.unwrap();
    inst.stop_backup().await.unwrap();
    assert_eq!(code(inst.read_file(f, PAGE * 4).await), -801);
    assert_eq!(code(inst.get_attach_info().await), -801);
    assert_eq!(code(inst.open_file(&db).await), -801);
    assert_eq!(code(inst.get_log_info().await), -801);
    assert_eq!(code(inst.truncate_log().await), -801);
    inst.close_file(f).await.unwrap();
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -801
    );
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -520
    );
    let info = inst.database_info(&db).await.unwrap();
    assert_eq!((info.last_full, info.last_copy), (None, None));
    // The next begin starts clean.
    let _ = run_backup(&inst, false, false).await;
    assert!(inst.database_info(&db).await.unwrap().last_copy.is_some());
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn stop_service_then_end_is_refused_and_only_term_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, db) = instance_with_data(&engine, "i", dir.path(), 50).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(&db).await.unwrap();
    inst.stop_service().await.unwrap();
    assert_eq!(code(inst.read_file(f, PAGE * 4).await), -1329);
    assert_eq!(code(inst.close_file(f).await), -1329);
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -1329
    );
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::ABORT).await),
        -1329
    );
    assert_eq!(code(inst.term(Term::empty()).await), -505);
    inst.term(Term::STOP_BACKUP).await.unwrap();
}

#[tokio::test]
async fn term_during_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, db) = instance_with_data(&engine, "i", dir.path(), 50).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    assert_eq!(code(inst.term(Term::COMPLETE).await), -505);
    assert_eq!(code(inst.term(Term::empty()).await), -505);
    // The instance keeps running and its backup can still end normally...
    let (f, _) = inst.open_file(&db).await.unwrap();
    read_all(&inst, f, 64 * 1024).await;
    inst.close_file(f).await.unwrap();
    inst.get_log_info().await.unwrap();
    for p in inst.get_log_info().await.unwrap().files {
        let (f, _) = inst.open_file(&p).await.unwrap();
        read_all(&inst, f, 64 * 1024).await;
        inst.close_file(f).await.unwrap();
    }
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    // ...but no new backup may begin until the instance is created again.
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::empty()).await),
        -523
    );
    inst.term(Term::empty()).await.unwrap();

    let (inst, _, _) = {
        let i = engine
            .create_instance("i", params(dir.path()))
            .await
            .unwrap();
        i.init().await.unwrap();
        let id = i.attach_database(&db).await.unwrap();
        (i, id, db.clone())
    };
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    inst.term(Term::ABRUPT).await.unwrap();
    let inst = engine
        .create_instance("i", params(dir.path()))
        .await
        .unwrap();
    inst.init().await.unwrap();
    inst.attach_database(&db).await.unwrap();
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    inst.term(Term::DIRTY).await.unwrap();
}

#[tokio::test]
async fn incremental_backup_phase_rules() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, db) = instance_with_data(&engine, "i", dir.path(), 200).await;
    run_backup(&inst, false, true).await;
    put_rows(&inst, t, 200..400).await;
    inst.begin_external_backup(BackupBegin::INCREMENTAL)
        .await
        .unwrap();
    assert_eq!(
        code(inst.get_attach_info().await),
        -521,
        "no database phase in an incremental"
    );
    assert_eq!(code(inst.get_attach_info().await), -521, "and no abort");
    assert_eq!(code(inst.open_file(&db).await), -521);
    assert_eq!(
        code(inst.get_log_info().await),
        -520,
        "opening a database aborted it"
    );
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn damaged_page_cancels_that_database_and_the_backup_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, db) = instance_with_data(&engine, "i", dir.path(), 300).await;
    inst.term(Term::empty()).await.unwrap();
    // Flip a byte in data page 3 on disk.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[4 * PAGE + 100] ^= 1;
    std::fs::write(&db, bytes).unwrap();
    let inst = engine
        .create_instance("i", params(dir.path()))
        .await
        .unwrap();
    inst.init().await.unwrap();
    // Attach reads the catalog, not page 3; the backup reads every page.
    inst.attach_database(&db).await.unwrap();
    read_cancels_the_database(&inst, &db).await;
    inst.term(Term::empty()).await.unwrap();
}

/// A backup whose first read of `db` fails verification: -1018, that database's handle is
/// closed, the backup goes on to its logs (then is aborted here). Answers the read's error.
async fn read_cancels_the_database(inst: &Instance, db: &Path) -> ese::Error {
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(db).await.unwrap();
    let e = inst.read_file(f, 64 * PAGE).await.unwrap_err();
    assert_eq!(e.code(), -1018, "{e}");
    assert_eq!(
        code(inst.close_file(f).await),
        -1003,
        "its handle was closed"
    );
    let info = inst.get_log_info().await.unwrap();
    assert!(!info.files.is_empty(), "the backup continues");
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    e
}

/// An attached database whose file is cut short behind the engine's back: the instance
/// reopened on a whole file, then the file loses its tail.
async fn attached_then_cut_short(engine: &Engine, dir: &Path) -> (Instance, PathBuf, DbId) {
    let (inst, _, db) = instance_with_data(engine, "i", dir, 300).await;
    inst.term(Term::empty()).await.unwrap();
    let inst = engine.create_instance("i", params(dir)).await.unwrap();
    inst.init().await.unwrap();
    let dbid = inst.attach_database(&db).await.unwrap();
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(
        len > 16 * PAGE as u64,
        "the data reaches past the cut ({len} bytes)"
    );
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(6 * PAGE as u64).unwrap();
    (inst, db, dbid)
}

/// Pages the engine wrote and the file then lost are a lost flush, not pages never written:
/// the backup must not carry zeros where data was (behaviour.md §2.2, "no lost flush").
#[tokio::test]
async fn a_database_cut_short_fails_its_read_and_the_backup_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, db, _) = attached_then_cut_short(&engine, dir.path()).await;
    let e = read_cancels_the_database(&inst, &db).await;
    assert!(e.to_string().contains("cut short"), "{e}");
    inst.term(Term::empty()).await.unwrap();
}

/// A set written by `backup_to_dir` from such a file fails the same way and leaves nothing.
#[tokio::test]
async fn a_backup_set_of_a_database_cut_short_fails_with_1018() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = attached_then_cut_short(&engine, dir.path()).await;
    set_fails_with_1018(&inst, dir.path()).await;
    inst.term(Term::empty()).await.unwrap();
}

/// `backup_to_dir` of the cut database: -1018, and no set is left.
async fn set_fails_with_1018(inst: &Instance, dir: &Path) {
    let set = dir.join("set");
    let e = inst
        .backup_to_dir(&set, BackupKind::Full)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -1018, "{e}");
    assert!(!set.join("manifest.json").exists(), "no set was left");
}

/// Reads back the 300 rows of table "t": those on pages that survived the cut are whole, and
/// some lived past it and fail with `ReadLostFlushVerifyFailure` (-1119), every one of them.
async fn lost_rows_fail_with_1119(inst: &Instance, dbid: DbId) {
    let t = inst.open_table(dbid, "t").await.unwrap();
    let s = inst.begin_session().await.unwrap();
    let mut codes = Vec::new();
    for i in 0..300u32 {
        match s.get(t, format!("k{i:06}").as_bytes()).await {
            Ok(v) => assert_eq!(v.as_deref(), Some(&[(i % 251) as u8; 200][..]), "row {i}"),
            Err(e) => codes.push(e.code()),
        }
    }
    assert!(!codes.is_empty(), "some rows lived past the cut");
    assert!(codes.iter().all(|c| *c == -1119), "{codes:?}");
}

/// A lost page read by a session is `ReadLostFlushVerifyFailure` (-1119), not an empty page.
#[tokio::test]
async fn a_session_reading_a_lost_page_gets_1119() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, dbid) = attached_then_cut_short(&engine, dir.path()).await;
    lost_rows_fail_with_1119(&inst, dbid).await;
    inst.term(Term::empty()).await.unwrap();
}

/// After the cut the flusher writes new pages past the old end, so the file grows again over
/// a hole of zeros where the lost pages were: they are still lost, for sessions and backups.
#[tokio::test]
async fn a_cut_hidden_by_later_writes_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, db, dbid) = attached_then_cut_short(&engine, dir.path()).await;
    let cut = std::fs::metadata(&db).unwrap().len();
    let u = inst.create_table(dbid, "u").await.unwrap();
    let mut batches = 0;
    while std::fs::metadata(&db).unwrap().len() <= 4 * cut {
        batches += 1;
        assert!(batches < 500, "the flusher never wrote past the cut");
        put_rows(&inst, u, batches * 20..batches * 20 + 20).await;
    }
    lost_rows_fail_with_1119(&inst, dbid).await;
    set_fails_with_1018(&inst, dir.path()).await;
    inst.term(Term::empty()).await.unwrap();
}

/// Cut short while no instance held it: a clean database holds every page it allocated, so
/// attach refuses the file (-1206) before writing to it, and a whole copy attaches again.
#[tokio::test]
async fn a_database_cut_short_while_detached_is_refused_at_attach() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, db) = instance_with_data(&engine, "i", dir.path(), 300).await;
    inst.term(Term::empty()).await.unwrap();
    let whole = std::fs::read(&db).unwrap();
    for cut in [whole.len() - PAGE, 6 * PAGE, 2 * PAGE + 10] {
        std::fs::write(&db, &whole[..cut]).unwrap();
        let inst = engine
            .create_instance("i", params(dir.path()))
            .await
            .unwrap();
        inst.init().await.unwrap();
        let e = inst.attach_database(&db).await.unwrap_err();
        assert_eq!(e.code(), -1206, "cut at {cut}: {e}");
        inst.term(Term::empty()).await.unwrap();
        assert_eq!(
            std::fs::read(&db).unwrap(),
            &whole[..cut],
            "nothing written"
        );
    }
    std::fs::write(&db, &whole).unwrap();
    let inst = engine
        .create_instance("i", params(dir.path()))
        .await
        .unwrap();
    inst.init().await.unwrap();
    inst.attach_database(&db).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn corrupt_log_aborts_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", dir.path(), 300).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let info = inst.get_log_info().await.unwrap();
    let victim = &info.files[info.files.len() - 1];
    let mut bytes = std::fs::read(victim).unwrap();
    // The first record's durable mark, which its checksum covers: a byte further in may be
    // padding or the zero tail, depending on how much log the rows wrote.
    bytes[4096 + 16] ^= 0x40;
    std::fs::write(victim, bytes).unwrap();
    let (f, _) = inst.open_file(victim).await.unwrap();
    assert_eq!(code(inst.read_file(f, 64 * 1024).await), -612);
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -520
    );
    inst.term(Term::empty()).await.unwrap();
}

/// `AbortBackupIf` ends the backup its id names and never a later one.
#[tokio::test]
async fn abort_by_id_ends_only_that_backup() {
    use ese_actors::messages::{AbortBackupIf, BeginBackupWithId};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", dir.path(), 10).await;
    let first = inst
        .ask(BeginBackupWithId {
            grbit: BackupBegin::empty(),
        })
        .await
        .unwrap();
    // The same begin grbits are checked: a second backup is refused while one runs.
    assert_eq!(
        code(
            inst.ask(BeginBackupWithId {
                grbit: BackupBegin::empty()
            })
            .await
        ),
        -505
    );
    inst.ask(AbortBackupIf { id: first }).await.unwrap();
    assert_eq!(code(inst.get_attach_info().await), -520);
    let second = inst
        .ask(BeginBackupWithId {
            grbit: BackupBegin::empty(),
        })
        .await
        .unwrap();
    assert_ne!(first, second);
    // A late abort of the first backup leaves the second running.
    inst.ask(AbortBackupIf { id: first }).await.unwrap();
    assert_eq!(inst.get_attach_info().await.unwrap().len(), 1);
    inst.ask(AbortBackupIf { id: second }).await.unwrap();
    assert_eq!(code(inst.get_attach_info().await), -520);
    inst.term(Term::empty()).await.unwrap();
}

/// behaviour.md §2.2: the logs `get_log_info` lists can be opened, whatever the log path's
/// spelling. One that holds `..` (a log directory beside the instance's, as configurations
/// often name it) lists `<dir>/sub/../logs/edb….log`; those were refused as holding a `..`
/// component (-1003, the backup aborted), so no backup of such an instance could complete.
#[tokio::test]
async fn listed_logs_open_when_the_log_path_holds_a_parent_component() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let logs = dir.path().join("sub").join("..").join("logs");
    let p = params(dir.path()).log_path(&logs);
    let (inst, _, db) = instance_with(&engine, ese::io::os(), "i", p, 50).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let info = inst.get_log_info().await.unwrap();
    assert!(info.files.iter().all(|f| f.starts_with(&logs)), "{info:?}");
    for f in &info.files {
        let (h, _) = inst.open_file(f).await.unwrap();
        read_all(&inst, h, 64 * 1024).await;
        inst.close_file(h).await.unwrap();
    }
    // A `..` of the caller's beyond the log directory is still refused.
    let name = info.files[0].file_name().unwrap();
    let escaped = logs.join("..").join("logs").join(name);
    assert_eq!(code(inst.open_file(&escaped).await), -1003);
    assert_eq!(code(inst.get_log_info().await), -520, "and aborts");
    // The whole sequence, by hand and as a set.
    run_backup(&inst, false, true).await;
    assert!(inst.database_info(&db).await.unwrap().last_full.is_some());
    inst.backup_to_dir(dir.path().join("set"), BackupKind::Full)
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();
}
