//! A database file on a [`Storage`]: header at offset 0, its shadow at `page_size`, data page
//! `p` at `(p + 1) * page_size`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::reach::Reach;
use super::DbHeader;
use crate::io::{FileLock, FileRef, OpenMode, Storage};
use crate::page;
use crate::{Error, Result};

/// An open database file.
#[derive(Debug, Clone)]
pub struct DbFile {
    /// Where the file is.
    pub path: PathBuf,
    /// The open file.
    pub file: FileRef,
    /// Its page size.
    pub page_size: u32,
    /// How far the file is known to reach, and what it lost (`reach.rs`); every clone
    /// shares it.
    reach: Arc<Reach>,
}

impl DbFile {
    /// Creates a new file, locks it (behaviour.md §1.3) before writing a byte, and writes
    /// `header` to both header slots (durably). The lock is the caller's to hold while it uses the file.
    pub fn create(
        storage: &dyn Storage,
        path: &Path,
        header: &DbHeader,
    ) -> Result<(DbFile, FileLock)> {
        let file = storage.open(path, OpenMode::CreateNew)?;
        let lock = match storage.lock(path) {
            Ok(lock) => lock,
            Err(e) => {
                // Someone opened the file in the instant since it was made; it is still empty
                // and ours to take back.
                let _ = storage.remove(path);
                return Err(e);
            }
        };
        let db = DbFile {
            path: path.to_path_buf(),
            file,
            page_size: header.page_size,
            reach: Arc::new(Reach::new(0)),
        };
        // A file left half made would refuse the retry with `FileAlreadyExists`.
        let made = db.write_header(header).and_then(|()| match path.parent() {
            Some(dir) => storage.sync_dir(dir),
            None => Ok(()),
        });
        if let Err(e) = made {
            drop(db);
            drop(lock);
            let _ = storage.remove(path);
            return Err(e);
        }
        Ok((db, lock))
    }

    /// Locks an existing file (`FileAccessDenied` if another instance holds it; nothing is
    /// read then), then opens it as [`DbFile::open`] does.
    pub fn open_locked(storage: &dyn Storage, path: &Path) -> Result<(DbFile, DbHeader, FileLock)> {
        let lock = storage.lock(path)?;
        let (db, header) = DbFile::open(storage, path)?;
        Ok((db, header, lock))
    }

    /// Opens an existing file and reads its header (the shadow copy when the first is
    /// damaged; `DatabaseCorrupted` when both are).
    pub fn open(storage: &dyn Storage, path: &Path) -> Result<(DbFile, DbHeader)> {
        let file = storage.open(path, OpenMode::Existing)?;
        let header = read_header(&file)?;
        let len = file.len()?;
        let db = DbFile {
            path: path.to_path_buf(),
            file,
            page_size: header.page_size,
            reach: Arc::new(Reach::new(len)),
        };
        Ok((db, header))
    }

    /// Writes the header to both slots, the first, a sync, then the shadow: one of them is
    /// always whole.
    pub fn write_header(&self, header: &DbHeader) -> Result<()> {
        let bytes = header.encode();
        self.file.write_at(&bytes, 0)?;
        self.file.sync()?;
        self.file.write_at(&bytes, self.page_size as u64)?;
        self.reach.wrote(2 * self.page_size as u64);
        self.file.sync()
    }

    /// Reads data page `pgno` and verifies it ([`DbFile::verify_page`]).
    pub fn read_page(&self, pgno: u32) -> Result<Vec<u8>> {
        let buf = self.read_page_raw(pgno)?;
        self.verify_page(&buf, pgno)?;
        Ok(buf)
    }

    /// Reads data page `pgno` without verifying it (redo decides what a bad page means).
    pub fn read_page_raw(&self, pgno: u32) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.page_size as usize];
        self.read_pages_at(&mut buf, page::page_offset(pgno, self.page_size))?;
        Ok(buf)
    }

    /// [`page::verify_summed`] (answering the sum of the page's body), and a page of zeros
    /// (never written, which verifies) where the file lost bytes it had is
    /// `ReadLostFlushVerifyFailure` (-1119).
    pub fn verify_page(&self, p: &[u8], pgno: u32) -> Result<u32> {
        let body = page::verify_summed(p, pgno)?;
        let at = page::page_offset(pgno, self.page_size);
        if self.reach.is_lost(at, p.len() as u64) && page::is_zero(p) {
            return Err(self.lost(at));
        }
        Ok(body)
    }

    /// Fills `buf` from `offset`. Bytes past the file's end read as zeros where no page was
    /// ever written there; `ReadLostFlushVerifyFailure` (-1119) where the file reached
    /// further before (`reach.rs`).
    pub fn read_pages_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let reached = self.reach.reached();
        let mut done = 0;
        while done < buf.len() {
            let n = self.file.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                let at = offset + done as u64;
                if at < reached {
                    self.cut_found(at, reached);
                    return Err(self.lost(at));
                }
                buf[done..].fill(0);
                break;
            }
            done += n;
        }
        Ok(())
    }

    /// Before writing: a file shorter than it was written lost its tail, and a write past
    /// the new end would hide that behind a hole of zeros, so the loss is recorded first.
    /// One `fstat`; the flusher calls it once per file per flush.
    pub fn check_length(&self) -> Result<()> {
        let reached = self.reach.reached();
        let len = self.file.len()?;
        self.cut_found(len, reached);
        Ok(())
    }

    fn cut_found(&self, len: u64, reached: u64) {
        if self.reach.cut_found(len, reached) {
            tracing::error!(
                path = %self.path.display(),
                len,
                reached,
                "database file is shorter than the engine wrote it: the pages past its end are lost"
            );
        }
    }

    /// The error for a page at byte `at` that the file lost.
    fn lost(&self, at: u64) -> Error {
        Error::ReadLostFlushVerifyFailure.with_detail(format!(
            "{}: the page at byte {at} was written by this process and the file lost it (the \
             file was cut short)",
            self.path.display()
        ))
    }

    /// Checks that the file holds every page up to `last_page`: a clean database has written
    /// every page it allocated (allocation writes the page, and the clean state comes only
    /// after a flush of all of them), so a shorter file lost pages while the engine was away,
    /// and attaching it would serve and back up zeros where they were. `DatabaseCorrupted`.
    pub fn check_holds(&self, last_page: u32) -> Result<()> {
        let need = page::page_offset(last_page, self.page_size) + self.page_size as u64;
        let len = self.file.len()?;
        if len >= need {
            return Ok(());
        }
        tracing::error!(path = %self.path.display(), len, need, "database file cut short");
        Err(Error::DatabaseCorrupted.with_detail(format!(
            "{} ends at byte {len}, but its pages reach byte {need} (page {last_page}): the \
             file was cut short",
            self.path.display()
        )))
    }

    /// Seals and writes a data page (not synced).
    pub fn write_page(&self, pgno: u32, data: &mut [u8]) -> Result<()> {
        page::seal(data);
        let at = page::page_offset(pgno, self.page_size);
        self.file.write_at(data, at)?;
        self.reach.wrote(at + data.len() as u64);
        Ok(())
    }

    /// Syncs the file.
    pub fn sync(&self) -> Result<()> {
        self.file.sync()
    }
}

/// Reads the header from an open file: the first slot, or the shadow if the first is bad.
pub fn read_header(file: &FileRef) -> Result<DbHeader> {
    let mut first = vec![0u8; 4096];
    let n = file.read_at(&mut first, 0)?;
    let size = DbHeader::peek_page_size(&first[..n])
        .or_else(|| shadow_size_guess(file))
        .ok_or(Error::DatabaseCorrupted)?;
    for slot in 0..2u64 {
        let mut buf = vec![0u8; size as usize];
        if file.read_exact_at(&mut buf, slot * size as u64).is_ok() {
            if let Ok(h) = DbHeader::decode(&buf) {
                return Ok(h);
            }
        }
    }
    Err(Error::DatabaseCorrupted)
}

/// When the first header's size field is damaged, try each page size for the shadow.
fn shadow_size_guess(file: &FileRef) -> Option<u32> {
    for size in page::PAGE_SIZES {
        let mut b = vec![0u8; 32];
        if file.read_exact_at(&mut b, size as u64).is_ok()
            && DbHeader::peek_page_size(&b) == Some(size)
        {
            return Some(size);
        }
    }
    None
}
