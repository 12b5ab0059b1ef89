//! Layer 5: redo. Soft recovery (at init) replays the log from the checkpoint; hard recovery
//! ([`crate::restore`]) replays a backup's logs over streamed database copies. Both drive the
//! same engine:
//!
//! - `replay`: the redo engine, [`Replay`]: full page images and deltas applied at their
//!   transaction's commit, each only onto an older page, so replay is idempotent and repairs
//!   torn pages (the horizon rule: every page's first change after a checkpoint is a full
//!   image); BackupUpdate records stamped with the stream being replayed; stop points.
//! - `soft`: soft recovery, [`recover`]: from the checkpoint to the end of the log, each
//!   database it replays locked first, all of them left clean and detached.

mod replay;
mod soft;

pub use replay::{Replay, ReplayStats, ReplayStop, ReplayTarget, Resolve};
pub use soft::recover;
