//! Set-up shared by the core's unit tests: a core on the in-memory storage.

use std::path::Path;
use std::sync::Arc;

use super::{Core, SessionId, TableId};
use crate::io::FaultStorage;
use crate::params::{Commit, InstanceParams};

/// A core on a fresh `FaultStorage` with 4 KiB pages, `cache_pages` pages of cache, and
/// `/i/db.edb` holding an empty table "t"; its session.
pub(crate) fn core_with_table(cache_pages: usize) -> (Core, SessionId, TableId) {
    let params = InstanceParams::new("/i")
        .page_size(4096)
        .log_file_size(128 * 1024)
        .cache_pages(cache_pages);
    let mut core = Core::open(Arc::new(FaultStorage::new()), params).unwrap();
    let (db, t) = core.create_database(Path::new("/i/db.edb")).unwrap();
    core.wait(t).unwrap();
    let s = core.begin_session().unwrap();
    let (tbl, t) = core.create_table(db, "t").unwrap();
    core.wait(t).unwrap();
    (core, s, tbl)
}

/// Rows `k00000`.. of 200 bytes of `fill` in one durable transaction, waited for.
pub(crate) fn put_rows(core: &mut Core, s: SessionId, tbl: TableId, rows: u32, fill: u8) {
    core.begin_transaction(s).unwrap();
    for i in 0..rows {
        core.put(s, tbl, format!("k{i:05}").as_bytes(), &[fill; 200])
            .unwrap();
    }
    let t = core.commit(s, Commit::Durable).unwrap();
    core.wait(t).unwrap();
}
