//! Layer 4: the write-ahead log. [`Log`] is the instance's side: it assigns positions,
//! frames records, decides when a file is full and rolls to the next generation, and keeps
//! the logs a backup or recovery still needs. The writer thread does the I/O.

pub mod checkpoint;
pub mod delta;
mod format;
pub mod names;
pub mod reader;
mod writer;

pub use format::{
    frame_payload, framed_len, read_record, AttachEntry, Framed, LogHeader, PageDelta, PageImage,
    Record, END_RESERVE, FRAME, LOG_HEADER_SIZE,
};
pub use writer::{fill, install_current, LogShared, Notify, Waiter};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use crate::db::Signature;
use crate::io::{OpenMode, StorageRef};
use crate::lsn::{now_ms, Lsn};
use crate::{Error, Result};
use writer::{Cmd, Writer};

/// Smallest log file size accepted.
pub const MIN_LOG_FILE_SIZE: u64 = 64 * 1024;

/// Where a log stream lives and how it is shaped.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Directory of the log files.
    pub dir: PathBuf,
    /// Three-character base name.
    pub base: String,
    /// Fixed size of each file.
    pub file_size: u64,
    /// Whether old files are reused once the checkpoint passes them.
    pub circular: bool,
}

/// Where appending resumes in an existing stream.
#[derive(Clone, Debug)]
pub struct Resume {
    /// The stream's signature.
    pub signature: Signature,
    /// Generation of `<base>.log`.
    pub gen: u32,
    /// Offset of the next record in it.
    pub offset: u32,
    /// Its creation time.
    pub created_ms: u64,
}

/// The instance's handle on its log stream.
pub struct Log {
    cfg: LogConfig,
    signature: Signature,
    gen: u32,
    offset: u32,
    created_ms: u64,
    preamble: Vec<AttachEntry>,
    /// The framed length of the preamble's record, kept with it: every append checks its
    /// size against the room the preamble leaves, and encoding the list each time showed in
    /// a commit's profile.
    preamble_len: u64,
    archived: BTreeSet<u32>,
    checkpoint_gen: u32,
    hold_from: Option<u32>,
    shared: Arc<LogShared>,
    tx: Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
    /// Bytes of records appended since the log was opened (frames included).
    appended: u64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("gen", &self.gen)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Log {
    /// Starts a brand-new stream: a new signature and generation 1.
    pub fn create(storage: StorageRef, cfg: LogConfig) -> Result<Log> {
        let signature = Signature::generate();
        let created_ms = now_ms();
        let header = LogHeader {
            gen: 1,
            signature,
            created_ms,
            prev_created_ms: 0,
            file_size: cfg.file_size,
            base_name: cfg.base.clone(),
        };
        writer::install_current(
            &*storage,
            &cfg.dir,
            &cfg.base,
            None,
            &header.encode(),
            cfg.file_size,
            None,
        )?;
        let resume = Resume {
            signature,
            gen: 1,
            offset: LOG_HEADER_SIZE,
            created_ms,
        };
        Log::resume(storage, cfg, resume)
    }

    /// Resumes appending to an existing `<base>.log` (after recovery has zeroed its tail).
    pub fn resume(storage: StorageRef, cfg: LogConfig, r: Resume) -> Result<Log> {
        let file = storage.open(&names::current(&cfg.dir, &cfg.base), OpenMode::Existing)?;
        let archived = names::list_archived(&*storage, &cfg.dir, &cfg.base)?
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        let shared = LogShared::new(Lsn::new(r.gen, r.offset));
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer = Writer {
            storage: storage.clone(),
            dir: cfg.dir.clone(),
            base: cfg.base.clone(),
            file_size: cfg.file_size,
            file,
            shared: shared.clone(),
            buf: Vec::new(),
            unsynced: None,
        };
        let thread = std::thread::Builder::new()
            .name("ese-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(Error::from_io)?;
        Ok(Log {
            cfg,
            signature: r.signature,
            gen: r.gen,
            offset: r.offset,
            created_ms: r.created_ms,
            preamble: Vec::new(),
            preamble_len: preamble_len(&[]),
            archived,
            checkpoint_gen: r.gen,
            hold_from: None,
            shared,
            tx,
            thread: Some(thread),
            appended: 0,
        })
    }

    /// The stream's signature.
    pub fn signature(&self) -> Signature {
        self.signature
    }
    /// The current generation (`<base>.log`).
    pub fn gen(&self) -> u32 {
        self.gen
    }
    /// Bytes of records appended since the log was opened, frames included.
    pub fn appended(&self) -> u64 {
        self.appended
    }
    /// Position of the next record.
    pub fn tip(&self) -> Lsn {
        Lsn::new(self.gen, self.offset)
    }
    /// The shared durable state.
    pub fn shared(&self) -> &Arc<LogShared> {
        &self.shared
    }
    /// Everything before this is on disk.
    pub fn durable(&self) -> Lsn {
        self.shared.durable()
    }
    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }
    /// Archived generations on disk, ascending.
    pub fn archived(&self) -> impl Iterator<Item = u32> + '_ {
        self.archived.iter().copied()
    }

    /// Largest payload one record may carry (larger writes are split by the caller).
    pub fn max_payload(&self) -> usize {
        let pre = self.preamble_len;
        (self.cfg.file_size - LOG_HEADER_SIZE as u64 - END_RESERVE as u64 - pre - FRAME as u64 - 8)
            as usize
    }

    /// Sets the attach list written first in every new generation.
    pub fn set_preamble(&mut self, list: Vec<AttachEntry>) {
        self.preamble_len = preamble_len(&list);
        self.preamble = list;
    }

    fn check_poison(&self) -> Result<()> {
        match self.shared.poisoned() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Appends a record and returns the position just after it. `sync` asks the writer to
    /// fsync the batch it lands in (a durable commit); the caller waits on that position.
    pub fn append(&mut self, rec: &Record, sync: bool) -> Result<Lsn> {
        let payload = rec.payload();
        self.position_for(payload.len())?;
        Ok(self.append_here(rec, &payload, sync))
    }

    /// Makes room for a record of `payload_len` bytes (rolling if the file is full) and
    /// returns where it will start, so a caller can stamp pages with its end position.
    pub fn position_for(&mut self, payload_len: usize) -> Result<Lsn> {
        self.check_poison()?;
        if payload_len > self.max_payload() {
            return Err(Error::RecordTooBig);
        }
        let len = framed_len(payload_len) as u64;
        if self.offset as u64 + len + END_RESERVE as u64 > self.cfg.file_size {
            self.roll()?;
        }
        Ok(self.tip())
    }

    fn append_here(&mut self, rec: &Record, payload: &[u8], sync: bool) -> Lsn {
        let at = self.tip();
        let ty = rec.type_byte();
        let bytes = frame_payload(ty, payload, at, self.durable());
        self.offset += bytes.len() as u32;
        self.appended += bytes.len() as u64;
        let _ = self.tx.send(Cmd::Write { at, bytes, sync });
        self.tip()
    }

    /// Asks the writer to make everything appended so far durable.
    pub fn request_sync(&self) {
        let _ = self.tx.send(Cmd::Sync);
    }

    /// Blocks until `lsn` is durable (for synchronous callers; the actor waits on the
    /// notify callback instead).
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        self.shared.wait_durable(lsn)
    }

    /// Ends the current generation and starts the next one (ESE's log roll).
    pub fn roll(&mut self) -> Result<()> {
        self.check_poison()?;
        self.append_here(&Record::End, &[], true);
        let from = self.gen;
        let created = now_ms();
        let header = LogHeader {
            gen: from + 1,
            signature: self.signature,
            created_ms: created,
            prev_created_ms: self.created_ms,
            file_size: self.cfg.file_size,
            base_name: self.cfg.base.clone(),
        };
        let recycle = self.take_recyclable();
        self.gen += 1;
        self.offset = LOG_HEADER_SIZE;
        self.created_ms = created;
        self.archived.insert(from);
        let new_start = self.tip();
        let _ = self.tx.send(Cmd::Roll {
            from,
            header: header.encode(),
            recycle,
            new_start,
        });
        let pre = Record::AttachList(self.preamble.clone());
        let payload = pre.payload();
        self.append_here(&pre, &payload, false);
        tracing::debug!(gen = self.gen, "log rolled");
        Ok(())
    }

    /// The oldest generation nothing needs any more: older than the checkpoint and than any
    /// backup's range.
    fn keep_from(&self) -> u32 {
        self.hold_from
            .map_or(self.checkpoint_gen, |h| h.min(self.checkpoint_gen))
    }

    fn take_recyclable(&mut self) -> Option<PathBuf> {
        if !self.cfg.circular {
            return None;
        }
        let g = *self
            .archived
            .iter()
            .next()
            .filter(|&&g| g < self.keep_from())?;
        self.archived.remove(&g);
        Some(names::archived(&self.cfg.dir, &self.cfg.base, g))
    }

    /// Records the checkpoint generation; under circular logging deletes files it passed,
    /// except those a running backup holds (one is kept for reuse).
    pub fn set_checkpoint_gen(&mut self, gen: u32) {
        self.checkpoint_gen = gen;
        if !self.cfg.circular {
            return;
        }
        let keep = self.keep_from();
        let old: Vec<u32> = self
            .archived
            .iter()
            .copied()
            .filter(|&g| g < keep)
            .collect();
        let doomed: Vec<u32> = old.iter().skip(1).copied().collect();
        self.delete(&doomed);
    }

    /// Keeps every generation from `gen` on disk until released (a backup runs).
    pub fn hold(&mut self, gen: Option<u32>) {
        self.hold_from = gen;
    }

    /// Deletes archived generations (truncation after a backup).
    pub fn delete(&mut self, gens: &[u32]) {
        let paths: Vec<PathBuf> = gens
            .iter()
            .filter(|g| self.archived.remove(g))
            .map(|&g| names::archived(&self.cfg.dir, &self.cfg.base, g))
            .collect();
        if !paths.is_empty() {
            let _ = self.tx.send(Cmd::Delete(paths));
        }
    }

    /// Deletes archived generations now, in increasing order (backup truncation): files
    /// already gone are skipped; the first other failure stops and is returned.
    pub fn delete_now(&mut self, storage: &dyn crate::io::Storage, gens: &[u32]) -> Result<()> {
        let mut sorted = gens.to_vec();
        sorted.sort_unstable();
        for g in sorted {
            match storage.remove(&self.archived_path(g)) {
                Ok(()) | Err(Error::FileNotFound) => {
                    self.archived.remove(&g);
                }
                Err(e) => return Err(e),
            }
        }
        storage.sync_dir(&self.cfg.dir)
    }

    /// Forgets that an archived generation exists (someone else deleted it).
    pub fn forget(&mut self, gen: u32) {
        self.archived.remove(&gen);
    }

    /// Forgets every archived generation that is no longer on disk: logs someone else deleted
    /// (a backup client that truncated them itself and said so with `TRUNCATE_DONE`, an
    /// operator). Call it with every roll done (no rename pending), as after a roll's
    /// `wait_durable`. If the directory cannot be listed the set stays as it is.
    pub fn forget_missing(&mut self, storage: &dyn crate::io::Storage) {
        match names::list_archived(storage, &self.cfg.dir, &self.cfg.base) {
            Ok(found) => {
                let on_disk: BTreeSet<u32> = found.into_iter().map(|(g, _)| g).collect();
                self.archived.retain(|g| on_disk.contains(g));
            }
            Err(e) => {
                tracing::warn!(error = %e, "log directory not listed; archived logs kept as known")
            }
        }
    }

    /// Path of an archived generation.
    pub fn archived_path(&self, gen: u32) -> PathBuf {
        names::archived(&self.cfg.dir, &self.cfg.base, gen)
    }

    /// Stops the writer after it has written and synced everything queued.
    pub fn close(&mut self) -> Result<()> {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.check_poison()
    }

    /// Stops the writer without waiting for durability (a simulated crash or a poisoned log).
    pub fn abandon(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// Bytes the attach-list record of `list` takes in a log file, frame included.
fn preamble_len(list: &[AttachEntry]) -> u64 {
    framed_len(Record::AttachList(list.to_vec()).payload().len()) as u64
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::io::FaultStorage;

    fn new_log() -> Log {
        let cfg = LogConfig {
            dir: PathBuf::from("/"),
            base: "edb".into(),
            file_size: 1 << 20,
            circular: false,
        };
        Log::create(Arc::new(FaultStorage::new()), cfg).unwrap()
    }

    /// Waits until the writer has taken `n` batches.
    fn batches(log: &Log, n: u64) {
        let t = Instant::now();
        while log.shared().batches() < n {
            assert!(t.elapsed() < Duration::from_secs(10), "the writer is stuck");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits (on a thread, with a deadline) until `lsn` is published as durable.
    fn durable_soon(log: &Log, lsn: Lsn) -> bool {
        let shared = log.shared().clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(shared.wait_durable(lsn));
        });
        matches!(rx.recv_timeout(Duration::from_secs(10)), Ok(Ok(())))
    }

    /// A lazy write the writer took in one batch and a sync asked for in a later one: the
    /// sync makes the write durable and says so. (It did the fsync but published nothing, so
    /// a caller waiting for the write, `Core::wait` or `flush_all`, waited for ever.)
    #[test]
    fn a_sync_in_a_later_batch_publishes_the_lazy_writes_before_it() {
        let mut log = new_log();
        let before = log.shared().batches();
        let end = log.append(&Record::End, false).unwrap();
        batches(&log, before + 1);
        assert!(log.durable() < end, "a lazy write alone is not durable");
        log.request_sync();
        assert!(
            durable_soon(&log, end),
            "the sync did not publish the write"
        );
        assert_eq!(log.durable(), end);
    }

    /// Circular logging reuses an old file for the next generation. One made when the log
    /// file size was another (the setting changed after a crash cut a roll short) kept its
    /// length under a header naming the new size, and the file no longer read back
    /// (`LogFileCorrupt`), with every commit appended to it.
    #[test]
    fn a_recycled_file_of_another_size_is_not_reused_as_it_is() {
        let storage = FaultStorage::new();
        let dir = Path::new("/d");
        let old = names::archived(dir, "edb", 1);
        storage.write_file_raw(&old, &vec![7u8; 64 * 1024]);
        let header = LogHeader {
            gen: 2,
            signature: Signature::generate(),
            created_ms: 2,
            prev_created_ms: 1,
            file_size: 128 * 1024,
            base_name: "edb".into(),
        };
        install_current(
            &storage,
            dir,
            "edb",
            None,
            &header.encode(),
            128 * 1024,
            Some(old),
        )
        .unwrap();
        let f = reader::read_file(&storage, &names::current(dir, "edb")).unwrap();
        assert_eq!(f.header, header);
    }

    /// The same across a roll: the new file's first (lazy) record, then a sync by itself.
    #[test]
    fn a_sync_after_a_roll_publishes_the_new_files_first_record() {
        let mut log = new_log();
        log.append(&Record::End, false).unwrap();
        let before = log.shared().batches();
        log.roll().unwrap();
        let tip = log.tip();
        batches(&log, before + 1);
        // Roll's records may take more than one batch: wait until the writer is idle.
        std::thread::sleep(Duration::from_millis(50));
        log.request_sync();
        assert!(
            durable_soon(&log, tip),
            "the sync did not publish the roll's preamble"
        );
    }
}
