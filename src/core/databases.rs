//! Creating, attaching and detaching database files.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use super::commit::Overlay;
use super::{CommitTicket, Core, Database, DbId};
use crate::btree;
use crate::db::{
    DbFile, DbHeader, OwnerTokens, Signature, STATE_CLEAN, STATE_DIRTY, STATE_JUST_CREATED,
};
use crate::log::{AttachEntry, Record};
use crate::{Error, Result};

impl Core {
    fn attached_path(&self, path: &Path) -> Option<u32> {
        self.dbs
            .iter()
            .find(|(_, d)| d.path == path)
            .map(|(id, _)| *id)
    }

    /// The id of the database attached at `path`.
    pub fn database_id(&self, path: &Path) -> Option<DbId> {
        self.attached_path(path).map(DbId)
    }

    /// Paths of the attached databases, in attach order.
    pub fn attached(&self) -> Vec<(DbId, PathBuf)> {
        self.dbs
            .iter()
            .map(|(id, d)| (DbId(*id), d.path.clone()))
            .collect()
    }

    /// The in-memory header of an attached database.
    pub fn header(&self, db: DbId) -> Result<&DbHeader> {
        self.dbs
            .get(&db.0)
            .map(|d| &d.header)
            .ok_or(Error::InvalidDatabaseId)
    }

    /// The open file of an attached database.
    pub fn db_file(&self, db: DbId) -> Result<&DbFile> {
        self.dbs
            .get(&db.0)
            .map(|d| &d.file)
            .ok_or(Error::InvalidDatabaseId)
    }

    /// Last data page of an attached database, as the cache knows it.
    pub fn last_page(&mut self, db: DbId) -> Result<u32> {
        let mut v = self.view(db.0, None)?;
        Ok(btree::read_meta(&mut v)?.last_page)
    }

    /// The attach list: what the checkpoint and each log file's preamble record.
    pub(super) fn entries(&self) -> Vec<AttachEntry> {
        self.dbs
            .iter()
            .map(|(id, d)| AttachEntry {
                dbid: *id,
                signature: d.header.db_signature,
                path: d.path.clone(),
            })
            .collect()
    }

    fn refresh_preamble(&mut self) {
        let e = self.entries();
        self.log.set_preamble(e);
    }

    /// Refuses an attach past [`OwnerTokens::REMEMBERED`] databases, or one the checkpoint
    /// could not record (`TooManyAttachedDatabases`). A clean term issues a token for every
    /// attached database at once, and more than the instance remembers would push out the
    /// first of them; the checkpoint's 32 KiB slot holds the attach list beside the tokens,
    /// and a checkpoint that cannot be written would fail the next flush and make the
    /// instance unavailable.
    fn check_room(&self, path: &Path) -> Result<()> {
        if self.dbs.len() >= OwnerTokens::REMEMBERED {
            return Err(Error::TooManyAttachedDatabases);
        }
        let mut list = self.entries();
        list.push(AttachEntry {
            dbid: self.next_dbid,
            signature: Signature::NONE,
            path: path.to_path_buf(),
        });
        if !crate::log::checkpoint::attach_list_fits(&list) {
            return Err(Error::TooManyAttachedDatabases);
        }
        Ok(())
    }

    /// Logs (durably) that the database at `path` is attached under a new id, and returns the id.
    fn log_attach(&mut self, path: &Path, header: &DbHeader, created: bool) -> Result<u32> {
        let dbid = self.next_dbid;
        let entry = AttachEntry {
            dbid,
            signature: header.db_signature,
            path: path.to_path_buf(),
        };
        let rec = Record::Attach {
            entry,
            created,
            page_size: header.page_size,
        };
        let at = self.log.append(&rec, true)?;
        self.log.wait_durable(at)?;
        Ok(dbid)
    }

    /// Creates a database file, locked, and attaches it. Returns the commit that formats it;
    /// the database is usable at once, durable once that commit is.
    pub fn create_database(&mut self, path: &Path) -> Result<(DbId, CommitTicket)> {
        self.check_available()?;
        if self.backup.is_some() {
            return Err(Error::BackupInProgress);
        }
        let path = checked_path(path)?;
        if self.attached_path(&path).is_some() {
            return Err(Error::DatabaseDuplicate);
        }
        self.check_room(&path)?;
        if self.storage.exists(&path) && !self.remove_cut_creation(&path)? {
            return Err(Error::FileAlreadyExists);
        }
        // A directory is no file to make; a file needs its directory. Both refused with the
        // codes ESE gives, before anything is made.
        if self.storage.is_dir(&path) {
            return Err(Error::FileAlreadyExists);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !self.storage.is_dir(dir) {
                return Err(Error::FileNotFound);
            }
        }
        let ps = self.params.page_bytes();
        let mut header = DbHeader::new(ps, self.log.signature());
        header.gen_min_required = self.log.gen();
        header.owner_token = self.persist_owner_token(header.db_signature, 0)?;
        // The file is made before its attach is logged, as ESE does: recovery makes again
        // every database created in the log it replays, and a file the system refuses to
        // make (a name too long, no permission) would fail it at every init. Until the attach
        // is logged the header says "just created": a crash in between leaves a file no log
        // names, which the next create of this path replaces (`remove_cut_creation`).
        header.state = STATE_JUST_CREATED;
        let (file, lock) = DbFile::create(&*self.storage, &path, &header)?;
        let logged = self.log_attach(&path, &header, true).and_then(|dbid| {
            header.state = STATE_DIRTY;
            file.write_header(&header).map(|()| dbid)
        });
        let dbid = match logged {
            Ok(dbid) => dbid,
            Err(e) => {
                drop((file, lock));
                let _ = self.storage.remove(&path);
                return Err(e);
            }
        };
        self.next_dbid += 1;
        self.dbs.insert(
            dbid,
            Database {
                path,
                file,
                header,
                tables: HashMap::new(),
                roots: Default::default(),
                _lock: lock,
            },
        );
        self.refresh_preamble();
        let mut overlay = Overlay::new();
        btree::format(&mut self.view(dbid, Some(&mut overlay))?);
        let t = self.log_changes(overlay, true)?;
        Ok((DbId(dbid), t))
    }

    /// Removes a database file a crash left half made ([`STATE_JUST_CREATED`]: made, its
    /// attach never logged, or recovery would have finished or removed it) and answers true;
    /// false for any other file, which stays as found. It holds no page: nothing is lost.
    fn remove_cut_creation(&self, path: &Path) -> Result<bool> {
        let Ok((file, header, lock)) = DbFile::open_locked(&*self.storage, path) else {
            return Ok(false);
        };
        if !header.is_just_created() {
            return Ok(false);
        }
        tracing::warn!(path = %path.display(), "replacing a database file whose creation a crash cut");
        drop((file, lock));
        self.storage.remove(path)?;
        Ok(true)
    }

    /// Attaches an existing database file, locked until it is detached or the core dropped
    /// (`FileAccessDenied` if another instance holds it).
    pub fn attach_database(&mut self, path: &Path) -> Result<DbId> {
        self.check_available()?;
        if self.backup.is_some() {
            return Err(Error::BackupInProgress);
        }
        let path = checked_path(path)?;
        if self.attached_path(&path).is_some() {
            return Err(Error::DatabaseDuplicate);
        }
        self.check_room(&path)?;
        // Locked before its header is read: a database another instance holds is not touched.
        let (file, mut header, lock) = DbFile::open_locked(&*self.storage, &path)?;
        if header.page_size != self.params.page_bytes() {
            return Err(Error::PageSizeMismatch);
        }
        if header.state != STATE_CLEAN {
            return Err(Error::DatabaseDirtyShutdown);
        }
        // Two files of one database (a copy beside its original) would share its owner token.
        if self
            .dbs
            .values()
            .any(|d| d.header.db_signature == header.db_signature)
        {
            return Err(Error::DatabaseSignInUse);
        }
        // Before anything is written: a file cut short is refused as it was found.
        file.check_holds(btree::META_PGNO)?;
        let meta = btree::decode_meta(&file.read_page(btree::META_PGNO)?)?;
        file.check_holds(meta.last_page)?;
        // A database last written under another log stream (a restored copy, a file moved
        // between instances) carries that stream's positions, which mean nothing in this
        // one: redo compares them with this stream's records. Every page is stamped with
        // this stream's tip first, "all changes up to here": the changes made after this
        // attach are newer, this stream's records from before it (the database's last stay
        // here, which restore replays from the start of its first log) are not.
        // Also a database of this stream that another instance continuing it (a copied
        // instance directory, an instance started on a restore's logs) wrote last: this
        // instance does not hold its owner token (`OwnerTokens`).
        let moved =
            header.log_signature != self.log.signature() || !self.owner_tokens.wrote(&header);
        if moved {
            self.stamp_moved(&path, &file, &header, meta.last_page)?;
        }
        // The dirty header carries a token of this instance's own: a copy of the instance
        // that recovers this file later (its log names it) finds a token it does not hold.
        // The header on disk keeps its token if this instance's (the attach may fail before
        // it writes); a moved one's never counts again.
        let on_disk = if moved { 0 } else { header.owner_token };
        header.owner_token = self.persist_owner_token(header.db_signature, on_disk)?;
        let dbid = self.log_attach(&path, &header, false)?;
        if moved {
            // Backups taken under another stream cannot be the base of an incremental here,
            // whatever stream comes back later: the next incremental needs a full first.
            header.last_full = None;
            header.last_incremental = None;
            header.last_copy = None;
            header.last_differential = None;
        }
        header.state = STATE_DIRTY;
        header.log_signature = self.log.signature();
        header.gen_min_required = self.log.gen();
        file.write_header(&header)?;
        self.next_dbid += 1;
        self.dbs.insert(
            dbid,
            Database {
                path,
                file,
                header,
                tables: HashMap::new(),
                roots: Default::default(),
                _lock: lock,
            },
        );
        if let Err(e) = self.load_catalog(dbid) {
            self.dbs.remove(&dbid);
            self.cache.remove_db(dbid);
            return Err(e);
        }
        self.refresh_preamble();
        Ok(DbId(dbid))
    }

    /// Stamps every page of a database that is not this instance's with this stream's tip.
    fn stamp_moved(&self, path: &Path, file: &DbFile, header: &DbHeader, last: u32) -> Result<()> {
        // Until the header names this stream it names none: an attach that fails past here,
        // or a crash, leaves pages stamped with this stream's positions under a header that
        // makes any next attach, by any instance, stamp them again.
        if header.log_signature != Signature::NONE {
            let mut h = header.clone();
            h.log_signature = Signature::NONE;
            file.write_header(&h)?;
        }
        let r = restamp_pages(file, last, self.log.tip().0)?;
        tracing::info!(path = %path.display(), pages = r.stamped, damaged = r.damaged, "database from another log stream or instance: its pages' log positions set to this stream's tip");
        Ok(())
    }

    fn load_catalog(&mut self, dbid: u32) -> Result<()> {
        let mut v = self.view(dbid, None)?;
        let root = btree::read_meta(&mut v)?.catalog_root;
        let rows = btree::scan(&mut v, root, Bound::Unbounded, Bound::Unbounded)?;
        let mut tables = HashMap::new();
        for (k, val) in rows {
            let name = String::from_utf8(k).map_err(|_| Error::CatalogCorrupted)?;
            let bytes: [u8; 8] = val
                .as_slice()
                .try_into()
                .map_err(|_| Error::CatalogCorrupted)?;
            tables.insert(name, u64::from_le_bytes(bytes) as u32);
        }
        if let Some(db) = self.dbs.get_mut(&dbid) {
            db.roots = tables.values().copied().collect();
            db.tables = tables;
        }
        Ok(())
    }

    /// Detaches a database: its pages are flushed, its header marked clean, and its lock
    /// released.
    pub fn detach_database(&mut self, path: &Path) -> Result<()> {
        self.check_available()?;
        if self.backup.is_some() {
            return Err(Error::BackupInProgress);
        }
        let path = checked_path(path)?;
        let dbid = self.attached_path(&path).ok_or(Error::DatabaseNotFound)?;
        if self
            .sessions
            .values()
            .flatten()
            .any(|t| t.writes.keys().any(|k| k.0 == dbid))
        {
            return Err(Error::DatabaseInUse);
        }
        let at = self.log.append(&Record::Detach { dbid }, true)?;
        self.log.wait_durable(at)?;
        let (signature, on_disk) = {
            let h = self.header(DbId(dbid))?;
            (h.db_signature, h.owner_token)
        };
        // Into the checkpoint that flush writes, before the header holds it.
        let token = self.issue_owner_token(signature, on_disk);
        self.flush_all()?;
        let db = self.dbs.remove(&dbid).ok_or(Error::DatabaseNotFound)?;
        self.cache.remove_db(dbid);
        self.refresh_preamble();
        let mut h = db.header;
        h.state = STATE_CLEAN;
        h.consistent_lsn = self.log.tip().0;
        h.gen_min_required = 0;
        h.gen_max_required = 0;
        h.owner_token = token;
        db.file.write_header(&h)
    }

    /// Writes a header change (a backup field) to an attached database's file.
    pub fn write_header(&mut self, db: DbId, header: DbHeader) -> Result<()> {
        let d = self.dbs.get_mut(&db.0).ok_or(Error::InvalidDatabaseId)?;
        d.file.write_header(&header)?;
        d.header = header;
        Ok(())
    }
}

/// Refuses empty paths; keeps the path as the caller spelled it (the name ESE reports back).
fn checked_path(p: &Path) -> Result<PathBuf> {
    if p.as_os_str().is_empty() {
        return Err(Error::InvalidParameter);
    }
    Ok(p.to_path_buf())
}

/// What [`restamp_pages`] did.
struct Restamped {
    stamped: u32,
    damaged: u32,
}

/// Stamps every written data page with log position `tip` and syncs the file. A page never
/// written stays all zeros; a page that fails verification is left for the read that meets
/// it to report. Under a header naming no stream: a crash midway leaves it so, and the next
/// attach does it again.
fn restamp_pages(file: &DbFile, last_page: u32, tip: u64) -> Result<Restamped> {
    let mut r = Restamped {
        stamped: 0,
        damaged: 0,
    };
    for pgno in btree::META_PGNO..=last_page {
        let mut p = file.read_page_raw(pgno)?;
        if crate::page::is_zero(&p) || crate::page::lsn(&p) == tip {
            continue;
        }
        if file.verify_page(&p, pgno).is_err() {
            r.damaged += 1;
            continue;
        }
        crate::page::set_lsn(&mut p, tip);
        file.write_page(pgno, &mut p)?;
        r.stamped += 1;
    }
    if r.stamped > 0 {
        file.sync()?;
    }
    Ok(r)
}
