//! The log-writer thread: one per instance. It drains every queued command, writes what is
//! contiguous with one `write_at` per file, issues one `fsync` for the whole batch (group
//! commit), then publishes the new durable position and wakes the waiters. A failed write or
//! fsync poisons the log: nothing written after it is ever reported durable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::Receiver;
use parking_lot::{Condvar, Mutex};

use super::names;
use crate::io::{FileRef, OpenMode, StorageRef};
use crate::lsn::Lsn;
use crate::{Error, Result};

/// Called after the durable position moves or the log is poisoned.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// Run once a log position is durable (`Ok`) or never will be (the error).
pub type Waiter = Box<dyn FnOnce(Result<()>) + Send>;

/// What the writer and the instance share.
pub struct LogShared {
    durable: AtomicU64,
    poison: Mutex<Option<Error>>,
    cv: Condvar,
    notify: Mutex<Option<Notify>>,
    fsyncs: AtomicU64,
    batches: AtomicU64,
    /// Batches that made durable writes durable, those writes, and the most in one batch.
    groups: AtomicU64,
    group_writes: AtomicU64,
    largest_group: AtomicU64,
    waiters: Mutex<Vec<(Lsn, Waiter)>>,
}

impl std::fmt::Debug for LogShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogShared")
            .field("durable", &self.durable())
            .finish()
    }
}

impl LogShared {
    pub(crate) fn new(durable: Lsn) -> Arc<LogShared> {
        Arc::new(LogShared {
            durable: AtomicU64::new(durable.0),
            poison: Mutex::new(None),
            cv: Condvar::new(),
            notify: Mutex::new(None),
            fsyncs: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            groups: AtomicU64::new(0),
            group_writes: AtomicU64::new(0),
            largest_group: AtomicU64::new(0),
            waiters: Mutex::new(Vec::new()),
        })
    }
    /// Everything before this position is on disk.
    pub fn durable(&self) -> Lsn {
        Lsn(self.durable.load(Ordering::Acquire))
    }
    /// The error that poisoned the log, as the instance reports it.
    pub fn poisoned(&self) -> Option<Error> {
        self.poison.lock().clone()
    }
    /// Number of fsyncs of log files so far.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }
    /// Number of batches written so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
    /// Group commits so far: the batches that made durable writes (writes that asked for an
    /// fsync) durable, the durable writes they made durable, and the most in one batch.
    pub fn groups(&self) -> (u64, u64, u64) {
        (
            self.groups.load(Ordering::Relaxed),
            self.group_writes.load(Ordering::Relaxed),
            self.largest_group.load(Ordering::Relaxed),
        )
    }
    /// Counts a batch that made `writes` durable writes durable.
    fn count_group(&self, writes: u64) {
        if writes > 0 {
            self.groups.fetch_add(1, Ordering::Relaxed);
            self.group_writes.fetch_add(writes, Ordering::Relaxed);
            self.largest_group.fetch_max(writes, Ordering::Relaxed);
        }
    }
    /// Sets the callback run after every durable advance.
    pub fn set_notify(&self, n: Option<Notify>) {
        *self.notify.lock() = n;
    }
    /// Blocks until `lsn` is durable, or the log is poisoned.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        let mut g = self.poison.lock();
        loop {
            if self.durable() >= lsn {
                return Ok(());
            }
            if let Some(e) = g.clone() {
                return Err(e);
            }
            self.cv.wait(&mut g);
        }
    }
    /// Runs `w` once `lsn` is durable, on the writer thread right after its fsync (or at once,
    /// if it already is): a durable commit is answered without waking anyone in between.
    pub fn when_durable(&self, lsn: Lsn, w: Waiter) {
        let ready = {
            let mut g = self.waiters.lock();
            // Checked under the waiters' lock: `publish` moves the position before it drains.
            if self.durable() >= lsn {
                Ok(())
            } else if let Some(e) = self.poisoned() {
                Err(e)
            } else {
                g.push((lsn, w));
                return;
            }
        };
        w(ready);
    }

    fn drain_waiters(&self, closing: bool) {
        let durable = self.durable();
        let poison = self.poisoned();
        let ready: Vec<(Lsn, Waiter)> = {
            let mut g = self.waiters.lock();
            let all = std::mem::take(&mut *g);
            let (ready, keep): (Vec<_>, Vec<_>) = all
                .into_iter()
                .partition(|(l, _)| *l <= durable || poison.is_some() || closing);
            *g = keep;
            ready
        };
        for (l, w) in ready {
            let res = if l <= durable {
                Ok(())
            } else {
                Err(poison.clone().unwrap_or(Error::InvalidInstance))
            };
            w(res);
        }
    }

    fn publish(&self, durable: Option<Lsn>, err: Option<Error>) {
        {
            let mut g = self.poison.lock();
            if let Some(d) = durable {
                self.durable.fetch_max(d.0, Ordering::AcqRel);
            }
            if let Some(e) = err {
                g.get_or_insert(e);
            }
        }
        self.cv.notify_all();
        self.drain_waiters(false);
        let n = self.notify.lock().clone();
        if let Some(n) = n {
            n();
        }
    }
}

/// A command for the writer.
pub(crate) enum Cmd {
    Write {
        at: Lsn,
        bytes: Vec<u8>,
        sync: bool,
    },
    Sync,
    Roll {
        from: u32,
        header: Vec<u8>,
        recycle: Option<PathBuf>,
        new_start: Lsn,
    },
    Delete(Vec<PathBuf>),
    Stop,
}

pub(crate) struct Writer {
    pub storage: StorageRef,
    pub dir: PathBuf,
    pub base: String,
    pub file_size: u64,
    pub file: FileRef,
    pub shared: Arc<LogShared>,
    /// The batch buffer, kept between batches.
    pub buf: Vec<u8>,
    /// The end of the writes no fsync has covered yet: lazy writes of earlier batches, which
    /// a later batch's sync (a `Sync` alone, or a durable write) makes durable and publishes.
    pub unsynced: Option<Lsn>,
}

/// The poisoned state the instance reports for a failed log write.
fn poison_error(e: &Error) -> Error {
    match e {
        Error::DiskFull(_) => Error::InstanceUnavailableDueToFatalLogDiskFull,
        _ => Error::LogWriteFail,
    }
}

impl Writer {
    pub(crate) fn run(mut self, rx: Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let stop = batch.iter().any(|c| matches!(c, Cmd::Stop));
            let durable_writes = batch
                .iter()
                .filter(|c| matches!(c, Cmd::Write { sync: true, .. }))
                .count() as u64;
            if self.shared.poisoned().is_none() {
                self.shared.batches.fetch_add(1, Ordering::Relaxed);
                match self.run_batch(batch) {
                    Ok(d) => {
                        // Counted before the waiters learn of it, so a caller that saw its
                        // commit durable sees it counted.
                        self.shared.count_group(durable_writes);
                        self.shared.publish(d, None)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "log write failed; the log is poisoned");
                        self.shared.publish(None, Some(poison_error(&e)));
                    }
                }
            }
            if stop {
                break;
            }
        }
        // The writer is gone: nothing waits for a position it will never write.
        self.shared.drain_waiters(true);
    }

    fn run_batch(&mut self, batch: Vec<Cmd>) -> Result<Option<Lsn>> {
        // One buffer for the writer's life: a fresh large buffer per batch costs page faults
        // (the kernel zeroing new pages) that showed as the writer's main cost.
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut buf_at = Lsn(0);
        let mut written_end: Option<Lsn> = self.unsynced.take();
        let mut durable = None;
        let mut need_sync = false;
        for cmd in batch {
            match cmd {
                Cmd::Write { at, bytes, sync } => {
                    let contiguous = !buf.is_empty()
                        && buf_at.gen() == at.gen()
                        && buf_at.offset() as usize + buf.len() == at.offset() as usize;
                    if !contiguous {
                        self.flush(&buf, buf_at)?;
                        buf.clear();
                        buf_at = at;
                    }
                    buf.extend_from_slice(&bytes);
                    written_end = Some(Lsn::new(at.gen(), at.offset() + bytes.len() as u32));
                    need_sync |= sync;
                }
                Cmd::Sync => need_sync = true,
                Cmd::Roll {
                    from,
                    header,
                    recycle,
                    new_start,
                } => {
                    self.flush(&buf, buf_at)?;
                    buf.clear();
                    self.roll(from, &header, recycle)?;
                    durable = Some(new_start);
                    written_end = None;
                    need_sync = false;
                }
                Cmd::Delete(paths) => {
                    for p in paths {
                        match self.storage.remove(&p) {
                            Ok(()) | Err(Error::FileNotFound) => {}
                            Err(e) => {
                                tracing::warn!(path = %p.display(), error = %e, "could not delete an old log")
                            }
                        }
                    }
                }
                Cmd::Stop => need_sync = true,
            }
        }
        let flushed = self.flush(&buf, buf_at);
        self.buf = buf;
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        flushed?;
        if need_sync {
            self.sync()?;
            if let Some(end) = written_end {
                durable = Some(end);
            }
        } else {
            self.unsynced = written_end;
        }
        Ok(durable)
    }

    fn flush(&self, buf: &[u8], at: Lsn) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.file.write_at(buf, at.offset() as u64)
    }

    fn sync(&self) -> Result<()> {
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync()
    }

    /// Closes generation `from`: sync it, then [`install_current`] archiving it (from a
    /// recycled file under circular logging).
    fn roll(&mut self, from: u32, header: &[u8], recycle: Option<PathBuf>) -> Result<()> {
        self.sync()?;
        let file = install_current(
            &*self.storage,
            &self.dir,
            &self.base,
            Some(from),
            header,
            self.file_size,
            recycle,
        )?;
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.file = file;
        Ok(())
    }
}

/// Makes `<base>.log` hold a new generation's `header`: the file is built whole as
/// `<base>tmp.log` (reusing `recycle` when given), synced, then renamed into place, so a
/// crash never leaves a partial `<base>.log`. With `archive: Some(g)` the `<base>.log` there
/// (generation `g`) is first renamed to its archived name, after the new file is built: a
/// crash between the two renames then leaves that file beside the archive, and a folder with
/// no `<base>.log` and no such file is one whose current log was lost (recovery refuses it
/// rather than ending the stream, silently, at the last archived log).
pub fn install_current(
    storage: &dyn crate::io::Storage,
    dir: &std::path::Path,
    base: &str,
    archive: Option<u32>,
    header: &[u8],
    size: u64,
    recycle: Option<PathBuf>,
) -> Result<FileRef> {
    let file = build_temporary(storage, dir, base, header, size, recycle)?;
    if let Some(gen) = archive {
        storage.rename(&names::current(dir, base), &names::archived(dir, base, gen))?;
        // The archive's name must be durable before `<base>.log` names another file.
        storage.sync_dir(dir)?;
    }
    storage.rename(&names::temporary(dir, base), &names::current(dir, base))?;
    storage.sync_dir(dir)?;
    Ok(file)
}

/// Builds `<base>tmp.log` whole with `header` (reusing `recycle` when given) and syncs it.
fn build_temporary(
    storage: &dyn crate::io::Storage,
    dir: &std::path::Path,
    base: &str,
    header: &[u8],
    size: u64,
    recycle: Option<PathBuf>,
) -> Result<FileRef> {
    let tmp = names::temporary(dir, base);
    match storage.remove(&tmp) {
        Ok(()) | Err(Error::FileNotFound) => {}
        Err(e) => return Err(e),
    }
    let mut reused = None;
    if recycle.is_some_and(|old| storage.rename(&old, &tmp).is_ok()) {
        let f = storage.open(&tmp, OpenMode::Existing)?;
        // A file made under another log file size would keep its length under a header
        // naming this one, and no longer read back: it is made again instead.
        if f.len()? == size {
            f.write_at(header, 0)?;
            reused = Some(f);
        } else {
            drop(f);
            storage.remove(&tmp)?;
        }
    }
    let file = match reused {
        Some(f) => f,
        None => {
            let f = storage.open(&tmp, OpenMode::CreateNew)?;
            fill(&*f, header, size)?;
            f
        }
    };
    file.sync()?;
    Ok(file)
}

/// Writes `header` and zeros up to `size`: the file's blocks are allocated now, so a full
/// volume shows at the roll (as ESE's `LogDiskFull`), not in the middle of a commit, and
/// later writes change no file metadata.
pub fn fill(file: &dyn crate::io::File, header: &[u8], size: u64) -> Result<()> {
    file.write_at(header, 0)?;
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let zeros = &ZEROS[..];
    let mut off = header.len() as u64;
    while off < size {
        let n = ((size - off) as usize).min(zeros.len());
        file.write_at(&zeros[..n], off)?;
        off += n as u64;
    }
    Ok(())
}
