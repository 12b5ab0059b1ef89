//! Restoring a chain of backup sets: [`restore_chain`] checks the sets and the chain, lays
//! them out in a restore target on a [`Storage`] (the databases of the first set, each in a
//! file of its own, and every log once in `backup-logs/`) and restores there. The sets are
//! read through [`Files`], wherever they are kept. Synchronous: callers on a runtime run it
//! on a blocking thread.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{external_restore, RestoreReport, RestoreSpec, StopAt};
use crate::backup::set::{
    check_structure, compare_sums, read_manifest, BackupKind, BackupManifest, Content,
};
use crate::io::{FileRef, Files, OpenMode, Storage};
use crate::{restore, Error, Result};

/// What [`restore_chain`] restored.
#[derive(Clone, Debug)]
pub struct ChainReport {
    /// The sets, in order (their ids).
    pub sets: Vec<String>,
    /// The restored databases: each original path with its own restored file.
    pub databases: Vec<(PathBuf, PathBuf)>,
    /// The replay.
    pub restore: RestoreReport,
}

/// Checks a chain of sets — a full (or copy) set, then incrementals or differentials each
/// continuing the one before — lays it out in `target` and restores it there, stopping at
/// `stop_at` if given. Each database gets a file of its own: its original file name, or,
/// when two databases share one, every database its image's name in the set.
///
/// # Errors
///
/// Each set's [`verify_set`](crate::backup::set::verify_set) errors. The chain: `InvalidParameter` (-1003) for no set;
/// `MissingFullBackup` (-560) if the first is not a full or copy set with databases;
/// `InvalidBackupSequence` (-521) for a later set that is not incremental or differential,
/// or not the previous set's child; `GivenLogFileHasBadSignature` (-555) for a set of another
/// log stream; `GivenLogFileIsNotContiguous` (-556) for a gap in the logs. Then laying out
/// the files (`InvalidParameter` -1003 for a target that already holds a restore's logs or
/// one of the databases, `InvalidPath` -1023 for a symbolic link or a name outside `target`, `DiskFull`
/// -1808, `DiskIO` -1022) and [`external_restore`]'s errors.
pub fn restore_chain<S: Files>(
    storage: &dyn Storage,
    sets: &[S],
    target: &Path,
    stop_at: Option<StopAt>,
) -> Result<ChainReport> {
    let manifests = sets
        .iter()
        .map(|s| read_manifest(s))
        .collect::<Result<Vec<BackupManifest>>>()?;
    restore_chain_read(storage, sets, manifests, target, stop_at)
}

/// [`restore_chain`] for sets whose manifests were read and checked already
/// ([`read_manifest`], or [`check_log_count`](crate::backup::set::check_log_count) on a
/// manifest a catalog read), in the order of `sets`: no manifest is read again.
///
/// # Errors
///
/// [`restore_chain`]'s but those of reading the manifests.
pub fn restore_chain_read<S: Files>(
    storage: &dyn Storage,
    sets: &[S],
    manifests: Vec<BackupManifest>,
    target: &Path,
    stop_at: Option<StopAt>,
) -> Result<ChainReport> {
    if manifests.len() != sets.len() {
        return Err(Error::InternalError.with_detail("a manifest for each set"));
    }
    check_chain(&manifests)?;
    let checked: Vec<(&S, &BackupManifest)> = sets.iter().zip(&manifests).collect();
    // Each file is read from its set once, straight into its place in the target, and
    // checked there: a set on an object store is not downloaded twice.
    let mut copies = Copies {
        folders: missing_folders(storage, &target.join("backup-logs")),
        ..Copies::default()
    };
    let layout = match lay_out(storage, &checked, target, &mut copies) {
        Ok(layout) => layout,
        Err(e) => {
            copies.remove(storage);
            return Err(e);
        }
    };
    if let Err(e) = check_copies(storage, &checked, &copies) {
        copies.remove(storage);
        return Err(e);
    }
    let (Some(first), Some(last)) = (manifests.first(), manifests.last()) else {
        return Err(Error::InvalidParameter);
    };
    let logs = target.join("backup-logs");
    let spec = RestoreSpec {
        checkpoint_dir: target.to_path_buf(),
        log_dir: logs.clone(),
        backup_log_dir: logs,
        gen_low: first.gen_low,
        gen_high: last.gen_high,
        base_name: first.base_name.clone(),
        restore_map: layout.clone(),
        stop_at,
    };
    let restore = match external_restore(storage, &spec) {
        Ok(r) => r,
        Err(e) => {
            // Refused (a stop point before the images' end) or failed midway: the copies
            // are no restore, and the target must take the next one.
            copies.remove(storage);
            return Err(e);
        }
    };
    Ok(ChainReport {
        sets: manifests.iter().map(|m| m.id.clone()).collect(),
        databases: layout,
        restore,
    })
}

/// The files a restore copied into its target: where each went and what was read.
#[derive(Default)]
struct Copies {
    /// Each target file, with the length and CRC-32C of what was copied into it.
    made: Vec<(PathBuf, Content)>,
    /// Set index and name in that set, to the target file.
    placed: HashMap<(usize, PathBuf), usize>,
    /// The folders the restore makes (the target, its logs' folder), deepest first.
    folders: Vec<PathBuf>,
}

impl Copies {
    fn add(&mut self, set: usize, name: &Path, to: PathBuf, content: Content) {
        self.placed
            .insert((set, name.to_path_buf()), self.made.len());
        self.made.push((to, content));
    }

    fn find(&self, set: usize, name: &Path) -> Option<&(PathBuf, Content)> {
        self.placed
            .get(&(set, name.to_path_buf()))
            .map(|&i| &self.made[i])
    }

    /// Takes back what a refused restore copied: it must not look restored. The folders it
    /// made go too, so the target is as the operator left it; one still holding something
    /// (a file the replay wrote) stays, and so do the folders above it.
    fn remove(&self, storage: &dyn Storage) {
        for (to, _) in &self.made {
            if let Err(e) = storage.remove(to) {
                tracing::warn!(file = %to.display(), error = %e, "refused restore: copy not removed");
            }
        }
        for dir in &self.folders {
            if storage.remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// The folders `create_dir_all(dir)` would make, deepest first.
fn missing_folders(storage: &dyn Storage, dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .filter(|d| !d.as_os_str().is_empty())
        .take_while(|d| !storage.is_dir(d) && !storage.exists(d))
        .map(Path::to_path_buf)
        .collect()
}

/// A set's files as laid out in the restore target, named as in the set (errors name the
/// set's file, not the copy).
struct LaidOut<'a, S: Files> {
    storage: &'a dyn Storage,
    set: &'a S,
    index: usize,
    copies: &'a Copies,
}

impl<S: Files> Files for LaidOut<'_, S> {
    fn open_read(&self, name: &Path) -> Result<FileRef> {
        match self.copies.find(self.index, name) {
            Some((to, _)) => self.storage.open(to, OpenMode::ReadOnly),
            None => Err(Error::FileNotFound),
        }
    }
    fn shown(&self, name: &Path) -> PathBuf {
        self.set.shown(name)
    }
}

/// Each set's structure on the copies, then each file's size and checksum: the order and
/// the errors of [`verify_set`](crate::backup::set::verify_set).
fn check_copies<S: Files>(
    storage: &dyn Storage,
    sets: &[(&S, &BackupManifest)],
    copies: &Copies,
) -> Result<()> {
    for (index, (set, m)) in sets.iter().enumerate() {
        let view = LaidOut {
            storage,
            set: *set,
            index,
            copies,
        };
        check_structure(&view, m)?;
    }
    for (index, (set, m)) in sets.iter().enumerate() {
        let mut files: Vec<_> = m.files().collect();
        files.sort_by_key(|f| !f.log);
        for f in files {
            // Only the first set's images are restored; a later set's are never read.
            let Some((_, found)) = copies.find(index, f.file) else {
                continue;
            };
            compare_sums(&set.shown(f.file), f.size, f.crc32c, *found, f.log)?;
        }
    }
    Ok(())
}

/// The chain rules: starts with a full or copy set; each later set is incremental or
/// differential, from the same log stream, names the previous set as its parent, and its logs
/// continue the previous set's without a gap.
pub fn check_chain(sets: &[BackupManifest]) -> Result<()> {
    let first = sets.first().ok_or(Error::InvalidParameter)?;
    if !first.kind.starts_chain() || first.databases.is_empty() {
        return Err(Error::MissingFullBackup);
    }
    for w in sets.windows(2) {
        let (prev, next) = (&w[0], &w[1]);
        if !next.kind.incremental() {
            return Err(Error::InvalidBackupSequence);
        }
        if next.log_signature != prev.log_signature {
            return Err(Error::GivenLogFileHasBadSignature);
        }
        if next.parent_id.as_deref() != Some(prev.id.as_str()) && prev.kind != BackupKind::Copy {
            return Err(Error::InvalidBackupSequence);
        }
        if next.gen_low as u64 > prev.gen_high as u64 + 1 || next.gen_high < prev.gen_high {
            return Err(Error::GivenLogFileIsNotContiguous);
        }
    }
    Ok(())
}

/// Bytes copied at a time.
const COPY: usize = 1 << 20;

/// Copies the images to `target` and every log once to `target/backup-logs`; returns each
/// database's original path with its restored file. Refuses a target that is a link.
fn lay_out<S: Files>(
    storage: &dyn Storage,
    sets: &[(&S, &BackupManifest)],
    target: &Path,
    copies: &mut Copies,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let logs = target.join("backup-logs");
    refuse_link(storage, &logs)?;
    let (set0, full) = sets.first().ok_or(Error::InvalidParameter)?;
    let names = restored_names(full)?;
    refuse_used(storage, target, &logs, &names)?;
    storage
        .create_dir_all(&logs)
        .map_err(|e| e.in_file(&logs))?;
    let mut ahead = ReadAhead::new(sets);
    let mut map = Vec::new();
    for (d, name) in full.databases.iter().zip(names) {
        let to = target.join(name);
        if !restore::inside(target, &to) {
            return Err(Error::InvalidPath.in_file(&to));
        }
        refuse_link(storage, &to)?;
        let content = copy(ahead.open(0, &d.file), *set0, &d.file, storage, &to)?;
        copies.add(0, &d.file, to.clone(), content);
        map.push((d.original_path.clone(), to));
    }
    let mut copied: HashMap<OsString, usize> = HashMap::new();
    for (index, (set, m)) in sets.iter().enumerate() {
        for l in &m.logs {
            let name = l.file.file_name().ok_or(Error::InvalidPath)?;
            let to = logs.join(name);
            refuse_link(storage, &to)?;
            // Sets of one chain overlap by a log or so; the first copy serves all.
            match copied.get(name) {
                Some(&first) => {
                    let content = copies.made[first].1;
                    copies.add(index, &l.file, to, content);
                }
                None => {
                    let source = ahead.open(index, &l.file);
                    let content = match copy(source, *set, &l.file, storage, &to) {
                        Ok(c) => c,
                        // Left out: the log checks then name the gap with its own error
                        // (`FileNotFound` for a chain's first log, a missing log later).
                        Err(e) if e.clone().plain() == Error::FileNotFound => continue,
                        Err(e) => return Err(e),
                    };
                    copied.insert(name.to_os_string(), copies.made.len());
                    copies.add(index, &l.file, to, content);
                }
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

/// A target that already holds a restore's logs or one of the databases is refused: replay
/// continues through every later log it finds in `backup-logs/` (so an older set restored
/// over a newer restore would come back with the newer commits), and a refused restore must
/// not remove files it did not make.
fn refuse_used(
    storage: &dyn Storage,
    target: &Path,
    logs: &Path,
    names: &[OsString],
) -> Result<()> {
    let used = |what: String| {
        Err(Error::InvalidParameter.with_detail(format!(
            "restore target {} already holds {what}: restore into an empty or new folder",
            target.display()
        )))
    };
    if storage.is_dir(logs)
        && !storage
            .list_entries(logs)
            .map_err(|e| e.in_file(logs))?
            .is_empty()
    {
        return used(format!(
            "{} (the logs of an earlier restore)",
            logs.display()
        ));
    }
    for name in names {
        let db = target.join(name);
        refuse_link(storage, &db)?;
        if storage.exists(&db) {
            return used(db.display().to_string());
        }
    }
    Ok(())
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

/// Files read ahead of the one being copied: each the next [`FILES_AHEAD`] files a restore
/// will copy opened and told to start reading ([`crate::io::File::will_read`]). On an
/// object store every file's first GET has a latency of its own; started ahead, a chain of
/// many small logs waits for it about once instead of once per log.
struct ReadAhead<'a, S: Files> {
    sets: &'a [(&'a S, &'a BackupManifest)],
    /// What a restore copies, in its order: the first set's images, then each log name the
    /// first time a set of the chain has it. Set index, name, bytes as stored.
    plan: Vec<(usize, &'a Path, u64)>,
    /// Plan entries before this one were opened.
    opened: usize,
    ready: HashMap<(usize, PathBuf), Result<FileRef>>,
}

/// Files opened ahead of the one being copied.
const FILES_AHEAD: usize = 4;

impl<'a, S: Files> ReadAhead<'a, S> {
    fn new(sets: &'a [(&'a S, &'a BackupManifest)]) -> Self {
        let mut plan = Vec::new();
        if let Some((_, full)) = sets.first() {
            for d in &full.databases {
                plan.push((
                    0,
                    d.file.as_path(),
                    d.stored.as_ref().map_or(d.size, |s| s.size),
                ));
            }
        }
        let mut seen = HashSet::new();
        for (index, (_, m)) in sets.iter().enumerate() {
            for l in &m.logs {
                if seen.insert(l.file.file_name()) {
                    let stored = l.stored.as_ref().map_or(l.size, |s| s.size);
                    plan.push((index, l.file.as_path(), stored));
                }
            }
        }
        ReadAhead {
            sets,
            plan,
            opened: 0,
            ready: HashMap::new(),
        }
    }

    /// Opens plan entry `at` and starts its first read.
    fn start(&self, at: usize) -> ((usize, PathBuf), Result<FileRef>) {
        let (index, name, stored) = self.plan[at];
        let file = self.sets[index].0.open_read_sized(name, stored);
        if let Ok(f) = &file {
            f.will_read();
        }
        ((index, name.to_path_buf()), file)
    }

    /// The file `name` of set `index`, opened (ahead, or now), with the next files started.
    fn open(&mut self, index: usize, name: &Path) -> Result<FileRef> {
        let key = (index, name.to_path_buf());
        let file = match self.ready.remove(&key) {
            Some(file) => file,
            None => {
                let stored = self
                    .plan
                    .iter()
                    .find(|(i, n, _)| *i == index && *n == name)
                    .map(|p| p.2);
                match stored {
                    Some(stored) => self.sets[index].0.open_read_sized(name, stored),
                    None => self.sets[index].0.open_read(name),
                }
            }
        };
        if let Some(at) = self
            .plan
            .iter()
            .position(|(i, n, _)| *i == index && *n == name)
        {
            self.opened = self.opened.max(at + 1);
            while self.opened < self.plan.len() && self.opened <= at + FILES_AHEAD {
                let (k, f) = self.start(self.opened);
                self.ready.insert(k, f);
                self.opened += 1;
            }
        }
        file
    }
}

/// Copies `source`, the set's file `name` opened for reading, over `to` a bounded chunk at
/// a time, then syncs `to`; returns the length and CRC-32C of what it copied.
fn copy<S: Files + ?Sized>(
    source: Result<FileRef>,
    set: &S,
    name: &Path,
    storage: &dyn Storage,
    to: &Path,
) -> Result<Content> {
    let from = &set.shown(name);
    let src = source.map_err(|e| e.in_file(from))?;
    let dst = storage
        .open(to, OpenMode::Create)
        .map_err(|e| e.in_file(to))?;
    let copied = copy_into(&*src, from, &*dst, to);
    if copied.is_err() {
        // Not a restored file: a refused restore leaves nothing that looks like one.
        let _ = storage.remove(to);
    }
    copied
}

/// The copy loop of [`copy`]: up to the source's length, or to where its reads end if
/// that comes first (a file shorter than its manifest says is copied as it is, and the
/// checks on the copy name what is wrong with it).
fn copy_into(
    src: &dyn crate::io::File,
    from: &Path,
    dst: &dyn crate::io::File,
    to: &Path,
) -> Result<Content> {
    let write = |e: Error| e.in_file(to);
    dst.set_len(0).map_err(write)?;
    let len = src.len().map_err(|e| e.in_file(from))?;
    let mut buf = vec![0u8; COPY];
    let mut at = 0u64;
    let mut crc = 0u32;
    while at < len {
        let want = COPY.min((len - at) as usize);
        let n = src
            .read_at(&mut buf[..want], at)
            .map_err(|e| e.in_file(from))?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        dst.write_at(&buf[..n], at).map_err(write)?;
        at += n as u64;
    }
    dst.sync().map_err(write)?;
    Ok(Content {
        len: at,
        crc32c: crc,
    })
}
