//! Soft recovery, at init: the instance's log is replayed from the checkpoint (or from its
//! first generation when there is none) to its end, into each database where it was attached.
//! Every database replayed is locked before replay reads it (behaviour.md §1.3) and left clean
//! and detached; the torn tail of `<base>.log` is zeroed, or a roll a crash interrupted is
//! finished, and the log resumes there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Replay, ReplayStats, ReplayTarget, Resolve};
use crate::db::{DbFile, DbHeader, Signature, STATE_CLEAN};
use crate::io::{FileLock, OpenMode, Storage};
use crate::log::checkpoint;
use crate::log::reader::{self, LogFile, Tail};
use crate::log::{names, AttachEntry, LogHeader, Resume, LOG_HEADER_SIZE};
use crate::lsn::{now_ms, Lsn};
use crate::page;
use crate::params::InstanceParams;
use crate::{Error, Result};

/// Soft recovery's resolver: a database is replayed where it was attached, if it is there
/// and its signature matches; a database created in the replayed range is made again.
/// Every database it replays is locked first (behaviour.md §1.3), until recovery is done.
struct InPlace<'a> {
    storage: &'a dyn Storage,
    /// The locks taken, by path: a database attached again later in the log (under the same
    /// or a new id) is already locked, by this recovery.
    locks: &'a mut HashMap<PathBuf, FileLock>,
}

impl Resolve for InPlace<'_> {
    fn resolve(
        &mut self,
        entry: &AttachEntry,
        created: bool,
        page_size: u32,
        stream: &Signature,
    ) -> Result<Option<ReplayTarget>> {
        if !self.storage.exists(&entry.path) {
            if !created {
                tracing::warn!(path = %entry.path.display(), "attached database missing during recovery; skipped");
                return Ok(None);
            }
            // Every page it will hold comes from this log, so it names this log's stream,
            // as the creation would have written it.
            let mut header = DbHeader::new(page_size, *stream);
            header.db_signature = entry.signature;
            let (file, lock) = DbFile::create(self.storage, &entry.path, &header)?;
            self.locks.insert(entry.path.clone(), lock);
            return Ok(Some(ReplayTarget {
                file,
                header,
                created: true,
            }));
        }
        if !self.lock(&entry.path)? {
            tracing::warn!(path = %entry.path.display(), "database in use by another instance; skipped");
            return Ok(None);
        }
        let (file, header) = DbFile::open(self.storage, &entry.path)?;
        if header.db_signature != entry.signature {
            tracing::warn!(path = %entry.path.display(), "database signature differs from the log's; skipped");
            return Ok(None);
        }
        // A header naming another log stream, or none, holds another history: a restored
        // copy put back in place of a lost file, a file another instance wrote last, one whose
        // attach was stamping it when the instance stopped. This log's records do not build on
        // its pages (a change whose pages lie on both sides of the checkpoint would come back
        // on one side only), so it is left as found, and the attach that follows stamps it as
        // a database from another stream.
        if header.log_signature != *stream {
            tracing::warn!(path = %entry.path.display(), "database names another log stream (a restored or moved copy); recovery leaves it as found");
            return Ok(None);
        }
        Ok(Some(ReplayTarget {
            file,
            header,
            created,
        }))
    }
}

impl InPlace<'_> {
    /// Locks a database before replay reads or writes it; false if another instance holds it.
    ///
    /// Such a database is skipped, as ESE defers it: another instance could only attach it
    /// clean (a dirty one is refused with `DatabaseDirtyShutdown`), and a database is clean
    /// only once every change this log made to it is in it. A file that cannot be opened at
    /// all is a failure, not a skip: skipping it would leave its changes unreplayed.
    fn lock(&mut self, path: &Path) -> Result<bool> {
        if self.locks.contains_key(path) {
            return Ok(true);
        }
        match self.storage.lock(path) {
            Ok(lock) => {
                self.locks.insert(path.to_path_buf(), lock);
                Ok(true)
            }
            Err(Error::FileAccessDenied) if self.storage.open(path, OpenMode::ReadOnly).is_ok() => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// The files of a log stream, as found on disk.
struct Stream {
    archived: Vec<(u32, PathBuf)>,
    current: Option<LogFile>,
}

fn find_stream(storage: &dyn Storage, params: &InstanceParams) -> Result<Stream> {
    let dir = params.log_dir();
    let base = params.base();
    let archived = names::list_archived(storage, dir, base)?;
    let cur_path = names::current(dir, base);
    let current = if storage.exists(&cur_path) {
        match reader::read_file(storage, &cur_path) {
            Ok(f) => Some(f),
            // A roll that crashed before the new file's header was durable leaves an empty
            // or zero-headed file beside a complete archive: it is simply not there yet.
            Err(Error::LogFileCorrupt)
                if !archived.is_empty() && unfinished(storage, &cur_path)? =>
            {
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    Ok(Stream { archived, current })
}

/// Whether `<base>.log` holds nothing at all. A roll renames the new file into place only once
/// it is written and synced whole, so only an empty file can be one that is "not there yet";
/// a zeroed header in front of records is a damaged file whose commits must not be dropped.
fn unfinished(storage: &dyn Storage, path: &Path) -> Result<bool> {
    let f = storage.open(path, OpenMode::ReadOnly)?;
    let len = f.len()?.min(reader::MAX_LOG_FILE);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let n = f.read_at(&mut buf, off)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        off += n as u64;
    }
    Ok(true)
}

/// Runs soft recovery for an instance's files. `Ok(None)`: there is no log yet (a new
/// instance). Otherwise the databases are consistent and clean, and the log resumes where
/// returned.
pub fn recover(
    storage: &dyn Storage,
    params: &InstanceParams,
) -> Result<Option<(Resume, ReplayStats)>> {
    let chk_path = checkpoint::path(params.system_dir(), params.base());
    let chk = checkpoint::read(storage, &chk_path)?;
    let stream = find_stream(storage, params)?;
    if let Some(c) = &stream.current {
        // Appending goes on in this file, as long as the configured size says: a file of
        // another length no longer reads back (every file keeps the size its header names).
        if c.header.file_size != params.log_bytes() {
            return Err(Error::LogFileSizeMismatch.with_detail(format!(
                "{} is {} bytes, the configured log file size is {}: start with the size \
                 the logs were made with",
                names::current(params.log_dir(), params.base()).display(),
                c.header.file_size,
                params.log_bytes()
            )));
        }
        // `<base>.log` is the newest generation: an archived one at or past it means it is
        // an old copy, and taking it for the end would drop the newer logs' commits (and the
        // next rolls would write over them).
        if let Some((g, _)) = stream
            .archived
            .iter()
            .rev()
            .find(|(g, _)| *g >= c.header.gen)
        {
            return Err(Error::LogGenerationMismatch.with_detail(format!(
                "{} holds generation {}, but generation {g} is archived beside it",
                names::current(params.log_dir(), params.base()).display(),
                c.header.gen
            )));
        }
    }
    let last_gen = match (&stream.current, stream.archived.last()) {
        (Some(c), _) => c.header.gen,
        (None, Some((g, _))) => *g,
        (None, None) if chk.is_none() => return Ok(None),
        (None, None) => return Err(Error::MissingLogFile),
    };
    if let Some(c) = &chk {
        check_checkpoint_stream(storage, &stream, c)?;
    }
    let first_gen = stream.archived.first().map_or(last_gen, |(g, _)| *g);
    let start = chk.as_ref().map_or(Lsn::new(first_gen, 0), |c| c.lsn);
    if stream.current.is_none() && start.gen() == last_gen.saturating_add(1) {
        // The checkpoint stands in the generation after the last archived one, which only
        // `<base>.log` can have held: the checkpoint is sound and the current log is gone.
        return Err(Error::MissingLogFile.with_detail(format!(
            "{} is missing: the checkpoint points into generation {}",
            names::current(params.log_dir(), params.base()).display(),
            start.gen()
        )));
    }
    if stream.current.is_none()
        && !stream.archived.is_empty()
        && !roll_cut_short(storage, params, &stream)
    {
        // The last archived log ends the stream only when a crash cut a roll short, and then
        // the next file is there, built whole under its temporary name. Without it the
        // current log was lost, and its commits with it.
        return Err(Error::MissingLogFile.with_detail(format!(
            "{} is missing (and no roll was cut short: {} does not continue the last archived log)",
            names::current(params.log_dir(), params.base()).display(),
            names::temporary(params.log_dir(), params.base()).display()
        )));
    }
    if start.gen() > last_gen {
        return Err(Error::CheckpointCorrupt);
    }
    let present = stream.archived.iter().any(|(g, _)| *g == start.gen())
        || stream
            .current
            .as_ref()
            .is_some_and(|c| c.header.gen == start.gen());
    if !present {
        // ESE's answer for the log the checkpoint points into (a later gap is MissingLogFile).
        return Err(Error::MissingPreviousLogFile.with_detail(format!(
            "{} is missing: the checkpoint points into it",
            names::archived(params.log_dir(), params.base(), start.gen()).display()
        )));
    }
    let page_size = params.page_bytes();
    // Held until the replayed databases are marked clean, at the end of this function.
    let mut locks = HashMap::new();
    let resolver = InPlace {
        storage,
        locks: &mut locks,
    };
    let mut replay = Replay::new(resolver, None);
    let mut signature = chk.as_ref().map(|c| c.log_signature);
    if let Some(c) = &chk {
        for e in &c.attached {
            replay.know(e, page_size, &c.log_signature)?;
        }
    }
    let mut prev: Option<LogHeader> = None;
    // Where the replayed log ends: the position the databases are consistent with.
    let mut end = start;
    for gen in start.gen()..=last_gen {
        let owned;
        let file = match &stream.current {
            Some(c) if c.header.gen == gen => c,
            _ => {
                let path = stream
                    .archived
                    .iter()
                    .find(|(g, _)| *g == gen)
                    .map(|(_, p)| p)
                    .ok_or(Error::MissingLogFile)?;
                owned = reader::read_file(storage, path)?;
                if owned.tail != Tail::Complete {
                    return Err(Error::LogFileCorrupt);
                }
                &owned
            }
        };
        check_link(file, gen, &mut signature, prev.as_ref())?;
        if gen == start.gen() && start.offset() > end_offset(file) {
            return Err(Error::CheckpointCorrupt);
        }
        for f in file.records.iter().filter(|f| f.start >= start) {
            replay.apply(f, page_size, &file.header.signature)?;
        }
        replay.stats.log_bytes += end_offset(file) as u64;
        end = Lsn::new(gen, end_offset(file));
        prev = Some(file.header.clone());
    }
    let (targets, stats) = replay.finish()?;
    for t in targets {
        if t.created && !formatted(&t.file) {
            // The creation never committed its first pages: it was not acknowledged.
            tracing::warn!(path = %t.file.path.display(), "removing a database whose creation did not complete");
            storage.remove(&t.file.path)?;
            continue;
        }
        // The owner token stays as found: the file may have been attached by another instance
        // continuing this stream since this log named it (`OwnerTokens`).
        let mut h = t.header;
        h.state = STATE_CLEAN;
        h.consistent_lsn = end.0;
        h.gen_min_required = 0;
        h.gen_max_required = 0;
        t.file.write_header(&h)?;
    }
    let signature = signature.ok_or(Error::LogFileCorrupt)?;
    let resume = reopen_tail(storage, params, &stream, prev.as_ref(), signature)?;
    tracing::info!(
        event_id = 301u32,
        commits = stats.commits,
        pages = stats.pages_written,
        "soft recovery done"
    );
    Ok(Some((resume, stats)))
}

/// `BadCheckpointSignature` if the checkpoint is of another stream than the logs, which agree
/// among themselves (the newest and the oldest have one signature): the checkpoint is then the
/// file that does not belong. A log that differs from the others is left to replay's own check
/// (`BadLogSignature`).
fn check_checkpoint_stream(
    storage: &dyn Storage,
    stream: &Stream,
    chk: &checkpoint::Checkpoint,
) -> Result<()> {
    let newest = match &stream.current {
        Some(c) => Some(c.header.signature),
        None => stream
            .archived
            .last()
            .and_then(|(_, p)| header_of(storage, p))
            .map(|h| h.signature),
    };
    let Some(newest) = newest.filter(|s| *s != chk.log_signature) else {
        return Ok(());
    };
    let oldest = stream.archived.first().map_or(Some(newest), |(_, p)| {
        header_of(storage, p).map(|h| h.signature)
    });
    if oldest == Some(newest) {
        return Err(Error::BadCheckpointSignature.with_detail(format!(
            "the checkpoint names log stream {}, the logs are of stream {}",
            chk.log_signature.to_hex(),
            newest.to_hex()
        )));
    }
    Ok(())
}

/// Whether the folder is as a crash between a roll's two renames leaves it: `<base>tmp.log`
/// holds the header of the generation after the last archived one, linked to it. A last
/// archived log whose header does not read is left to replay to report.
fn roll_cut_short(storage: &dyn Storage, params: &InstanceParams, stream: &Stream) -> bool {
    let Some((_, last)) = stream.archived.last() else {
        return false;
    };
    let Some(last) = header_of(storage, last) else {
        return true;
    };
    let tmp = names::temporary(params.log_dir(), params.base());
    header_of(storage, &tmp).is_some_and(|t| {
        Some(t.gen) == last.gen.checked_add(1)
            && t.signature == last.signature
            && t.prev_created_ms == last.created_ms
    })
}

/// A log file's header, if it reads and verifies (a damaged one is replay's to report).
fn header_of(storage: &dyn Storage, path: &Path) -> Option<LogHeader> {
    let f = storage.open(path, OpenMode::ReadOnly).ok()?;
    let mut head = vec![0u8; LOG_HEADER_SIZE as usize];
    f.read_exact_at(&mut head, 0).ok()?;
    LogHeader::decode(&head).ok()
}

fn formatted(file: &DbFile) -> bool {
    file.read_page(crate::btree::META_PGNO)
        .is_ok_and(|p| page::kind(&p) == Some(page::PageKind::Meta))
}

fn end_offset(f: &LogFile) -> u32 {
    match f.tail {
        Tail::Open { at } => at,
        Tail::Complete => f.records.last().map_or(LOG_HEADER_SIZE, |r| r.end.offset()),
    }
}

/// Checks a file's generation, signature and link to its predecessor.
fn check_link(
    f: &LogFile,
    gen: u32,
    sig: &mut Option<crate::db::Signature>,
    prev: Option<&LogHeader>,
) -> Result<()> {
    if f.header.gen != gen {
        return Err(Error::LogGenerationMismatch);
    }
    match sig {
        Some(s) if *s != f.header.signature => return Err(Error::BadLogSignature),
        None => *sig = Some(f.header.signature),
        _ => {}
    }
    if let Some(p) = prev {
        if f.header.prev_created_ms != p.created_ms {
            return Err(Error::InvalidLogSequence);
        }
    }
    Ok(())
}

/// Prepares `<base>.log` for appending: zero the torn tail of an open file, or finish a roll
/// that a crash interrupted.
fn reopen_tail(
    storage: &dyn Storage,
    params: &InstanceParams,
    stream: &Stream,
    last: Option<&LogHeader>,
    signature: crate::db::Signature,
) -> Result<Resume> {
    let dir = params.log_dir();
    let base = params.base();
    let cur_path = names::current(dir, base);
    if let Some(c) = &stream.current {
        if let Tail::Open { at } = c.tail {
            let f = storage.open(&cur_path, OpenMode::Existing)?;
            let len = f.len()?.max(params.log_bytes());
            let zeros = vec![0u8; 1 << 20];
            let mut off = at as u64;
            while off < len {
                let n = ((len - off) as usize).min(zeros.len());
                f.write_at(&zeros[..n], off)?;
                off += n as u64;
            }
            f.sync()?;
            return Ok(Resume {
                signature,
                gen: c.header.gen,
                offset: at,
                created_ms: c.header.created_ms,
            });
        }
    }
    let last = last.ok_or(Error::MissingLogFile)?;
    let gen = last.gen + 1;
    let created_ms = now_ms().max(last.created_ms + 1);
    let header = LogHeader {
        gen,
        signature,
        created_ms,
        prev_created_ms: last.created_ms,
        file_size: params.log_bytes(),
        base_name: base.to_string(),
    };
    // A complete `<base>.log` not yet renamed: the roll is finished, archiving it.
    crate::log::install_current(
        storage,
        dir,
        base,
        stream.current.as_ref().map(|c| c.header.gen),
        &header.encode(),
        params.log_bytes(),
        None,
    )?;
    Ok(Resume {
        signature,
        gen,
        offset: LOG_HEADER_SIZE,
        created_ms,
    })
}
