//! [`SetDir`]: a backup set in a folder, through a [`Storage`] (the real file system, or the
//! fault-injecting one in tests).
//!
//! Durability, so that a set is never visible as complete unless it is: each file is synced
//! when finished; [`SetStore::seal`] syncs `databases/` and `logs/`; the manifest is written
//! as `manifest.json.tmp`, synced, renamed to `manifest.json`, and the set's folder synced
//! (a rename is durable only once its folder is). The store remembers each folder it created
//! and each file it wrote, so [`SetStore::discard`] takes away exactly those: never a folder
//! that was there before, never a file someone else wrote.

use std::path::{Path, PathBuf};

use super::store::{Content, SetFile, SetStore};
use super::{Stored, FOLDERS, MANIFEST};
use crate::io::{FileRef, Files, OpenMode, StorageRef};
use crate::{Error, Result};

/// The temporary name the manifest is written under before the rename makes it visible.
const MANIFEST_TMP: &str = "manifest.json.tmp";

/// A backup set in the folder `root` of a storage.
#[derive(Debug)]
pub struct SetDir {
    storage: StorageRef,
    root: PathBuf,
    /// Folders this store created, parents first.
    created_dirs: Vec<PathBuf>,
    /// Files this store created, in order (the manifest last once it is visible).
    written: Vec<PathBuf>,
    /// The set's name in its repository, if it is in one.
    name: Option<String>,
}

impl SetDir {
    /// The set in `root`; touches nothing yet.
    pub fn new(storage: StorageRef, root: impl Into<PathBuf>) -> SetDir {
        SetDir {
            storage,
            root: root.into(),
            created_dirs: Vec::new(),
            written: Vec::new(),
            name: None,
        }
    }

    /// The same store for the set `name` of a repository (its manifest records the name).
    pub fn named(mut self, name: &str) -> SetDir {
        self.name = Some(name.to_string());
        self
    }

    /// The set's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates one folder, remembered only if this store made it, durable in its parent.
    fn create_dir(&mut self, dir: &Path) -> Result<()> {
        if self.storage.is_dir(dir) {
            return Ok(());
        }
        self.storage
            .create_dir_all(dir)
            .map_err(|e| failed(e, "creating folder", dir))?;
        self.created_dirs.push(dir.to_path_buf());
        self.sync_parent(dir)
    }

    /// Syncs the folder that holds `path`; a relative path's parent may be the current one.
    fn sync_parent(&self, path: &Path) -> Result<()> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ if self.storage.is_dir(Path::new(".")) => Path::new("."),
            _ => return Ok(()),
        };
        self.storage
            .sync_dir(parent)
            .map_err(|e| failed(e, "syncing folder", parent))
    }
}

impl Files for SetDir {
    fn open_read(&self, name: &Path) -> Result<FileRef> {
        self.storage.open(&self.root.join(name), OpenMode::ReadOnly)
    }
    fn shown(&self, name: &Path) -> PathBuf {
        self.root.join(name)
    }
    fn is_link(&self, name: &Path) -> bool {
        self.storage.is_link(&self.root.join(name))
    }
}

impl SetStore for SetDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn name(&self) -> Option<String> {
        self.name.clone()
    }

    fn check_new(&self) -> Result<()> {
        let dir = &self.root;
        if self.storage.exists(dir) {
            return Err(Error::InvalidPath.with_detail(format!(
                "backup target {} is a file, not a directory",
                dir.display()
            )));
        }
        if self.storage.is_dir(dir) {
            let entries = self
                .storage
                .list_entries(dir)
                .map_err(|e| failed(e, "reading backup target", dir))?;
            if !entries.is_empty() {
                return Err(Error::BackupDirectoryNotEmpty.with_detail(format!(
                    "backup target {} is not empty ({} entries); a set needs an empty or new directory",
                    dir.display(),
                    entries.len()
                )));
            }
        }
        Ok(())
    }

    /// Creates the set's folder (and any missing parent) and its `databases/` and `logs/`,
    /// each made durable in its parent.
    fn prepare(&mut self) -> Result<()> {
        let mut missing: Vec<PathBuf> = self
            .root
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !self.storage.is_dir(d))
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        for folder in FOLDERS {
            let dir = self.root.join(folder);
            // Checked when the backup began; something made it since: not our set's folder.
            if self.storage.is_dir(&dir) {
                return Err(Error::BackupDirectoryNotEmpty
                    .with_detail(format!("{} appeared while the backup began", dir.display())));
            }
            missing.push(dir);
        }
        for dir in missing {
            self.create_dir(&dir)?;
        }
        Ok(())
    }

    fn create(&mut self, name: &Path) -> Result<Box<dyn SetFile>> {
        let path = self.root.join(name);
        let file = self
            .storage
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| failed(e, "creating", &path))?;
        self.written.push(path.clone());
        Ok(Box::new(DirFile {
            path,
            file,
            len: 0,
            hinted: 0,
        }))
    }

    fn stored_len_in(&self, set: Option<&str>, name: &Path) -> Result<u64> {
        let path = match set {
            None => self.root.join(name),
            Some(s) => self
                .root
                .parent()
                .unwrap_or(Path::new("."))
                .join(s)
                .join(name),
        };
        self.storage
            .open(&path, OpenMode::ReadOnly)
            .and_then(|f| f.len())
            .map_err(|e| e.in_file(&path))
    }

    fn seal(&mut self) -> Result<()> {
        for folder in FOLDERS {
            let dir = self.root.join(folder);
            self.storage
                .sync_dir(&dir)
                .map_err(|e| failed(e, "syncing folder", &dir))?;
        }
        Ok(())
    }

    fn publish(&mut self, manifest: &[u8]) -> Result<()> {
        let mut tmp = self.create(Path::new(MANIFEST_TMP))?;
        tmp.append(manifest)?;
        tmp.finish(Content {
            len: manifest.len() as u64,
            crc32c: crc32c::crc32c(manifest),
        })?;
        let (tmp, path) = (self.root.join(MANIFEST_TMP), self.root.join(MANIFEST));
        self.storage
            .rename(&tmp, &path)
            .map_err(|e| failed(e, "renaming the manifest into", &path))?;
        // From here the name to remove is the visible one.
        if let Some(last) = self.written.last_mut() {
            *last = path;
        }
        self.storage
            .sync_dir(&self.root)
            .map_err(|e| failed(e, "syncing folder", &self.root))
    }

    fn discard(&mut self) {
        for path in std::mem::take(&mut self.written).iter().rev() {
            match self.storage.remove(path) {
                Ok(()) => {}
                Err(e) if e.code() == Error::FileNotFound.code() => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "partial backup set: file not removed")
                }
            }
        }
        for dir in std::mem::take(&mut self.created_dirs).iter().rev() {
            if let Err(e) = self.storage.remove_dir(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "partial backup set: folder not removed");
            }
        }
        // Best effort too: the removals are made durable where the folders still exist.
        if self.storage.is_dir(&self.root) {
            let _ = self.storage.sync_dir(&self.root);
        }
        let _ = self.sync_parent(&self.root);
    }
}

/// A file of a [`SetDir`] being written.
struct DirFile {
    path: PathBuf,
    file: FileRef,
    len: u64,
    /// Bytes whose writeback was started (`File::write_back`).
    hinted: u64,
}

/// Bytes appended between two writeback hints.
const WRITEBACK: u64 = 8 << 20;

impl SetFile for DirFile {
    fn append(&mut self, chunk: &[u8]) -> Result<()> {
        self.file
            .write_at(chunk, self.len)
            .map_err(|e| failed(e, "writing", &self.path))?;
        self.len += chunk.len() as u64;
        if self.len - self.hinted >= WRITEBACK {
            // The range before the last one is written by now: asked again, it leaves the cache.
            let from = self.hinted.saturating_sub(WRITEBACK);
            self.file.write_back(from, self.len - from);
            self.hinted = self.len;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, _: Content) -> Result<Option<Stored>> {
        self.file
            .sync()
            .map_err(|e| failed(e, "syncing", &self.path))?;
        Ok(None)
    }
}

/// `e` with the step and the file it failed on; the code stays (DiskFull, DiskIO, ...).
fn failed(e: Error, doing: &str, path: &Path) -> Error {
    let why = e.detail_or_message();
    e.with_detail(format!("{doing} {}: {why}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::io::FaultStorage;

    #[test]
    fn a_large_file_starts_its_writeback_while_written_yet_only_its_sync_makes_it_durable() {
        let fs = FaultStorage::new();
        let mut set = SetDir::new(Arc::new(fs.clone()), "/set");
        set.create_dir(Path::new("/set")).unwrap();
        let mut f = set.create(Path::new("image.edb")).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..20 {
            f.append(&chunk).unwrap();
        }
        // Every 8 MiB: at 8 and at 16.
        assert_eq!(fs.stats().write_backs, 2);
        fs.crash();
        fs.restart();
        assert_eq!(fs.read_file(Path::new("/set/image.edb")), None);

        let mut set = SetDir::new(Arc::new(fs.clone()), "/set2");
        set.create_dir(Path::new("/set2")).unwrap();
        let mut f = set.create(Path::new("image.edb")).unwrap();
        for _ in 0..20 {
            f.append(&chunk).unwrap();
        }
        f.finish(Content {
            len: 20 << 20,
            crc32c: 0,
        })
        .unwrap();
        fs.crash();
        fs.restart();
        let kept = fs.read_file(Path::new("/set2/image.edb")).unwrap();
        assert_eq!(kept.len(), 20 << 20);
    }
}
