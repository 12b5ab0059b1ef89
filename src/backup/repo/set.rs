//! [`RepoSet`]: one set of a repository read as [`Files`] named as in the set, whatever
//! the manifest says of how each file is kept: a plain copy in the set's folder, a
//! compressed object ([`Decompressing`]), or an object another set of the chain holds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Repository;
use crate::backup::set::frames::Decompressing;
use crate::backup::set::{BackupManifest, Stored, MANIFEST};
use crate::io::{FileRef, Files};
use crate::{Error, Result};

/// How one file of the set is read.
#[derive(Clone, Debug)]
struct Place {
    /// Its name in the repository.
    key: PathBuf,
    stored: Option<Stored>,
    size: u64,
    log: bool,
}

/// A set in a folder of its own (`backup_to_dir`) read as the set of its parent folder's
/// repository: the same reader, so compressed files and references resolve there too.
///
/// # Errors
///
/// `InvalidPath` (-1023) for a path that names no folder (`/`, `..`).
pub fn folder_set(storage: crate::io::StorageRef, dir: &Path) -> Result<(super::DirRepo, String)> {
    let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::InvalidPath.with_detail(format!("{}: not a backup set's folder", dir.display()))
    })?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((super::DirRepo::new(storage, parent), name.to_string()))
}

/// The set `name` of a repository.
#[derive(Debug)]
pub struct RepoSet<'r> {
    repo: &'r dyn Repository,
    name: String,
    places: HashMap<PathBuf, Place>,
    manifest: Result<BackupManifest>,
}

impl<'r> RepoSet<'r> {
    /// The set `name` of `repo`. Reads its manifest to learn where each file is kept; a
    /// manifest that cannot be read is reported by the checks that read it again
    /// ([`crate::backup::set::read_manifest`]), with their specific errors.
    ///
    /// # Errors
    ///
    /// `InvalidPath` (-1023) for a name that is not one path segment; `InvalidBackup`
    /// (-526) for a manifest that names another set (a manifest copied from elsewhere).
    pub fn open(repo: &'r dyn Repository, name: &str) -> Result<RepoSet<'r>> {
        check_name(name)?;
        let mut set = RepoSet {
            repo,
            name: name.to_string(),
            places: HashMap::new(),
            manifest: Err(Error::FileNotFound),
        };
        match BackupManifest::read_from(&set) {
            Ok(m) => Self::with_manifest(repo, name, m),
            Err(e) => {
                set.manifest = Err(e);
                Ok(set)
            }
        }
    }

    /// The set `name` of `repo` whose manifest `m` was read already (by
    /// [`super::catalog::list`]): nothing is read again.
    ///
    /// # Errors
    ///
    /// [`RepoSet::open`]'s.
    pub fn with_manifest(
        repo: &'r dyn Repository,
        name: &str,
        m: BackupManifest,
    ) -> Result<RepoSet<'r>> {
        check_name(name)?;
        let mut set = RepoSet {
            repo,
            name: name.to_string(),
            places: HashMap::new(),
            manifest: Err(Error::FileNotFound),
        };
        if let Some(other) = m.name.as_deref().filter(|n| *n != name) {
            return Err(Error::InvalidBackup.with_detail(format!(
                "{}: the manifest of the set {other}, not of {name}: it was copied or moved \
                 here; no set is read through it",
                set.shown(Path::new(MANIFEST)).display()
            )));
        }
        for f in m.files() {
            let holder = f.stored.and_then(|s| s.set.as_deref()).unwrap_or(name);
            if holder != name {
                check_name(holder)?;
            }
            set.places.insert(
                f.file.to_path_buf(),
                Place {
                    key: Path::new(holder).join(f.file),
                    stored: f.stored.cloned(),
                    size: f.size,
                    log: f.log,
                },
            );
        }
        set.manifest = Ok(m);
        Ok(set)
    }

    /// The manifest as read when the set was opened, or why it could not be read
    /// (`FileNotFound` for a set without one: an orphan).
    pub fn manifest(&self) -> Result<&BackupManifest> {
        self.manifest.as_ref().map_err(Clone::clone)
    }

    /// The set's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The set's location as a person reads it.
    pub fn location(&self) -> String {
        self.repo
            .files()
            .shown(Path::new(&self.name))
            .display()
            .to_string()
    }

    fn key(&self, name: &Path) -> PathBuf {
        match self.places.get(name) {
            Some(p) => p.key.clone(),
            None => Path::new(&self.name).join(name),
        }
    }
}

impl Files for RepoSet<'_> {
    fn open_read(&self, name: &Path) -> Result<FileRef> {
        let key = self.key(name);
        let file = self.repo.files().open_read(&key)?;
        match self.places.get(name) {
            Some(Place {
                stored: Some(s),
                size,
                log,
                ..
            }) if s.compression.is_some() => {
                let damaged = match log {
                    true => Error::LogFileCorrupt,
                    false => Error::DatabaseCorrupted,
                };
                let shown = self.shown(name);
                Ok(Arc::new(Decompressing::new(
                    file, s, *size, damaged, shown,
                )?))
            }
            _ => Ok(file),
        }
    }

    fn shown(&self, name: &Path) -> PathBuf {
        self.repo.files().shown(&self.key(name))
    }

    fn is_link(&self, name: &Path) -> bool {
        self.repo.files().is_link(&self.key(name))
    }

    fn stored_len(&self, name: &Path) -> Result<u64> {
        self.repo.files().stored_len(&self.key(name))
    }

    /// A plain file is opened at the size its manifest gives; a compressed one as
    /// [`Files::open_read`] does, since its frames are checked against the stored size.
    fn open_read_sized(&self, name: &Path, stored_len: u64) -> Result<FileRef> {
        match self.places.get(name) {
            Some(Place {
                stored: Some(s), ..
            }) if s.compression.is_some() => self.open_read(name),
            _ => self
                .repo
                .files()
                .open_read_sized(&self.key(name), stored_len),
        }
    }

    fn read_whole(&self, name: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
        match self.places.get(name).and_then(|p| p.stored.as_ref()) {
            Some(s) if s.compression.is_some() => {
                crate::io::read_whole_of(&*self.open_read(name)?, limit)
            }
            _ => self.repo.files().read_whole(&self.key(name), limit),
        }
    }
}

/// A set name is one plain path segment: nothing a name read from a manifest or a listing
/// can use to reach outside the repository.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    match plain {
        true => Ok(()),
        false => Err(Error::InvalidPath.with_detail(format!(
            "{name:?} is not a backup set name (one path segment)"
        ))),
    }
}
