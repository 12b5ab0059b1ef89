//! Page fetches: the disk half of a read that missed the cache, run off the core.
//!
//! A cache-only read that misses returns a [`Fetch`]: the page it lacked, plus read-ahead
//! (the following children of the interior node it came from, or the rest of an overflow
//! chain). The fetch holds its own file handle, so the actor runs it on the blocking pool
//! while it keeps serving; [`Core::fetched`] then takes the pages in and the read is tried
//! again with them.
//!
//! The stale-fetch rule: a fetched page is an image of the file from when the fetch was on
//! disk. A commit may have installed a newer version of that page meanwhile, and the
//! flusher may even have written and evicted it since. So every fetch takes a ticket, every
//! install made while some ticket is open is recorded ([`Installs`]), and a fetched page is
//! used only if no commit installed it after its ticket was issued. A fetched page never
//! overwrites a cached one.

use std::collections::{BTreeSet, HashMap};

use super::slice::Direction;
use super::view::Misses;
use super::Core;
use crate::btree::{self, Node};
use crate::cache::PageKey;
use crate::db::DbFile;
use crate::page::{self, PageKind, PAGE_HEADER};
use crate::{Error, Result};

/// Following children a scan's fetch reads with the page it missed: enough for a slice
/// (256 rows are rarely more than 32 leaves), few enough to cost one short trip to disk.
const READ_AHEAD: usize = 31;

/// The answer of a read served from memory: the result, or the pages to fetch first.
#[derive(Debug)]
pub enum Read<T> {
    /// Served.
    Done(T),
    /// A page was not in memory: run the fetch, give its result to [`Core::fetched`], then
    /// try the same read again.
    Miss(Fetch),
}

/// Pages to read from a database file; runs anywhere, without the core.
#[derive(Debug)]
pub struct Fetch {
    ticket: u64,
    dbid: u32,
    file: DbFile,
    /// The page the read missed, then read-ahead.
    pages: Vec<u32>,
}

/// What a [`Fetch`] read.
#[derive(Debug)]
pub struct FetchDone {
    ticket: u64,
    dbid: u32,
    pages: Vec<(u32, Vec<u8>)>,
    /// The missed page could not be read.
    failed: Option<(u32, Error)>,
}

impl Fetch {
    /// Pages it will read, not counting an overflow chain it follows.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether it reads nothing (never: a fetch has at least the page that missed).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Reads the pages (blocking). The missed page must read; when it starts an overflow
    /// chain the rest of the chain is read too (the read needs all of it); read-ahead stops
    /// quietly at its first failure (the page is fetched again when a read needs it).
    pub fn run(self) -> FetchDone {
        let mut done = FetchDone {
            ticket: self.ticket,
            dbid: self.dbid,
            pages: Vec::with_capacity(self.pages.len()),
            failed: None,
        };
        let Some((&first, ahead)) = self.pages.split_first() else {
            return done;
        };
        match self.file.read_page(first) {
            Ok(p) => {
                let next = overflow_next(&p);
                done.pages.push((first, p));
                if let Some(next) = next {
                    read_chain(&self.file, next, &mut done.pages);
                }
            }
            Err(e) => {
                done.failed = Some((first, e));
                return done;
            }
        }
        for &pgno in ahead {
            match self.file.read_page(pgno) {
                Ok(p) => done.pages.push((pgno, p)),
                Err(_) => break,
            }
        }
        done
    }
}

/// The next page of an overflow chain, if `p` is an overflow page with a successor.
fn overflow_next(p: &[u8]) -> Option<u32> {
    if page::kind(p) != Some(PageKind::Overflow) {
        return None;
    }
    Some(page::get_u32(p, PAGE_HEADER)).filter(|&n| n != 0)
}

/// Reads an overflow chain from `pgno` to its end, at most as many pages as the largest
/// value has (a damaged chain may loop); stops quietly at a failure.
fn read_chain(file: &DbFile, mut pgno: u32, out: &mut Vec<(u32, Vec<u8>)>) {
    let body = (file.page_size as usize)
        .saturating_sub(PAGE_HEADER + 8)
        .max(1);
    for _ in 0..btree::MAX_VALUE / body + 1 {
        let Ok(p) = file.read_page(pgno) else { return };
        if page::kind(&p) != Some(PageKind::Overflow) {
            return;
        }
        let next = overflow_next(&p);
        out.push((pgno, p));
        match next {
            Some(n) => pgno = n,
            None => return,
        }
    }
}

/// Pages fetched for one read, kept across its attempts (the cache alone may not keep them:
/// with more dirty pages than room, a clean page is evicted as soon as it is inserted), and
/// the tickets that make them valid. End it with [`Core::end_read`].
#[derive(Debug, Default)]
pub struct Fetched {
    pages: HashMap<PageKey, (u64, Vec<u8>)>,
    tickets: Vec<u64>,
}

impl Fetched {
    /// A fetched page of this read.
    pub(crate) fn get(&self, key: PageKey) -> Option<&[u8]> {
        self.pages.get(&key).map(|(_, p)| p.as_slice())
    }

    /// Pages held.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no page is held.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

/// Which pages commits installed while fetches were on disk.
#[derive(Debug)]
pub(crate) struct Installs {
    /// The last ticket issued.
    clock: u64,
    /// Tickets whose pages may still be used.
    open: BTreeSet<u64>,
    /// Per page, the clock at its last install (kept only while some ticket is open).
    at: HashMap<PageKey, u64>,
    /// Size of `at` above which closing a ticket prunes it.
    prune_at: usize,
}

impl Default for Installs {
    fn default() -> Installs {
        Installs {
            clock: 0,
            open: BTreeSet::new(),
            at: HashMap::new(),
            prune_at: 1024,
        }
    }
}

impl Installs {
    /// A new ticket, open until closed.
    pub fn open(&mut self) -> u64 {
        self.clock += 1;
        self.open.insert(self.clock);
        self.clock
    }

    /// A commit installed `key`. Nothing to remember when no fetch is open.
    pub fn installed(&mut self, key: PageKey) {
        if !self.open.is_empty() {
            self.at.insert(key, self.clock);
        }
    }

    /// Whether a commit installed `key` after `ticket` was issued: its fetched image is stale.
    pub fn replaced(&self, key: PageKey, ticket: u64) -> bool {
        self.at.get(&key).is_some_and(|&at| at >= ticket)
    }

    /// No page of `ticket` will be used any more.
    pub fn close(&mut self, ticket: u64) {
        self.open.remove(&ticket);
        match self.open.first() {
            None => self.at.clear(),
            Some(&oldest) if self.at.len() > self.prune_at => {
                // An install older than every open ticket can make none of them stale.
                self.at.retain(|_, at| *at >= oldest);
                self.prune_at = (self.at.len() * 2).max(1024);
            }
            Some(_) => {}
        }
    }

    /// Open tickets (for tests).
    #[cfg(test)]
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

impl Core {
    /// The fetch for a cache-only read that stopped at `misses.page`. With `read_ahead`, the
    /// children of the interior node the page hangs from that a scan in that direction
    /// reads next come along (nearest first: read-ahead stops at its first failure).
    pub(crate) fn plan_fetch(
        &mut self,
        dbid: u32,
        misses: &Misses,
        fetched: &mut Fetched,
        read_ahead: Option<Direction>,
    ) -> Result<Fetch> {
        let missed = misses.page.ok_or(Error::OutOfBuffers)?;
        let file = self
            .dbs
            .get(&dbid)
            .ok_or(Error::InvalidDatabaseId)?
            .file
            .clone();
        let mut pages = vec![missed];
        if let Some(dir) = read_ahead {
            pages.extend(self.siblings_next(dbid, missed, &misses.interiors, fetched, dir));
        }
        let ticket = self.installs.open();
        fetched.tickets.push(ticket);
        Ok(Fetch {
            ticket,
            dbid,
            file,
            pages,
        })
    }

    /// Children after `pgno` (before it, in reverse) in the nearest remembered interior node
    /// holding it, nearest first, that are in memory neither in the cache nor in `fetched`.
    fn siblings_next(
        &self,
        dbid: u32,
        pgno: u32,
        interiors: &[u32],
        fetched: &Fetched,
        dir: Direction,
    ) -> Vec<u32> {
        for &parent in interiors.iter().rev() {
            let key = (dbid, parent);
            let Some(bytes) = self.cache.peek(key).map(|(p, _)| p).or(fetched.get(key)) else {
                continue;
            };
            let Ok(Node::Internal { first, entries }) = Node::decode(bytes) else {
                continue;
            };
            let children: Vec<u32> = std::iter::once(first)
                .chain(entries.iter().map(|(_, c)| *c))
                .collect();
            let Some(at) = children.iter().position(|&c| c == pgno) else {
                continue;
            };
            let next: Box<dyn Iterator<Item = &u32>> = match dir {
                Direction::Forward => Box::new(children[at + 1..].iter()),
                Direction::Reverse => Box::new(children[..at].iter().rev()),
            };
            return next
                .copied()
                .filter(|&c| {
                    let k = (dbid, c);
                    self.cache.peek(k).is_none() && fetched.get(k).is_none()
                })
                .take(READ_AHEAD)
                .collect();
        }
        Vec::new()
    }

    /// Takes in what a fetch read: pages no commit replaced since their ticket go to the cache
    /// as clean pages (never over a cached one) and to `fetched` for the read's next attempt;
    /// pages `fetched` held from earlier fetches that a commit replaced meanwhile are dropped.
    /// Fails with the disk's error if the missed page could not be read — unless a commit
    /// replaced it meanwhile (the read may have raced its write): then the read just retries.
    pub fn fetched(&mut self, done: FetchDone, fetched: &mut Fetched) -> Result<()> {
        let installs = &self.installs;
        fetched
            .pages
            .retain(|key, (ticket, _)| !installs.replaced(*key, *ticket));
        if let Some((pgno, e)) = done.failed {
            if !self.installs.replaced((done.dbid, pgno), done.ticket) {
                return Err(e);
            }
        }
        if !self.dbs.contains_key(&done.dbid) {
            // Detached meanwhile: the read fails with InvalidDatabaseId when it retries.
            return Ok(());
        }
        for (pgno, data) in done.pages {
            let key = (done.dbid, pgno);
            if self.installs.replaced(key, done.ticket) {
                continue;
            }
            self.cache.insert_clean(key, data.clone());
            fetched.pages.insert(key, (done.ticket, data));
        }
        Ok(())
    }

    /// The read is over: its pages and tickets are released.
    pub fn end_read(&mut self, fetched: Fetched) {
        for t in fetched.tickets {
            self.installs.close(t);
        }
    }

    /// Runs a cache-only read to the end on this thread: each miss is fetched inline, then
    /// the read is tried again (the synchronous API of the core).
    pub(crate) fn read_inline<T>(
        &mut self,
        mut op: impl FnMut(&mut Core, &mut Fetched) -> Result<Read<T>>,
    ) -> Result<T> {
        let mut fetched = Fetched::default();
        let out = loop {
            match op(self, &mut fetched) {
                Ok(Read::Done(v)) => break Ok(v),
                Ok(Read::Miss(f)) => {
                    if let Err(e) = self.fetched(f.run(), &mut fetched) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.end_read(fetched);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{SessionId, TableId};

    fn core_with_rows(n: u32) -> (Core, SessionId, TableId) {
        let (mut core, s, tbl) = crate::core::testing::core_with_table(64);
        crate::core::testing::put_rows(&mut core, s, tbl, n, 1);
        // On disk and clean, so that a page may leave the cache.
        core.flush_all().unwrap();
        (core, s, tbl)
    }

    /// The leaf `key` lives in, walking cached pages from the table's root.
    fn leaf_of(core: &mut Core, tbl: TableId, key: &[u8]) -> u32 {
        let mut pgno = tbl.root;
        loop {
            let page = core.cache.get((tbl.db, pgno)).unwrap();
            match btree::search(page, key).unwrap() {
                btree::Found::Child(c) => pgno = c,
                _ => return pgno,
            }
        }
    }

    #[test]
    fn a_page_a_commit_installed_while_it_was_fetched_is_not_used() {
        let (mut core, s, tbl) = core_with_rows(400);
        let key = b"k00200";
        assert_eq!(core.get(s, tbl, key).unwrap(), Some(vec![1u8; 200]));
        let leaf = leaf_of(&mut core, tbl, key);
        core.cache.forget((tbl.db, leaf));
        let mut fetched = Fetched::default();
        let Read::Miss(fetch) = core.try_get(s, tbl, key, &mut fetched).unwrap() else {
            panic!("the leaf is not in memory");
        };
        assert_eq!(fetch.pages, vec![leaf]);
        let stale = fetch.run(); // the image before the commit below
                                 // A commit replaces the row; its page is flushed and evicted before the fetch is back.
        let t = core.put(s, tbl, key, &[2u8; 200]).unwrap().unwrap();
        core.wait(t).unwrap();
        core.flush_all().unwrap();
        core.cache.forget((tbl.db, leaf));
        core.fetched(stale, &mut fetched).unwrap();
        assert!(
            core.cache.peek((tbl.db, leaf)).is_none(),
            "stale page cached"
        );
        assert!(fetched.get((tbl.db, leaf)).is_none(), "stale page kept");
        // The read misses again and then sees the commit.
        let got = loop {
            match core.try_get(s, tbl, key, &mut fetched).unwrap() {
                Read::Done(v) => break v,
                Read::Miss(f) => core.fetched(f.run(), &mut fetched).unwrap(),
            }
        };
        assert_eq!(got, Some(vec![2u8; 200]));
        core.end_read(fetched);
        assert_eq!(core.installs.open_count(), 0);
    }

    #[test]
    fn a_fetched_page_never_overwrites_a_cached_one() {
        let (mut core, s, tbl) = core_with_rows(400);
        let key = b"k00100";
        core.get(s, tbl, key).unwrap();
        let leaf = leaf_of(&mut core, tbl, key);
        core.cache.forget((tbl.db, leaf));
        let mut fetched = Fetched::default();
        let Read::Miss(fetch) = core.try_get(s, tbl, key, &mut fetched).unwrap() else {
            panic!("the leaf is not in memory");
        };
        let stale = fetch.run();
        core.put(s, tbl, key, &[3u8; 200]).unwrap();
        core.fetched(stale, &mut fetched).unwrap();
        let Read::Done(got) = core.try_get(s, tbl, key, &mut fetched).unwrap() else {
            panic!("the committed page is cached");
        };
        assert_eq!(got, Some(vec![3u8; 200]));
        core.end_read(fetched);
    }

    #[test]
    fn a_reverse_scan_reads_ahead_downwards() {
        let (mut core, s, tbl) = core_with_rows(2000);
        let last = b"k01999";
        core.get(s, tbl, last).unwrap();
        let leaf = leaf_of(&mut core, tbl, last);
        let parent = {
            let mut pgno = tbl.root;
            loop {
                let page = core.cache.get((tbl.db, pgno)).unwrap();
                match btree::search(page, last).unwrap() {
                    btree::Found::Child(c) if c == leaf => break pgno,
                    btree::Found::Child(c) => pgno = c,
                    _ => panic!("no parent above the leaf"),
                }
            }
        };
        let Node::Internal { first, entries } =
            Node::decode(core.cache.get((tbl.db, parent)).unwrap()).unwrap()
        else {
            panic!("the parent is an interior node");
        };
        let children: Vec<u32> = std::iter::once(first)
            .chain(entries.iter().map(|(_, c)| *c))
            .collect();
        assert_eq!(
            children.last(),
            Some(&leaf),
            "the last key is in the last leaf"
        );
        let before: Vec<u32> = children.iter().rev().skip(1).take(5).copied().collect();
        assert_eq!(before.len(), 5, "the parent has enough children");
        for &pgno in std::iter::once(&leaf).chain(&before) {
            core.cache.forget((tbl.db, pgno));
        }
        let mut fetched = Fetched::default();
        let from_the_top = |core: &mut Core, fetched: &mut Fetched| {
            let all = std::ops::Bound::Unbounded;
            core.try_scan(s, tbl, all, all, 10, Direction::Reverse, fetched)
                .unwrap()
        };
        let Read::Miss(fetch) = from_the_top(&mut core, &mut fetched) else {
            panic!("the last leaf is not in memory");
        };
        assert_eq!(fetch.pages[0], leaf);
        assert_eq!(fetch.pages[1..6], before[..], "nearest first, going down");
        core.fetched(fetch.run(), &mut fetched).unwrap();
        let Read::Done(slice) = from_the_top(&mut core, &mut fetched) else {
            panic!("the fetch brought the pages");
        };
        assert_eq!(slice.rows.first().map(|(k, _)| &k[..]), Some(&last[..]));
        core.end_read(fetched);
    }

    #[test]
    fn an_install_after_the_ticket_makes_the_fetch_stale() {
        let mut i = Installs::default();
        i.installed((1, 5)); // no fetch open: nothing kept
        let t1 = i.open();
        assert!(
            !i.replaced((1, 5), t1),
            "installed before the fetch was issued"
        );
        i.installed((1, 7));
        let t2 = i.open();
        assert!(i.replaced((1, 7), t1), "installed while t1 was on disk");
        assert!(!i.replaced((1, 7), t2), "installed before t2 was issued");
        i.installed((1, 9));
        assert!(i.replaced((1, 9), t1) && i.replaced((1, 9), t2));
        i.close(t1);
        assert!(i.replaced((1, 9), t2), "t2 still open: still known");
        i.close(t2);
        assert_eq!(i.open_count(), 0);
        assert!(i.at.is_empty(), "nothing kept once no fetch is open");
    }
}
