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
//! log it is reading (behaviour.md §2.5). A [`ReplayStop`] ends replay before the first commit
//! past a point in time, a position or a generation (point-in-time restore).

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
    /// `Ok(None)` skips the database. `stream` is the signature of the log being replayed.
    fn resolve(
        &mut self,
        entry: &AttachEntry,
        created: bool,
        page_size: u32,
        stream: &Signature,
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

impl ReplayStop {
    /// Whether a commit record starting at `at`, made at `time_ms`, lies past the stop point.
    /// Replay and restore's check of the stop point ask the same question through this.
    pub fn stops(self, at: Lsn, time_ms: u64) -> bool {
        match self {
            ReplayStop::AfterGeneration(g) => at.gen() > g,
            ReplayStop::AtPosition(p) => at >= p,
            ReplayStop::AfterTime(t) => time_ms > t,
        }
    }
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
    /// Whether the log ended with page changes of a transaction whose commit record is not
    /// there (a crash cut it): they were dropped.
    pub uncommitted: bool,
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

    /// Makes a database known before the first record (from a checkpoint's attach list, of
    /// the log stream `stream`).
    pub fn know(&mut self, entry: &AttachEntry, page_size: u32, stream: &Signature) -> Result<()> {
        if !self.dbs.contains_key(&entry.dbid) {
            let t = self.resolver.resolve(entry, false, page_size, stream)?;
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
                let t = self.resolver.resolve(entry, *created, *page_size, stream)?;
                self.dbs.insert(entry.dbid, t);
            }
            Record::AttachList(list) => {
                for e in list {
                    self.know(e, page_size, stream)?;
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
                    // The record was made on the stream being replayed (behaviour.md §2.5).
                    let info = BackupInfo {
                        stream: Some(stream.stream_tag()),
                        ..*info
                    };
                    t.header.apply_backup(*field, info);
                }
            }
            // A clean termination, or the restart after a recovery that dropped a transaction
            // cut by a crash: no transaction is open there, so page changes still pending
            // belong to one that never committed and must not ride on the next commit.
            Record::Shutdown => self.pending.clear(),
            Record::BackupMark { .. } | Record::End => {}
        }
        Ok(())
    }

    fn should_stop(&self, at: Lsn, time_ms: u64) -> bool {
        self.stop.is_some_and(|s| s.stops(at, time_ms))
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
        self.stats.uncommitted = !self.pending.is_empty();
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::db::BackupField;
    use crate::io::{FaultStorage, Storage};
    use crate::log::LOG_HEADER_SIZE;
    use crate::page::PageKind;

    const PS: u32 = 4096;
    const DB: u32 = 1;
    const PGNO: u32 = 3;
    /// Bytes every test record takes in its generation.
    const REC: u32 = 64;

    /// One database file in memory and the stream its log belongs to.
    struct Fixture {
        storage: FaultStorage,
        path: PathBuf,
        entry: AttachEntry,
        stream: Signature,
    }

    fn fixture() -> Fixture {
        let storage = FaultStorage::new();
        storage.create_dir_all(Path::new("/d")).unwrap();
        let path = PathBuf::from("/d/a.edb");
        let stream = Signature::generate();
        let header = DbHeader::new(PS, stream);
        // Replay takes no lock of its own (soft recovery's resolver does): none is kept.
        drop(DbFile::create(&storage, &path, &header).unwrap());
        let entry = AttachEntry {
            dbid: DB,
            signature: header.db_signature,
            path: path.clone(),
        };
        Fixture {
            storage,
            path,
            entry,
            stream,
        }
    }

    impl Fixture {
        /// Page `pgno` as it is in the file.
        fn page(&self, pgno: u32) -> Vec<u8> {
            let (file, _) = DbFile::open(&self.storage, &self.path).unwrap();
            file.read_page_raw(pgno).unwrap()
        }

        /// Replays `records` of the log of `stream` from a known database, as soft recovery
        /// does from a checkpoint's attach list.
        fn replay_on(
            &self,
            records: &[Framed],
            stop: Option<ReplayStop>,
            stream: &Signature,
        ) -> Result<(Vec<ReplayTarget>, ReplayStats)> {
            let mut replay = Replay::new(self.resolver(), stop);
            replay.know(&self.entry, PS, stream)?;
            for f in records {
                replay.apply(f, PS, stream)?;
            }
            replay.finish()
        }

        fn replay(&self, records: &[Framed], stop: Option<ReplayStop>) -> Result<ReplayStats> {
            Ok(self.replay_on(records, stop, &self.stream)?.1)
        }

        fn resolver(&self) -> One<'_> {
            One {
                storage: &self.storage,
                path: &self.path,
            }
        }
    }

    /// Replays every database into the fixture's file.
    struct One<'a> {
        storage: &'a FaultStorage,
        path: &'a Path,
    }

    impl Resolve for One<'_> {
        fn resolve(
            &mut self,
            _entry: &AttachEntry,
            _created: bool,
            _page_size: u32,
            _stream: &Signature,
        ) -> Result<Option<ReplayTarget>> {
            let (file, header) = DbFile::open(self.storage, self.path)?;
            Ok(Some(ReplayTarget {
                file,
                header,
                created: false,
            }))
        }
    }

    /// A log being written: records of `REC` bytes each, positions as the writer gives them.
    struct Log {
        gen: u32,
        at: u32,
        records: Vec<Framed>,
    }

    impl Log {
        fn new() -> Log {
            Log {
                gen: 1,
                at: LOG_HEADER_SIZE,
                records: Vec::new(),
            }
        }

        fn push(&mut self, record: Record) -> (Lsn, Lsn) {
            let start = Lsn::new(self.gen, self.at);
            self.at += REC;
            let end = Lsn::new(self.gen, self.at);
            self.records.push(Framed {
                start,
                end,
                durable_mark: Lsn::default(),
                record,
            });
            (start, end)
        }

        /// Logs a full image of `pgno` whose body is `fill`; returns the page as logged.
        fn image(&mut self, pgno: u32, fill: u8) -> Vec<u8> {
            let mut p = page::new_page(PS, pgno, PageKind::Leaf);
            p[32..64].fill(fill);
            page::set_lsn(&mut p, Lsn::new(self.gen, self.at + REC).0);
            self.push(Record::Pages(vec![PageImage {
                dbid: DB,
                pgno,
                image: p.clone(),
            }]));
            p
        }

        /// Logs a delta of `pgno`; returns the position it gives the page.
        fn delta(&mut self, pgno: u32, ranges: Vec<(u16, Vec<u8>)>) -> Lsn {
            self.push(Record::Deltas(vec![PageDelta {
                dbid: DB,
                pgno,
                ranges,
            }]))
            .1
        }

        /// Logs a commit made at `time_ms`; returns where the record starts.
        fn commit(&mut self, time_ms: u64) -> Lsn {
            self.push(Record::Commit { seq: 0, time_ms }).0
        }

        fn roll(&mut self) {
            self.gen += 1;
            self.at = LOG_HEADER_SIZE;
        }
    }

    /// A page as it is written: sealed.
    fn sealed(mut p: Vec<u8>) -> Vec<u8> {
        page::seal(&mut p);
        p
    }

    #[test]
    fn an_image_applies_only_onto_an_older_page_so_replaying_twice_changes_nothing() {
        let f = fixture();
        let mut log = Log::new();
        log.image(PGNO, 0xA1);
        log.commit(1);
        let b = log.image(PGNO, 0xB2);
        log.commit(2);
        let stats = f.replay(&log.records, None).unwrap();
        assert_eq!(f.page(PGNO), sealed(b.clone()));
        assert_eq!(
            (stats.commits, stats.pages_written),
            (2, 1),
            "one write per page"
        );
        assert_eq!(stats.last_commit, log.records[3].end);

        let again = f.replay(&log.records, None).unwrap();
        assert_eq!(f.page(PGNO), sealed(b.clone()), "replayed twice");
        assert_eq!(again.pages_written, 0);
        let older = f.replay(&log.records[..2], None).unwrap();
        assert_eq!(
            f.page(PGNO),
            sealed(b.clone()),
            "an older image is not applied"
        );
        assert_eq!(older.pages_written, 0);

        // A torn page on disk is rebuilt from the image, even one at the page's own position.
        let off = page::page_offset(PGNO, PS) + 100;
        f.storage.flip_bit(&f.path, off, 0).unwrap();
        let repaired = f.replay(&log.records, None).unwrap();
        assert_eq!(f.page(PGNO), sealed(b));
        assert_eq!(repaired.pages_written, 1);
    }

    #[test]
    fn changes_wait_for_their_commit() {
        let f = fixture();
        let mut log = Log::new();
        let a = log.image(PGNO, 0xA1);
        log.commit(1);
        log.image(PGNO, 0xB2);
        log.delta(PGNO, vec![(40, vec![7; 4])]);
        let stats = f.replay(&log.records, None).unwrap();
        assert_eq!(
            f.page(PGNO),
            sealed(a),
            "the last transaction never committed"
        );
        assert_eq!((stats.records, stats.commits), (4, 1));
    }

    #[test]
    fn deltas_apply_in_order_onto_the_previous_change() {
        let f = fixture();
        let mut log = Log::new();
        let mut want = log.image(PGNO, 0x11);
        log.delta(PGNO, vec![(40, vec![1, 2, 3, 4])]);
        log.commit(1);
        let at = log.delta(PGNO, vec![(42, vec![9, 9, 9, 9]), (60, vec![5])]);
        log.commit(2);
        want[40..46].copy_from_slice(&[1, 2, 9, 9, 9, 9]);
        want[60] = 5;
        page::set_lsn(&mut want, at.0);
        let stats = f.replay(&log.records, None).unwrap();
        assert_eq!(f.page(PGNO), sealed(want.clone()));
        assert_eq!(stats.pages_written, 1);

        let again = f.replay(&log.records, None).unwrap();
        assert_eq!(f.page(PGNO), sealed(want.clone()), "replayed twice");
        assert_eq!(again.pages_written, 0);

        // From a later checkpoint, past the image: the delta applies onto the page on disk.
        let from = log.records.len();
        let at = log.delta(PGNO, vec![(50, vec![0xEE; 2])]);
        log.commit(3);
        want[50..52].fill(0xEE);
        page::set_lsn(&mut want, at.0);
        f.replay(&log.records[from..], None).unwrap();
        assert_eq!(f.page(PGNO), sealed(want.clone()));
        // And a delta the page on disk already has is left alone.
        let skipped = f.replay(&log.records[from..], None).unwrap();
        assert_eq!(f.page(PGNO), sealed(want));
        assert_eq!(skipped.pages_written, 0);
    }

    #[test]
    fn a_delta_needs_a_page_that_verifies_under_it() {
        // Never written: the horizon rule says an image comes first, so a log without one is
        // a database that does not belong to it.
        let f = fixture();
        let mut log = Log::new();
        log.delta(PGNO, vec![(40, vec![1])]);
        log.commit(1);
        assert!(matches!(
            f.replay(&log.records, None),
            Err(Error::DatabaseCorrupted)
        ));
        assert!(page::is_zero(&f.page(PGNO)), "nothing written");

        // Torn on disk, with no image of it in the replayed range.
        let f = fixture();
        let mut log = Log::new();
        log.image(PGNO, 0x11);
        log.commit(1);
        f.replay(&log.records, None).unwrap();
        let from = log.records.len();
        log.delta(PGNO, vec![(40, vec![1])]);
        log.commit(2);
        let off = page::page_offset(PGNO, PS) + 100;
        f.storage.flip_bit(&f.path, off, 0).unwrap();
        assert!(matches!(
            f.replay(&log.records[from..], None),
            Err(Error::DatabaseCorrupted)
        ));

        // A delta that does not fit the page is a damaged log.
        let f = fixture();
        let mut log = Log::new();
        log.image(PGNO, 0x11);
        log.delta(PGNO, vec![(PS as u16 - 1, vec![1, 2])]);
        log.commit(1);
        assert!(matches!(
            f.replay(&log.records, None),
            Err(Error::LogFileCorrupt)
        ));
    }

    #[test]
    fn an_image_that_is_not_its_records_page_is_a_damaged_log() {
        let f = fixture();
        let mut log = Log::new();
        let mut p = log.image(PGNO, 0x11);
        log.commit(1);
        page::set_lsn(&mut p, 1);
        log.records[0].record = Record::Pages(vec![PageImage {
            dbid: DB,
            pgno: PGNO,
            image: p,
        }]);
        assert!(matches!(
            f.replay(&log.records, None),
            Err(Error::LogFileCorrupt)
        ));
        assert!(page::is_zero(&f.page(PGNO)));
    }

    #[test]
    fn a_backup_update_takes_the_stream_of_the_log_replayed() {
        let f = fixture();
        let mut log = Log::new();
        let info = BackupInfo {
            mark: Lsn::new(1, 8192).0,
            time_ms: 5,
            gen_low: 1,
            gen_high: 1,
            stream: None,
        };
        // Applied as read, without a commit: it is not part of a transaction.
        log.push(Record::BackupUpdate {
            dbid: DB,
            field: BackupField::Full,
            info,
        });
        let (targets, _) = f.replay_on(&log.records, None, &f.stream).unwrap();
        let tag = |s: &Signature| Some(s.stream_tag());
        assert_eq!(
            targets[0].header.last_full,
            Some(BackupInfo {
                stream: tag(&f.stream),
                ..info
            })
        );

        // The same record in another stream's log (a record carries no stream of its own):
        // that stream's.
        let other = Signature::generate();
        log.records[0].record = Record::BackupUpdate {
            dbid: DB,
            field: BackupField::Full,
            info: BackupInfo {
                stream: tag(&f.stream),
                ..info
            },
        };
        let (targets, _) = f.replay_on(&log.records, None, &other).unwrap();
        assert_eq!(
            targets[0].header.last_full,
            Some(BackupInfo {
                stream: tag(&other),
                ..info
            })
        );
        assert_eq!(targets[0].header.last_incremental, None);
    }

    /// Three commits, each a new image of one page: times 100 and 300 in generation 1, 200 in
    /// generation 2. Returns the log, the pages and where each commit record starts.
    fn three_commits() -> (Log, Vec<Vec<u8>>, Vec<Lsn>) {
        let mut log = Log::new();
        let mut pages = Vec::new();
        let mut commits = Vec::new();
        for (i, time) in [100, 300, 200].into_iter().enumerate() {
            if i == 2 {
                log.roll();
            }
            pages.push(log.image(PGNO, i as u8 + 1));
            commits.push(log.commit(time));
        }
        (log, pages, commits)
    }

    #[test]
    fn a_stop_point_stops_before_the_first_commit_past_it() {
        let (log, pages, commits) = three_commits();
        let cases = [
            (None, 3),
            (Some(ReplayStop::AfterGeneration(1)), 2),
            (Some(ReplayStop::AfterGeneration(2)), 3),
            (Some(ReplayStop::AtPosition(commits[1])), 1),
            (Some(ReplayStop::AtPosition(Lsn(commits[1].0 + 1))), 2),
            // Commit 3 is older than commit 2, yet replay ends at commit 2.
            (Some(ReplayStop::AfterTime(250)), 1),
            (Some(ReplayStop::AfterTime(300)), 3),
            (Some(ReplayStop::AfterTime(99)), 0),
        ];
        for (stop, applied) in cases {
            let f = fixture();
            let stats = f.replay(&log.records, stop).unwrap();
            let what = format!("{stop:?}");
            assert_eq!(stats.commits, applied, "{what}");
            assert_eq!(stats.stopped, applied < 3, "{what}");
            let want = match applied {
                0 => vec![0; PS as usize],
                n => sealed(pages[n as usize - 1].clone()),
            };
            assert_eq!(f.page(PGNO), want, "{what}");
            let last = match applied {
                0 => Lsn::default(),
                n => log.records[2 * n as usize - 1].end,
            };
            assert_eq!(stats.last_commit, last, "{what}");
        }
    }

    #[test]
    fn detach_writes_the_database_before_replay_goes_on() {
        let f = fixture();
        let mut log = Log::new();
        let a = log.image(PGNO, 0x11);
        log.commit(1);
        log.push(Record::Detach { dbid: DB });
        let mut replay = Replay::new(f.resolver(), None);
        replay.know(&f.entry, PS, &f.stream).unwrap();
        for r in &log.records[..2] {
            replay.apply(r, PS, &f.stream).unwrap();
        }
        assert!(page::is_zero(&f.page(PGNO)), "held until the end");
        replay.apply(&log.records[2], PS, &f.stream).unwrap();
        assert_eq!(f.page(PGNO), sealed(a));
    }

    #[test]
    fn a_database_no_resolver_named_is_not_replayed() {
        let f = fixture();
        let mut log = Log::new();
        log.image(PGNO, 0x11);
        log.commit(1);
        // Without `know`, no database has id 1.
        let mut replay = Replay::new(f.resolver(), None);
        for r in &log.records {
            replay.apply(r, PS, &f.stream).unwrap();
        }
        let (targets, stats) = replay.finish().unwrap();
        assert!(targets.is_empty());
        assert_eq!((stats.commits, stats.pages_written), (1, 0));
        assert!(page::is_zero(&f.page(PGNO)));
    }
}
