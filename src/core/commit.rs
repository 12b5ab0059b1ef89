//! The commit path: apply a write set to the trees in an overlay, log the changed pages and
//! a commit record, then install the pages in the cache. Nothing reaches the cache or the
//! log unless every operation of the set succeeded, so a failed commit changes nothing.

use std::collections::BTreeMap;

use super::{CommitTicket, Core, View};
use crate::btree::{self, PageIo};
use crate::log::{framed_len, PageImage, Record};
use crate::lsn::{now_ms, Lsn};
use crate::page;
use crate::params::Commit;
use crate::txn::{Op, Txn};
use crate::{Error, Result};

/// Pages changed by one commit, keyed by (dbid, pgno).
pub(crate) type Overlay = BTreeMap<(u32, u32), Vec<u8>>;

impl Core {
    /// A view of database `dbid`'s pages, over `overlay` if given.
    pub(crate) fn view<'a>(
        &'a mut self,
        dbid: u32,
        overlay: Option<&'a mut Overlay>,
    ) -> Result<View<'a>> {
        let db = self.dbs.get(&dbid).ok_or(Error::InvalidDatabaseId)?;
        Ok(View {
            cache: &mut self.cache,
            file: &db.file,
            dbid,
            overlay,
        })
    }

    pub(crate) fn table_root(&self, dbid: u32, table: &str) -> Result<u32> {
        let db = self.dbs.get(&dbid).ok_or(Error::InvalidDatabaseId)?;
        db.tables.get(table).copied().ok_or(Error::ObjectNotFound)
    }

    /// Applies a transaction's writes and logs them.
    pub(crate) fn commit_txn(&mut self, txn: &Txn, durability: Commit) -> Result<CommitTicket> {
        let mut overlay = Overlay::new();
        for ((dbid, table, key), op) in &txn.writes {
            let root = self.table_root(*dbid, table)?;
            let mut v = self.view(*dbid, Some(&mut overlay))?;
            match op {
                Op::Put(value) => btree::put(&mut v, root, key, value)?,
                Op::Delete => {
                    btree::delete(&mut v, root, key)?;
                }
            }
        }
        self.log_changes(overlay, durability == Commit::Durable)
    }

    /// Logs a commit's changed pages and installs them. Page images are stamped with the
    /// end of the record that carries them; the cache learns the commit's end so no page is
    /// written before its commit is durable.
    pub(crate) fn log_changes(&mut self, overlay: Overlay, sync: bool) -> Result<CommitTicket> {
        self.check_available()?;
        if overlay.is_empty() {
            return Ok(CommitTicket {
                lsn: self.log.tip(),
                durable: sync,
            });
        }
        let ps = self.params.page_bytes() as usize;
        let per_image = 12 + ps;
        let per_record = ((self.log.max_payload() - 4) / per_image).max(1);
        let entries: Vec<((u32, u32), Vec<u8>)> = overlay.into_iter().collect();
        let mut group_start: Option<Lsn> = None;
        let mut stamped = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(per_record) {
            let size = 4 + chunk.len() * per_image;
            let start = self.log.position_for(size)?;
            group_start.get_or_insert(start);
            let end = Lsn(start.0 + framed_len(size) as u64);
            let mut images = Vec::with_capacity(chunk.len());
            for ((dbid, pgno), data) in chunk {
                let mut data = data.clone();
                page::set_lsn(&mut data, end.0);
                images.push(PageImage {
                    dbid: *dbid,
                    pgno: *pgno,
                    image: data.clone(),
                });
                stamped.push(((*dbid, *pgno), data));
            }
            let got = self.log.append(&Record::Pages(images), false)?;
            debug_assert_eq!(got, end);
        }
        self.commit_seq += 1;
        let commit = Record::Commit {
            seq: self.commit_seq,
            time_ms: now_ms(),
        };
        let end = self.log.append(&commit, sync)?;
        let rec = group_start.unwrap_or(end);
        for (key, data) in stamped {
            self.cache.install(key, data, rec, end);
        }
        self.stats.commits += 1;
        self.after_commit();
        Ok(CommitTicket {
            lsn: end,
            durable: sync,
        })
    }

    /// Creates a table in its own durable mini-transaction.
    pub(crate) fn create_table_now(&mut self, dbid: u32, name: &str) -> Result<CommitTicket> {
        if name.is_empty() || name.len() > 255 {
            return Err(Error::InvalidName);
        }
        let db = self.dbs.get(&dbid).ok_or(Error::InvalidDatabaseId)?;
        if db.tables.contains_key(name) {
            return Err(Error::TableDuplicate);
        }
        let mut overlay = Overlay::new();
        let mut v = self.view(dbid, Some(&mut overlay))?;
        let root = btree::create_tree(&mut v)?;
        let catalog = btree::read_meta(&mut v)?.catalog_root;
        btree::put(
            &mut v,
            catalog,
            name.as_bytes(),
            &(root as u64).to_le_bytes(),
        )?;
        debug_assert!(v.page_size() > 0);
        let t = self.log_changes(overlay, true)?;
        if let Some(db) = self.dbs.get_mut(&dbid) {
            db.tables.insert(name.to_string(), root);
        }
        Ok(t)
    }
}
