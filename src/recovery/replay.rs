//! The redo engine shared by soft recovery ([`super::recover`]) and hard recovery
//! ([`crate::restore`]): [`Replay`] takes the records of a log stream in order and brings the
//! databases a [`Resolve`] names up to them.
//!
//! A commit logs, for each page it changed, either the page's full image or, when the page's
//! last full image was logged at or after the image horizon, only the byte ranges that changed
//! (docs/design.md, "Decisions"). Replay holds a transaction's changes until its commit record,
//! then:
//!
//! - a full image replaces the page as it stands in memory, and reaches the disk only if it is
//!   newer than the page there (a page on disk that verifies and carries a position at or past
//!   the image's keeps its bytes), so replaying the same log twice changes nothing;
//! - a delta applies in order onto the page as its previous change left it: the copy held in
//!   memory, or else the page on disk; one at or past the delta's position is left alone, and
//!   a page on disk that is never written or does not verify is `DatabaseCorrupted`.
//!
//! The horizon rule makes the second case sound: a checkpoint stands only on a horizon, so for
//! whatever checkpoint recovery starts from, every page's first change after it is a full image,
//! and a page torn on disk is rebuilt from that image before a delta reaches it. A backup copy
//! needs no image: its pages were read whole and verified.
//!
//! A BackupUpdate record carries no stream of its own: replay stamps it with the stream of the
//! log it is reading (contract 2.5). A [`ReplayStop`] ends replay before the first commit past
//! a point in time, a position or a generation (point-in-time restore).

use std::collections::{BTreeMap, HashMap};

use crate::db::{BackupInfo, DbFile, DbHeader, Signature};
use crate::log::{AttachEntry, Framed, PageDelta, PageImage, Record};
use crate::lsn::Lsn;
use crate::page;
use crate::{Error, Result};

/// Page images held in memory before they are written in page order.
const MAX_HELD_BYTES: usize = 64 << 20;

/// One page change of a transaction, held until its commit record.
enum Change {
    Image(PageImage),
    Delta(crate::log::PageDelta),
}

/// A database replay writes to.
#[derive(Debug)]
pub struct ReplayTarget {
    /// The file.
    pub file: DbFile,
    /// Its header as replay leaves it.
    pub header: DbHeader,
    /// Whether replay made the file (its creation was in the replayed log).
    pub created: bool,
}

/// Decides which file, if any, a database named by the log is replayed into.
pub trait Resolve {
    /// `Ok(None)` skips the database.
    fn resolve(
        &mut self,
        entry: &AttachEntry,
        created: bool,
        page_size: u32,
    ) -> Result<Option<ReplayTarget>>;
}

/// Where replay stops: the replay's own form of a point-in-time restore's
/// [`crate::restore::StopAt`] (a time in ms since the epoch, checked against commit records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayStop {
    /// Stop before the first commit record in a generation above this one.
    AfterGeneration(u32),
    /// Stop before the first commit record at or past this position.
    AtPosition(Lsn),
    /// Stop before the first commit made after this time (ms since the epoch).
    AfterTime(u64),
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records read.
    pub records: u64,
    /// Commits applied.
    pub commits: u64,
    /// Page writes issued.
    pub pages_written: u64,
    /// Log bytes read.
    pub log_bytes: u64,
    /// Position of the last commit applied.
    pub last_commit: Lsn,
    /// Whether the stop point was reached.
    pub stopped: bool,
}

/// The redo engine.
pub struct Replay<R: Resolve> {
    resolver: R,
    dbs: HashMap<u32, Option<ReplayTarget>>,
    pending: Vec<(Lsn, Change)>,
    held: BTreeMap<(u32, u32), Vec<u8>>,
    held_bytes: usize,
    stop: Option<ReplayStop>,
    /// What was done.
    pub stats: ReplayStats,
}

impl<R: Resolve> Replay<R> {
    /// A replay that resolves databases with `resolver`.
    pub fn new(resolver: R, stop: Option<ReplayStop>) -> Replay<R> {
        Replay {
            resolver,
            dbs: HashMap::new(),
            pending: Vec::new(),
            held: BTreeMap::new(),
            held_bytes: 0,
            stop,
            stats: ReplayStats::default(),
        }
    }

    /// Makes a database known before the first record (from a checkpoint's attach list).
    pub fn know(&mut self, entry: &AttachEntry, page_size: u32) -> Result<()> {
        if !self.dbs.contains_key(&entry.dbid) {
            let t = self.resolver.resolve(entry, false, page_size)?;
            self.dbs.insert(entry.dbid, t);
        }
        Ok(())
    }

    /// Replays one record of the log stream whose signature is `stream` (the file's).
    pub fn apply(&mut self, f: &Framed, page_size: u32, stream: &Signature) -> Result<()> {
        if self.stats.stopped {
            return Ok(());
        }
        self.stats.records += 1;
        match &f.record {
            Record::Attach {
                entry,
                created,
                page_size,
            } => {
                self.flush_db(entry.dbid)?;
                let t = self.resolver.resolve(entry, *created, *page_size)?;
                self.dbs.insert(entry.dbid, t);
            }
            Record::AttachList(list) => {
                for e in list {
                    self.know(e, page_size)?;
                }
            }
            Record::Detach { dbid } => {
                self.flush_db(*dbid)?;
            }
            Record::Pages(images) => self
                .pending
                .extend(images.iter().map(|i| (f.end, Change::Image(i.clone())))),
            Record::Deltas(deltas) => self
                .pending
                .extend(deltas.iter().map(|d| (f.end, Change::Delta(d.clone())))),
            Record::Commit { time_ms, .. } => {
                if self.should_stop(f.start, *time_ms) {
                    self.stats.stopped = true;
                    self.pending.clear();
                    return Ok(());
                }
                self.commit()?;
                self.stats.commits += 1;
                self.stats.last_commit = f.end;
            }
            Record::BackupUpdate { dbid, field, info } => {
                if let Some(Some(t)) = self.dbs.get_mut(dbid) {
                    // The record was made on the stream being replayed (contract 2.5).
                    let info = BackupInfo {
                        stream: Some(stream.stream_tag()),
                        ..*info
                    };
                    t.header.apply_backup(*field, info);
                }
            }
            Record::BackupMark { .. } | Record::End | Record::Shutdown => {}
        }
        Ok(())
    }

    fn should_stop(&self, at: Lsn, time_ms: u64) -> bool {
        match self.stop {
            None => false,
            Some(ReplayStop::AfterGeneration(g)) => at.gen() > g,
            Some(ReplayStop::AtPosition(p)) => at >= p,
            Some(ReplayStop::AfterTime(t)) => time_ms > t,
        }
    }

    fn commit(&mut self) -> Result<()> {
        for (lsn, change) in std::mem::take(&mut self.pending) {
            match change {
                Change::Image(img) => self.hold_image(lsn, img)?,
                Change::Delta(d) => self.apply_delta(lsn, d)?,
            }
        }
        if self.held_bytes > MAX_HELD_BYTES {
            self.write_held(None)?;
        }
        Ok(())
    }

    fn hold(&mut self, key: (u32, u32), page: Vec<u8>) {
        self.held_bytes += page.len();
        if let Some(old) = self.held.insert(key, page) {
            self.held_bytes -= old.len();
        }
    }

    fn hold_image(&mut self, lsn: Lsn, img: PageImage) -> Result<()> {
        let Some(Some(t)) = self.dbs.get(&img.dbid) else {
            return Ok(());
        };
        // A page image is a whole page of its database: anything else is a damaged log
        // (and reading its header would run off a short one).
        if img.image.len() != t.file.page_size as usize || page::lsn(&img.image) != lsn.0 {
            return Err(Error::LogFileCorrupt);
        }
        self.hold((img.dbid, img.pgno), img.image);
        Ok(())
    }

    /// A delta applies to the page as its previous change left it: the held copy, or the
    /// page on disk. The first change after any checkpoint is a full image, so a page torn on
    /// disk is always rebuilt from an image before a delta reaches it.
    fn apply_delta(&mut self, lsn: Lsn, d: PageDelta) -> Result<()> {
        let Some(Some(t)) = self.dbs.get(&d.dbid) else {
            return Ok(());
        };
        let key = (d.dbid, d.pgno);
        let mut base = match self.held.get(&key) {
            Some(p) => p.clone(),
            None => {
                let p = t.file.read_page_raw(d.pgno)?;
                if page::is_zero(&p) || page::verify(&p, d.pgno).is_err() {
                    return Err(Error::DatabaseCorrupted);
                }
                p
            }
        };
        if page::lsn(&base) >= lsn.0 {
            return Ok(());
        }
        if !crate::log::delta::apply(&mut base, &d.ranges) {
            return Err(Error::LogFileCorrupt);
        }
        page::set_lsn(&mut base, lsn.0);
        self.hold(key, base);
        Ok(())
    }

    /// Writes held images (of one database, or all) in page order; a page already on disk
    /// with a newer position keeps its bytes.
    fn write_held(&mut self, only: Option<u32>) -> Result<()> {
        let keys: Vec<(u32, u32)> = self
            .held
            .keys()
            .filter(|k| only.is_none_or(|d| k.0 == d))
            .copied()
            .collect();
        for key in keys {
            let Some(mut img) = self.held.remove(&key) else {
                continue;
            };
            self.held_bytes -= img.len();
            let Some(Some(t)) = self.dbs.get(&key.0) else {
                continue;
            };
            if img.len() != t.file.page_size as usize || page::pgno(&img) != key.1 {
                return Err(Error::LogFileCorrupt);
            }
            let disk = t.file.read_page_raw(key.1)?;
            let disk_ok = page::verify(&disk, key.1).is_ok() && !page::is_zero(&disk);
            if disk_ok && page::lsn(&disk) >= page::lsn(&img) {
                continue;
            }
            t.file.write_page(key.1, &mut img)?;
            self.stats.pages_written += 1;
        }
        Ok(())
    }

    fn flush_db(&mut self, dbid: u32) -> Result<()> {
        self.write_held(Some(dbid))?;
        if let Some(Some(t)) = self.dbs.get(&dbid) {
            t.file.sync()?;
        }
        Ok(())
    }

    /// Writes everything held, syncs every file, and hands back the databases replayed with
    /// the final counts.
    pub fn finish(mut self) -> Result<(Vec<ReplayTarget>, ReplayStats)> {
        self.write_held(None)?;
        let mut out = Vec::new();
        for (_, t) in self.dbs.drain() {
            if let Some(t) = t {
                t.file.sync()?;
                out.push(t);
            }
        }
        Ok((out, self.stats))
    }
}
