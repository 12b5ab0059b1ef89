//! Reading an object: [`ObjectReader`], a read-only [`File`] that serves reads from ranged
//! GETs of fixed blocks. A read starts the GETs of the next blocks too, so a
//! file read from start to end (a restore's copy, a checksum) has several blocks in flight
//! at once: the restore is as parallel as the store allows without a local copy of the set.

use std::collections::BTreeMap;

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
    len: u64,
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
            len,
            blocks: Mutex::new(BTreeMap::new()),
        }
    }
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("url", &self.url)
            .field("len", &self.len)
            .finish()
    }
}

impl ObjectReader {
    fn block_size(&self) -> u64 {
        self.files.options.read_block as u64
    }

    /// Starts the GET of block `i` unless it is under way or past the end.
    fn start(&self, blocks: &mut BTreeMap<u64, Block>, i: u64) {
        let start = i * self.block_size();
        if start >= self.len || blocks.contains_key(&i) {
            return;
        }
        let end = (start + self.block_size()).min(self.len);
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
        let bytes = match blocks.remove(&i) {
            Some(Block::Here(b)) => b,
            Some(Block::Fetching(job)) => self
                .files
                .bridge
                .join(job)?
                .map_err(|e| store_error(e, "reading", &self.url))?,
            None => return Err(Error::FileIOBeyondEOF),
        };
        let want = (self.len - i * self.block_size()).min(self.block_size());
        if bytes.len() as u64 != want {
            return Err(Error::FileIOBeyondEOF.with_detail(format!(
                "{}: a ranged read gave {} bytes, {want} expected (the object changed?)",
                self.url,
                bytes.len()
            )));
        }
        blocks.insert(i, Block::Here(bytes.clone()));
        Ok(bytes)
    }
}

impl File for ObjectReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let i = offset / self.block_size();
        let data = self.block(i)?;
        let from = (offset - i * self.block_size()) as usize;
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

    fn len(&self) -> Result<u64> {
        Ok(self.len)
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
