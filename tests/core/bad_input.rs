//! Damaged files give ESE's errors, never a panic: truncated and bit-flipped logs, damaged
//! database headers, a checkpoint that points past the log, missing and foreign logs.

use crate::support;

use std::path::{Path, PathBuf};

use ese::internals::log::{checkpoint, names, reader, FRAME};
use ese::io::{os, StorageRef};
use ese::{Commit, Core, Error, InstanceParams};
use support::core::*;

fn params(dir: &Path) -> InstanceParams {
    small_params(dir).log_file_size(64 * 1024)
}

/// Builds an instance with several log generations and a few commits after the last
/// checkpoint, then stops dirty. Returns the storage and parameters.
fn build(dir: &Path) -> (StorageRef, InstanceParams) {
    let storage = os();
    let params = params(dir);
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    for i in 0..150u32 {
        core.begin_transaction(s).unwrap();
        core.put(s, tbl, format!("k{i}").as_bytes(), &[7u8; 500])
            .unwrap();
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
    }
    core.checkpoint_now().unwrap();
    for i in 0..3u32 {
        let t = core
            .put(s, tbl, format!("late{i}").as_bytes(), b"v")
            .unwrap()
            .unwrap();
        core.wait(t).unwrap();
    }
    core.term_dirty();
    (storage, params)
}

fn log_file(dir: &Path, gen: u32) -> PathBuf {
    let archived = names::archived(dir, "edb", gen);
    if archived.exists() {
        archived
    } else {
        names::current(dir, "edb")
    }
}

/// Path and byte offset of the first record at or after the checkpoint.
fn first_record_after_checkpoint(dir: &Path) -> (PathBuf, usize) {
    let chk = checkpoint::read(&*os(), &dir.join("edb.chk"))
        .unwrap()
        .unwrap();
    let mut gen = chk.lsn.gen();
    loop {
        let path = log_file(dir, gen);
        let f = reader::read_file(&*os(), &path).unwrap();
        if let Some(r) = f.records.iter().find(|r| {
            r.start >= chk.lsn && matches!(r.record, ese::internals::log::Record::Pages(_))
        }) {
            return (path, r.start.offset() as usize);
        }
        gen += 1;
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

fn open_err(storage: &StorageRef, params: &InstanceParams) -> Error {
    Core::open(storage.clone(), params.clone()).expect_err("open must fail")
}

#[test]
fn truncated_log_is_log_file_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = build(dir.path());
    let (path, at) = first_record_after_checkpoint(dir.path());
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(at as u64 + 100).unwrap();
    assert_eq!(open_err(&storage, &params).code(), -501);
}

#[test]
fn flipped_bit_in_a_log_record_is_log_file_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = build(dir.path());
    let (path, at) = first_record_after_checkpoint(dir.path());
    flip(&path, at + FRAME + 40);
    assert_eq!(open_err(&storage, &params).code(), -501);
}

#[test]
fn flipped_bit_in_a_log_header_is_log_file_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = build(dir.path());
    flip(&names::current(dir.path(), "edb"), 30);
    assert_eq!(open_err(&storage, &params).code(), -501);
}

#[test]
fn checkpoint_past_the_log_is_checkpoint_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = build(dir.path());
    let path = dir.path().join("edb.chk");
    let mut chk = checkpoint::read(&*storage, &path).unwrap().unwrap();
    chk.seq += 1;
    chk.lsn = ese::Lsn::new(chk.lsn.gen() + 50, 4096);
    checkpoint::write(&*storage, &path, &chk).unwrap();
    assert_eq!(open_err(&storage, &params).code(), -533);
    // Past the end of the current file's records, in the current generation: the file's
    // last 8 bytes, as where its records end varies with the flushes' timing.
    let cur = reader::read_file(&*storage, &names::current(dir.path(), "edb")).unwrap();
    chk.seq += 1;
    chk.lsn = ese::Lsn::new(cur.header.gen, (params.log_bytes() - 8) as u32);
    checkpoint::write(&*storage, &path, &chk).unwrap();
    assert_eq!(open_err(&storage, &params).code(), -533);
}

#[test]
fn both_checkpoint_slots_damaged_is_checkpoint_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = build(dir.path());
    let path = dir.path().join("edb.chk");
    flip(&path, 100);
    flip(&path, 32 * 1024 + 100);
    assert_eq!(open_err(&storage, &params).code(), -533);
}

/// Moves the checkpoint back to the start of generation 1: an older checkpoint is always
/// valid (redo is idempotent), and it makes every archived log needed.
fn rewind_checkpoint(storage: &StorageRef, dir: &Path) {
    let path = dir.join("edb.chk");
    let mut chk = checkpoint::read(&**storage, &path).unwrap().unwrap();
    chk.seq += 1;
    chk.lsn = ese::Lsn::new(1, 4096);
    checkpoint::write(&**storage, &path, &chk).unwrap();
}

#[test]
fn rewound_checkpoint_replays_everything_again() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = build(dir.path());
    assert!(
        names::archived(dir.path(), "edb", 3).exists(),
        "workload too small"
    );
    rewind_checkpoint(&storage, dir.path());
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    assert_eq!(core.get(s, tbl, b"k149").unwrap(), Some(vec![7u8; 500]));
    assert_eq!(core.get(s, tbl, b"late2").unwrap(), Some(b"v".to_vec()));
    core.term_clean().unwrap();
}

#[test]
fn missing_log_generation_is_missing_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = build(dir.path());
    rewind_checkpoint(&storage, dir.path());
    std::fs::remove_file(names::archived(dir.path(), "edb", 2)).unwrap();
    assert_eq!(open_err(&storage, &params).code(), -528);
}

#[test]
fn log_of_another_instance_is_bad_log_signature() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let (storage, params) = build(dir.path());
    let _ = build(other.path());
    rewind_checkpoint(&storage, dir.path());
    let gen2 = |d: &Path| names::archived(d, "edb", 2);
    std::fs::copy(gen2(other.path()), gen2(dir.path())).unwrap();
    assert_eq!(open_err(&storage, &params).code(), -530);
}

#[test]
fn database_header_damage() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let params = params(dir.path());
    let (core, _) = open_db(&storage, &params);
    core.term_clean().unwrap();
    let db = db_path(dir.path());
    // One copy damaged: the shadow header serves.
    flip(&db, 40);
    let (core, _) = open_db(&storage, &params);
    core.term_clean().unwrap();
    // Both copies damaged: DatabaseCorrupted.
    flip(&db, 40);
    flip(&db, 4096 + 40);
    let mut core = Core::open(storage.clone(), params.clone()).unwrap();
    assert_eq!(core.attach_database(&db).unwrap_err().code(), -1206);
    // Not a database at all.
    let junk = dir.path().join("junk.edb");
    std::fs::write(&junk, vec![0x5Au8; 20000]).unwrap();
    assert_eq!(core.attach_database(&junk).unwrap_err().code(), -1206);
    let empty = dir.path().join("empty.edb");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(core.attach_database(&empty).unwrap_err().code(), -1206);
    assert_eq!(
        core.attach_database(&dir.path().join("none.edb"))
            .unwrap_err()
            .code(),
        -1811
    );
    core.term_clean().unwrap();
}

#[test]
fn damaged_data_page_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let params = params(dir.path());
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    for i in 0..200u32 {
        core.put(s, tbl, format!("k{i:03}").as_bytes(), &[1u8; 100])
            .unwrap();
    }
    core.term_clean().unwrap();
    let path = db_path(dir.path());
    // Page 2 (the catalog root) and page 3 (the table root): flip a byte in each body.
    flip(&path, 3 * 4096 + 100);
    let mut core = Core::open(storage.clone(), params.clone()).unwrap();
    let err = core.attach_database(&path).unwrap_err();
    assert_eq!(err.code(), -1018);
    core.term_clean().unwrap();
}

#[test]
fn a_log_full_of_record_magics_is_refused_not_scanned_forever() {
    // No valid record, then a record magic at every 8-byte offset, each claiming a 1 MiB body:
    // telling corruption from a torn tail would checksum ~2.5 TB without the scan's budget.
    let size = 4u64 << 20;
    let header = ese::internals::log::LogHeader {
        gen: 1,
        signature: ese::internals::db::Signature::generate(),
        created_ms: 1,
        prev_created_ms: 0,
        file_size: size,
        base_name: "edb".into(),
    };
    let mut b = header.encode();
    b.resize(size as usize, 0);
    let mut at = 4096;
    while at + 24 <= b.len() {
        b[at..at + 4].copy_from_slice(&0x4C52_5345u32.to_le_bytes());
        b[at + 12..at + 16].copy_from_slice(&(1u32 << 20).to_le_bytes());
        at += 8;
    }
    assert_eq!(reader::parse(&b).unwrap_err().code(), -501);
}
