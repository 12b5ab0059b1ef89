//! `ese-actors`: the async runtime hosts embed. Every instance is one tokio task with a
//! bounded mailbox of typed messages; shutdown, termination and backup-abort races are
//! ordered by the mailbox, not by locks. Re-exports the storage core's public types, so a
//! host needs only `ese_actors`.
//!
//! ```no_run
//! use ese_actors::{Commit, Engine, InstanceParams, KeyRange, OpenOptions, Term};
//!
//! # async fn f() -> ese_actors::Result<()> {
//! let engine = Engine::new();
//! let inst = engine.create_instance("orders", InstanceParams::new("/tmp/orders")).await?;
//! inst.init().await?;
//! let db = inst.open_database("/tmp/orders/orders.edb", OpenOptions { create: true }).await?;
//! let orders = inst.ensure_table(db, "orders").await?;
//! let mut tx = inst.transaction().await?;
//! tx.put(orders, b"o-1", b"2 widgets").await?;
//! tx.commit(Commit::Durable).await?;
//! let first = inst.scan(orders, KeyRange::prefix(b"o-").limit(10)).await?;
//! # let _ = first;
//! inst.term(Term::empty()).await?;
//! # Ok(()) }
//! ```

mod actor;
mod backup_set;
mod batch;
mod claims;
mod engine;
mod gate;
mod instance;
mod legacy;
pub mod messages;
mod restore;
mod rows;
mod scan;
mod session;
pub mod target;
mod transaction;
mod types;

pub use backup_set::{
    verify_backup_set, verify_backup_set_on, BackupHandle, BackupKind, BackupManifest,
    BackupOptions, BackupPhase, BackupProgress, ManifestDatabase, ManifestLog, Pacer, VerifyReport,
};
pub use batch::WriteBatch;
pub use engine::{Engine, Mode};
pub use ese::backup::FileChunk;
pub use ese::restore::{RestoreReport, RestoreSpec, StopAt};
pub use ese::{
    BackupBegin, BackupEnd, Category, Commit, CoreStats, DbId, Detail, Error, InstanceParams,
    IoError, Result, TableId, Term, DEFAULT_MAX_SESSIONS,
};
pub use ese::{SLICE_BYTES, SLICE_ROWS};
pub use gate::gate_answer_may_pass;
pub use instance::Instance;
pub use legacy::Legacy;
pub use messages::Message;
pub use restore::{
    restore_backup_chain, restore_backup_chain_on, restore_backup_chain_to, ChainReport,
};
pub use rows::OpenOptions;
pub use scan::{KeyRange, Row, RowStream};
pub use session::Session;
pub use target::{
    list_sets, prune_sets, restore_from, restore_sets, verify_at, BackupTarget, Listed,
    ObjectOptions, PrunePlan, ReadProgress, Retention, SetChoice, SetState, VerifyDepth,
};
pub use transaction::Transaction;
pub use types::{
    BackupFile, BackupId, BackupInfo, DatabaseInfo, InstanceInfo, LogInfo, ScanCursor, ScanSlice,
    SessionKey,
};

/// The storage core, for hosts that need its lower layers (fault injection, formats).
pub use ese;
