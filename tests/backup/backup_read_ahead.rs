//! The read-ahead of a database copy (`actors/src/actor/prefetch.rs`): after a chunk is
//! handed out, the next chunk of the same size is read and verified while the client takes
//! the current one. It is a guess that changes nothing until the next `read_file` asks for
//! exactly that chunk: the bytes are those an ordinary read gives, and `stop_backup`, a close
//! or an end decide exactly as they would without it. Every test holds the read-ahead on disk
//! at a latch, so "still reading ahead" is a matter of order, not of time.

use crate::support;

use std::path::{Path, PathBuf};

use ese_actors::{BackupBegin, BackupEnd, BackupFile, Engine, Instance, TableId, Term};
use support::actor::*;

const ROWS: u32 = 300;
/// The chunk the tests read: four pages.
const CHUNK: usize = 4 * PAGE;

/// An instance on gated storage whose database holds `ROWS` rows, every page of it on disk
/// (written, then termed cleanly and attached again), so that two backups read the same pages.
async fn gated_instance(engine: &Engine, dir: &Path) -> (Instance, PathBuf, GatedStorage, TableId) {
    let gated = GatedStorage::new(ese::io::os());
    let (inst, _t, path) =
        support::actor::instance_on(engine, gated.storage(), "ahead", dir, ROWS).await;
    inst.term(Term::empty()).await.unwrap();
    let inst = engine
        .create_instance_on("ahead-again", params(dir), gated.storage())
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst.attach_database(&path).await.unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    (inst, path, gated, t)
}

/// A whole database image streamed in one full backup (ended with ABORT), chunk `i` being
/// `size(i)` bytes.
async fn image(inst: &Instance, path: &Path, size: impl Fn(usize) -> usize) -> Vec<u8> {
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (h, _) = inst.open_file(path).await.unwrap();
    let mut out = Vec::new();
    for i in 0.. {
        let c = inst.read_file(h, size(i)).await.unwrap();
        if c.is_empty() {
            break;
        }
        out.extend_from_slice(&c);
    }
    inst.close_file(h).await.unwrap();
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    out
}

/// The image's data pages: not the header copy in front nor the trailer page at the end,
/// which record the backup itself and so differ between two backups of the same pages.
fn pages(image: &[u8]) -> &[u8] {
    &image[2 * PAGE..image.len() - PAGE]
}

/// Begins a backup, reads the first chunk, and holds the read-ahead of the second one on
/// disk: returns the handle, the first chunk and the latch holding the read-ahead.
async fn read_ahead_held(
    inst: &Instance,
    gated: &GatedStorage,
    path: &Path,
) -> (BackupFile, bytes::Bytes, Latch) {
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (h, _) = inst.open_file(path).await.unwrap();
    let first = gated.latch_reads("db.edb");
    let reader = {
        let inst = inst.clone();
        tokio::spawn(async move { inst.read_file(h, CHUNK).await })
    };
    first.arrived_at_least(1).await;
    // The first read is past the rules; the next read of the file, the read-ahead, meets this.
    gated.clear();
    let ahead = gated.latch_reads("db.edb");
    first.release();
    let chunk = reader.await.unwrap().unwrap();
    ahead.arrived_at_least(1).await;
    gated.clear();
    (h, chunk, ahead)
}

#[tokio::test]
async fn a_steady_stream_gives_the_bytes_of_reads_that_never_match_a_read_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, path, _gated, _t) = gated_instance(&engine, dir.path()).await;
    let before = inst.stats().await.unwrap().backup_pages_verified;
    // Every chunk the size of the last: each is served from a read-ahead.
    let steady = image(&inst, &path, |_| CHUNK).await;
    let verified = inst.stats().await.unwrap().backup_pages_verified - before;
    // Sizes that change every time: no read-ahead is ever the chunk asked for.
    let changing = image(&inst, &path, |i| (3 + i % 3) * PAGE).await;
    assert_eq!(steady.len(), changing.len());
    assert!(pages(&steady) == pages(&changing), "the images differ");
    // Header copy (2 slots) and trailer are not data pages; a read-ahead never handed out
    // (the one past the last chunk asked for) is not counted.
    assert_eq!(verified, (steady.len() / PAGE - 3) as u64);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn no_read_ahead_beside_a_transaction() {
    no_read_ahead_beside(false).await;
}

#[tokio::test]
async fn no_read_ahead_beside_a_single_put() {
    no_read_ahead_beside(true).await;
}

/// A write logged while a chunk is on disk (a transaction's commit, or a `Session::put` that
/// is its own transaction) means no read-ahead of the next chunk.
async fn no_read_ahead_beside(single_put: bool) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, path, gated, t) = gated_instance(&engine, dir.path()).await;
    // The commit below must not read the file (its reads are held): its pages are cached now.
    put_rows(&inst, t, ROWS..ROWS + 1).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (h, _) = inst.open_file(&path).await.unwrap();
    let first = gated.latch_reads("db.edb");
    let reader = {
        let inst = inst.clone();
        tokio::spawn(async move { inst.read_file(h, CHUNK).await })
    };
    first.arrived_at_least(1).await;
    // A write while the chunk is on disk: the backup is not alone.
    if single_put {
        let s = inst.begin_session().await.unwrap();
        s.put(t, format!("k{:06}", ROWS + 1).as_bytes(), &[1; 200])
            .await
            .unwrap();
    } else {
        put_rows(&inst, t, ROWS + 1..ROWS + 2).await;
    }
    gated.clear();
    let after = gated.latch_reads("db.edb");
    first.release();
    reader.await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(after.arrived(), 0, "a chunk was read ahead beside a commit");
    // The next chunk is read when asked for.
    let next = {
        let inst = inst.clone();
        tokio::spawn(async move { inst.read_file(h, CHUNK).await })
    };
    after.arrived_at_least(1).await;
    after.release();
    assert_eq!(next.await.unwrap().unwrap().len(), CHUNK);
    inst.close_file(h).await.unwrap();
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_read_asked_for_while_its_read_ahead_is_on_disk_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, path, gated, _t) = gated_instance(&engine, dir.path()).await;
    let (h, first, ahead) = read_ahead_held(&inst, &gated, &path).await;
    let second = {
        let inst = inst.clone();
        tokio::spawn(async move { inst.read_file(h, CHUNK).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!second.is_finished(), "answered before its bytes were read");
    // A second read of the same handle while one is in flight is refused as ever.
    assert_eq!(
        inst.read_file(h, CHUNK).await.unwrap_err().code(),
        -1003,
        "InvalidParameter"
    );
    ahead.release();
    let second = second.await.unwrap().unwrap();
    let mut streamed = first.to_vec();
    streamed.extend_from_slice(&second);
    finish_and_compare(&inst, &path, h, streamed).await;
}

#[tokio::test]
async fn stop_backup_with_a_read_ahead_on_disk_refuses_the_next_read_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, path, gated, _t) = gated_instance(&engine, dir.path()).await;
    let (h, _first, ahead) = read_ahead_held(&inst, &gated, &path).await;
    inst.stop_backup().await.unwrap();
    // BackupAbortByServer (-801), without waiting for the read-ahead still on disk.
    assert_eq!(inst.read_file(h, CHUNK).await.unwrap_err().code(), -801);
    assert_eq!(
        inst.end_external_backup(BackupEnd::NORMAL)
            .await
            .unwrap_err()
            .code(),
        -801
    );
    ahead.release();
    // The late read-ahead belongs to the ended backup: the next one streams the same pages.
    let next = image(&inst, &path, |_| CHUNK).await;
    let plain = image(&inst, &path, |i| (3 + i % 2) * PAGE).await;
    assert!(pages(&next) == pages(&plain), "the images differ");
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_close_drops_the_read_ahead_and_the_file_reopens_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, path, gated, _t) = gated_instance(&engine, dir.path()).await;
    let (h, first, ahead) = read_ahead_held(&inst, &gated, &path).await;
    inst.close_file(h).await.unwrap();
    // A closed handle stays closed, read-ahead or not.
    assert_eq!(inst.read_file(h, CHUNK).await.unwrap_err().code(), -1003);
    let (h2, _) = inst.open_file(&path).await.unwrap();
    assert_ne!(h, h2);
    let again = inst.read_file(h2, CHUNK).await.unwrap();
    assert!(again == first, "the reopened file starts over");
    ahead.release();
    finish_and_compare(&inst, &path, h2, again.to_vec()).await;
}

/// Reads the rest of `h` after `streamed`, ends the backup, and checks the whole against the
/// pages a backup of chunks that never match a read-ahead gives; then terms the instance.
async fn finish_and_compare(inst: &Instance, path: &Path, h: BackupFile, mut streamed: Vec<u8>) {
    loop {
        let c = inst.read_file(h, CHUNK).await.unwrap();
        if c.is_empty() {
            break;
        }
        streamed.extend_from_slice(&c);
    }
    inst.close_file(h).await.unwrap();
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    let plain = image(inst, path, |i| (3 + i % 2) * PAGE).await;
    assert!(pages(&streamed) == pages(&plain), "the images differ");
    inst.term(Term::empty()).await.unwrap();
}
