//! Contract 2.5: which header field each kind of backup writes, that fields only move forward,
//! and that the update is replayed from the log after a dirty restart.

mod support;

use ese::log::checkpoint;
use ese_actors::{BackupBegin, BackupEnd, Engine, Term};
use support::*;

#[tokio::test]
async fn each_kind_writes_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, db, path) = instance_with_data(&engine, "i", dir.path(), 100).await;

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
    put_rows(&inst, db, 100..200).await;
    run_backup(&inst, false, true).await;
    let i = inst.database_info(&path).await.unwrap();
    let full = i.last_full.expect("last_full");
    assert!(full.gen_high > copy.gen_high && full.mark > copy.mark);
    assert_eq!(i.last_copy, Some(copy), "other fields stay");

    // Incremental without truncation: differential.
    put_rows(&inst, db, 200..300).await;
    run_backup(&inst, true, false).await;
    let diff = inst
        .database_info(&path)
        .await
        .unwrap()
        .last_differential
        .expect("last_differential");
    assert!(diff.gen_high > full.gen_high);

    // Incremental with truncation (TRUNCATE_DONE counts as truncated).
    put_rows(&inst, db, 300..400).await;
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
    chk.lsn = ese::lsn::Lsn::new(1, 4096);
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
