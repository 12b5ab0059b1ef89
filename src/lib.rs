//! `ese`: the storage core of an embedded transactional engine modelled on Microsoft ESE
//! (esent.dll, "JET Blue"). Synchronous and deterministic: no async runtime lives here.
//! The actor runtime (`ese-actors`) drives it by messages.
//!
//! What a host or a tool uses: [`Core`] (an instance's engine state, operated through
//! `&mut self`), [`Error`] and its [`Category`], the grbits, [`InstanceParams`], [`io`] (the
//! [`Storage`](io::Storage) trait with its real and fault-injecting implementations),
//! [`backup::set`] (the backup-set format and where sets are kept) and [`restore`] (hard
//! recovery, from a spec or from a chain of sets).
//!
//! Layers under `Core`, bottom up: `io`, `page` and `db` (database files), `btree` (tables),
//! `log` (write-ahead log, checkpoint), `recovery` (redo), `backup` (the external backup's
//! state machine). They are private; [`internals`] shows them to the actor runtime, the CLI,
//! fuzz targets and tests, and is not an API for hosts.

pub mod backup;
mod btree;
mod cache;
mod core;
pub mod crc;
mod db;
mod error;
mod flusher;
mod grbit;
#[doc(hidden)]
pub mod internals;
pub mod io;
mod log;
mod lsn;
mod page;
mod params;
mod recovery;
pub mod restore;
mod txn;

pub use crate::core::{
    prefix_end, CommitTicket, Core, CoreStats, DbId, Direction, Fetch, FetchDone, Fetched, Read,
    SessionId, Slice, TableId, SLICE_BYTES, SLICE_ROWS,
};
pub use backup::pace::{BackupPace, DEFAULT_FLOOR_BYTES_PER_SEC, DEFAULT_P99_PERCENT};
pub use db::{BackupInfo, Signature};
pub use error::*;
pub use grbit::*;
pub use lsn::Lsn;
pub use params::{Commit, InstanceParams, DEFAULT_MAX_SESSIONS};
