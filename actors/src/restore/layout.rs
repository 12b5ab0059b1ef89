//! Lays a checked chain of sets out in a restore target: the databases of the first set, each
//! in a file of its own, and every log once in `backup-logs/`. Synchronous and through a
//! [`Storage`]: callers on a runtime run it on a blocking thread.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ese::io::{OpenMode, Storage};
use ese::{restore, Error, Result};

use crate::backup_set::BackupManifest;

/// Bytes copied at a time.
const COPY: usize = 1 << 20;

/// Copies the images to `target` and every log once to `target/backup-logs`; returns each
/// database's original path with its restored file. Refuses a target that is a link.
pub(crate) fn lay_out(
    storage: &dyn Storage,
    sets: &[(PathBuf, BackupManifest)],
    target: &Path,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let logs = target.join("backup-logs");
    refuse_link(storage, &logs)?;
    storage
        .create_dir_all(&logs)
        .map_err(|e| e.in_file(&logs))?;
    let (dir0, full) = sets.first().ok_or(Error::InvalidParameter)?;
    let names = restored_names(full)?;
    let mut map = Vec::new();
    for (d, name) in full.databases.iter().zip(names) {
        let to = target.join(name);
        if !restore::inside(target, &to) {
            return Err(Error::InvalidPath.in_file(&to));
        }
        refuse_link(storage, &to)?;
        copy(storage, &dir0.join(&d.file), &to)?;
        map.push((d.original_path.clone(), to));
    }
    for (dir, m) in sets {
        for l in &m.logs {
            let name = l.file.file_name().ok_or(Error::InvalidPath)?;
            let to = logs.join(name);
            refuse_link(storage, &to)?;
            // Sets of one chain overlap by a log or so; the first copy serves all.
            if !storage.exists(&to) {
                copy(storage, &dir.join(&l.file), &to)?;
            }
        }
    }
    for dir in [target, logs.as_path()] {
        storage.sync_dir(dir).map_err(|e| e.in_file(dir))?;
    }
    Ok(map)
}

/// Each database's file name in the target: its original name, unless two databases share
/// one; then every database takes its image's name in the set (`00-db.edb`, `01-db.edb`),
/// which the set made unique. Either way no two databases restore into one file.
fn restored_names(full: &BackupManifest) -> Result<Vec<OsString>> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_os_string())
            .ok_or_else(|| Error::InvalidPath.in_file(p))
    };
    let originals = full
        .databases
        .iter()
        .map(|d| name(&d.original_path))
        .collect::<Result<Vec<_>>>()?;
    if distinct(&originals) {
        return Ok(originals);
    }
    let images = full
        .databases
        .iter()
        .map(|d| name(&d.file))
        .collect::<Result<Vec<_>>>()?;
    if !distinct(&images) {
        return Err(Error::InvalidBackup.with_detail(
            "the manifest names one database image twice: its databases cannot each get a file",
        ));
    }
    Ok(images)
}

fn distinct(names: &[OsString]) -> bool {
    names.iter().collect::<HashSet<_>>().len() == names.len()
}

/// Writing through a link would write outside the target.
fn refuse_link(storage: &dyn Storage, p: &Path) -> Result<()> {
    if storage.is_link(p) {
        return Err(Error::InvalidPath.with_detail(format!(
            "{}: a symbolic link; restore writes only plain files inside its target",
            p.display()
        )));
    }
    Ok(())
}

/// Copies `from` over `to` a bounded chunk at a time, then syncs `to`.
fn copy(storage: &dyn Storage, from: &Path, to: &Path) -> Result<()> {
    let src = storage
        .open(from, OpenMode::ReadOnly)
        .map_err(|e| e.in_file(from))?;
    let dst = storage
        .open(to, OpenMode::Create)
        .map_err(|e| e.in_file(to))?;
    let write = |e: Error| e.in_file(to);
    dst.set_len(0).map_err(write)?;
    let len = src.len().map_err(|e| e.in_file(from))?;
    let mut buf = vec![0u8; COPY];
    let mut at = 0u64;
    while at < len {
        let n = COPY.min((len - at) as usize);
        src.read_exact_at(&mut buf[..n], at)
            .map_err(|e| e.in_file(from))?;
        dst.write_at(&buf[..n], at).map_err(write)?;
        at += n as u64;
    }
    dst.sync().map_err(write)
}
