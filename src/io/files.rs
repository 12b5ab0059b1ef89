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
