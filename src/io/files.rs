//! [`Files`]: the read side shared by everything that checks or copies backed-up files, so
//! the same checks serve a folder on a [`Storage`] and a backup set wherever it is kept (a
//! folder today; an object store is a second implementation, not a second copy).

use std::path::{Path, PathBuf};

use super::{FileRef, OpenMode, Storage};
use crate::Result;

/// Named files opened for reading.
pub trait Files {
    /// Opens `name` for reading (`FileNotFound` if there is none).
    fn open_read(&self, name: &Path) -> Result<FileRef>;
    /// How errors name `name`: the full path, or the location of the store it is in.
    fn shown(&self, name: &Path) -> PathBuf;
    /// Whether `name` is a symbolic link, which backup and restore never follow.
    fn is_link(&self, name: &Path) -> bool {
        let _ = name;
        false
    }
    /// The bytes `name` takes where it is stored, found without reading its content (a
    /// file's length; an object's size from a `HEAD`). `FileNotFound` if there is none.
    fn stored_len(&self, name: &Path) -> Result<u64> {
        self.open_read(name)?.len()
    }
    /// Opens `name`, whose stored length a manifest gives as `stored_len`, to be read from
    /// start to end: a store may take the length from the caller instead of asking for it
    /// (an object store saves a request per file). The file may not be what the manifest
    /// says: `len()` may answer `stored_len` while reads end (0 bytes) where the file
    /// really ends, so a reader of such a file reads until a read gives 0.
    fn open_read_sized(&self, name: &Path, stored_len: u64) -> Result<FileRef> {
        let _ = stored_len;
        self.open_read(name)
    }
    /// The whole of the small file `name`, or `None` if it holds more than `limit` bytes
    /// (an object store reads it with one request, not a size look-up and a read).
    fn read_whole(&self, name: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
        read_whole_of(&*self.open_read(name)?, limit)
    }
}

/// The whole of an open file, or `None` if it holds more than `limit` bytes: what
/// [`Files::read_whole`] does for a store with nothing faster.
pub fn read_whole_of(f: &dyn super::File, limit: u64) -> Result<Option<Vec<u8>>> {
    let len = f.len()?;
    if len > limit {
        return Ok(None);
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0)?;
    Ok(Some(buf))
}

/// The files of a storage are named by their paths.
impl<S: Storage + ?Sized> Files for S {
    fn open_read(&self, name: &Path) -> Result<FileRef> {
        self.open(name, OpenMode::ReadOnly)
    }
    fn shown(&self, name: &Path) -> PathBuf {
        name.to_path_buf()
    }
    fn is_link(&self, name: &Path) -> bool {
        Storage::is_link(self, name)
    }
}
