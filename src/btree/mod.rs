//! Layer 3: B+trees of ordered byte keys and byte values, one per table, plus the catalog
//! (a B+tree of table name -> root page) of each database.
//!
//! Trees work on a [`PageIo`]: whoever drives them decides where pages come from (the buffer
//! cache inside a commit, or the file during recovery checks) and which changed pages are
//! logged. A root never moves, so the catalog entry of a table is written once.

mod edit;
mod node;
mod search;
mod space;
mod tree;

pub use node::{Node, Stored};
pub use search::{search, Found};
pub use space::{alloc, decode_meta, format, free, read_meta, Meta, CATALOG_ROOT, META_PGNO};
pub use tree::{
    check_key as check_key_len, create_tree, delete, get, put, scan, scan_part, scan_part_rev,
    Budget, ScanPart, MAX_KEY, MAX_VALUE,
};

use crate::Result;

/// Page access for tree operations.
pub trait PageIo {
    /// The database's page size.
    fn page_size(&self) -> u32;
    /// A copy of page `pgno`, as the latest change left it.
    fn read(&mut self, pgno: u32) -> Result<Vec<u8>>;
    /// Replaces page `pgno`.
    fn write(&mut self, pgno: u32, page: Vec<u8>);
}
