//! Backup repositories: a place that holds many backup sets, each under a name of its own
//! (`<root>/<name>/manifest.json`, `<root>/<name>/databases/…`, `<root>/<name>/logs/…`). A
//! folder ([`DirRepo`]) and an object store (in `ese-actors`) are the two kinds; everything
//! above the [`Repository`] trait is the same code for both: the set format, its writer,
//! verify, the chain restore, the catalog ([`catalog`]) and retention ([`prune`]).
//!
//! A set is visible only through its manifest, which is written last and carries a digest
//! of itself; a name without a valid manifest is an orphan (a backup that failed or was
//! killed), which no reader takes for a set and which [`prune`] removes after a grace
//! period. No step relies on conditional writes.

pub mod catalog;
mod dir;
#[cfg(test)]
mod history;
pub mod name;
pub mod prune;
mod set;

use std::fmt::Debug;

use crate::backup::set::SetStore;
use crate::io::Files;
use crate::Result;

pub use dir::DirRepo;
pub use set::{folder_set, RepoSet};

/// A place that holds backup sets. Synchronous, like the set writer: callers on a runtime
/// call it from a blocking thread.
pub trait Repository: Send + Sync + Debug {
    /// The repository as a person reads it (a path, or a URL without credentials).
    fn location(&self) -> String;
    /// The repository's files by their names relative to its root
    /// (`<set>/logs/edb00000001.log`).
    fn files(&self) -> &dyn Files;
    /// The name of every set the repository holds, complete or not, in name order.
    fn set_names(&self) -> Result<Vec<String>>;
    /// A store that writes the new set `name`.
    fn new_set(&self, name: &str) -> Result<Box<dyn SetStore>>;
    /// Deletes everything stored under the set `name`, its manifest first, so that a
    /// removal cut short leaves an orphan and never a set that looks complete. Returns the
    /// number of files or objects removed.
    fn remove_set(&self, name: &str) -> Result<u64>;
    /// When the newest file of the set `name` was written, ms since the epoch; `None` if
    /// the store cannot say.
    fn modified_ms(&self, name: &str) -> Result<Option<u64>>;
}
