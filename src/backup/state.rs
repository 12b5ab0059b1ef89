//! The backup state machine of one instance. Plain data: every method takes what it needs to
//! know about the instance as arguments, so the whole sequence is testable without files,
//! threads or a runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::events;
use crate::db::{BackupField, BackupInfo, DbFile, DbHeader, Signature};
use crate::io::BufferPool;
use crate::log::names;
use crate::lsn::Lsn;
use crate::{BackupEnd, Error};

/// The kind of one ESE streaming backup: full (database phase first) or incremental (logs
/// only). Not `ese_actors::BackupKind`, which names the four kinds of a backup set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// Databases, then logs.
    Full,
    /// Logs only.
    Incremental,
}

/// Where the sequence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Databases may be opened (full backup only).
    Databases,
    /// The log was rolled and the ranges fixed; only listed logs may be opened.
    Logs,
}

/// An error, and whether it ends the whole backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What the caller gets.
    pub error: Error,
    /// Whether the backup is gone afterwards.
    pub abort: bool,
}

impl Failure {
    fn keep(error: Error) -> Failure {
        Failure {
            error,
            abort: false,
        }
    }
    fn abort(error: Error) -> Failure {
        Failure { error, abort: true }
    }
}

/// The log ranges fixed by the first `get_log_info` (generations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRanges {
    /// First generation to copy.
    pub copy_low: u32,
    /// Last generation to copy (the one before the new current log).
    pub copy_high: u32,
    /// Generations `truncate_log` deletes, ascending.
    pub truncate: Vec<u32>,
    /// The mark of an incremental backup (the log roll's position and time).
    pub mark: (Lsn, u64),
}

/// What an open backup file is.
#[derive(Clone, Debug)]
pub enum OpenedFile {
    /// A database image.
    Db {
        /// The instance's id for it.
        dbid: u32,
        /// The open database file.
        file: DbFile,
        /// The header copy that carries the backup mark (written twice at the start).
        header: Arc<Vec<u8>>,
        /// Signatures for the trailer.
        db_signature: Signature,
        /// Last data page streamed.
        last_page: u32,
    },
    /// An archived log file.
    Log {
        /// Its generation.
        gen: u32,
        /// Where it is.
        path: PathBuf,
        /// Its bytes, once read and verified (the first read does it).
        bytes: Option<Bytes>,
    },
}

#[derive(Clone, Debug)]
struct Slot {
    file: OpenedFile,
    size: u64,
    pos: u64,
    busy: bool,
}

/// Names one planned read: the backup it was issued in and the file it reads. Its completion
/// is settled against exactly these, so a read still on disk when its backup ends can never
/// touch a later backup (behaviour.md §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTicket {
    /// The backup's id ([`BackupState::id`]).
    pub backup: u64,
    /// The file's handle.
    pub handle: u64,
}

/// What to read for one `read_file`.
#[derive(Clone, Debug)]
pub enum ReadPlan {
    /// End of file: an empty chunk.
    Eof,
    /// Bytes of a database image.
    Db {
        /// The open file.
        file: DbFile,
        /// Offset in the image.
        pos: u64,
        /// Bytes to produce.
        len: usize,
        /// The header copy.
        header: Arc<Vec<u8>>,
        /// Last data page.
        last_page: u32,
        /// The trailer, when this chunk reaches it: its backup record's last generation is
        /// the one current at the plan, raised by the read to that of the log's durable
        /// position once the pages are read.
        trailer: Option<crate::db::Trailer>,
        /// Where the chunk's buffer comes from (and goes back to once the client drops it).
        buffers: Arc<BufferPool>,
    },
    /// Bytes of a log file (the whole file is read and verified on the first read).
    Log {
        /// Where it is.
        path: PathBuf,
        /// Its generation.
        gen: u32,
        /// Offset.
        pos: u64,
        /// Bytes to produce.
        len: usize,
        /// Its bytes if already verified.
        bytes: Option<Bytes>,
    },
}

/// How `end_external_backup` finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndOutcome {
    /// What the caller gets.
    pub result: Result<(), Error>,
    /// Header updates to log and apply: (dbid, field, value).
    pub updates: Vec<(u32, BackupField, BackupInfo)>,
    /// The event id to report.
    pub event: u32,
}

/// One backup in progress.
#[derive(Clone, Debug)]
pub struct BackupState {
    id: u64,
    /// Full or incremental.
    pub kind: StreamKind,
    /// Databases or logs.
    pub phase: Phase,
    /// `stop_backup` was called: later calls get `BackupAbortByServer`.
    pub stop: bool,
    /// Log position at begin (full backups' mark).
    pub mark: Lsn,
    /// Time at begin, ms.
    pub mark_time: u64,
    /// Checkpoint generation at begin: the first log a full backup needs.
    pub gen_low: u32,
    /// Fixed by the log phase.
    pub ranges: Option<LogRanges>,
    files: BTreeMap<u64, Slot>,
    next_handle: u64,
    max_open: usize,
    /// Databases read to their end (trailer included).
    pub copied: BTreeSet<u32>,
    /// Logs of the copy range read to their end.
    pub logs_read: BTreeSet<u32>,
    /// `truncate_log` ran.
    pub truncated: bool,
    page_size: u32,
    log_dir: PathBuf,
    base: String,
    log_signature: Signature,
    /// The `backup` span (its kind and id): every event of this backup is emitted inside it.
    span: tracing::Span,
    /// Chunk buffers of database reads, reused: a client that drops each chunk before it
    /// asks for the next keeps the backup at a few buffers, whatever the size of the files.
    buffers: Arc<BufferPool>,
}

/// What `begin` needs to know about the instance.
#[derive(Clone, Debug)]
pub struct BeginFacts<'a> {
    /// Whether circular logging is on.
    pub circular: bool,
    /// Headers of the attached databases.
    pub headers: Vec<&'a DbHeader>,
    /// The log tip now.
    pub tip: Lsn,
    /// Time now, ms.
    pub now_ms: u64,
    /// The checkpoint's generation now.
    pub checkpoint_gen: u32,
    /// Page size.
    pub page_size: u32,
    /// Log directory and base name.
    pub log_dir: PathBuf,
    /// Base name.
    pub base: String,
    /// The log stream's signature.
    pub log_signature: Signature,
    /// `max_open_backup_files`.
    pub max_open: usize,
    /// This backup's id: unique within the instance's life.
    pub id: u64,
    /// The first handle this backup may give out: handles are never reused within an
    /// instance's life, so the instance passes on where the previous backup stopped.
    pub first_handle: u64,
}

impl BackupState {
    /// `begin_external_backup`, after the gate and the "not allowed after a failed term"
    /// check. `running` says whether a backup already runs.
    pub fn begin(
        grbit: crate::BackupBegin,
        running: bool,
        f: BeginFacts,
    ) -> Result<BackupState, Error> {
        use crate::BackupBegin as B;
        if !(grbit - B::INCREMENTAL).is_empty() {
            return Err(Error::InvalidGrbit);
        }
        let kind = if grbit.contains(B::INCREMENTAL) {
            StreamKind::Incremental
        } else {
            StreamKind::Full
        };
        if kind == StreamKind::Incremental && f.circular {
            return Err(Error::InvalidBackup);
        }
        if running {
            return Err(Error::BackupInProgress);
        }
        // A full backup made on another log stream is none here: its generations are not
        // this stream's (behaviour.md §2.5).
        let has_full = |h: &&DbHeader| h.last_full.is_some_and(|b| b.on_stream(&f.log_signature));
        if kind == StreamKind::Incremental && !f.headers.iter().all(has_full) {
            tracing::warn!(
                event_id = events::MISSING_FULL,
                "incremental backup refused: a database has no full backup"
            );
            return Err(Error::MissingFullBackup);
        }
        let phase = if kind == StreamKind::Full {
            Phase::Databases
        } else {
            Phase::Logs
        };
        let event = if kind == StreamKind::Full {
            events::FULL_START
        } else {
            events::INCREMENTAL_START
        };
        // A child of the span current at begin (the instance's, in the actor).
        let span = tracing::info_span!("backup", kind = ?kind, id = f.id);
        span.in_scope(|| {
            tracing::info!(
                event_id = event,
                gen_low = f.checkpoint_gen,
                "backup started"
            );
        });
        Ok(BackupState {
            id: f.id,
            kind,
            phase,
            stop: false,
            mark: f.tip,
            mark_time: f.now_ms,
            gen_low: f.checkpoint_gen,
            ranges: None,
            files: BTreeMap::new(),
            next_handle: f.first_handle,
            max_open: f.max_open,
            copied: BTreeSet::new(),
            logs_read: BTreeSet::new(),
            truncated: false,
            page_size: f.page_size,
            log_dir: f.log_dir,
            base: f.base,
            log_signature: f.log_signature,
            span,
            // One chunk on disk per open file, and two held by the client (the one it writes
            // while it asks for the next).
            buffers: BufferPool::new(f.max_open + 2),
        })
    }

    /// This backup's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The backup's `tracing` span, named `backup`, with the fields `kind` and `id`. Whoever
    /// handles a call of this backup enters it (in synchronous code only), so the call's
    /// events are the backup's; a read on an I/O thread carries it along.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The handle the next opened file would get: where the instance's next backup starts.
    pub fn next_handle(&self) -> u64 {
        self.next_handle
    }

    /// `record` if it was made on this backup's log stream: generations of another stream say
    /// nothing about this one's logs.
    fn of_this_stream(&self, record: Option<BackupInfo>) -> Option<BackupInfo> {
        record.filter(|b| b.on_stream(&self.log_signature))
    }

    /// A record of this backup, made on its log stream.
    fn record(&self, mark: (Lsn, u64), gen_low: u32, gen_high: u32) -> BackupInfo {
        BackupInfo {
            mark: mark.0 .0,
            time_ms: mark.1,
            gen_low,
            gen_high,
            stream: Some(self.log_signature.stream_tag()),
        }
    }

    fn check_stop(&self) -> Result<(), Failure> {
        if self.stop {
            Err(Failure::keep(Error::BackupAbortByServer))
        } else {
            Ok(())
        }
    }

    /// `get_attach_info`: the attached databases' paths (full backups only).
    pub fn attach_info(&self, attached: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
        self.check_stop()?;
        if self.kind != StreamKind::Full {
            return Err(Failure::keep(Error::InvalidBackupSequence));
        }
        Ok(attached.to_vec())
    }

    /// Number of files open.
    pub fn open_count(&self) -> usize {
        self.files.len()
    }

    /// `open_file` of a path. `db` is the attached database at that path, if any, with its
    /// header, file and last page.
    pub fn open(
        &mut self,
        path: &Path,
        db: Option<(u32, &DbHeader, &DbFile, u32)>,
    ) -> Result<(u64, u64), Failure> {
        self.check_stop()?;
        if path.as_os_str().is_empty() {
            return Err(Failure::keep(Error::InvalidParameter));
        }
        if self.files.len() >= self.max_open {
            return Err(Failure::keep(Error::OutOfMemory));
        }
        match (db, self.phase) {
            (Some(_), Phase::Logs) => Err(Failure::abort(Error::InvalidBackupSequence)),
            (Some((dbid, header, file, last_page)), Phase::Databases) => {
                Ok(self.open_db(dbid, header, file, last_page))
            }
            (None, Phase::Databases) => {
                tracing::warn!(event_id = events::DB_ERROR, path = %path.display(), "not an attached database");
                Err(Failure::keep(Error::DatabaseNotFound))
            }
            (None, Phase::Logs) => self.open_log(path),
        }
    }

    fn open_db(
        &mut self,
        dbid: u32,
        header: &DbHeader,
        file: &DbFile,
        last_page: u32,
    ) -> (u64, u64) {
        let mut copy = header.clone();
        copy.backup_mark = Some(self.record((self.mark, self.mark_time), self.gen_low, 0));
        copy.gen_min_required = self.gen_low;
        let size = (last_page as u64 + 3) * self.page_size as u64;
        let slot = Slot {
            file: OpenedFile::Db {
                dbid,
                file: file.clone(),
                header: Arc::new(copy.encode()),
                db_signature: header.db_signature,
                last_page,
            },
            size,
            pos: 0,
            busy: false,
        };
        tracing::info!(event_id = events::FILE_START, path = %file.path.display(), size, "database copy started");
        (self.insert(slot), size)
    }

    /// A log may be opened only if `get_log_info` listed it: a file directly in the log
    /// directory, named `<base>XXXXXXXX.log`, in the copy range (differs from ESE, which
    /// opens any file in this phase).
    fn open_log(&mut self, path: &Path) -> Result<(u64, u64), Failure> {
        let ranges = self
            .ranges
            .as_ref()
            .ok_or(Failure::abort(Error::InvalidBackupSequence))?;
        let gen = listed_log_gen(path, &self.log_dir, &self.base)
            .ok_or(Failure::abort(Error::InvalidParameter))?;
        if gen < ranges.copy_low || gen > ranges.copy_high {
            return Err(Failure::abort(Error::InvalidParameter));
        }
        let slot = Slot {
            file: OpenedFile::Log {
                gen,
                path: path.to_path_buf(),
                bytes: None,
            },
            size: 0,
            pos: 0,
            busy: false,
        };
        Ok((self.insert(slot), 0))
    }

    /// Sets a just-opened log's size (the caller stats the file: `MissingFileToBackup` if
    /// gone): its copy starts.
    pub fn set_size(&mut self, handle: u64, size: u64) {
        if let Some(s) = self.files.get_mut(&handle) {
            s.size = size;
            if let OpenedFile::Log { path, .. } = &s.file {
                tracing::info!(event_id = events::FILE_START, path = %path.display(), size, "log copy started");
            }
        }
    }

    fn insert(&mut self, slot: Slot) -> u64 {
        let h = self.next_handle;
        self.next_handle += 1;
        self.files.insert(h, slot);
        h
    }

    /// Path of an open log (to stat it).
    pub fn log_path(&self, handle: u64) -> Option<&Path> {
        match self.files.get(&handle).map(|s| &s.file) {
            Some(OpenedFile::Log { path, .. }) => Some(path),
            _ => None,
        }
    }

    /// Plans `read_file(handle, max_len)`; `current_gen` is the log generation now (the
    /// trailer records it as the last log the image needs, or the log of the durable
    /// position once the read's pages are in, if later). The ticket goes with the read
    /// and comes back to [`BackupState::read_done`].
    pub fn plan_read(
        &mut self,
        handle: u64,
        max_len: usize,
        current_gen: u32,
    ) -> Result<(ReadTicket, ReadPlan), Failure> {
        let ticket = ReadTicket {
            backup: self.id,
            handle,
        };
        let plan = self.plan(handle, max_len, current_gen)?;
        Ok((ticket, plan))
    }

    fn plan(&mut self, handle: u64, max_len: usize, current_gen: u32) -> Result<ReadPlan, Failure> {
        self.check_stop()?;
        let ps = self.page_size as usize;
        let log_sig = self.log_signature;
        let backup = self.record((self.mark, self.mark_time), self.gen_low, current_gen);
        let slot = self
            .files
            .get_mut(&handle)
            .ok_or(Failure::keep(Error::InvalidParameter))?;
        if max_len == 0 || !max_len.is_multiple_of(ps) || slot.busy {
            return Err(Failure::keep(Error::InvalidParameter));
        }
        let min_first = match slot.file {
            OpenedFile::Db { .. } => 3,
            OpenedFile::Log { .. } => 2,
        };
        if slot.pos == 0 && max_len < min_first * ps {
            return Err(Failure::keep(Error::InvalidParameter));
        }
        if slot.pos >= slot.size {
            return Ok(ReadPlan::Eof);
        }
        let len = (max_len as u64).min(slot.size - slot.pos) as usize;
        slot.busy = true;
        Ok(match &slot.file {
            OpenedFile::Db {
                file,
                header,
                db_signature,
                last_page,
                ..
            } => {
                let reaches_trailer = slot.pos + len as u64 == slot.size;
                let trailer = reaches_trailer.then_some(crate::db::Trailer {
                    page_size: ps as u32,
                    db_signature: *db_signature,
                    log_signature: log_sig,
                    backup,
                    last_page: *last_page,
                });
                ReadPlan::Db {
                    file: file.clone(),
                    pos: slot.pos,
                    len,
                    header: header.clone(),
                    last_page: *last_page,
                    trailer,
                    buffers: self.buffers.clone(),
                }
            }
            OpenedFile::Log { path, gen, bytes } => ReadPlan::Log {
                path: path.clone(),
                gen: *gen,
                pos: slot.pos,
                len,
                bytes: bytes.clone(),
            },
        })
    }

    /// The read that would follow on `handle` with `max_len`, planned for a read-ahead
    /// without marking the file busy: a database chunk that ends before the trailer (whose
    /// backup record is only known when it is asked for). `None` for a log, a file that is
    /// busy, not yet begun or near its end, and while the backup is stopping. The read-ahead
    /// is handed out only if the next `plan_read` asks for exactly this chunk.
    pub fn plan_ahead(&self, handle: u64, max_len: usize) -> Option<(ReadTicket, ReadPlan)> {
        self.check_stop().ok()?;
        let slot = self.files.get(&handle)?;
        let ps = self.page_size as usize;
        if slot.busy || slot.pos == 0 || max_len == 0 || !max_len.is_multiple_of(ps) {
            return None;
        }
        if slot.pos + max_len as u64 >= slot.size {
            return None;
        }
        let OpenedFile::Db {
            file,
            header,
            last_page,
            ..
        } = &slot.file
        else {
            return None;
        };
        let ticket = ReadTicket {
            backup: self.id,
            handle,
        };
        let plan = ReadPlan::Db {
            file: file.clone(),
            pos: slot.pos,
            len: max_len,
            header: header.clone(),
            last_page: *last_page,
            trailer: None,
            buffers: self.buffers.clone(),
        };
        Some((ticket, plan))
    }

    /// A planned read finished. A database page that failed verification cancels that
    /// database's copy (its handle closes; the backup goes on); a bad log ends the backup.
    ///
    /// A read issued in another backup (one that ended while the read was on disk) touches
    /// nothing and is `NoBackup`, the answer to a call after its backup's end. A read whose
    /// file was closed while it was on disk touches nothing either and is `InvalidParameter`,
    /// the answer to a read of a closed handle: its bytes are not handed out, as the close
    /// already decided whether the file counts as copied.
    pub fn read_done(
        &mut self,
        ticket: ReadTicket,
        res: &Result<(Bytes, Option<Bytes>), Error>,
    ) -> Result<(), Failure> {
        if ticket.backup != self.id {
            tracing::info!(
                backup = ticket.backup,
                handle = ticket.handle,
                "a read of an ended backup finished; dropped"
            );
            return Err(Failure::keep(Error::NoBackup));
        }
        let handle = ticket.handle;
        let Some(slot) = self.files.get_mut(&handle) else {
            tracing::info!(
                handle,
                "a read of a file closed while it was on disk; dropped"
            );
            return Err(Failure::keep(Error::InvalidParameter));
        };
        slot.busy = false;
        match res {
            Ok((chunk, whole_log)) => {
                slot.pos += chunk.len() as u64;
                if let (OpenedFile::Log { bytes, .. }, Some(w)) = (&mut slot.file, whole_log) {
                    *bytes = Some(w.clone());
                }
                Ok(())
            }
            Err(e) => {
                let is_db = matches!(slot.file, OpenedFile::Db { .. });
                self.files.remove(&handle);
                if is_db {
                    tracing::warn!(event_id = events::DB_ERROR, error = %e, "database copy cancelled");
                    Err(Failure::keep(e.clone()))
                } else {
                    tracing::error!(event_id = events::READ_ERROR, error = %e, "log read failed; backup aborted");
                    Err(Failure::abort(e.clone()))
                }
            }
        }
    }

    /// `close_file`: a file read to its end counts as copied.
    pub fn close(&mut self, handle: u64) -> Result<(), Failure> {
        let slot = self
            .files
            .remove(&handle)
            .ok_or(Failure::keep(Error::InvalidParameter))?;
        let whole = slot.pos >= slot.size;
        match slot.file {
            OpenedFile::Db { dbid, .. } if whole => {
                self.copied.insert(dbid);
            }
            OpenedFile::Log { gen, .. }
                if whole
                    && self
                        .ranges
                        .as_ref()
                        .is_some_and(|r| (r.copy_low..=r.copy_high).contains(&gen)) =>
            {
                self.logs_read.insert(gen);
            }
            _ => {}
        }
        let event = if whole {
            events::FILE_DONE
        } else {
            events::FILE_CLOSED_EARLY
        };
        tracing::info!(event_id = event, handle, "backup file closed");
        Ok(())
    }

    /// Checks a `get_log_info` / `get_truncate_log_info` call; `Ok(true)` when the log must
    /// be rolled and the ranges fixed (the first call).
    pub fn log_info_needs_roll(&self) -> Result<bool, Failure> {
        self.check_stop()?;
        if !self.files.is_empty() {
            return Err(Failure::keep(Error::InvalidBackupSequence));
        }
        Ok(self.ranges.is_none())
    }

    /// Fixes the ranges after the roll. `new_gen` is the new current generation, `oldest` the
    /// oldest archived generation on disk, `checkpoint_gen` the checkpoint now; `dbs` the
    /// attached databases (id, header).
    pub fn fix_ranges(
        &mut self,
        new_gen: u32,
        oldest: u32,
        checkpoint_gen: u32,
        dbs: &[(u32, &DbHeader)],
        roll_mark: (Lsn, u64),
    ) -> Result<(), Failure> {
        let copy_high = new_gen - 1;
        let copy_low = match self.kind {
            StreamKind::Full => self.gen_low,
            StreamKind::Incremental => oldest,
        };
        if self.kind == StreamKind::Incremental {
            for (_, h) in dbs {
                let gen_high = |r| self.of_this_stream(r).map_or(0, |b: BackupInfo| b.gen_high);
                let prev = gen_high(h.last_full).max(gen_high(h.last_incremental));
                if copy_low > prev + 1 {
                    tracing::warn!(
                        event_id = events::LOG_MISSING,
                        copy_low,
                        prev,
                        "logs since the previous backup are gone"
                    );
                    return Err(Failure::abort(Error::MissingFileToBackup));
                }
            }
        }
        let mut delete_mac = checkpoint_gen.min(copy_high + 1);
        if self.kind == StreamKind::Full {
            for (dbid, h) in dbs {
                if !self.copied.contains(dbid) {
                    // A full backup of another stream keeps none of this stream's logs.
                    let full = self.of_this_stream(h.last_full);
                    delete_mac = delete_mac.min(full.map_or(0, |b| b.gen_high));
                }
            }
        }
        let truncate = (oldest..delete_mac).collect();
        self.ranges = Some(LogRanges {
            copy_low,
            copy_high,
            truncate,
            mark: roll_mark,
        });
        self.phase = Phase::Logs;
        tracing::info!(
            event_id = events::LOGS_START,
            copy_low,
            copy_high,
            "log files start"
        );
        Ok(())
    }

    /// The log files to copy.
    pub fn log_files(&self) -> Vec<PathBuf> {
        self.ranges.as_ref().map_or(Vec::new(), |r| {
            (r.copy_low..=r.copy_high)
                .map(|g| names::archived(&self.log_dir, &self.base, g))
                .collect()
        })
    }

    /// The log files `truncate_log` would delete.
    pub fn truncate_files(&self) -> Vec<PathBuf> {
        self.ranges.as_ref().map_or(Vec::new(), |r| {
            r.truncate
                .iter()
                .map(|&g| names::archived(&self.log_dir, &self.base, g))
                .collect()
        })
    }

    /// `truncate_log`: the generations to delete, once every listed log was read.
    pub fn truncate(&mut self) -> Result<Vec<u32>, Failure> {
        self.check_stop()?;
        if !self.files.is_empty() {
            return Err(Failure::keep(Error::InvalidBackupSequence));
        }
        let r = self
            .ranges
            .as_ref()
            .ok_or(Failure::keep(Error::InvalidBackupSequence))?;
        if !(r.copy_low..=r.copy_high).all(|g| self.logs_read.contains(&g)) {
            tracing::warn!(
                event_id = events::LOGS_NOT_COPIED,
                "truncation refused: logs not copied"
            );
            return Err(Failure::keep(Error::LogFileNotCopied));
        }
        self.truncated = true;
        let gens = r.truncate.clone();
        let event = if gens.is_empty() {
            events::NOTHING_TO_TRUNCATE
        } else {
            events::TRUNCATED
        };
        tracing::info!(event_id = event, count = gens.len(), "logs truncated");
        Ok(gens)
    }

    /// The record a normal end writes into the headers: a full backup's begin mark or an
    /// incremental's log-roll mark, with the copy range. `None` before the log phase. A backup
    /// set names itself by it before `truncate_log`.
    pub fn end_record(&self) -> Option<BackupInfo> {
        let r = self.ranges.as_ref()?;
        let mark = match self.kind {
            StreamKind::Full => (self.mark, self.mark_time),
            StreamKind::Incremental => r.mark,
        };
        Some(self.record(mark, r.copy_low, r.copy_high))
    }

    /// `end_external_backup` with a backup running (the grbit was checked already).
    /// `attached` lists every attached database id.
    pub fn end(&self, grbit: BackupEnd, attached: &[u32]) -> EndOutcome {
        let none = |result, event| EndOutcome {
            result,
            updates: Vec::new(),
            event,
        };
        if grbit.contains(BackupEnd::ABORT) {
            return none(Ok(()), events::ABORT_BY_CALLER);
        }
        if self.stop {
            return none(Err(Error::BackupAbortByServer), events::ABORT_BY_SERVER);
        }
        let (Some(r), Some(info)) = (&self.ranges, self.end_record()) else {
            return none(Err(Error::BackupAbortByCaller), events::ABORT_BY_CALLER);
        };
        if !(r.copy_low..=r.copy_high).all(|g| self.logs_read.contains(&g)) {
            return none(Err(Error::BackupAbortByCaller), events::ABORT_BY_CALLER);
        }
        let truncated = self.truncated || grbit.contains(BackupEnd::TRUNCATE_DONE);
        let (field, dbs): (BackupField, Vec<u32>) = match self.kind {
            StreamKind::Full => (
                if truncated {
                    BackupField::Full
                } else {
                    BackupField::Copy
                },
                self.copied.iter().copied().collect(),
            ),
            StreamKind::Incremental => (
                if truncated {
                    BackupField::Incremental
                } else {
                    BackupField::Differential
                },
                attached.to_vec(),
            ),
        };
        let updates = dbs.into_iter().map(|d| (d, field, info)).collect();
        EndOutcome {
            result: Ok(()),
            updates,
            event: events::END_OK,
        }
    }
}

/// The generation of `path` if it is an archived log of this stream directly inside the log
/// directory: the log directory as the instance spells it (the way `get_log_info` lists
/// it, which may itself hold `.` or `..`), then one plain name, so no `..` of the caller's
/// reaches past it.
pub fn listed_log_gen(path: &Path, log_dir: &Path, base: &str) -> Option<u32> {
    let mut rest = path.strip_prefix(log_dir).ok()?.components();
    let (Some(Component::Normal(name)), None) = (rest.next(), rest.next()) else {
        return None;
    };
    names::parse_archived(base, name.to_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackupBegin;

    fn facts(headers: Vec<&DbHeader>) -> BeginFacts<'_> {
        BeginFacts {
            circular: false,
            headers,
            tip: Lsn::new(5, 8192),
            now_ms: 1,
            checkpoint_gen: 4,
            page_size: 4096,
            log_dir: PathBuf::from("/l"),
            base: "edb".into(),
            log_signature: Signature::default(),
            max_open: 1,
            id: 1,
            first_handle: 1,
        }
    }

    /// A full backup with id `id` whose handles start at `first_handle`, in its log phase
    /// (copy range 4..=8).
    fn in_log_phase(id: u64, first_handle: u64) -> BackupState {
        let h = DbHeader::new(4096, Signature::default());
        let mut f = facts(vec![&h]);
        f.id = id;
        f.first_handle = first_handle;
        let mut b = BackupState::begin(BackupBegin::empty(), false, f).unwrap();
        b.fix_ranges(9, 1, 6, &[(1, &h)], (Lsn::new(9, 4096), 2))
            .unwrap();
        b
    }

    /// Opens log 5 (two pages long) and returns its handle.
    fn open_log5(b: &mut BackupState) -> u64 {
        let (h, _) = b.open(Path::new("/l/edb00000005.log"), None).unwrap();
        b.set_size(h, 8192);
        h
    }

    fn whole_log() -> Result<(Bytes, Option<Bytes>), Error> {
        let bytes = Bytes::from(vec![7u8; 8192]);
        Ok((bytes.clone(), Some(bytes)))
    }

    #[test]
    fn handles_start_where_the_instance_says_and_are_never_reused() {
        let mut b = in_log_phase(3, 7);
        let first = open_log5(&mut b);
        b.close(first).unwrap();
        let second = open_log5(&mut b);
        assert_eq!((first, second, b.next_handle()), (7, 8, 9));
        let next = in_log_phase(4, b.next_handle());
        assert_eq!(next.next_handle(), 9, "the next backup goes on from there");
    }

    #[test]
    fn a_read_of_an_ended_backup_touches_nothing() {
        let mut old = in_log_phase(1, 1);
        let h = open_log5(&mut old);
        let (ticket, _) = old.plan_read(h, 8192, 9).unwrap();
        // The same handle number in a later backup: only the id tells them apart.
        let mut new = in_log_phase(2, 1);
        assert_eq!(open_log5(&mut new), h);
        assert_eq!(
            new.read_done(ticket, &whole_log()),
            Err(Failure::keep(Error::NoBackup))
        );
        let (_, plan) = new.plan_read(h, 8192, 9).unwrap();
        assert!(
            matches!(
                plan,
                ReadPlan::Log {
                    pos: 0,
                    bytes: None,
                    ..
                }
            ),
            "the new file is still unread and not busy: {plan:?}"
        );
    }

    #[test]
    fn a_read_of_a_file_closed_while_on_disk_is_invalid_parameter() {
        let mut b = in_log_phase(1, 1);
        let h = open_log5(&mut b);
        let (ticket, _) = b.plan_read(h, 8192, 9).unwrap();
        b.close(h).unwrap();
        assert_eq!(
            b.read_done(ticket, &whole_log()),
            Err(Failure::keep(Error::InvalidParameter))
        );
        assert!(
            !b.logs_read.contains(&5),
            "closed before its read came back: not copied"
        );
        assert_eq!(
            b.plan_read(h, 8192, 9).unwrap_err(),
            Failure::keep(Error::InvalidParameter)
        );
    }

    #[test]
    fn a_read_of_this_backup_advances_its_file() {
        let mut b = in_log_phase(1, 1);
        let h = open_log5(&mut b);
        let (ticket, _) = b.plan_read(h, 8192, 9).unwrap();
        assert_eq!(
            ticket,
            ReadTicket {
                backup: 1,
                handle: h
            }
        );
        b.read_done(ticket, &whole_log()).unwrap();
        assert!(matches!(b.plan_read(h, 8192, 9), Ok((_, ReadPlan::Eof))));
        b.close(h).unwrap();
        assert!(b.logs_read.contains(&5));
    }

    #[test]
    fn begin_checks_in_order() {
        let h = DbHeader::new(4096, Signature::default());
        assert_eq!(
            BackupState::begin(BackupBegin::ATOMIC, false, facts(vec![&h])).unwrap_err(),
            Error::InvalidGrbit
        );
        let mut f = facts(vec![&h]);
        f.circular = true;
        assert_eq!(
            BackupState::begin(BackupBegin::INCREMENTAL, true, f).unwrap_err(),
            Error::InvalidBackup
        );
        assert_eq!(
            BackupState::begin(BackupBegin::empty(), true, facts(vec![&h])).unwrap_err(),
            Error::BackupInProgress
        );
        assert_eq!(
            BackupState::begin(BackupBegin::INCREMENTAL, false, facts(vec![&h])).unwrap_err(),
            Error::MissingFullBackup
        );
        let b = BackupState::begin(BackupBegin::empty(), false, facts(vec![&h])).unwrap();
        assert_eq!(
            (b.kind, b.phase, b.gen_low),
            (StreamKind::Full, Phase::Databases, 4)
        );
    }

    #[test]
    fn log_phase_only_opens_listed_logs() {
        let h = DbHeader::new(4096, Signature::default());
        let mut b = BackupState::begin(BackupBegin::empty(), false, facts(vec![&h])).unwrap();
        assert_eq!(
            b.open(Path::new("/elsewhere"), None).unwrap_err(),
            Failure::keep(Error::DatabaseNotFound)
        );
        b.fix_ranges(9, 1, 6, &[(1, &h)], (Lsn::new(9, 4096), 2))
            .unwrap();
        let r = b.ranges.clone().unwrap();
        assert_eq!((r.copy_low, r.copy_high), (4, 8));
        assert_eq!(
            r.truncate,
            Vec::<u32>::new(),
            "a database never copied and never fully backed up keeps every log"
        );
        for bad in [
            "/l/edb.log",
            "/l/../l/edb00000005.log",
            "/etc/passwd",
            "/l/edb00000003.log",
            "/l/edb00000009.log",
        ] {
            let mut c = b.clone();
            assert_eq!(
                c.open(Path::new(bad), None).unwrap_err(),
                Failure::abort(Error::InvalidParameter),
                "{bad}"
            );
        }
        let (h5, _) = b.open(Path::new("/l/edb00000005.log"), None).unwrap();
        assert_eq!(
            b.open(Path::new("/l/edb00000006.log"), None).unwrap_err(),
            Failure::keep(Error::OutOfMemory)
        );
        b.close(h5).unwrap();
    }

    #[test]
    fn a_listed_log_is_named_through_the_log_directory_as_the_instance_spells_it() {
        for dir in ["/i/sub/../logs", "./logs", ".", "../logs"] {
            let d = Path::new(dir);
            let listed = names::archived(d, "edb", 5);
            assert_eq!(listed_log_gen(&listed, d, "edb"), Some(5), "{dir}");
            for bad in [
                d.join("..").join("edb00000005.log"),
                d.join("x").join("..").join("edb00000005.log"),
                d.join("x").join("edb00000005.log"),
                d.join("edb.log"),
            ] {
                assert_eq!(
                    listed_log_gen(&bad, d, "edb"),
                    None,
                    "{dir}: {}",
                    bad.display()
                );
            }
        }
    }

    #[test]
    fn end_outcomes() {
        let mut h = DbHeader::new(4096, Signature::default());
        h.last_full = Some(full_of(&Signature::default(), 2));
        let b = BackupState::begin(BackupBegin::empty(), false, facts(vec![&h])).unwrap();
        assert_eq!(
            b.end(BackupEnd::NORMAL, &[1]).result,
            Err(Error::BackupAbortByCaller)
        );
        assert_eq!(b.end(BackupEnd::ABORT, &[1]).result, Ok(()));
        let mut s = b.clone();
        s.stop = true;
        assert_eq!(
            s.end(BackupEnd::NORMAL, &[1]).result,
            Err(Error::BackupAbortByServer)
        );
        let mut i = BackupState::begin(BackupBegin::INCREMENTAL, false, facts(vec![&h])).unwrap();
        i.fix_ranges(7, 3, 6, &[(1, &h)], (Lsn::new(7, 4096), 9))
            .unwrap();
        assert_eq!(
            i.end(BackupEnd::NORMAL, &[1]).result,
            Err(Error::BackupAbortByCaller),
            "logs not read"
        );
        i.logs_read.extend(3..=6);
        let out = i.end(BackupEnd::NORMAL, &[1]);
        assert_eq!(out.updates[0].1, BackupField::Differential);
        assert_eq!(out.updates[0].2.gen_low, 3);
        assert!(
            out.updates[0].2.on_stream(&Signature::default()),
            "a record says which stream it was made on"
        );
        i.truncated = true;
        assert_eq!(
            i.end(BackupEnd::NORMAL, &[1]).updates[0].1,
            BackupField::Incremental
        );
    }

    /// A full backup record of the stream `sig` up to generation `gen_high`.
    fn full_of(sig: &Signature, gen_high: u32) -> BackupInfo {
        BackupInfo {
            mark: 1,
            time_ms: 1,
            gen_low: 1,
            gen_high,
            stream: Some(sig.stream_tag()),
        }
    }

    /// A signature other than the one `facts` runs on.
    fn other_stream() -> Signature {
        Signature {
            random: 42,
            time_ms: 42,
        }
    }

    #[test]
    fn a_full_backup_of_another_stream_is_no_full_backup() {
        let mut h = DbHeader::new(4096, Signature::default());
        h.last_full = Some(full_of(&other_stream(), 9));
        assert_eq!(
            BackupState::begin(BackupBegin::INCREMENTAL, false, facts(vec![&h])).unwrap_err(),
            Error::MissingFullBackup
        );
        h.last_full = Some(BackupInfo {
            stream: None,
            ..full_of(&Signature::default(), 9)
        });
        assert_eq!(
            BackupState::begin(BackupBegin::INCREMENTAL, false, facts(vec![&h])).unwrap_err(),
            Error::MissingFullBackup,
            "nor is one of an unknown stream"
        );
    }

    #[test]
    fn the_gap_check_uses_only_this_streams_records() {
        let mut h = DbHeader::new(4096, Signature::default());
        h.last_full = Some(full_of(&Signature::default(), 2));
        // Another stream's incremental reached generation 8 there, not here.
        h.last_incremental = Some(full_of(&other_stream(), 8));
        let mut i = BackupState::begin(BackupBegin::INCREMENTAL, false, facts(vec![&h])).unwrap();
        let e = i
            .fix_ranges(9, 5, 8, &[(1, &h)], (Lsn::new(9, 4096), 1))
            .unwrap_err();
        assert_eq!(e, Failure::abort(Error::MissingFileToBackup));
    }

    #[test]
    fn truncation_keeps_what_a_database_without_a_full_backup_here_needs() {
        let mut h = DbHeader::new(4096, Signature::default());
        let mut b = BackupState::begin(BackupBegin::empty(), false, facts(vec![&h])).unwrap();
        h.last_full = Some(full_of(&other_stream(), 8));
        b.fix_ranges(9, 1, 9, &[(1, &h)], (Lsn::new(9, 4096), 2))
            .unwrap();
        assert_eq!(b.ranges.unwrap().truncate, Vec::<u32>::new());
        let mut b = BackupState::begin(BackupBegin::empty(), false, facts(vec![&h])).unwrap();
        h.last_full = Some(full_of(&Signature::default(), 3));
        b.fix_ranges(9, 1, 9, &[(1, &h)], (Lsn::new(9, 4096), 2))
            .unwrap();
        assert_eq!(b.ranges.unwrap().truncate, vec![1, 2]);
    }

    #[test]
    fn incremental_with_a_gap_is_missing_file() {
        let mut h = DbHeader::new(4096, Signature::default());
        h.last_full = Some(full_of(&Signature::default(), 2));
        let mut i = BackupState::begin(BackupBegin::INCREMENTAL, false, facts(vec![&h])).unwrap();
        let e = i
            .fix_ranges(9, 5, 8, &[(1, &h)], (Lsn::new(9, 4096), 1))
            .unwrap_err();
        assert_eq!(e, Failure::abort(Error::MissingFileToBackup));
    }
}
