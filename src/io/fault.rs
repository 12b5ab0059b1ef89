//! An in-memory [`Storage`] that models a disk behind a volatile page cache, with scripted
//! faults, so durability tests can cut the power at any point and check what survives.
//!
//! # Model
//!
//! * **File data.** Each file has `current` bytes (the page cache: what reads and `len` see) and
//!   `durable` bytes (the platter: what survives [`FaultStorage::crash`]). `write_at` and
//!   `set_len` change `current`; [`File::sync`] copies `current` to `durable`.
//! * **Directory entries.** Creation, rename and removal change the live directory at once and
//!   become durable at [`Storage::sync_dir`] of their parent directory. One relaxation, chosen
//!   because ext4 (`data=ordered`) and XFS behave this way in practice: the first successful
//!   `sync` of a file that has never had a durable name also makes its current name durable.
//!   Renames and removals of files that already had a durable name need `sync_dir`, so a
//!   missing `sync_dir` after an atomic-replace rename is caught.
//! * **Directories themselves** are durable as soon as `create_dir_all` returns.
//! * **Crash.** [`FaultStorage::crash`] reverts every file to its durable bytes and the
//!   directory to its durable entries. Handles opened before a crash belong to the process that
//!   died: every call on them fails with `DiskIO`; reopen through the storage.
//! * **Locks.** [`Storage::lock`] holds a lock on a file (its inode, as `flock` does) until the
//!   guard drops; a second lock of the same file, through this storage or any clone of it, is
//!   refused with `FileAccessDenied`, as another process would be. A crash is the death of
//!   every process: it releases every lock, and a guard from before the crash, dropped late,
//!   does not release a lock taken after it.
//! * **Faults** ([`Fault`]) are armed with [`FaultStorage::arm`]. Each one counts only the
//!   operations that happen after it was armed, and only on live handles that pass the
//!   read-only check. See [`Fault`] for what each does and when it fires.
//!
//! Paths are compared as [`Path`] values, with no canonicalisation (`a/./b` equals `a/b`
//! because `Path` equality ignores interior `.` components, but `a/../a/b` does not).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{File, FileLock, FileRef, OpenMode, Storage};
use crate::{Error, Result};

/// `ENOSPC`, so the injected error looks exactly like the one Linux returns.
const ENOSPC: i32 = 28;

/// A scripted fault, armed with [`FaultStorage::arm`].
///
/// `nth` counts from 1 among the operations the fault watches, from the moment it is armed
/// (`nth: 0` never fires). `path_contains: Some(s)` restricts a fault to files whose current
/// path contains `s`; `None` watches every file. Faults other than [`Fault::NoSpace`] fire once
/// and are then dropped. When several faults fire on the same write, all of them are used up
/// and the strongest wins: `CrashAtWrite`, then `FailWrite`, then `NoSpace`, then `TornWrite`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The nth watched write returns `DiskIO` and changes nothing.
    FailWrite {
        /// Which watched write fails, counting from 1.
        nth: u64,
        /// Watch only files whose path contains this.
        path_contains: Option<String>,
    },
    /// The nth watched write succeeds, but only its first `keep` bytes reached the platter.
    ///
    /// Silent, as torn writes are: reads see the whole write. If the file is synced before the
    /// next crash, the whole write is durable. If a crash comes first, the first `keep` bytes of
    /// this write are applied over the durable bytes (extending them if the write was past
    /// their end) and the rest of the range keeps its old durable bytes.
    TornWrite {
        /// Which watched write is torn, counting from 1.
        nth: u64,
        /// Watch only files whose path contains this.
        path_contains: Option<String>,
        /// How many leading bytes of the write survive a crash.
        keep: usize,
    },
    /// The nth watched read returns `DiskIO` and reads nothing: a disk that fails a read
    /// (EIO), which the engine must report without losing anything or giving up more than
    /// the operation that met it.
    FailRead {
        /// Which watched read fails, counting from 1.
        nth: u64,
        /// Watch only files whose path contains this.
        path_contains: Option<String>,
    },
    /// The nth watched `sync` returns `DiskIO` and leaves the durable bytes unchanged.
    ///
    /// Linux may drop the dirty pages after a failed fsync and report success on the next one
    /// ("fsyncgate"). Here `current` is kept and a later successful `sync` does persist it; the
    /// engine must not rely on that and must treat the file as poisoned after a failed sync.
    FailSync {
        /// Which watched sync fails, counting from 1.
        nth: u64,
        /// Watch only files whose path contains this.
        path_contains: Option<String>,
    },
    /// The disk fills up: a write that would grow a watched file fails with `DiskFull`
    /// (ENOSPC) once the bytes written to watched files since arming would exceed
    /// `after_bytes`. Writes inside the current length still succeed (and still count).
    /// Persistent until [`FaultStorage::disarm_all`]. `set_len` never fails (sparse files).
    NoSpace {
        /// Watch only files whose path contains this.
        path_contains: Option<String>,
        /// Bytes that may still be written to watched files.
        after_bytes: u64,
    },
    /// The power fails at the nth write (counting every file): the storage crashes as
    /// [`FaultStorage::crash`] does *instead of* performing it, the write returns `DiskIO`, and
    /// the storage stays dead (every call on any handle, and every `Storage` call except
    /// `exists`, fails with `DiskIO`) until [`FaultStorage::restart`].
    CrashAtWrite {
        /// Which write the power fails at, counting from 1.
        nth: u64,
    },
    /// The power fails at the nth watched [`Storage::sync_dir`]: the storage crashes as
    /// [`FaultStorage::crash`] does instead of performing it, so the entries that sync would
    /// have made durable are lost, and it stays dead as after [`Fault::CrashAtWrite`] until
    /// [`FaultStorage::restart`]. For a crash between a rename and the sync of its folder.
    CrashAtDirSync {
        /// Which watched directory sync the power fails at, counting from 1.
        nth: u64,
        /// Watch only directories whose path contains this.
        path_contains: Option<String>,
    },
}

/// Counters since [`FaultStorage::new`]. Calls on live handles count even when a fault makes
/// them fail (writes refused for a read-only handle do not); `bytes_written` counts only bytes
/// that reached the page cache.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// `write_at` calls.
    pub writes: u64,
    /// `sync` calls on files.
    pub syncs: u64,
    /// `write_back` hints on files: counted, never a reason for anything to be durable.
    pub write_backs: u64,
    /// `sync_dir` calls that succeeded.
    pub dir_syncs: u64,
    /// Bytes accepted by `write_at`.
    pub bytes_written: u64,
    /// Crashes, scripted or called.
    pub crashes: u64,
    /// `write_at` calls by the file's path at the time of the call.
    pub writes_by_path: BTreeMap<PathBuf, u64>,
    /// `sync` calls by the file's path at the time of the call.
    pub syncs_by_path: BTreeMap<PathBuf, u64>,
}

impl FaultStats {
    /// `sync` calls on files whose path contains `s` (e.g. `"edb.log"` to count log fsyncs).
    pub fn syncs_by_path_contains(&self, s: &str) -> u64 {
        sum_matching(&self.syncs_by_path, s)
    }

    /// `write_at` calls on files whose path contains `s`.
    pub fn writes_by_path_contains(&self, s: &str) -> u64 {
        sum_matching(&self.writes_by_path, s)
    }
}

fn sum_matching(counts: &BTreeMap<PathBuf, u64>, s: &str) -> u64 {
    counts
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains(s))
        .map(|(_, n)| n)
        .sum()
}

/// An in-memory file system with a volatile page cache, scripted faults and crashes.
///
/// Clones share one file system, so a test keeps a clone to crash it while the engine owns
/// another. Thread-safe: one mutex guards everything, which also makes fault counting
/// deterministic for a given interleaving.
///
/// ```
/// use std::path::Path;
/// use ese::io::{Fault, FaultStorage, OpenMode, Storage};
///
/// let fs = FaultStorage::new();
/// let f = fs.open(Path::new("edb.log"), OpenMode::Create).unwrap();
/// f.write_at(b"synced", 0).unwrap();
/// f.sync().unwrap();
///
/// fs.arm(Fault::FailSync { nth: 1, path_contains: Some("edb.log".into()) });
/// f.write_at(b"lost!!", 0).unwrap();
/// assert!(f.sync().is_err());
///
/// fs.crash();
/// assert!(f.write_at(b"x", 0).is_err()); // handles from before the crash are dead
/// assert_eq!(fs.read_file(Path::new("edb.log")).unwrap(), b"synced");
/// ```
#[derive(Clone, Debug)]
pub struct FaultStorage {
    state: Arc<Mutex<State>>,
}

impl Default for FaultStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultStorage {
    /// An empty file system whose root (`/`) and current directory (`""`) exist.
    pub fn new() -> Self {
        let mut state = State::default();
        state.dirs.insert(PathBuf::new());
        state.dirs.insert(PathBuf::from("/"));
        FaultStorage {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Arms a fault; see [`Fault`] for when it fires.
    pub fn arm(&self, fault: Fault) {
        self.state.lock().armed.push(Armed::new(fault));
    }

    /// Removes every armed fault, fired or not.
    pub fn disarm_all(&self) {
        self.state.lock().armed.clear();
    }

    /// Cuts the power and reboots: every file reverts to its durable bytes (plus the surviving
    /// part of pending torn writes), the directory to its durable entries, and every open
    /// handle dies. The storage is usable at once (this also ends a [`Fault::CrashAtWrite`]
    /// outage). Armed faults stay armed.
    pub fn crash(&self) {
        let mut s = self.state.lock();
        s.crash();
        s.dead = false;
    }

    /// Ends the outage a [`Fault::CrashAtWrite`] started, so new `open`s work. Handles from
    /// before the crash stay dead. A no-op when the storage is up.
    pub fn restart(&self) {
        self.state.lock().dead = false;
    }

    /// Whether a [`Fault::CrashAtWrite`] has fired and [`restart`](Self::restart) has not yet
    /// been called; lets a crash-at-every-write loop tell when the workload finished first.
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FaultStats {
        self.state.lock().stats.clone()
    }

    /// The bytes a read would see now, or `None` if no file is at `path`. Works while dead.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.lock();
        let ino = s.dir.get(path)?;
        s.inodes.get(ino).map(|i| i.current.clone())
    }

    /// Puts a file at `path` holding `bytes`, both cached and durable, with a durable name,
    /// bypassing faults and counters and creating missing parent directories. Drops the
    /// file's pending torn writes. Works while dead.
    pub fn write_file_raw(&self, path: &Path, bytes: &[u8]) {
        let mut s = self.state.lock();
        let ino = match s.dir.get(path) {
            Some(&ino) => ino,
            None => s.new_inode(path),
        };
        s.add_dirs(path.parent().unwrap_or(Path::new("")));
        s.durable_dir.insert(path.to_path_buf(), ino);
        s.gc();
        if let Some(inode) = s.inodes.get_mut(&ino) {
            inode.current = bytes.to_vec();
            inode.durable = bytes.to_vec();
            inode.torn.clear();
            inode.linked = true;
        }
    }

    /// Flips bit `bit % 8` of byte `byte_offset` in both the cached and the durable bytes
    /// (wherever the file is that long), as media corruption would. `FileNotFound` if there is
    /// no file, `FileIOBeyondEOF` if neither copy reaches the offset.
    pub fn flip_bit(&self, path: &Path, byte_offset: u64, bit: u8) -> Result<()> {
        let mut s = self.state.lock();
        let inode = s.file_mut(path)?;
        let at = usize::try_from(byte_offset).map_err(|_| Error::FileIOBeyondEOF)?;
        let mask = 1u8 << (bit % 8);
        let mut hit = false;
        for bytes in [&mut inode.current, &mut inode.durable] {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= mask;
                hit = true;
            }
        }
        if hit {
            Ok(())
        } else {
            Err(Error::FileIOBeyondEOF)
        }
    }

    /// Sets both the cached and the durable length to `len` (zero-filling if longer) and drops
    /// pending torn writes, as a file cut short on disk. `FileNotFound` if there is no file.
    pub fn truncate_raw(&self, path: &Path, len: u64) -> Result<()> {
        let mut s = self.state.lock();
        let inode = s.file_mut(path)?;
        let len = usize::try_from(len).map_err(|_| disk_io("length too large"))?;
        inode.current.resize(len, 0);
        inode.durable.resize(len, 0);
        inode.torn.clear();
        Ok(())
    }
}

impl Storage for FaultStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<FileRef> {
        let mut s = self.state.lock();
        s.check_alive()?;
        let ino = match (s.dir.get(path).copied(), mode) {
            (Some(_), OpenMode::CreateNew) => return Err(already_exists(path)),
            (Some(ino), _) => ino,
            (None, OpenMode::Existing | OpenMode::ReadOnly) => return Err(not_found(path)),
            (None, OpenMode::Create | OpenMode::CreateNew) => s.create(path)?,
        };
        if let Some(inode) = s.inodes.get_mut(&ino) {
            inode.handles += 1;
        }
        Ok(Arc::new(FaultFile {
            state: Arc::clone(&self.state),
            ino,
            epoch: s.epoch,
            read_only: mode == OpenMode::ReadOnly,
        }))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.check_alive()?;
        s.dir.remove(path).ok_or_else(|| not_found(path))?;
        s.gc();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.state.lock().rename(from, to)
    }

    /// Answers from the live directory even while dead: it changes nothing.
    fn exists(&self, path: &Path) -> bool {
        self.state.lock().dir.contains_key(path)
    }

    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let s = self.state.lock();
        s.check_alive()?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        // BTreeMap order is `Path` order, the order `OsStorage` sorts into.
        Ok(s.dir
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.check_alive()?;
        s.add_dirs(dir);
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.state.lock().dirs.contains(path)
    }

    fn list_entries(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let s = self.state.lock();
        s.check_alive()?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let mut out: Vec<PathBuf> = s.entries_in(dir).collect();
        out.sort();
        Ok(out)
    }

    /// Like creation, removal of a directory is durable at once; it must be empty.
    fn remove_dir(&self, dir: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.check_alive()?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        if s.entries_in(dir).next().is_some() {
            return Err(disk_io("directory not empty"));
        }
        s.dirs.remove(dir);
        // Durable names of files removed without a directory sync go with the directory.
        s.durable_dir.retain(|p, _| p.parent() != Some(dir));
        s.gc();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.state.lock().sync_dir(dir)
    }

    fn lock(&self, path: &Path) -> Result<FileLock> {
        let mut s = self.state.lock();
        s.check_alive()?;
        let ino = *s.dir.get(path).ok_or_else(|| not_found(path))?;
        if s.locks.contains_key(&ino) {
            return Err(Error::FileAccessDenied);
        }
        s.next_lock += 1;
        let token = s.next_lock;
        s.locks.insert(ino, token);
        let held = FaultLock {
            state: Arc::clone(&self.state),
            ino,
            token,
        };
        Ok(FileLock::new(path, held))
    }
}

/// What keeps a simulated lock: the locked inode and the token it was taken with.
struct FaultLock {
    state: Arc<Mutex<State>>,
    ino: u64,
    token: u64,
}

impl Drop for FaultLock {
    // Releases only its own lock: after a crash the inode may be locked again by a new holder.
    fn drop(&mut self) {
        let mut s = self.state.lock();
        if s.locks.get(&self.ino) == Some(&self.token) {
            s.locks.remove(&self.ino);
        }
    }
}

/// A handle: the inode it names and the boot (`epoch`) it was opened in.
struct FaultFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    epoch: u64,
    read_only: bool,
}

impl fmt::Debug for FaultFile {
    // The shared state holds every file's bytes; printing it per handle would drown the output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultFile")
            .field("ino", &self.ino)
            .field("epoch", &self.epoch)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl File for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut s = self.state.lock();
        let path = s.live_inode(self)?.path.clone();
        if s.fires(&path, Armed::on_read) {
            return Err(disk_io("read failed (FailRead)"));
        }
        let data = &s.live_inode(self)?.current;
        let start = match usize::try_from(offset) {
            Ok(start) if start < data.len() => start,
            _ => return Ok(0),
        };
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.state.lock().write(self, buf, offset)
    }

    fn sync(&self) -> Result<()> {
        self.state.lock().sync(self)
    }

    fn write_back(&self, _offset: u64, _len: u64) {
        // A page cache with no disk behind it has nothing to start; the hint makes nothing
        // durable, as on a real disk, where only `sync` decides.
        self.state.lock().stats.write_backs += 1;
    }

    fn len(&self) -> Result<u64> {
        let s = self.state.lock();
        Ok(s.live_inode(self)?.current.len() as u64)
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let mut s = self.state.lock();
        if self.read_only {
            s.live_inode(self)?;
            return Err(disk_io("set_len through a read-only handle"));
        }
        let len = usize::try_from(len).map_err(|_| disk_io("length too large"))?;
        s.live_inode_mut(self)?.current.resize(len, 0);
        Ok(())
    }
}

impl Drop for FaultFile {
    // Keeps an unlinked file alive while handles remain, then frees its bytes.
    fn drop(&mut self) {
        let mut s = self.state.lock();
        if s.epoch != self.epoch {
            return;
        }
        if let Some(inode) = s.inodes.get_mut(&self.ino) {
            inode.handles = inode.handles.saturating_sub(1);
        }
        s.gc();
    }
}

/// One file's bytes, independent of its name, so handles follow renames as on POSIX.
#[derive(Default)]
struct Inode {
    /// The live name, used by path filters and per-path counters.
    path: PathBuf,
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Torn writes since the last sync: (offset, the bytes that would survive a crash).
    torn: Vec<(usize, Vec<u8>)>,
    /// Open handles from the current boot.
    handles: usize,
    /// Whether the file has ever had a durable name (see the module docs' relaxation).
    linked: bool,
}

impl fmt::Debug for Inode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inode")
            .field("path", &self.path)
            .field("current_len", &self.current.len())
            .field("durable_len", &self.durable.len())
            .field("torn", &self.torn.len())
            .field("handles", &self.handles)
            .finish()
    }
}

impl Inode {
    fn write(&mut self, start: usize, buf: &[u8]) {
        overwrite(&mut self.current, start, buf);
    }

    /// Power loss: the platter keeps the durable bytes plus the torn prefixes.
    fn revert(&mut self) {
        for (start, bytes) in std::mem::take(&mut self.torn) {
            overwrite(&mut self.durable, start, &bytes);
        }
        self.current = self.durable.clone();
        self.handles = 0;
    }
}

fn overwrite(data: &mut Vec<u8>, start: usize, buf: &[u8]) {
    let end = start + buf.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(buf);
}

/// An armed fault and its counters since arming.
#[derive(Debug)]
struct Armed {
    fault: Fault,
    /// Watched operations seen, for `nth`.
    seen: u64,
    /// Bytes written to watched files, for `NoSpace`.
    used: u64,
}

/// What the armed faults do to one write.
#[derive(Default)]
struct WriteVerdict {
    crash: bool,
    fail: bool,
    full: bool,
    torn: Option<usize>,
}

impl Armed {
    fn new(fault: Fault) -> Self {
        Armed {
            fault,
            seen: 0,
            used: 0,
        }
    }

    fn watches(&self, path: &Path) -> bool {
        let filter = match &self.fault {
            Fault::FailWrite { path_contains, .. }
            | Fault::FailRead { path_contains, .. }
            | Fault::TornWrite { path_contains, .. }
            | Fault::FailSync { path_contains, .. }
            | Fault::NoSpace { path_contains, .. }
            | Fault::CrashAtDirSync { path_contains, .. } => path_contains.as_deref(),
            Fault::CrashAtWrite { .. } => None,
        };
        match filter {
            None => true,
            Some(s) => path.to_string_lossy().contains(s),
        }
    }

    /// Counts one watched operation of a fault that fires once, at the nth: (it fires now, it
    /// stays armed).
    fn once(&mut self, nth: u64) -> (bool, bool) {
        let fired = self.tick(nth);
        (fired, !fired)
    }

    /// Counts one watched operation; true if it is the nth.
    fn tick(&mut self, nth: u64) -> bool {
        self.seen += 1;
        self.seen == nth
    }

    /// Adds this fault's effect on a write to `v`; returns whether the fault stays armed.
    fn on_write(&mut self, grows: bool, len: u64, v: &mut WriteVerdict) -> bool {
        match self.fault {
            Fault::CrashAtWrite { nth } => fire_once(self.tick(nth), &mut v.crash),
            Fault::FailWrite { nth, .. } => fire_once(self.tick(nth), &mut v.fail),
            Fault::TornWrite { nth, keep, .. } => {
                let fired = self.tick(nth);
                if fired {
                    v.torn = Some(keep);
                }
                !fired
            }
            Fault::NoSpace { after_bytes, .. } => {
                v.full |= grows && self.used.saturating_add(len) > after_bytes;
                true
            }
            Fault::FailRead { .. } | Fault::FailSync { .. } | Fault::CrashAtDirSync { .. } => true,
        }
    }

    /// Returns (this read fails, the fault stays armed).
    fn on_read(&mut self) -> (bool, bool) {
        match self.fault {
            Fault::FailRead { nth, .. } => self.once(nth),
            _ => (false, true),
        }
    }

    /// Returns (the power fails at this directory sync, the fault stays armed).
    fn on_dir_sync(&mut self) -> (bool, bool) {
        match self.fault {
            Fault::CrashAtDirSync { nth, .. } => self.once(nth),
            _ => (false, true),
        }
    }

    /// Returns (this sync fails, the fault stays armed).
    fn on_sync(&mut self) -> (bool, bool) {
        match self.fault {
            Fault::FailSync { nth, .. } => self.once(nth),
            _ => (false, true),
        }
    }
}

/// Sets `flag` if the fault fired; returns whether it stays armed.
fn fire_once(fired: bool, flag: &mut bool) -> bool {
    *flag |= fired;
    !fired
}

/// Everything behind the one mutex.
#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    /// The live directory: what `open`, `list` and `exists` see.
    dir: BTreeMap<PathBuf, u64>,
    /// The directory a crash goes back to.
    durable_dir: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    next_ino: u64,
    /// Bumped by every crash; handles from older epochs are dead.
    epoch: u64,
    /// Down after a `CrashAtWrite`, until `restart`.
    dead: bool,
    armed: Vec<Armed>,
    stats: FaultStats,
    /// Locked inodes and the token of the lock on each.
    locks: HashMap<u64, u64>,
    /// The last lock token handed out.
    next_lock: u64,
}

impl State {
    fn check_alive(&self) -> Result<()> {
        if self.dead {
            return Err(disk_io("storage crashed (CrashAtWrite); call restart()"));
        }
        Ok(())
    }

    fn check_handle(&self, h: &FaultFile) -> Result<()> {
        self.check_alive()?;
        if h.epoch != self.epoch {
            return Err(disk_io("handle opened before a crash"));
        }
        Ok(())
    }

    fn live_inode(&self, h: &FaultFile) -> Result<&Inode> {
        self.check_handle(h)?;
        // Unreachable while `gc` respects handle counts; an error beats a panic regardless.
        self.inodes
            .get(&h.ino)
            .ok_or_else(|| disk_io("file vanished"))
    }

    fn live_inode_mut(&mut self, h: &FaultFile) -> Result<&mut Inode> {
        self.check_handle(h)?;
        self.inodes
            .get_mut(&h.ino)
            .ok_or_else(|| disk_io("file vanished"))
    }

    fn file_mut(&mut self, path: &Path) -> Result<&mut Inode> {
        let ino = *self.dir.get(path).ok_or_else(|| not_found(path))?;
        self.inodes.get_mut(&ino).ok_or_else(|| not_found(path))
    }

    fn check_parent(&self, path: &Path) -> Result<()> {
        match path.parent() {
            Some(parent) if !self.dirs.contains(parent) => Err(not_found(parent)),
            _ => Ok(()),
        }
    }

    /// The live files and directories directly inside `dir`.
    fn entries_in<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = PathBuf> + 'a {
        let files = self.dir.keys().filter(move |p| p.parent() == Some(dir));
        let dirs = self.dirs.iter().filter(move |p| p.parent() == Some(dir));
        files.chain(dirs).cloned()
    }

    fn add_dirs(&mut self, dir: &Path) {
        for d in dir.ancestors() {
            self.dirs.insert(d.to_path_buf());
        }
    }

    fn new_inode(&mut self, path: &Path) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        let inode = Inode {
            path: path.to_path_buf(),
            ..Inode::default()
        };
        self.inodes.insert(ino, inode);
        self.dir.insert(path.to_path_buf(), ino);
        ino
    }

    fn create(&mut self, path: &Path) -> Result<u64> {
        self.check_parent(path)?;
        Ok(self.new_inode(path))
    }

    /// Frees files with no name, live or durable, and no open handle.
    fn gc(&mut self) {
        let named: HashSet<u64> = self
            .dir
            .values()
            .chain(self.durable_dir.values())
            .copied()
            .collect();
        self.inodes
            .retain(|ino, inode| inode.handles > 0 || named.contains(ino));
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<()> {
        self.check_alive()?;
        let ino = *self.dir.get(from).ok_or_else(|| not_found(from))?;
        self.check_parent(to)?;
        if from == to {
            return Ok(());
        }
        self.dir.remove(from);
        self.dir.insert(to.to_path_buf(), ino);
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.path = to.to_path_buf();
        }
        self.gc();
        Ok(())
    }

    fn sync_dir(&mut self, dir: &Path) -> Result<()> {
        self.check_alive()?;
        if !self.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        if self.dir_sync_crashes(dir) {
            self.crash();
            self.dead = true;
            return Err(disk_io("power failed at this folder sync (CrashAtDirSync)"));
        }
        self.durable_dir.retain(|p, _| p.parent() != Some(dir));
        for (p, &ino) in self.dir.iter().filter(|(p, _)| p.parent() == Some(dir)) {
            self.durable_dir.insert(p.clone(), ino);
            if let Some(inode) = self.inodes.get_mut(&ino) {
                inode.linked = true;
            }
        }
        self.stats.dir_syncs += 1;
        self.gc();
        Ok(())
    }

    fn write(&mut self, h: &FaultFile, buf: &[u8], offset: u64) -> Result<()> {
        let inode = self.live_inode(h)?;
        if h.read_only {
            return Err(disk_io("write through a read-only handle"));
        }
        let path = inode.path.clone();
        let start = usize::try_from(offset).map_err(|_| disk_io("offset too large"))?;
        let grows = start.saturating_add(buf.len()) > inode.current.len();
        let len = buf.len() as u64;
        count(&mut self.stats.writes_by_path, &path);
        self.stats.writes += 1;
        let verdict = self.write_verdict(&path, grows, len);
        if verdict.crash {
            self.crash();
            self.dead = true;
            return Err(disk_io("power failed at this write (CrashAtWrite)"));
        }
        if verdict.fail {
            return Err(disk_io("write failed (FailWrite)"));
        }
        if verdict.full {
            return Err(disk_full());
        }
        self.charge_space(&path, len);
        self.stats.bytes_written += len;
        let inode = self.live_inode_mut(h)?;
        inode.write(start, buf);
        if let Some(keep) = verdict.torn {
            inode
                .torn
                .push((start, buf[..keep.min(buf.len())].to_vec()));
        }
        Ok(())
    }

    fn write_verdict(&mut self, path: &Path, grows: bool, len: u64) -> WriteVerdict {
        let mut v = WriteVerdict::default();
        self.armed
            .retain_mut(|a| !a.watches(path) || a.on_write(grows, len, &mut v));
        v
    }

    fn charge_space(&mut self, path: &Path, len: u64) {
        for a in &mut self.armed {
            if matches!(a.fault, Fault::NoSpace { .. }) && a.watches(path) {
                a.used = a.used.saturating_add(len);
            }
        }
    }

    fn sync(&mut self, h: &FaultFile) -> Result<()> {
        let path = self.live_inode(h)?.path.clone();
        count(&mut self.stats.syncs_by_path, &path);
        self.stats.syncs += 1;
        if self.sync_fails(&path) {
            return Err(disk_io("fsync failed (FailSync)"));
        }
        let first_name = self.dir.get(&path) == Some(&h.ino);
        let inode = self.live_inode_mut(h)?;
        inode.durable = inode.current.clone();
        inode.torn.clear();
        if first_name && !inode.linked {
            inode.linked = true;
            self.durable_dir.insert(path, h.ino);
            self.gc();
        }
        Ok(())
    }

    fn dir_sync_crashes(&mut self, dir: &Path) -> bool {
        self.fires(dir, Armed::on_dir_sync)
    }

    fn sync_fails(&mut self, path: &Path) -> bool {
        self.fires(path, Armed::on_sync)
    }

    /// Asks every armed fault that watches `path` whether it fires (`on` answers fired, stays
    /// armed); drops those used up. True if any fired.
    fn fires(&mut self, path: &Path, on: fn(&mut Armed) -> (bool, bool)) -> bool {
        let mut any = false;
        self.armed.retain_mut(|a| {
            if !a.watches(path) {
                return true;
            }
            let (fired, keep) = on(a);
            any |= fired;
            keep
        });
        any
    }

    fn crash(&mut self) {
        for inode in self.inodes.values_mut() {
            inode.revert();
        }
        self.dir = self.durable_dir.clone();
        for (p, ino) in &self.dir {
            if let Some(inode) = self.inodes.get_mut(ino) {
                inode.path = p.clone();
            }
        }
        self.epoch += 1;
        self.stats.crashes += 1;
        // Every process died with the power: their locks with them.
        self.locks.clear();
        self.gc();
    }
}

fn count(counts: &mut BTreeMap<PathBuf, u64>, path: &Path) {
    match counts.get_mut(path) {
        Some(n) => *n += 1,
        None => {
            counts.insert(path.to_path_buf(), 1);
        }
    }
}

// Errors are built through `Error::from_io`, the mapping `OsStorage` uses, so both storages
// report the same variants; the re-wrapping below pins DiskIO vs DiskFull whatever
// `from_io` does with the kind.

fn disk_io(why: &str) -> Error {
    match Error::from_io(io::Error::other(format!("injected: {why}"))) {
        Error::DiskFull(inner) => Error::DiskIO(inner),
        e => e,
    }
}

fn disk_full() -> Error {
    match Error::from_io(io::Error::from_raw_os_error(ENOSPC)) {
        Error::DiskIO(inner) => Error::DiskFull(inner),
        e => e,
    }
}

fn not_found(path: &Path) -> Error {
    let msg = format!("{}: no such file or directory", path.display());
    Error::from_io(io::Error::new(io::ErrorKind::NotFound, msg))
}

fn already_exists(path: &Path) -> Error {
    let msg = format!("{}: file exists", path.display());
    Error::from_io(io::Error::new(io::ErrorKind::AlreadyExists, msg))
}

// `{ .. }` patterns keep these tests compiling whether or not the not-found/exists variants
// carry the OS error.
#[cfg(test)]
#[allow(clippy::unneeded_struct_pattern)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    fn open(fs: &FaultStorage, path: &str) -> FileRef {
        fs.open(p(path), OpenMode::Create).unwrap()
    }

    fn is_disk_io<T>(r: Result<T>) -> bool {
        matches!(r, Err(Error::DiskIO(_)))
    }

    #[test]
    fn crash_keeps_synced_bytes_and_drops_unsynced() {
        let fs = FaultStorage::new();
        let f = open(&fs, "a");
        f.write_at(b"hello", 0).unwrap();
        f.sync().unwrap();
        f.write_at(b"HELLO world", 0).unwrap();
        assert_eq!(fs.read_file(p("a")).unwrap(), b"HELLO world");
        fs.crash();
        assert_eq!(fs.read_file(p("a")).unwrap(), b"hello");
        let f = fs.open(p("a"), OpenMode::Existing).unwrap();
        assert_eq!(f.len().unwrap(), 5);
    }

    #[test]
    fn created_but_never_synced_file_vanishes_at_crash() {
        let fs = FaultStorage::new();
        open(&fs, "a").write_at(b"x", 0).unwrap();
        fs.crash();
        assert!(!fs.exists(p("a")));
    }

    #[test]
    fn fail_sync_leaves_durable_unchanged() {
        let fs = FaultStorage::new();
        let f = open(&fs, "log");
        f.write_at(b"one", 0).unwrap();
        f.sync().unwrap();
        fs.arm(Fault::FailSync {
            nth: 1,
            path_contains: None,
        });
        f.write_at(b"two", 0).unwrap();
        assert!(is_disk_io(f.sync()));
        assert_eq!(fs.read_file(p("log")).unwrap(), b"two");
        fs.crash();
        assert_eq!(fs.read_file(p("log")).unwrap(), b"one");
    }

    #[test]
    fn fail_read_fails_the_nth_matching_read_once() {
        let fs = FaultStorage::new();
        let (log, db) = (open(&fs, "edb.log"), open(&fs, "db.edb"));
        log.write_at(b"log", 0).unwrap();
        db.write_at(b"db", 0).unwrap();
        fs.arm(Fault::FailRead {
            nth: 2,
            path_contains: Some(".edb".into()),
        });
        let mut buf = [0u8; 3];
        assert_eq!(db.read_at(&mut buf, 0).unwrap(), 2);
        assert_eq!(log.read_at(&mut buf, 0).unwrap(), 3, "not watched");
        assert!(is_disk_io(db.read_at(&mut buf, 0)));
        assert_eq!(db.read_at(&mut buf, 0).unwrap(), 2, "fired once, then gone");
        assert_eq!(fs.read_file(p("db.edb")).unwrap(), b"db");
    }

    #[test]
    fn fail_write_counts_only_matching_paths() {
        let fs = FaultStorage::new();
        let (log, db) = (open(&fs, "edb.log"), open(&fs, "db.edb"));
        fs.arm(Fault::FailWrite {
            nth: 2,
            path_contains: Some(".log".into()),
        });
        log.write_at(b"1", 0).unwrap();
        db.write_at(b"x", 0).unwrap();
        db.write_at(b"y", 1).unwrap();
        assert!(is_disk_io(log.write_at(b"2", 1)));
        assert_eq!(fs.read_file(p("edb.log")).unwrap(), b"1");
        log.write_at(b"3", 1).unwrap(); // fired once, then gone
        assert_eq!(fs.read_file(p("edb.log")).unwrap(), b"13");
    }

    #[test]
    fn torn_write_keeps_prefix_after_crash() {
        let fs = FaultStorage::new();
        let f = open(&fs, "db");
        f.write_at(&[0u8; 8], 0).unwrap();
        f.sync().unwrap();
        fs.arm(Fault::TornWrite {
            nth: 1,
            path_contains: None,
            keep: 3,
        });
        f.write_at(&[9u8; 6], 1).unwrap();
        assert_eq!(fs.read_file(p("db")).unwrap(), [0, 9, 9, 9, 9, 9, 9, 0]);
        fs.crash();
        assert_eq!(fs.read_file(p("db")).unwrap(), [0, 9, 9, 9, 0, 0, 0, 0]);
    }

    #[test]
    fn torn_write_is_whole_once_synced() {
        let fs = FaultStorage::new();
        let f = open(&fs, "db");
        fs.arm(Fault::TornWrite {
            nth: 1,
            path_contains: None,
            keep: 1,
        });
        f.write_at(b"abcd", 0).unwrap();
        f.sync().unwrap();
        fs.crash();
        assert_eq!(fs.read_file(p("db")).unwrap(), b"abcd");
    }

    #[test]
    fn no_space_returns_disk_full_after_threshold() {
        let fs = FaultStorage::new();
        let (log, other) = (open(&fs, "edb.log"), open(&fs, "other"));
        fs.arm(Fault::NoSpace {
            path_contains: Some("log".into()),
            after_bytes: 10,
        });
        log.write_at(&[1; 8], 0).unwrap();
        let r = log.write_at(&[2; 4], 8);
        assert!(matches!(r, Err(Error::DiskFull(_))), "{r:?}");
        log.write_at(&[3; 2], 0).unwrap(); // overwrite in place needs no space
        assert!(matches!(log.write_at(&[4], 8), Err(Error::DiskFull(_))));
        other.write_at(&[5; 64], 0).unwrap();
        fs.disarm_all();
        log.write_at(&[2; 4], 8).unwrap();
    }

    #[test]
    fn rename_without_sync_dir_reverts_at_crash() {
        let fs = FaultStorage::new();
        fs.create_dir_all(p("d")).unwrap();
        for (name, body) in [("d/chk", b"old"), ("d/chk.tmp", b"new")] {
            let f = open(&fs, name);
            f.write_at(body, 0).unwrap();
            f.sync().unwrap();
        }
        fs.rename(p("d/chk.tmp"), p("d/chk")).unwrap();
        assert_eq!(fs.list(p("d")).unwrap(), [PathBuf::from("d/chk")]);
        fs.crash();
        assert_eq!(fs.read_file(p("d/chk")).unwrap(), b"old");
        assert_eq!(fs.read_file(p("d/chk.tmp")).unwrap(), b"new");

        fs.rename(p("d/chk.tmp"), p("d/chk")).unwrap();
        fs.sync_dir(p("d")).unwrap();
        fs.crash();
        assert_eq!(fs.list(p("d")).unwrap(), [PathBuf::from("d/chk")]);
        assert_eq!(fs.read_file(p("d/chk")).unwrap(), b"new");
    }

    #[test]
    fn remove_without_sync_dir_reverts_at_crash() {
        let fs = FaultStorage::new();
        fs.write_file_raw(p("x"), b"keep");
        fs.remove(p("x")).unwrap();
        assert!(!fs.exists(p("x")));
        fs.crash();
        assert_eq!(fs.read_file(p("x")).unwrap(), b"keep");
    }

    #[test]
    fn crash_at_write_kills_old_handles_until_restart() {
        let fs = FaultStorage::new();
        let f = open(&fs, "a");
        f.write_at(b"ab", 0).unwrap();
        f.sync().unwrap();
        fs.arm(Fault::CrashAtWrite { nth: 2 });
        f.write_at(b"c", 2).unwrap();
        assert!(is_disk_io(f.write_at(b"d", 3)));
        assert!(fs.is_dead());
        assert!(is_disk_io(f.read_at(&mut [0; 1], 0)));
        assert!(is_disk_io(fs.open(p("a"), OpenMode::Existing)));
        fs.restart();
        assert!(is_disk_io(f.sync()));
        let g = fs.open(p("a"), OpenMode::Existing).unwrap();
        let mut buf = [0; 4];
        assert_eq!(g.read_at(&mut buf, 0).unwrap(), 2);
        assert_eq!(&buf[..2], b"ab");
        assert_eq!(fs.stats().crashes, 1);
    }

    #[test]
    fn crash_at_dir_sync_loses_the_rename_it_would_have_made_durable() {
        let fs = FaultStorage::new();
        fs.create_dir_all(p("d")).unwrap();
        let f = open(&fs, "d/m.tmp");
        f.write_at(b"m", 0).unwrap();
        f.sync().unwrap();
        fs.rename(p("d/m.tmp"), p("d/m")).unwrap();
        fs.arm(Fault::CrashAtDirSync {
            nth: 1,
            path_contains: Some("d".into()),
        });
        assert!(is_disk_io(fs.sync_dir(p("d"))));
        assert!(fs.is_dead());
        fs.restart();
        assert!(fs.exists(p("d/m.tmp")), "the durable name is the old one");
        assert!(!fs.exists(p("d/m")), "the rename was never made durable");
        // Disarmed by firing: the next sync makes a rename durable.
        fs.rename(p("d/m.tmp"), p("d/m")).unwrap();
        fs.sync_dir(p("d")).unwrap();
        fs.crash();
        assert!(fs.exists(p("d/m")));
    }

    #[test]
    fn stats_count_syncs_per_path() {
        let fs = FaultStorage::new();
        let (log, db) = (open(&fs, "edb.log"), open(&fs, "db.edb"));
        for i in 0..5u64 {
            log.write_at(b"r", i).unwrap();
            if i % 2 == 0 {
                log.sync().unwrap();
            }
        }
        db.sync().unwrap();
        let st = fs.stats();
        assert_eq!(st.syncs_by_path_contains("edb.log"), 3);
        assert_eq!(st.syncs_by_path_contains(".edb"), 1);
        assert_eq!((st.syncs, st.writes, st.bytes_written), (4, 5, 5));
        assert_eq!(st.writes_by_path_contains("log"), 5);
    }

    #[test]
    fn read_only_handles_refuse_writes() {
        let fs = FaultStorage::new();
        fs.write_file_raw(p("a"), b"abc");
        let f = fs.open(p("a"), OpenMode::ReadOnly).unwrap();
        assert!(is_disk_io(f.write_at(b"x", 0)));
        assert!(is_disk_io(f.set_len(0)));
        assert!(matches!(
            fs.open(p("b"), OpenMode::ReadOnly),
            Err(Error::FileNotFound { .. })
        ));
    }

    #[test]
    fn open_modes_and_directories() {
        let fs = FaultStorage::new();
        assert!(matches!(
            fs.open(p("nodir/a"), OpenMode::Create),
            Err(Error::FileNotFound { .. })
        ));
        assert!(matches!(
            fs.list(p("nodir")),
            Err(Error::FileNotFound { .. })
        ));
        fs.create_dir_all(p("x/y")).unwrap();
        open(&fs, "x/y/b");
        open(&fs, "x/y/a");
        open(&fs, "x/c");
        assert!(matches!(
            fs.open(p("x/c"), OpenMode::CreateNew),
            Err(Error::FileAlreadyExists { .. })
        ));
        let names = fs.list(p("x/./y/")).unwrap();
        assert_eq!(names, [PathBuf::from("x/y/a"), PathBuf::from("x/y/b")]);
        assert_eq!(fs.list(p("x")).unwrap(), [PathBuf::from("x/c")]);
    }

    #[test]
    fn raw_helpers_damage_both_copies() {
        let fs = FaultStorage::new();
        fs.write_file_raw(p("d/f"), &[0, 0, 0]);
        fs.flip_bit(p("d/f"), 1, 2).unwrap();
        fs.truncate_raw(p("d/f"), 2).unwrap();
        fs.crash();
        assert_eq!(fs.read_file(p("d/f")).unwrap(), [0, 4]);
        assert!(matches!(
            fs.flip_bit(p("d/f"), 9, 0),
            Err(Error::FileIOBeyondEOF)
        ));
        assert!(fs.truncate_raw(p("d/g"), 0).is_err());
    }

    #[test]
    fn unlinked_file_lives_until_its_handle_drops() {
        let fs = FaultStorage::new();
        let f = open(&fs, "tmp");
        fs.remove(p("tmp")).unwrap();
        f.write_at(b"still here", 0).unwrap();
        assert_eq!(f.len().unwrap(), 10);
        drop(f);
        assert!(fs.state.lock().inodes.is_empty());
    }

    #[test]
    fn locks_conflict_until_dropped_or_crashed() {
        let fs = FaultStorage::new();
        let other_process = fs.clone();
        assert!(matches!(
            fs.lock(p("missing")),
            Err(Error::FileNotFound { .. })
        ));
        open(&fs, "x.lck");
        let held = fs.lock(p("x.lck")).unwrap();
        assert_eq!(held.path(), p("x.lck"));
        assert!(matches!(
            other_process.lock(p("x.lck")),
            Err(Error::FileAccessDenied)
        ));
        assert!(matches!(fs.lock(p("x.lck")), Err(Error::FileAccessDenied)));
        drop(held);
        let again = other_process.lock(p("x.lck")).unwrap();
        // A crash releases it; the dead holder's guard, dropped late, leaves the new lock be.
        fs.write_file_raw(p("x.lck"), b"");
        fs.crash();
        let after = fs.lock(p("x.lck")).unwrap();
        drop(again);
        assert!(matches!(
            other_process.lock(p("x.lck")),
            Err(Error::FileAccessDenied)
        ));
        drop(after);
        let _relocked = other_process.lock(p("x.lck")).unwrap();
    }

    #[test]
    fn concurrent_writers_do_not_panic() {
        let fs = FaultStorage::new();
        let shared = open(&fs, "shared");
        fs.arm(Fault::FailSync {
            nth: 7,
            path_contains: None,
        });
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (fs, shared) = (fs.clone(), Arc::clone(&shared));
                std::thread::spawn(move || {
                    let own = open(&fs, &format!("t{t}"));
                    for i in 0..200u64 {
                        shared.write_at(&[t as u8; 8], (t * 200 + i) * 8).unwrap();
                        own.write_at(&i.to_le_bytes(), i * 8).unwrap();
                        let _ = own.sync();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(shared.len().unwrap(), 4 * 200 * 8);
        assert_eq!(fs.stats().writes, 1600);
        assert_eq!(fs.stats().syncs, 800);
    }
}
