//! A database's pages as B+tree operations see them: a commit's own changes first (the
//! overlay), then the cache, then the file (a cache miss reads the page inline and keeps it).

use std::collections::BTreeMap;

use crate::btree::PageIo;
use crate::cache::Cache;
use crate::db::DbFile;
use crate::Result;

/// Page access for one database.
pub struct View<'a> {
    pub(crate) cache: &'a mut Cache,
    pub(crate) file: &'a DbFile,
    pub(crate) dbid: u32,
    /// Pages changed by the commit being built, keyed by (dbid, pgno); `None` for reads.
    pub(crate) overlay: Option<&'a mut BTreeMap<(u32, u32), Vec<u8>>>,
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
