//! Helpers for tests that drive `ese::Core` directly.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ese::io::{FaultStorage, StorageRef};
use ese::{Core, DbId, InstanceParams, TableId};

/// Small parameters so tests roll logs and flush pages often.
pub fn small_params(dir: &Path) -> InstanceParams {
    InstanceParams::new(dir)
        .log_file_size(128 * 1024)
        .page_size(4096)
        .cache_pages(256)
}

pub fn fault_fs() -> (FaultStorage, StorageRef) {
    let fs = FaultStorage::new();
    let s: StorageRef = Arc::new(fs.clone());
    (fs, s)
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("test.edb")
}

/// Opens (recovering) and attaches or creates the test database with table "t"; the table's
/// handle (its database is `tbl.db()`).
pub fn open_db(storage: &StorageRef, params: &InstanceParams) -> (Core, TableId) {
    let mut core = Core::open(storage.clone(), params.clone()).expect("open");
    let path = db_path(params.system_dir());
    let tbl = if storage.exists(&path) {
        let db = core.attach_database(&path).expect("attach");
        core.open_table(db, "t").expect("open table")
    } else {
        let (db, t) = core.create_database(&path).expect("create");
        core.wait(t).unwrap();
        let (tbl, t) = core.create_table(db, "t").unwrap();
        core.wait(t).unwrap();
        tbl
    };
    (core, tbl)
}

/// Ends `core` as a crash does (no clean term, unsynced writes lost), lifts every armed fault,
/// and opens the instance again, which runs soft recovery.
pub fn crash_and_reopen(
    core: Core,
    fs: &FaultStorage,
    storage: &StorageRef,
    params: &InstanceParams,
) -> (Core, TableId) {
    core.term_dirty();
    fs.crash();
    fs.restart();
    fs.disarm_all();
    open_db(storage, params)
}

/// Verifies the checksum of every page of a database file up to its last page.
pub fn verify_all_pages(core: &mut Core, db: DbId) {
    let last = core.last_page(db).unwrap();
    let file = core.db_file(db).unwrap().clone();
    for p in 1..=last {
        file.read_page(p)
            .unwrap_or_else(|e| panic!("page {p} fails verification: {e}"));
    }
}
