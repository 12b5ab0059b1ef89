//! What soft recovery does with odd or damaged log folders: which files it trusts, what it
//! replays, which error it answers, and that a refusal leaves every file as it was, so a retry
//! after the operator's fix loses nothing.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ese::io::{os, StorageRef};
use ese::{Commit, Core, InstanceParams, TableId};
use support::core::*;

fn params(dir: &Path) -> InstanceParams {
    small_params(dir).log_file_size(64 * 1024)
}

/// Durable rows `from..to` (key `k{i}`, value of 300 bytes of `i as u8`).
fn put_rows(core: &mut Core, tbl: TableId, from: u32, to: u32) {
    let s = core.begin_session().unwrap();
    for i in from..to {
        core.begin_transaction(s).unwrap();
        core.put(s, tbl, format!("k{i:04}").as_bytes(), &[i as u8; 300])
            .unwrap();
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
    }
    core.end_session(s);
}

fn assert_rows(core: &mut Core, tbl: TableId, from: u32, to: u32) {
    let s = core.begin_session().unwrap();
    for i in from..to {
        assert_eq!(
            core.get(s, tbl, format!("k{i:04}").as_bytes()).unwrap(),
            Some(vec![i as u8; 300]),
            "row {i} lost"
        );
    }
    core.end_session(s);
}

/// Every file of the folder, by name, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn open_err(storage: &StorageRef, params: &InstanceParams) -> ese::Error {
    Core::open(storage.clone(), params.clone()).expect_err("open must fail")
}

/// The log file size parameter changed between two runs. Every file of a stream keeps the size
/// its header names (a reader refuses any other length), so appending to `<base>.log` as if it
/// had the new size (or zeroing its tail up to it) makes the file unreadable: the next init
/// failed with `LogFileCorrupt` and every commit in that file was lost. As ESE, init refuses
/// with `LogFileSizeMismatch` (-541) and touches nothing; the old size still opens.
#[test]
fn a_changed_log_file_size_is_log_file_size_mismatch_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let params = params(dir.path());
    let (mut core, tbl) = open_db(&storage, &params);
    put_rows(&mut core, tbl, 0, 20);
    core.term_clean().unwrap();
    for other in [256 * 1024, 128 * 1024] {
        let changed = params.clone().log_file_size(other);
        let before = snapshot(dir.path());
        assert_eq!(open_err(&storage, &changed).code(), -541);
        assert_eq!(snapshot(dir.path()), before, "a refused init changed files");
    }
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 20);
    put_rows(&mut core, tbl, 20, 40);
    core.term_dirty();
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 40);
    core.term_clean().unwrap();
}
