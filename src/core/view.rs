//! A database's pages as B+tree operations see them: a commit's own changes first (the
//! overlay), then the cache, then — depending on the mode — the file or nothing.
//!
//! Inline mode (commits, attach, synchronous callers): a cache miss reads the page from the
//! file and keeps it. Cache-only mode (the actor's reads): a miss reads nothing; it records
//! the page and fails the tree operation with `OutOfBuffers`, a sentinel the caller turns
//! into a fetch off the actor (`fetch.rs`) and never returns to a user.

use crate::btree::PageIo;
use crate::cache::Cache;
use crate::db::DbFile;
use crate::page::{self, PageKind};
use crate::{Error, Result};

use super::commit::Overlay;
use super::fetch::Fetched;

/// Interior pages a cache-only read remembers for read-ahead (the path down to a leaf).
const INTERIORS_KEPT: usize = 8;

/// Page access for one database.
pub struct View<'a> {
    pub(crate) cache: &'a mut Cache,
    pub(crate) file: &'a DbFile,
    pub(crate) dbid: u32,
    /// Pages changed by the commit being built, keyed by (dbid, pgno); `None` for reads.
    pub(crate) overlay: Option<&'a mut Overlay>,
    /// `Some`: cache-only mode.
    pub(crate) probe: Option<Probe<'a>>,
}

/// What a cache-only read may use besides the cache, and where it notes what it lacked.
pub(crate) struct Probe<'a> {
    /// Pages fetched for this read by its earlier attempts.
    pub fetched: &'a Fetched,
    pub misses: &'a mut Misses,
}

/// What a cache-only read lacked, and what it saw on the way (for read-ahead).
#[derive(Debug, Default)]
pub(crate) struct Misses {
    /// The first page that was not in memory: the operation stopped there.
    pub page: Option<u32>,
    /// Interior pages read, oldest first (at most `INTERIORS_KEPT`).
    pub interiors: Vec<u32>,
}

impl Misses {
    fn saw(&mut self, pgno: u32, p: &[u8]) {
        if page::kind(p) != Some(PageKind::Internal) || self.interiors.last() == Some(&pgno) {
            return;
        }
        if self.interiors.len() == INTERIORS_KEPT {
            self.interiors.remove(0);
        }
        self.interiors.push(pgno);
    }
}

impl View<'_> {
    /// Cache-only read: the cache, then this read's fetched pages, else a recorded miss.
    fn read_in_memory(&mut self, pgno: u32) -> Option<Result<Vec<u8>>> {
        let probe = self.probe.as_mut()?;
        let key = (self.dbid, pgno);
        let got = match self.cache.get(key) {
            Some(p) => Some(p),
            None => probe.fetched.get(key),
        };
        Some(match got {
            Some(p) => {
                probe.misses.saw(pgno, p);
                Ok(p.to_vec())
            }
            None => {
                probe.misses.page.get_or_insert(pgno);
                Err(Error::OutOfBuffers)
            }
        })
    }
}

impl PageIo for View<'_> {
    fn page_size(&self) -> u32 {
        self.file.page_size
    }

    fn read(&mut self, pgno: u32) -> Result<Vec<u8>> {
        if let Some(o) = &self.overlay {
            if let Some(p) = o.get(&(self.dbid, pgno)) {
                return Ok(p.clone());
            }
        }
        if let Some(r) = self.read_in_memory(pgno) {
            return r;
        }
        if let Some(p) = self.cache.get((self.dbid, pgno)) {
            return Ok(p.to_vec());
        }
        let p = self.file.read_page(pgno)?;
        self.cache.insert_clean((self.dbid, pgno), p.clone());
        Ok(p)
    }

    fn write(&mut self, pgno: u32, page: Vec<u8>) {
        // Reads never write; a tree operation that writes always runs with an overlay.
        if let Some(o) = &mut self.overlay {
            o.insert((self.dbid, pgno), page);
        }
    }
}
