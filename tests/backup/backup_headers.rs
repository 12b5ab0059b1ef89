//! behaviour.md §2.5: which header field each kind of backup writes, that fields only move forward
//! within one log stream and are replaced by a record of another, and that the update is
//! replayed from the log after a dirty restart.

use crate::support;

use ese::internals::log::checkpoint;
use ese_actors::{BackupBegin, BackupEnd, BackupKind, Engine, Term};
use support::actor::*;

#[tokio::test]
async fn each_kind_writes_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, path) = instance_with_data(&engine, "i", dir.path(), 100).await;

    // Full without truncation: a copy backup.
    run_backup(&inst, false, false).await;
    let i = inst.database_info(&path).await.unwrap();
    let copy = i.last_copy.expect("last_copy");
    assert_eq!(
        (i.last_full, i.last_incremental, i.last_differential),
        (None, None, None)
    );
    assert!(copy.gen_low <= copy.gen_high);

    // Incremental needs a full backup, a copy does not count.
    assert_eq!(
        code(inst.begin_external_backup(BackupBegin::INCREMENTAL).await),
        -560
    );

    // Full with truncation.
    put_rows(&inst, t, 100..200).await;
    run_backup(&inst, false, true).await;
    let i = inst.database_info(&path).await.unwrap();
    let full = i.last_full.expect("last_full");
    assert!(full.gen_high > copy.gen_high && full.mark > copy.mark);
    assert_eq!(i.last_copy, Some(copy), "other fields stay");

    // Incremental without truncation: differential.
    put_rows(&inst, t, 200..300).await;
    run_backup(&inst, true, false).await;
    let diff = inst
        .database_info(&path)
        .await
        .unwrap()
        .last_differential
        .expect("last_differential");
    assert!(diff.gen_high > full.gen_high);

    // Incremental with truncation (TRUNCATE_DONE counts as truncated).
    put_rows(&inst, t, 300..400).await;
    inst.begin_external_backup(BackupBegin::INCREMENTAL)
        .await
        .unwrap();
    let info = inst.get_log_info().await.unwrap();
    for p in &info.files {
        let (f, _) = inst.open_file(p).await.unwrap();
        read_all(&inst, f, 128 * 1024).await;
        inst.close_file(f).await.unwrap();
    }
    inst.end_external_backup(BackupEnd::NORMAL | BackupEnd::TRUNCATE_DONE)
        .await
        .unwrap();
    let i = inst.database_info(&path).await.unwrap();
    let inc = i.last_incremental.expect("last_incremental");
    assert_eq!((inc.gen_low, inc.gen_high), (info.gen_low, info.gen_high));
    assert_eq!(i.last_differential, Some(diff));

    // A new full backup with truncation clears incremental and differential.
    run_backup(&inst, false, true).await;
    let i = inst.database_info(&path).await.unwrap();
    assert_eq!((i.last_incremental, i.last_differential), (None, None));
    assert!(i.last_full.unwrap().gen_high > inc.gen_high);
    inst.term(Term::empty()).await.unwrap();

    // The fields are on disk after a clean term.
    let j = engine
        .create_instance("j", params(&dir.path().join("j")))
        .await
        .unwrap();
    j.init().await.unwrap();
    let on_disk = j.database_info(&path).await.unwrap();
    assert_eq!(
        on_disk,
        ese_actors::DatabaseInfo {
            clean_shutdown: true,
            ..i
        }
    );
    j.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn header_update_is_replayed_after_a_dirty_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, path) = instance_with_data(&engine, "i", dir.path(), 100).await;
    // The header as it was before the backup.
    let before = std::fs::read(&path).unwrap()[..2 * PAGE].to_vec();
    run_backup(&inst, false, false).await;
    let expected = inst
        .database_info(&path)
        .await
        .unwrap()
        .last_copy
        .expect("copy recorded");
    inst.term(Term::DIRTY).await.unwrap();
    // Put the old header back (as if the header write never reached the disk) and make
    // recovery start at the first log: only the log can bring the field back.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..2 * PAGE].copy_from_slice(&before);
    std::fs::write(&path, bytes).unwrap();
    let chk_path = dir.path().join("edb.chk");
    let mut chk = checkpoint::read(&*ese::io::os(), &chk_path)
        .unwrap()
        .unwrap();
    chk.seq += 1;
    chk.lsn = ese::Lsn::new(1, 4096);
    checkpoint::write(&*ese::io::os(), &chk_path, &chk).unwrap();
    let inst = engine
        .create_instance("i", params(dir.path()))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let info = inst.database_info(&path).await.unwrap();
    assert!(info.clean_shutdown);
    assert_eq!(info.last_copy, Some(expected));
    inst.term(Term::empty()).await.unwrap();
}

/// An instance's own database keeps its backup records when it comes back: after a clean
/// term, after a crash and the recovery that cleans it, and after a detach. Each time an
/// incremental backup chains to the last backup; an attach that took it for another
/// instance's (its owner token unknown) would clear them, and the incremental would be
/// `MissingFullBackup` (-560).
#[tokio::test]
async fn an_instances_own_database_keeps_its_backup_records_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (mut inst, _, path) = instance_with_data(&engine, "i", dir.path(), 100).await;
    let mut last = inst
        .backup_to_dir(dir.path().join("full"), BackupKind::Full)
        .await
        .unwrap();
    for (n, how) in [Term::empty(), Term::DIRTY, Term::empty()]
        .into_iter()
        .enumerate()
    {
        if n < 2 {
            inst.term(how).await.unwrap();
            inst = engine
                .create_instance("i", params(dir.path()))
                .await
                .unwrap();
            inst.init().await.unwrap();
        } else {
            inst.detach_database(&path).await.unwrap();
        }
        let db = inst.attach_database(&path).await.unwrap();
        let t = inst.open_table(db, "t").await.unwrap();
        put_rows(&inst, t, 100 * (n as u32 + 1)..100 * (n as u32 + 2)).await;
        let inc = inst
            .backup_to_dir(dir.path().join(format!("inc-{n}")), BackupKind::Incremental)
            .await
            .unwrap_or_else(|e| panic!("incremental {n}: {e}"));
        assert_eq!(inc.parent_id, Some(last.id.clone()), "incremental {n}");
        last = inc;
    }
    inst.term(Term::empty()).await.unwrap();
}

/// A database moved to an instance with a new log stream (generation 1 again): the attach
/// clears the old stream's records, as ESE's attach does when the log signature differs (they
/// mean nothing here), an incremental does not count the old stream's full backup, the new
/// stream's first full backup is recorded although its mark is older, and an incremental
/// chains to it.
#[tokio::test]
async fn a_new_log_stream_replaces_the_old_streams_records() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (a, t, path) = instance_with_data(&engine, "a", &dir.path().join("a"), 100).await;
    // Two full backups move A's log past generation 1.
    a.backup_to_dir(dir.path().join("a-full-1"), BackupKind::Full)
        .await
        .unwrap();
    put_rows(&a, t, 100..200).await;
    a.backup_to_dir(dir.path().join("a-full-2"), BackupKind::Full)
        .await
        .unwrap();
    let on_a = a.database_info(&path).await.unwrap().last_full;
    let on_a = on_a.expect("A's full backup");
    // A clean term detaches the database with a clean header.
    a.term(Term::empty()).await.unwrap();

    let b = engine
        .create_instance("b", params(&dir.path().join("b")))
        .await
        .unwrap();
    b.init().await.unwrap();
    let db = b.attach_database(&path).await.unwrap();
    let t = b.open_table(db, "t").await.unwrap();
    let moved = b.database_info(&path).await.unwrap();
    assert_eq!(
        (moved.last_full, moved.last_incremental, moved.last_copy),
        (None, None, None),
        "cleared by the attach"
    );
    assert_eq!(
        code(b.begin_external_backup(BackupBegin::INCREMENTAL).await),
        -560,
        "a full backup of another log stream is no full backup here"
    );

    let full = b
        .backup_to_dir(dir.path().join("b-full"), BackupKind::Full)
        .await
        .unwrap();
    let info = b.database_info(&path).await.unwrap();
    let last = info.last_full.expect("B's full backup");
    assert_eq!((last.gen_low, last.gen_high), (full.gen_low, full.gen_high));
    assert!(
        last.mark < on_a.mark,
        "B's mark is older than A's: the case at stake"
    );
    assert_eq!(info.last_incremental, None);

    put_rows(&b, t, 200..300).await;
    let inc = b
        .backup_to_dir(dir.path().join("b-inc"), BackupKind::Incremental)
        .await
        .unwrap();
    assert_eq!(inc.parent_id, Some(full.id.clone()), "chains to B's full");
    let last_inc = b.database_info(&path).await.unwrap().last_incremental;
    let last_inc = last_inc.expect("B's incremental");
    assert_eq!(
        (last_inc.gen_low, last_inc.gen_high),
        (inc.gen_low, inc.gen_high)
    );
    assert!(
        inc.gen_low <= full.gen_high + 1 && inc.gen_high > full.gen_high,
        "B's incremental goes on from B's full"
    );
    b.term(Term::empty()).await.unwrap();
}
