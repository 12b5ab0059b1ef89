//! behaviour.md §2.2 (issue 11.1): a read still on disk when its backup ends belongs to that backup
//! only. Its completion never touches a later backup's files or positions, its caller (if
//! still waiting) gets `NoBackup`, and handles are never reused within an instance's life.
//!
//! Every test holds the first read of the database at a latch, so "still on disk" is a matter
//! of order, not of time.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ese::internals::db::{DbHeader, Trailer};
use ese_actors::{
    BackupBegin, BackupEnd, BackupFile, Engine, Instance, LogInfo, RestoreSpec, TableId, Term,
};
use support::actor::*;

/// More than any image here: one read asks for the whole file.
const WHOLE: usize = 1 << 20;
/// The smallest first read of a database (three pages).
const FIRST: usize = 3 * PAGE;
const ROWS: u32 = 100;

/// An initialised instance on gated storage with `db.edb` holding `ROWS` rows.
async fn gated_instance(engine: &Engine, dir: &Path) -> (Instance, TableId, PathBuf, GatedStorage) {
    let gated = GatedStorage::new(ese::io::os());
    let (inst, t, path) =
        support::actor::instance_on(engine, gated.storage(), "stale", dir, ROWS).await;
    (inst, t, path, gated)
}

/// The error code of a read's answer, `None` for a chunk (not printed: it is a whole image).
fn read_code(r: ese::Result<bytes::Bytes>) -> Option<i32> {
    r.err().map(|e| e.code())
}

/// A latch that is released when dropped: a test that fails while a read is held must not
/// leave it held, or the runtime would wait for that read forever instead of reporting.
struct Held(Latch);

impl Held {
    fn release(&self) {
        self.0.release();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Begins a full backup, opens the database and starts a read of it that waits at a latch:
/// returns the handle, the read's future and the latch (already cleared, so later reads of
/// the database pass; only this one is held).
async fn read_held_on_disk(
    inst: &Instance,
    gated: &GatedStorage,
    path: &Path,
    max_len: usize,
) -> (
    BackupFile,
    tokio::task::JoinHandle<ese::Result<bytes::Bytes>>,
    Held,
) {
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (h, _) = inst.open_file(path).await.unwrap();
    let latch = gated.latch_reads("db.edb");
    let reader = {
        let inst = inst.clone();
        tokio::spawn(async move { inst.read_file(h, max_len).await })
    };
    latch.arrived_at_least(1).await;
    gated.clear();
    (h, reader, Held(latch))
}

/// The log phase of a full backup after its database was handled: every listed log read and
/// closed, then truncation.
async fn finish_log_phase(inst: &Instance) -> (LogInfo, Vec<(PathBuf, Vec<u8>)>) {
    let info = inst.get_log_info().await.unwrap();
    let mut logs = Vec::new();
    for p in &info.files {
        let (f, _) = inst.open_file(p).await.unwrap();
        logs.push((p.clone(), read_all(inst, f, 256 * 1024).await));
        inst.close_file(f).await.unwrap();
    }
    inst.truncate_log().await.unwrap();
    (info, logs)
}

/// An image is whole: its length is what `open_file` said, it starts with the header copy
/// carrying the backup mark and ends with a trailer that matches it.
fn assert_whole_image(image: &[u8], size: u64) {
    assert_eq!(
        image.len() as u64,
        size,
        "the image has every byte open_file announced"
    );
    let header = DbHeader::decode(&image[..PAGE]).expect("header copy decodes");
    let mark = header
        .backup_mark
        .expect("the header copy carries the backup mark");
    assert_eq!(
        &image[PAGE..2 * PAGE],
        &image[..PAGE],
        "the header is there twice"
    );
    let trailer = Trailer::decode(&image[image.len() - PAGE..]).expect("trailer at the end");
    assert_eq!(trailer.backup.mark, mark.mark);
    assert_eq!(trailer.db_signature, header.db_signature);
}

/// Restores `image` with `logs` in a fresh directory and checks the rows are there.
async fn assert_restores(
    engine: &Engine,
    original: &Path,
    image: &[u8],
    logs: &[(PathBuf, Vec<u8>)],
    info: &LogInfo,
) {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("logs");
    std::fs::create_dir_all(&log_dir).unwrap();
    for (p, bytes) in logs {
        std::fs::write(log_dir.join(p.file_name().unwrap()), bytes).unwrap();
    }
    let target = dir.path().join("restored.edb");
    std::fs::write(&target, image).unwrap();
    let spec = RestoreSpec {
        checkpoint_dir: dir.path().into(),
        log_dir: log_dir.clone(),
        backup_log_dir: log_dir,
        gen_low: info.gen_low,
        gen_high: info.gen_high,
        base_name: info.base_name.clone(),
        restore_map: vec![(original.to_path_buf(), target.clone())],
        stop_at: None,
    };
    engine.external_restore(spec).await.unwrap();
    let r = engine
        .create_instance("restored", params(&dir.path().join("r")))
        .await
        .unwrap();
    r.init().await.unwrap();
    let db = r.attach_database(&target).await.unwrap();
    let t = r.open_table(db, "t").await.unwrap();
    let s = r.begin_session().await.unwrap();
    for i in [0, ROWS / 2, ROWS - 1] {
        let key = format!("k{i:06}");
        assert!(s.get(t, key.as_bytes()).await.unwrap().is_some(), "{key}");
    }
    drop(s);
    r.term(Term::empty()).await.unwrap();
}

/// The issue's sequence: begin, open (h1), read on disk, end(ABORT), begin, open (h2), the
/// stale read completes. Its caller gets -520 and the new backup streams its whole image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_read_gets_no_backup_and_the_next_image_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, path, gated) = gated_instance(&engine, dir.path()).await;

    let (h1, stale, latch) = read_held_on_disk(&inst, &gated, &path, WHOLE).await;
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (h2, size) = inst.open_file(&path).await.unwrap();
    assert_ne!(h1, h2, "handles are never reused within an instance's life");

    latch.release();
    assert_eq!(
        read_code(stale.await.unwrap()),
        Some(-520),
        "the stale read's caller: NoBackup"
    );

    let image = read_all(&inst, h2, FIRST).await;
    assert_whole_image(&image, size);
    inst.close_file(h2).await.unwrap();
    let (info, logs) = finish_log_phase(&inst).await;
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    let full = inst.database_info(&path).await.unwrap().last_full;
    let full = full.expect("the whole image is recorded");
    assert_eq!((full.gen_low, full.gen_high), (info.gen_low, info.gen_high));
    assert_restores(&engine, &path, &image, &logs, &info).await;
    inst.term(Term::empty()).await.unwrap();
}

/// The stale completion must not make the next backup's file look read: closed at once, it
/// is a database closed before its end, and the normal end records no full backup for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_read_does_not_count_as_the_next_backups_copy() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, path, gated) = gated_instance(&engine, dir.path()).await;

    let (_, stale, latch) = read_held_on_disk(&inst, &gated, &path, WHOLE).await;
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (h2, _) = inst.open_file(&path).await.unwrap();
    latch.release();
    assert_eq!(read_code(stale.await.unwrap()), Some(-520));

    inst.close_file(h2).await.unwrap();
    finish_log_phase(&inst).await;
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    assert_eq!(
        inst.database_info(&path).await.unwrap().last_full,
        None,
        "nothing of the database was streamed in this backup"
    );
    inst.term(Term::empty()).await.unwrap();
}

/// A client that wraps `read_file` in a timeout: the read is still on disk when it gives up
/// (its future is dropped), retries the read (refused: that handle's read is still on disk),
/// then aborts and starts over. The retried backup streams a whole image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_gave_up_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, path, gated) = gated_instance(&engine, dir.path()).await;

    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (h1, _) = inst.open_file(&path).await.unwrap();
    let latch = Held(gated.latch_reads("db.edb"));
    let gave_up = {
        let inst = inst.clone();
        // The read waits at the latch until it is released below, so this always times out.
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(100), inst.read_file(h1, WHOLE)).await
        })
    };
    latch.0.arrived_at_least(1).await;
    gated.clear();
    assert!(gave_up.await.unwrap().is_err(), "the caller gave up");
    assert_eq!(
        read_code(inst.read_file(h1, WHOLE).await),
        Some(-1003),
        "a second read of a handle whose read is on disk"
    );

    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (h2, size) = inst.open_file(&path).await.unwrap();
    assert_ne!(h1, h2);
    latch.release();
    // Nobody waits for the stale read now, so nothing says when its completion lands: give it
    // time to land before the retry's reads, which is where it used to do harm. With the fix
    // the outcome does not depend on this pause.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let image = read_all(&inst, h2, FIRST).await;
    assert_whole_image(&image, size);
    inst.close_file(h2).await.unwrap();
    finish_log_phase(&inst).await;
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    assert!(inst.database_info(&path).await.unwrap().last_full.is_some());
    inst.term(Term::empty()).await.unwrap();
}

/// `end_external_backup` while a read is on disk ends the backup at once; the later
/// completion answers its caller `NoBackup` and leaves nothing behind: the next end is
/// `NoBackup` too, a new backup runs whole, and term does not wait for a read forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_while_a_read_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, path, gated) = gated_instance(&engine, dir.path()).await;

    let (_, stale, latch) = read_held_on_disk(&inst, &gated, &path, FIRST).await;
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    latch.release();
    assert_eq!(read_code(stale.await.unwrap()), Some(-520));
    assert_eq!(
        code(inst.end_external_backup(BackupEnd::NORMAL).await),
        -520
    );

    let (images, _) = run_backup(&inst, false, true).await;
    assert_eq!(images.len(), 1);
    assert!(inst.database_info(&path).await.unwrap().last_full.is_some());
    inst.term(Term::empty()).await.unwrap();
}

/// `close_file` while a read of that handle is on disk: the close succeeds, the file is not
/// copied, and the read's completion answers as a read of a closed handle does
/// (`InvalidParameter`) instead of handing out bytes of a file that is no longer open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_while_a_read_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, path, gated) = gated_instance(&engine, dir.path()).await;

    let (h1, pending, latch) = read_held_on_disk(&inst, &gated, &path, WHOLE).await;
    inst.close_file(h1).await.unwrap();
    latch.release();
    assert_eq!(read_code(pending.await.unwrap()), Some(-1003));
    assert_eq!(
        read_code(inst.read_file(h1, WHOLE).await),
        Some(-1003),
        "still closed"
    );

    // Opened again, it streams whole; handles are not reused.
    let (h2, size) = inst.open_file(&path).await.unwrap();
    assert_ne!(h1, h2);
    let image = read_all(&inst, h2, FIRST).await;
    assert_whole_image(&image, size);
    inst.close_file(h2).await.unwrap();
    finish_log_phase(&inst).await;
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    assert!(inst.database_info(&path).await.unwrap().last_full.is_some());
    inst.term(Term::empty()).await.unwrap();
}

/// A page the flusher writes while the image's last read waits on disk can carry a change
/// logged after the read was planned: the trailer names that later log as the last one the
/// image needs, so no restore stops before the change (a point-in-time stop there would
/// leave that page newer than the database around it).
#[tokio::test]
async fn the_trailer_covers_pages_written_while_its_read_was_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, path, gated) = gated_instance(&engine, dir.path()).await;
    let (h, reader, held) = read_held_on_disk(&inst, &gated, &path, WHOLE).await;
    let planned = inst.instance_info().await.unwrap().current_gen;
    // Two logs on, then two more flushes: the second began with the tip past the planned
    // log and wrote every page changed by then.
    let mut next = roll_logs(&inst, t, 2, ROWS).await;
    let flushes = inst.stats().await.unwrap().flushes;
    while inst.stats().await.unwrap().flushes < flushes + 2 {
        put_rows(&inst, t, next..next + 20).await;
        next += 20;
    }
    held.release();
    let image = reader.await.unwrap().unwrap();
    let trailer = Trailer::decode(&image[image.len() - PAGE..]).unwrap();
    let newest = image[2 * PAGE..image.len() - PAGE]
        .chunks(PAGE)
        .map(|p| ese::Lsn(ese::internals::page::lsn(p)).gen())
        .max()
        .unwrap();
    assert!(
        newest > planned,
        "no page of the image was written while its read was held (newest log {newest})"
    );
    assert!(
        trailer.backup.gen_high >= newest,
        "the trailer needs logs up to {}, a page of the image carries a change of log {newest}",
        trailer.backup.gen_high
    );
    inst.close_file(h).await.unwrap();
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}
