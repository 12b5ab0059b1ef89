//! Layer 1: every byte the engine reads or writes goes through [`Storage`] and [`File`].
//!
//! Two implementations: [`OsStorage`] (real files, real `fdatasync`, real `flock`) and
//! [`FaultStorage`] (in memory, with scripted write/fsync failures, torn writes,
//! "no space", simulated locks, and `crash()` which forgets everything not fsync'd and
//! releases every lock). Every durability test goes through the fault layer; the engine never
//! knows which one it has.

mod buffers;
mod fault;
mod files;
mod os;

pub use buffers::BufferPool;
pub use fault::{Fault, FaultStats, FaultStorage};
pub use files::{read_whole_of, Files};
pub use os::OsStorage;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Result;

/// How [`Storage::open`] treats a missing or existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist (`FileNotFound` otherwise).
    Existing,
    /// Open it, creating it empty if missing.
    Create,
    /// Create it; `FileAlreadyExists` if it is there.
    CreateNew,
    /// Open an existing file for reading only.
    ReadOnly,
}

/// A file opened through a [`Storage`]. Positioned I/O only, so one handle serves many threads.
pub trait File: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
    /// Writes all of `buf` at `offset`, growing the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()>;
    /// Makes every completed write durable (`fdatasync`).
    fn sync(&self) -> Result<()>;
    /// The file's current length in bytes.
    fn len(&self) -> Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> Result<()>;
    /// A hint that the file is about to be read from its start, as `posix_fadvise`'s
    /// `WILLNEED`: a file whose first read has a latency of its own (an object's first
    /// ranged GET) starts it now, so a reader of many files in turn waits once, not once per
    /// file. Local files do nothing.
    fn will_read(&self) {}
    /// A hint that `len` bytes from `offset`, just written, will not be read again soon:
    /// their writeback starts now and the cache may drop them once written, as
    /// `posix_fadvise`'s `DONTNEED`. Durability still comes from [`File::sync`] only; a
    /// file written once and fsynced at its end (a backup set's) spreads its disk writes over
    /// its writing instead of paying them all in that fsync. Files elsewhere do nothing.
    fn write_back(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }

    /// Reads exactly `buf.len()` bytes or fails with `FileIOBeyondEOF`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(crate::Error::FileIOBeyondEOF);
            }
            done += n;
        }
        Ok(())
    }
}

/// A shared handle to an open file.
pub type FileRef = Arc<dyn File>;

/// A file system: open, remove, rename, list. Directory operations are durable once
/// [`Storage::sync_dir`] returns.
pub trait Storage: Send + Sync + Debug {
    /// Opens `path` as `mode` says.
    fn open(&self, path: &Path, mode: OpenMode) -> Result<FileRef>;
    /// Deletes a file (`FileNotFound` if missing).
    fn remove(&self, path: &Path) -> Result<()>;
    /// Renames a file, replacing the target.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Whether a file exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// The files (not directories) directly inside `dir`, sorted by name.
    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool {
        let _ = path;
        false
    }
    /// Everything directly inside `dir`, files and directories, sorted by name.
    fn list_entries(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        self.list(dir)
    }
    /// Removes an empty directory (a backup set's folder that a failed backup created).
    fn remove_dir(&self, dir: &Path) -> Result<()> {
        let _ = dir;
        Err(crate::Error::InvalidParameter)
    }
    /// Makes creations, renames and removals inside `dir` durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// When `path` was last modified, ms since the epoch; `None` if unknown.
    fn modified_ms(&self, path: &Path) -> Option<u64> {
        let _ = path;
        None
    }
    /// Whether `path` is a symbolic link (backup and restore refuse to follow one).
    fn is_link(&self, _path: &Path) -> bool {
        false
    }
    /// Takes an exclusive lock on the existing file at `path` (`FileNotFound` if there is
    /// none), held until the returned guard is dropped or the process dies. A lock held by
    /// anyone else — another process, or another lock call of this one — refuses it with
    /// `FileAccessDenied` at once; it never waits. The lock guards against other users of the
    /// lock only: it does not stop reads or writes through [`Storage::open`] handles.
    fn lock(&self, path: &Path) -> Result<FileLock>;
}

/// An exclusive lock taken by [`Storage::lock`]; dropping it releases the lock.
#[must_use = "the lock is released as soon as this guard is dropped"]
pub struct FileLock {
    path: PathBuf,
    // Whatever keeps the lock: the open file for `OsStorage`, a token for `FaultStorage`.
    // Its own drop releases the lock.
    _held: Box<dyn Send + Sync>,
}

impl FileLock {
    /// A guard for the lock on `path` that `held` keeps (and releases when dropped); for
    /// [`Storage`] implementations.
    pub fn new(path: &Path, held: impl Send + Sync + 'static) -> FileLock {
        FileLock {
            path: path.to_path_buf(),
            _held: Box::new(held),
        }
    }

    /// The locked file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Debug for FileLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLock")
            .field("path", &self.path)
            .finish()
    }
}

/// A shared handle to a storage implementation.
pub type StorageRef = Arc<dyn Storage>;

/// The real file system.
pub fn os() -> StorageRef {
    Arc::new(OsStorage)
}
