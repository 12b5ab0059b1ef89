//! Reading an object: [`ObjectReader`], a read-only [`File`] that serves reads from ranged
//! GETs of fixed blocks. A read starts the GETs of the next blocks too, so a
//! file read from start to end (a restore's copy, a checksum) has several blocks in flight
//! at once: the restore is as parallel as the store allows without a local copy of the set.
//!
//! A reader opened at the size a manifest gives (no HEAD first) may find the object
//! shorter: a short or refused block sends one HEAD, and if the object really is shorter the
//! reader ends where it ends, as a file does, so the checks on what was read name the damage.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use ese::io::File;
use ese::{Error, Result};
use object_store::ObjectStoreExt;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::bridge::count;
use super::error::store_error;
use super::files::ObjectFiles;

/// A block being fetched or fetched.
enum Block {
    Fetching(JoinHandle<object_store::Result<Bytes>>),
    Here(Bytes),
}

/// One object read through ranged GETs, with read-ahead.
pub(crate) struct ObjectReader {
    files: ObjectFiles,
    key: object_store::path::Path,
    url: String,
    /// The length read up to: the HEAD's or the manifest's, until a read finds it shorter.
    len: AtomicU64,
    blocks: Mutex<BTreeMap<u64, Block>>,
}

impl ObjectReader {
    /// The object `key` (shown as `url`) of `len` bytes.
    pub(crate) fn new(
        files: ObjectFiles,
        key: object_store::path::Path,
        url: String,
        len: u64,
    ) -> ObjectReader {
        ObjectReader {
            files,
            key,
            url,
            len: AtomicU64::new(len),
            blocks: Mutex::new(BTreeMap::new()),
        }
    }
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("url", &self.url)
            .field("len", &self.len())
            .finish()
    }
}

impl ObjectReader {
    fn block_size(&self) -> u64 {
        self.files.options.read_block as u64
    }

    fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Starts the GET of block `i` unless it is under way or past the end.
    fn start(&self, blocks: &mut BTreeMap<u64, Block>, i: u64) {
        let start = i * self.block_size();
        if start >= self.len() || blocks.contains_key(&i) {
            return;
        }
        let end = (start + self.block_size()).min(self.len());
        let (store, key) = (self.files.store.clone(), self.key.clone());
        count(&self.files.bridge.counts.gets);
        let job = self
            .files
            .bridge
            .spawn(async move { store.get_range(&key, start..end).await });
        blocks.insert(i, Block::Fetching(job));
    }

    /// Block `i`, waiting for its GET; the next blocks' GETs are started first.
    fn block(&self, i: u64) -> Result<Bytes> {
        let mut blocks = self.blocks.lock();
        // Blocks behind the reader are done with; a reader that goes back fetches again.
        let behind: Vec<u64> = blocks.range(..i).map(|(k, _)| *k).collect();
        for k in behind {
            if let Some(Block::Fetching(job)) = blocks.remove(&k) {
                job.abort();
            }
        }
        for ahead in i..i + self.files.options.read_ahead.max(1) as u64 {
            self.start(&mut blocks, ahead);
        }
        let got = match blocks.remove(&i) {
            Some(Block::Here(b)) => Ok(b),
            Some(Block::Fetching(job)) => self.files.bridge.join(job)?,
            None => return Ok(Bytes::new()),
        };
        let start = i * self.block_size();
        let want = (self.len() - start).min(self.block_size());
        let bytes = match got {
            Ok(b) if b.len() as u64 == want => b,
            Err(e @ object_store::Error::NotFound { .. }) => {
                return Err(store_error(e, "reading", &self.url))
            }
            other => {
                let b = self.recheck(&mut blocks, start, other)?;
                if b.is_empty() {
                    return Ok(b);
                }
                b
            }
        };
        blocks.insert(i, Block::Here(bytes.clone()));
        Ok(bytes)
    }

    /// A block came back short or refused: a HEAD tells whether the object is shorter than
    /// the reader was told. If it is, the reader ends there (the block's bytes up to the end,
    /// or none past it); if not, the block's own failure is the error.
    fn recheck(
        &self,
        blocks: &mut BTreeMap<u64, Block>,
        start: u64,
        got: object_store::Result<Bytes>,
    ) -> Result<Bytes> {
        let (store, key) = (self.files.store.clone(), self.key.clone());
        count(&self.files.bridge.counts.heads);
        let size = self
            .files
            .bridge
            .wait(async move { store.head(&key).await })?
            .map_err(|e| store_error(e, "reading the size of", &self.url))?
            .size;
        if size >= self.len() {
            return match got {
                Err(e) => Err(store_error(e, "reading", &self.url)),
                Ok(b) => Err(Error::FileIOBeyondEOF.with_detail(format!(
                    "{}: a ranged read gave {} bytes, {} expected (the object changed?)",
                    self.url,
                    b.len(),
                    (self.len() - start).min(self.block_size())
                ))),
            };
        }
        self.len.store(size, Ordering::Relaxed);
        for (_, b) in std::mem::take(blocks) {
            if let Block::Fetching(job) = b {
                job.abort();
            }
        }
        if start >= size {
            return Ok(Bytes::new());
        }
        let end = (start + self.block_size()).min(size);
        match got {
            Ok(b) if b.len() as u64 == end - start => Ok(b),
            _ => {
                let (store, key) = (self.files.store.clone(), self.key.clone());
                count(&self.files.bridge.counts.gets);
                self.files
                    .bridge
                    .wait(async move { store.get_range(&key, start..end).await })?
                    .map_err(|e| store_error(e, "reading", &self.url))
            }
        }
    }
}

impl File for ObjectReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= self.len() || buf.is_empty() {
            return Ok(0);
        }
        let i = offset / self.block_size();
        let data = self.block(i)?;
        let from = (offset - i * self.block_size()) as usize;
        if from >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - from);
        buf[..n].copy_from_slice(&data[from..from + n]);
        Ok(n)
    }

    fn write_at(&self, _: &[u8], _: u64) -> Result<()> {
        Err(Error::FileAccessDenied.with_detail("a backup object is read-only"))
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// The first block's GET, started now.
    fn will_read(&self) {
        self.start(&mut self.blocks.lock(), 0);
    }

    fn len(&self) -> Result<u64> {
        Ok(ObjectReader::len(self))
    }

    fn set_len(&self, _: u64) -> Result<()> {
        Err(Error::FileAccessDenied.with_detail("a backup object is read-only"))
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        for (_, b) in std::mem::take(&mut *self.blocks.lock()) {
            if let Block::Fetching(job) = b {
                job.abort();
            }
        }
    }
}
