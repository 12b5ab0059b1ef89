//! `ese`: the storage core of an embedded transactional engine modelled on Microsoft ESE
//! (esent.dll, "JET Blue"). Synchronous and deterministic: no async runtime lives here.
//! The actor runtime (`ese-actors`) drives it by messages.
//!
//! Layers, bottom up: [`io`] (files, real and fault-injecting), [`page`] and [`db`]
//! (database files), [`btree`] (tables), [`log`] (write-ahead log, checkpoint), [`recovery`]
//! (redo), and [`Core`] (an instance's engine state, operated through `&mut self`).

pub mod backup;
pub mod btree;
mod cache;
mod core;
pub mod db;
mod error;
mod flusher;
mod grbit;
pub mod io;
pub mod log;
pub mod lsn;
pub mod page;
mod params;
pub mod recovery;
pub mod restore;
mod txn;

pub use crate::core::{
    CommitTicket, Core, CoreStats, DbId, Fetch, FetchDone, Fetched, Read, SessionId, Slice,
    SLICE_BYTES, SLICE_ROWS,
};
pub use error::*;
pub use grbit::*;
pub use params::{Commit, InstanceParams};
