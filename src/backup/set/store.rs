//! The seam between the set format and where a set is kept. [`SetWriter`](super::SetWriter),
//! [`verify_set`](super::verify_set) and the restore of a chain know the format and nothing
//! of the place; a [`SetStore`] knows the place and nothing of the format. A folder on a
//! [`Storage`](crate::io::Storage) is [`SetDir`](super::SetDir); an object store is a second
//! implementation of the same two traits.
//!
//! Names inside a set are relative and `/`-separated (`manifest.json`,
//! `databases/00-db.edb`, `logs/edb00001.log`).

use std::fmt::Debug;
use std::path::Path;

use super::Stored;
use crate::io::Files;
use crate::Result;

/// Where one backup set is written and read. Writing goes in this order, and an
/// implementation may rely on it: [`SetStore::prepare`], then each file
/// ([`SetStore::create`], appends, [`SetFile::finish`]), then [`SetStore::seal`], then
/// [`SetStore::publish`]. [`SetStore::discard`] may come at any point, and after it nothing.
pub trait SetStore: Files + Send + Sync + Debug {
    /// The set's location as a person reads it (a path, a URL without credentials).
    fn location(&self) -> String;
    /// The set's name in its repository, which its manifest records; `None` for a set in
    /// a folder of its own.
    fn name(&self) -> Option<String> {
        None
    }
    /// Refuses a location that cannot take a new set, creating nothing: a file where the set
    /// would go (`InvalidPath`), a location that already holds something
    /// (`BackupDirectoryNotEmpty`).
    fn check_new(&self) -> Result<()>;
    /// Makes room for the set's files (a folder creates its folders, each durable).
    fn prepare(&mut self) -> Result<()>;
    /// Starts the file `name`, which must not exist yet.
    fn create(&mut self, name: &Path) -> Result<Box<dyn SetFile>>;
    /// Makes the names of every finished file durable, so that nothing written so far can
    /// vanish once the manifest is visible.
    fn seal(&mut self) -> Result<()>;
    /// The bytes stored for `name` in this set (`set` = `None`) or in the set `set` of the
    /// same repository (a file this set references), found without reading it; what
    /// [`SetWriter`](super::SetWriter) checks every file against before the manifest.
    fn stored_len_in(&self, set: Option<&str>, name: &Path) -> Result<u64>;
    /// Writes the manifest, the set's last write: once this returns, the set is complete,
    /// visible and durable; before, a reader finds no manifest and so no set.
    fn publish(&mut self, manifest: &[u8]) -> Result<()>;
    /// Removes what this store wrote for the set (the manifest first, so the set stops being
    /// complete before anything else goes) and nothing else. Best effort: what cannot be
    /// removed is logged and left.
    fn discard(&mut self);
}

/// One file of a set being written.
pub trait SetFile: Send {
    /// Appends bytes to the file.
    fn append(&mut self, chunk: &[u8]) -> Result<()>;
    /// Makes the whole file durable; the last call on it. `content` is what was appended
    /// (its length and CRC-32C), which a store may use to reference an identical object it
    /// already holds instead of storing it again. Returns how the bytes are kept, `None` for
    /// a plain copy in the set's own folder.
    fn finish(self: Box<Self>, content: Content) -> Result<Option<Stored>>;
}

/// What was appended to a set file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Content {
    /// Bytes.
    pub len: u64,
    /// CRC-32C of the bytes.
    pub crc32c: u32,
}
