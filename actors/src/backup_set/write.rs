//! Writes one backup set through the instance's [`Storage`]. Synchronous and free of any
//! async runtime: the caller runs each step on a blocking thread.
//!
//! Order, so that a set is never visible as complete unless it is: each file is written and
//! synced; then the folders holding them are synced; then `manifest.json.tmp` is written and
//! synced, renamed to `manifest.json`, and the set's folder synced. Every failure is returned
//! with the file it concerns. The writer remembers each folder it created and each file it
//! wrote, so [`SetWriter::remove`] takes away exactly those: never a folder that was there
//! before, never a file someone else wrote.

use std::path::{Path, PathBuf};

use ese::io::{FileRef, OpenMode, Storage, StorageRef};
use ese::{Error, Result};

use super::manifest::MANIFEST;

/// The temporary name the manifest is written under before the rename makes it visible.
const MANIFEST_TMP: &str = "manifest.json.tmp";

/// The folders inside a set.
const FOLDERS: [&str; 2] = ["databases", "logs"];

/// Refuses a target that cannot take a new set, creating nothing: a file (`InvalidPath`) or a
/// folder that is not empty (`BackupDirectoryNotEmpty`).
pub(crate) fn check_target(storage: &dyn Storage, dir: &Path) -> Result<()> {
    if storage.exists(dir) {
        return Err(Error::InvalidPath.with_detail(format!(
            "backup target {} is a file, not a directory",
            dir.display()
        )));
    }
    if storage.is_dir(dir) {
        let entries = storage
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

/// The file being written.
struct OpenFile {
    path: PathBuf,
    file: FileRef,
    len: u64,
    crc: u32,
}

/// One set being written; see the module documentation for the order.
pub(crate) struct SetWriter {
    storage: StorageRef,
    root: PathBuf,
    /// Folders this writer created, parents first.
    created_dirs: Vec<PathBuf>,
    /// Files this writer created, in order (the manifest last once it is visible).
    written: Vec<PathBuf>,
    open: Option<OpenFile>,
    /// Set by [`SetWriter::remove`]: every later step is refused, so a step that was still
    /// queued when its backup was dropped cannot bring back what was removed.
    removed: bool,
}

impl SetWriter {
    /// A writer for a set at `root`; touches nothing yet.
    pub(crate) fn new(storage: StorageRef, root: PathBuf) -> SetWriter {
        SetWriter {
            storage,
            root,
            created_dirs: Vec::new(),
            written: Vec::new(),
            open: None,
            removed: false,
        }
    }

    /// Creates the set's folder (and any missing parent) and its `databases/` and `logs/`,
    /// each made durable in its parent.
    pub(crate) fn create_dirs(&mut self) -> Result<()> {
        self.check_live()?;
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

    /// Creates one folder, remembered only if this writer made it, durable in its parent.
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

    /// Starts the file `rel` (relative to the set); it must not exist.
    pub(crate) fn start_file(&mut self, rel: &Path) -> Result<()> {
        self.check_live()?;
        let path = self.root.join(rel);
        let file = self
            .storage
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| failed(e, "creating", &path))?;
        self.written.push(path.clone());
        self.open = Some(OpenFile {
            path,
            file,
            len: 0,
            crc: 0,
        });
        Ok(())
    }

    /// Appends a chunk to the file being written.
    pub(crate) fn append(&mut self, chunk: &[u8]) -> Result<()> {
        self.check_live()?;
        let f = self.open.as_mut().ok_or(Error::InternalError)?;
        f.file
            .write_at(chunk, f.len)
            .map_err(|e| failed(e, "writing", &f.path))?;
        f.len += chunk.len() as u64;
        f.crc = crc32c::crc32c_append(f.crc, chunk);
        Ok(())
    }

    /// Syncs and closes the file being written; its size and CRC-32C.
    pub(crate) fn finish_file(&mut self) -> Result<(u64, u32)> {
        self.check_live()?;
        let f = self.open.take().ok_or(Error::InternalError)?;
        f.file.sync().map_err(|e| failed(e, "syncing", &f.path))?;
        tracing::info!(file = %f.path.display(), size = f.len, "backed up");
        Ok((f.len, f.crc))
    }

    /// Makes the names of every file written durable: syncs `databases/` and `logs/`.
    pub(crate) fn sync_folders(&mut self) -> Result<()> {
        self.check_live()?;
        for folder in FOLDERS {
            let dir = self.root.join(folder);
            self.storage
                .sync_dir(&dir)
                .map_err(|e| failed(e, "syncing folder", &dir))?;
        }
        Ok(())
    }

    /// Writes the manifest through a temporary file, then makes it visible and durable. Call
    /// it only once every other file is finished and the folders are synced.
    pub(crate) fn commit_manifest(&mut self, text: &[u8]) -> Result<()> {
        self.start_file(Path::new(MANIFEST_TMP))?;
        self.append(text)?;
        self.finish_file()?;
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

    /// Removes what this writer created: the manifest first (so the set stops being complete
    /// before anything else goes), then the other files, then its folders, deepest first.
    /// Best effort: what cannot be removed is logged and left. Later steps are refused.
    pub(crate) fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        self.open = None;
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
        tracing::info!(set = %self.root.display(), "partial backup set removed");
    }

    fn check_live(&self) -> Result<()> {
        if self.removed {
            return Err(Error::BackupAbortByCaller.with_detail(format!(
                "the backup set {} was removed: its backup was dropped or failed",
                self.root.display()
            )));
        }
        Ok(())
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

/// `e` with the step and the file it failed on; the code stays (DiskFull, DiskIO, ...).
fn failed(e: Error, doing: &str, path: &Path) -> Error {
    let why = e.detail_or_message();
    e.with_detail(format!("{doing} {}: {why}", path.display()))
}
