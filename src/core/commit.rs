//! The commit path: apply a write set to the trees in an overlay, log the changed pages and
//! a commit record, then install the pages in the cache. Nothing reaches the cache or the
//! log unless every operation of the set succeeded, so a failed commit changes nothing.

use std::collections::BTreeMap;

use super::{CommitTicket, Core, TableId, View};
use crate::btree::{self, PageIo};
use crate::log::{delta, framed_len, PageDelta, PageImage, Record};
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
            probe: None,
        })
    }

    pub(crate) fn table_root(&self, dbid: u32, table: &str) -> Result<u32> {
        let db = self.dbs.get(&dbid).ok_or(Error::InvalidDatabaseId)?;
        db.tables.get(table).copied().ok_or(Error::ObjectNotFound)
    }

    /// Checks that a handle names a table of an attached database.
    pub(crate) fn check_table(&self, t: TableId) -> Result<()> {
        let db = self.dbs.get(&t.db).ok_or(Error::InvalidDatabaseId)?;
        match db.roots.contains(&t.root) {
            true => Ok(()),
            false => Err(Error::InvalidTableId),
        }
    }

    /// Applies a transaction's writes and logs them.
    pub(crate) fn commit_txn(&mut self, txn: &Txn, durability: Commit) -> Result<CommitTicket> {
        let mut overlay = Overlay::new();
        for (&(dbid, root, ref key), op) in &txn.writes {
            self.check_table(TableId { db: dbid, root })?;
            let mut v = self.view(dbid, Some(&mut overlay))?;
            match op {
                Op::Put(value) => btree::put(&mut v, root, key, value)?,
                Op::Delete => {
                    btree::delete(&mut v, root, key)?;
                }
            }
        }
        self.log_changes(overlay, durability == Commit::Durable)
    }

    /// Logs a commit's changed pages and installs them. A page whose full image was logged at
    /// or after the image horizon is logged as a delta against its cached version; any other
    /// page as a full image (see `checkpointing` for why that keeps torn pages repairable). Every
    /// page is stamped with the end of the record that carries it; the cache learns the
    /// commit's end so no page is written before its commit is durable.
    pub(crate) fn log_changes(&mut self, overlay: Overlay, sync: bool) -> Result<CommitTicket> {
        self.check_available()?;
        if overlay.is_empty() {
            // Nothing to log, but a durable answer still waits for the tip (lazy commits
            // before it), and no record of its own asks the log writer for that fsync.
            let lsn = self.log.tip();
            if sync && self.log.durable() < lsn {
                self.log.request_sync();
            }
            return Ok(CommitTicket { lsn, durable: sync });
        }
        let ps = self.params.page_bytes() as usize;
        let mut images = Vec::new();
        let mut deltas = Vec::new();
        for (key, data) in overlay {
            match self.delta_for(key, &data, ps) {
                Some(ranges) => deltas.push((key, data, ranges)),
                None => images.push((key, data)),
            }
        }
        let max = self.log.max_payload();
        let mut group_start: Option<Lsn> = None;
        let mut installs = Vec::with_capacity(images.len() + deltas.len());
        for chunk in chunk_by_size(images, |_| 12 + ps, max) {
            let size = 4 + chunk.len() * (12 + ps);
            let end = self.reserve(size, &mut group_start)?;
            let mut recs = Vec::with_capacity(chunk.len());
            for ((dbid, pgno), mut data) in chunk {
                page::set_lsn(&mut data, end.0);
                recs.push(PageImage {
                    dbid,
                    pgno,
                    image: data.clone(),
                });
                installs.push(((dbid, pgno), data, Some(end)));
            }
            let got = self.log.append(&Record::Pages(recs), false)?;
            debug_assert_eq!(got, end);
        }
        for chunk in chunk_by_size(deltas, |(_, _, r)| delta::encoded_len(r), max) {
            let size = 4 + chunk
                .iter()
                .map(|(_, _, r)| delta::encoded_len(r))
                .sum::<usize>();
            let end = self.reserve(size, &mut group_start)?;
            let mut recs = Vec::with_capacity(chunk.len());
            for ((dbid, pgno), mut data, ranges) in chunk {
                page::set_lsn(&mut data, end.0);
                recs.push(PageDelta { dbid, pgno, ranges });
                installs.push(((dbid, pgno), data, None));
            }
            let got = self.log.append(&Record::Deltas(recs), false)?;
            debug_assert_eq!(got, end);
        }
        self.commit_seq += 1;
        let commit = Record::Commit {
            seq: self.commit_seq,
            time_ms: now_ms(),
        };
        let end = self.log.append(&commit, sync)?;
        let rec = group_start.unwrap_or(end);
        for (key, data, imaged) in installs {
            self.cache.install(key, data, rec, end, imaged);
            // A fetch of this page on disk now brings back an older image: mark it stale.
            self.installs.installed(key);
        }
        self.stats.commits += 1;
        self.after_commit();
        Ok(CommitTicket {
            lsn: end,
            durable: sync,
        })
    }

    /// The ranges to log for a changed page, or `None` for a full image: only a page whose
    /// full image was logged at or after the horizon, and only when the delta is small.
    fn delta_for(&self, key: (u32, u32), new: &[u8], ps: usize) -> Option<Vec<(u16, Vec<u8>)>> {
        let (old, imaged) = self.cache.peek(key)?;
        if imaged.0 == 0 || imaged < self.image_horizon || old.len() != new.len() {
            return None;
        }
        let ranges = delta::diff(old, new);
        (delta::encoded_len(&ranges) < ps / 2).then_some(ranges)
    }

    /// Makes room for a record of `size` payload bytes; returns where it will end.
    fn reserve(&mut self, size: usize, group_start: &mut Option<Lsn>) -> Result<Lsn> {
        let start = self.log.position_for(size)?;
        group_start.get_or_insert(start);
        Ok(Lsn(start.0 + framed_len(size) as u64))
    }

    /// Creates a table in its own durable mini-transaction.
    pub(crate) fn create_table_now(
        &mut self,
        dbid: u32,
        name: &str,
    ) -> Result<(TableId, CommitTicket)> {
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
            db.roots.insert(root);
        }
        Ok((TableId { db: dbid, root }, t))
    }
}

/// Splits items into groups whose encoded sizes (plus a 4-byte count) fit `max` bytes.
fn chunk_by_size<T>(items: Vec<T>, size: impl Fn(&T) -> usize, max: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut cur: Vec<T> = Vec::new();
    let mut used = 4;
    for it in items {
        let n = size(&it);
        if !cur.is_empty() && used + n > max {
            out.push(std::mem::take(&mut cur));
            used = 4;
        }
        used += n;
        cur.push(it);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {

    use crate::params::Commit;

    #[test]
    fn group_counters_count_durable_writes_per_batch() {
        let (mut core, s, tbl) = crate::core::testing::core_with_table(256);
        let before = core.stats();
        assert!(before.log_groups >= 1 && before.log_group_writes >= before.log_groups);

        // One durable commit, waited for: a group of one.
        let t = core.put(s, tbl, b"one", b"1").unwrap().unwrap();
        core.wait(t).unwrap();
        let one = core.stats();
        assert_eq!(one.log_group_writes, before.log_group_writes + 1);
        assert_eq!(one.log_groups, before.log_groups + 1);
        assert!(one.log_largest_group >= 1);

        // A lazy commit asks for no fsync: no durable write, even once it is flushed.
        core.begin_transaction(s).unwrap();
        core.put(s, tbl, b"lazy", b"2").unwrap();
        let t = core.commit(s, Commit::Lazy).unwrap();
        core.wait(t).unwrap();
        let lazy = core.stats();
        assert_eq!(
            (lazy.log_groups, lazy.log_group_writes),
            (one.log_groups, one.log_group_writes)
        );

        // Eight durable commits queued before any is waited for share the batches they land in.
        let mut tickets = Vec::new();
        for i in 0..8u8 {
            let s = core.begin_session().unwrap();
            core.begin_transaction(s).unwrap();
            core.put(s, tbl, &[b'k', i], b"3").unwrap();
            tickets.push(core.commit(s, Commit::Durable).unwrap());
        }
        for t in tickets {
            core.wait(t).unwrap();
        }
        let after = core.stats();
        assert_eq!(after.log_group_writes, lazy.log_group_writes + 8);
        let groups = after.log_groups - lazy.log_groups;
        assert!((1..=8).contains(&groups), "{groups} groups");
        assert!(
            after.log_largest_group * groups >= 8,
            "{groups} groups made 8 writes durable, the largest {}",
            after.log_largest_group
        );
    }
}
