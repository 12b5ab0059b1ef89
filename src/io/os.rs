//! The real file system: `pread`/`pwrite`, `fdatasync` and `flock`.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{File, FileLock, FileRef, OpenMode, Storage};
use crate::{Error, Result};

/// [`Storage`] over `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

#[derive(Debug)]
struct OsFile {
    file: fs::File,
}

impl File for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io(e)),
            }
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.file.write_all_at(buf, offset).map_err(Error::from_io)
    }
    fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(Error::from_io)
    }
    fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(Error::from_io)?.len())
    }
    fn set_len(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(Error::from_io)
    }
    fn write_back(&self, offset: u64, len: u64) {
        // Only a hint: a failure changes nothing the final `sync` does not decide.
        let _ = rustix::fs::fadvise(
            &self.file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::DontNeed,
        );
    }
}

impl Storage for OsStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<FileRef> {
        let mut o = fs::OpenOptions::new();
        match mode {
            OpenMode::Existing => o.read(true).write(true),
            OpenMode::Create => o.read(true).write(true).create(true),
            OpenMode::CreateNew => o.read(true).write(true).create_new(true),
            OpenMode::ReadOnly => o.read(true),
        };
        let file = o.open(path).map_err(Error::from_io)?;
        Ok(Arc::new(OsFile { file }))
    }
    fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(Error::from_io)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(Error::from_io)
    }
    fn exists(&self, path: &Path) -> bool {
        path.is_file()
    }
    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).map_err(Error::from_io)? {
            let entry = entry.map_err(Error::from_io)?;
            if entry.file_type().map_err(Error::from_io)?.is_file() {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(Error::from_io)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn list_entries(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).map_err(Error::from_io)? {
            out.push(entry.map_err(Error::from_io)?.path());
        }
        out.sort();
        Ok(out)
    }
    fn remove_dir(&self, dir: &Path) -> Result<()> {
        fs::remove_dir(dir).map_err(Error::from_io)
    }
    fn is_link(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    }
    fn modified_ms(&self, path: &Path) -> Option<u64> {
        let t = fs::symlink_metadata(path).ok()?.modified().ok()?;
        let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
        u64::try_from(d.as_millis()).ok()
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let d = fs::File::open(dir).map_err(Error::from_io)?;
        d.sync_all().map_err(Error::from_io)
    }
    /// `flock(LOCK_EX | LOCK_NB)` (std's `try_lock`) on a descriptor of its own. Such a lock
    /// belongs to the open file description, so a second open of the file in this process
    /// conflicts too (two engines of one process), and the kernel drops it with the last
    /// descriptor: at the guard's drop, or when the process dies, however it dies.
    fn lock(&self, path: &Path) -> Result<FileLock> {
        let file = fs::File::open(path).map_err(Error::from_io)?;
        match file.try_lock() {
            Ok(()) => Ok(FileLock::new(path, Held(file))),
            Err(fs::TryLockError::WouldBlock) => Err(Error::FileAccessDenied),
            Err(fs::TryLockError::Error(e)) => Err(Error::from_io(e)),
        }
    }
}

/// A file this process holds a `flock` on. Dropping it unlocks explicitly before closing: a
/// child process forked meanwhile holds a copy of the descriptor until it execs, and the lock
/// belongs to the open file both copies share, so closing ours alone would leave it held.
struct Held(fs::File);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_lock_is_released_even_while_a_copy_of_its_descriptor_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lck");
        fs::write(&path, b"").unwrap();
        let file = fs::File::open(&path).unwrap();
        file.try_lock().unwrap();
        // What a fork while the lock is held leaves: a second descriptor of the same open
        // file, in the child, until it execs.
        let child_copy = file.try_clone().unwrap();
        drop(Held(file));
        let again = OsStorage.lock(&path);
        assert!(again.is_ok(), "the lock outlived its guard: {again:?}");
        drop(child_copy);
    }
}
