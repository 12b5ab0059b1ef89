//! [`ReadProgress`]: how far a verify or a restore has read, for a progress bar. The
//! sets are read through [`Counted`], which counts every byte read from them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ese::io::{File, FileRef, Files};
use ese::Result;

/// Bytes read of the bytes to read; both grow as the work learns more.
#[derive(Debug, Default)]
pub struct ReadProgress {
    done: AtomicU64,
    total: AtomicU64,
}

impl ReadProgress {
    /// A counter at zero, to share with the work.
    pub fn new() -> Arc<ReadProgress> {
        Arc::default()
    }

    /// Bytes read so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Bytes the work will read, once it knows (0 before).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }
}

/// Files whose reads are counted.
pub(crate) struct Counted<F> {
    pub(crate) inner: F,
    pub(crate) progress: Arc<ReadProgress>,
}

impl<F> Counted<F> {
    fn counted(&self, inner: FileRef) -> FileRef {
        Arc::new(CountedFile {
            inner,
            progress: self.progress.clone(),
        })
    }
}

impl<F: Files> Files for Counted<F> {
    fn open_read(&self, name: &Path) -> Result<FileRef> {
        Ok(self.counted(self.inner.open_read(name)?))
    }
    fn open_read_sized(&self, name: &Path, stored_len: u64) -> Result<FileRef> {
        Ok(self.counted(self.inner.open_read_sized(name, stored_len)?))
    }
    fn shown(&self, name: &Path) -> PathBuf {
        self.inner.shown(name)
    }
    fn is_link(&self, name: &Path) -> bool {
        self.inner.is_link(name)
    }
    fn stored_len(&self, name: &Path) -> Result<u64> {
        self.inner.stored_len(name)
    }
    fn read_whole(&self, name: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
        let r = self.inner.read_whole(name, limit)?;
        if let Some(b) = &r {
            self.progress
                .done
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        Ok(r)
    }
}

#[derive(Debug)]
struct CountedFile {
    inner: FileRef,
    progress: Arc<ReadProgress>,
}

impl File for CountedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let n = self.inner.read_at(buf, offset)?;
        self.progress.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn will_read(&self) {
        self.inner.will_read()
    }
    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }
    fn len(&self) -> Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> Result<()> {
        self.inner.set_len(len)
    }
}
