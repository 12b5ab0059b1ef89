//! [`DirRepo`]: a repository in a folder, each set in a subfolder of its own written by a
//! [`SetDir`] (files synced, manifest renamed into place and its folder synced).

use std::path::{Path, PathBuf};

use super::Repository;
use crate::backup::set::{SetDir, SetStore, MANIFEST};
use crate::io::{Files, StorageRef};
use crate::{Error, Result};

/// A repository in the folder `root` of a storage.
#[derive(Debug)]
pub struct DirRepo {
    storage: StorageRef,
    root: PathBuf,
    files: SetDir,
}

impl DirRepo {
    /// The repository in `root`; touches nothing yet (the folder is made by the first set).
    pub fn new(storage: StorageRef, root: impl Into<PathBuf>) -> DirRepo {
        let root = root.into();
        DirRepo {
            files: SetDir::new(storage.clone(), &root),
            storage,
            root,
        }
    }

    /// The repository's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Refuses a root that is itself a set (it holds a manifest): a set's folder given where
    /// its target was meant would get new sets inside the set, where no listing of the
    /// target sees them, and would list the set's own folders as orphans.
    fn not_a_set(&self) -> Result<()> {
        if !self.storage.exists(&self.root.join(MANIFEST)) {
            return Ok(());
        }
        let parent = self.root.parent().map_or(String::new(), |p| {
            format!("; give the target that holds it, {}", p.display())
        });
        Err(Error::InvalidPath.with_detail(format!(
            "{} is a backup set, not a target holding sets{parent}",
            self.root.display()
        )))
    }

    /// Removes `dir` and everything under it, files before their folders, manifest first.
    fn remove_tree(&self, dir: &Path, count: &mut u64) -> Result<()> {
        let manifest = dir.join(MANIFEST);
        if self.storage.exists(&manifest) {
            self.storage.remove(&manifest)?;
            self.storage.sync_dir(dir)?;
            *count += 1;
        }
        for entry in self.storage.list_entries(dir)? {
            if self.storage.is_link(&entry) || !self.storage.is_dir(&entry) {
                self.storage.remove(&entry)?;
                *count += 1;
            } else {
                self.remove_tree(&entry, count)?;
            }
        }
        self.storage.remove_dir(dir)
    }
}

impl DirRepo {
    /// The newest modification time under `dir`.
    fn newest(&self, dir: &Path) -> Option<u64> {
        let mut newest = self.storage.modified_ms(dir);
        for entry in self.storage.list_entries(dir).ok()? {
            let t = match self.storage.is_dir(&entry) && !self.storage.is_link(&entry) {
                true => self.newest(&entry),
                false => self.storage.modified_ms(&entry),
            };
            newest = newest.max(t);
        }
        newest
    }
}

impl Repository for DirRepo {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn files(&self) -> &dyn Files {
        &self.files
    }

    fn set_names(&self) -> Result<Vec<String>> {
        if !self.storage.is_dir(&self.root) {
            if self.storage.exists(&self.root) {
                return Err(Error::InvalidPath.with_detail(format!(
                    "{} is a file, not a backup repository",
                    self.root.display()
                )));
            }
            return Ok(Vec::new());
        }
        self.not_a_set()?;
        let mut names: Vec<String> = self
            .storage
            .list_entries(&self.root)
            .map_err(|e| e.in_file(&self.root))?
            .into_iter()
            .filter(|p| self.storage.is_dir(p) && !self.storage.is_link(p))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            // Hidden folders are not sets the engine made.
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    fn new_set(&self, name: &str) -> Result<Box<dyn SetStore>> {
        super::set::check_name(name)?;
        if self.storage.exists(&self.root) {
            return Err(Error::InvalidPath.with_detail(format!(
                "backup target {} is a file, not a directory",
                self.root.display()
            )));
        }
        self.not_a_set()?;
        Ok(Box::new(
            SetDir::new(self.storage.clone(), self.root.join(name)).named(name),
        ))
    }

    fn modified_ms(&self, name: &str) -> Result<Option<u64>> {
        super::set::check_name(name)?;
        Ok(self.newest(&self.root.join(name)))
    }

    fn remove_set(&self, name: &str) -> Result<u64> {
        super::set::check_name(name)?;
        let dir = self.root.join(name);
        let mut count = 0;
        if self.storage.is_dir(&dir) {
            self.remove_tree(&dir, &mut count)
                .map_err(|e| e.in_file(&dir))?;
            self.storage.sync_dir(&self.root)?;
        }
        Ok(count)
    }
}
