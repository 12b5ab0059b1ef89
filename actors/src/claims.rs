//! Which paths the instances of one engine use (behaviour.md §1.3). The storage core's operating
//! system locks refuse every other user with `FileAccessDenied`; inside one engine the engine
//! answers first, with ESE's errors for the case, as ESE compares the paths of the instances
//! of its process: `SystemPathInUse` (-1083), `LogFilePathInUse` (-1084),
//! `DatabaseSharingViolation` (-1215).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use ese::{Error, InstanceParams, Result};
use parking_lot::Mutex;

/// What an instance uses a path for. As in ESE, a path collides only with the same role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    System,
    Log,
    Database,
}

/// The paths in use, each with the id of the instance using it.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    held: Mutex<HashMap<(Role, PathBuf), u64>>,
}

impl Claims {
    /// Claims an instance's system and log paths for `owner`, before its init touches them.
    /// The system path is checked first, as ESE does.
    pub fn claim_instance(&self, owner: u64, params: &InstanceParams) -> Result<()> {
        let system = (Role::System, canonical(params.system_dir()));
        let log = (Role::Log, canonical(params.log_dir()));
        let mut held = self.held.lock();
        if held.get(&system).is_some_and(|o| *o != owner) {
            return Err(Error::SystemPathInUse);
        }
        if held.get(&log).is_some_and(|o| *o != owner) {
            return Err(Error::LogFilePathInUse);
        }
        held.insert(system, owner);
        held.insert(log, owner);
        Ok(())
    }

    /// Claims a database path for `owner`; true if the claim is new (`owner` already
    /// holding it is for the core to answer: `DatabaseDuplicate`).
    pub fn claim_database(&self, owner: u64, path: &Path) -> Result<bool> {
        if path.as_os_str().is_empty() {
            // The core refuses it with InvalidParameter; there is nothing to claim.
            return Ok(false);
        }
        let key = (Role::Database, canonical(path));
        let mut held = self.held.lock();
        match held.get(&key) {
            Some(o) if *o == owner => Ok(false),
            Some(_) => Err(Error::DatabaseSharingViolation),
            None => {
                held.insert(key, owner);
                Ok(true)
            }
        }
    }

    /// Gives a database path back (after a detach, or an attach that failed).
    pub fn release_database(&self, owner: u64, path: &Path) {
        let key = (Role::Database, canonical(path));
        let mut held = self.held.lock();
        if held.get(&key) == Some(&owner) {
            held.remove(&key);
        }
    }

    /// Gives back every path `owner` holds (term, a failed init, the actor's end).
    pub fn release_all(&self, owner: u64) {
        self.held.lock().retain(|_, o| *o != owner);
    }
}

/// One spelling per file: absolute, `.` and `..` folded, and symbolic links resolved in the
/// longest part of the path that exists (a directory init has not made yet, or a database
/// not yet created, still compares equal once it exists).
pub(crate) fn canonical(path: &Path) -> PathBuf {
    let abs = absolute(path);
    let mut missing: Vec<OsString> = Vec::new();
    let mut at = abs.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            return missing.iter().rev().fold(real, |p, name| p.join(name));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                at = parent;
            }
            _ => return abs,
        }
    }
}

/// `path` made absolute against the current directory, with `.` and `..` folded lexically.
fn absolute(path: &Path) -> PathBuf {
    let joined = match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_path_buf(),
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_collide_only_with_themselves() {
        let c = Claims::default();
        let a = InstanceParams::new("/claims/p").log_path("/claims/q");
        c.claim_instance(1, &a).unwrap();
        c.claim_instance(1, &a).unwrap();
        let crossed = InstanceParams::new("/claims/q").log_path("/claims/p");
        c.claim_instance(2, &crossed).unwrap();
        let same_system = InstanceParams::new("/claims/p").log_path("/claims/r");
        assert_eq!(
            c.claim_instance(3, &same_system),
            Err(Error::SystemPathInUse)
        );
        let same_log = InstanceParams::new("/claims/s").log_path("/claims/x/../q/.");
        assert_eq!(c.claim_instance(3, &same_log), Err(Error::LogFilePathInUse));
        c.release_all(1);
        c.claim_instance(3, &same_system).unwrap();
    }

    #[test]
    fn databases_are_claimed_once() {
        let c = Claims::default();
        let db = Path::new("/claims/d/db.edb");
        assert_eq!(c.claim_database(1, db), Ok(true));
        assert_eq!(c.claim_database(1, db), Ok(false));
        assert_eq!(
            c.claim_database(2, Path::new("/claims/d/./e/../db.edb")),
            Err(Error::DatabaseSharingViolation)
        );
        c.release_database(2, db);
        assert_eq!(
            c.claim_database(2, db),
            Err(Error::DatabaseSharingViolation)
        );
        c.release_database(1, db);
        assert_eq!(c.claim_database(2, db), Ok(true));
        assert_eq!(c.claim_database(3, Path::new("")), Ok(false));
    }

    #[test]
    fn symbolic_links_name_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(
            canonical(&link.join("db.edb")),
            canonical(&real.join("db.edb"))
        );
        assert_eq!(
            canonical(&link.join("new/dir")),
            canonical(&real.join("new/dir"))
        );
    }
}
