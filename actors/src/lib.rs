//! `ese-actors`: the async runtime hosts embed. Every instance is one tokio task with a
//! bounded mailbox of typed messages; shutdown, termination and backup-abort races are
//! ordered by the mailbox, not by locks. Re-exports the storage core's public types, so a
//! host needs only `ese_actors`.
//!
//! ```no_run
//! use ese_actors::{Commit, Engine, InstanceParams, Term};
//!
//! # async fn f() -> ese_actors::Result<()> {
//! let engine = Engine::new();
//! let inst = engine.create_instance("orders", InstanceParams::new("/tmp/orders")).await?;
//! inst.init().await?;
//! let db = inst.create_database("/tmp/orders/orders.edb").await?;
//! let s = inst.begin_session().await?;
//! s.create_table(db, "orders").await?;
//! s.begin_transaction().await?;
//! s.put(db, "orders", b"o-1", b"2 widgets").await?;
//! s.commit(Commit::Durable).await?;
//! inst.term(Term::empty()).await?;
//! # Ok(()) }
//! ```

mod actor;
mod backup_set;
mod claims;
mod engine;
mod gate;
mod instance;
mod legacy;
pub mod messages;
mod restore;
mod session;
mod types;

pub use backup_set::{
    verify_backup_set, verify_backup_set_on, BackupHandle, BackupKind, BackupManifest,
    BackupOptions, BackupPhase, BackupProgress, ManifestDatabase, ManifestLog, VerifyReport,
};
pub use engine::{Engine, Mode};
pub use ese::restore::{RestoreReport, RestoreSpec, StopAt};
pub use ese::{
    BackupBegin, BackupEnd, Category, Commit, CoreStats, DbId, Detail, Error, InstanceParams,
    IoError, Result, Term,
};
pub use ese::{SLICE_BYTES, SLICE_ROWS};
pub use instance::Instance;
pub use legacy::Legacy;
pub use messages::Message;
pub use restore::{
    restore_backup_chain, restore_backup_chain_on, restore_backup_chain_to, ChainReport,
};
pub use session::Session;
pub use types::{
    BackupFile, BackupId, BackupInfo, DatabaseInfo, InstanceInfo, LogInfo, ScanCursor, ScanSlice,
    SessionKey,
};

/// The storage core, for hosts that need its lower layers (fault injection, formats).
pub use ese;
