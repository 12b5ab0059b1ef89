//! Layer 7: the instance core. Owns the log, the cache, the attached databases, the
//! sessions' open transactions and the flusher. Every operation is a method on `&mut self`
//! that completes from memory or hands its disk work to the log writer or the flusher and
//! returns something to wait on ([`CommitTicket`]); nothing here waits for an fsync, except
//! the rare whole-instance steps that say so (`open`, database attach/detach, `term_clean`).

mod backup;
mod checkpointing;
mod commit;
mod databases;
mod fetch;
mod locks;
mod reads;
mod sessions;
mod slice;
#[cfg(test)]
mod testing;
mod view;

pub use fetch::{Fetch, FetchDone, Fetched, Read};
pub use slice::{prefix_end, Direction, Slice, SLICE_BYTES, SLICE_ROWS};
pub use view::View;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::cache::Cache;
use crate::db::{DbFile, DbHeader};
use crate::flusher::Flusher;
use crate::io::{FileLock, StorageRef};
use crate::log::checkpoint::{self, Checkpoint};
use crate::log::{Log, LogConfig, Notify};
use crate::lsn::Lsn;
use crate::params::InstanceParams;
use crate::recovery::{self, ReplayStats};
use crate::txn::{Conflicts, Txn};
use crate::{Error, Result};

/// An attached database, as a handle the host holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbId(pub(crate) u32);

impl DbId {
    /// The instance's number for the database (also used in log records).
    pub fn raw(self) -> u32 {
        self.0
    }
}

/// A table of an attached database, opened once by name ([`Core::open_table`]) and then
/// passed by value, so the hot path names a table without a string. It is the table's root
/// page, which never moves, together with its database; a handle whose database was detached
/// is refused with `InvalidDatabaseId` (-1010), one that names no table with `InvalidTableId`
/// (-1310).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    pub(crate) db: u32,
    pub(crate) root: u32,
}

impl TableId {
    /// The database the table is in.
    pub fn db(self) -> DbId {
        DbId(self.db)
    }
}

/// A session of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u64);

/// What a commit returns: the log position that must be durable before it may be
/// acknowledged as durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitTicket {
    /// End of the commit's records.
    pub lsn: Lsn,
    /// Whether the caller asked for a durable commit.
    pub durable: bool,
}

/// Counters readable from the instance (`Instance::stats`), counted since the core was opened
/// (`init`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Commits that wrote something.
    pub commits: u64,
    /// Log fsyncs (a log roll counts its own two).
    pub log_fsyncs: u64,
    /// Bytes of log records appended since the instance started (record frames included;
    /// file headers and padding not): divided by `commits`, the log bytes a commit writes.
    pub log_bytes: u64,
    /// Batches the log writer wrote: each drains what is queued, with one write per file and
    /// at most one fsync (group commit).
    pub log_batches: u64,
    /// Batches that made at least one durable write durable: the group commits.
    pub log_groups: u64,
    /// Durable writes the group commits made durable: durable commits, and the records that
    /// must be on disk before they are answered (attach, detach, shutdown, backup header
    /// updates, the end record of a rolled log). Divided by `log_groups`, the mean group size.
    pub log_group_writes: u64,
    /// The most durable writes one group commit made durable.
    pub log_largest_group: u64,
    /// Bytes handed to backup clients by `read_file` of database images and log files: the
    /// sum of the lengths of the chunks they received (a read whose backup ended, or whose
    /// file was closed, while it was on disk hands out nothing).
    pub backup_bytes_streamed: u64,
    /// Database pages verified (checksum, page number, kind) by backup reads as they
    /// streamed: every data page of every database chunk read, including a read whose answer
    /// was then dropped; none of a chunk whose page failed, nor of the header copies, the
    /// trailer or logs.
    pub backup_pages_verified: u64,
    /// Flush jobs completed.
    pub flushes: u64,
    /// Flush jobs that failed: a database write failed, or the log they waited for did.
    /// Either makes the instance unavailable, so no more are started.
    pub flushes_failed: u64,
    /// Pages in the cache.
    pub cached_pages: usize,
    /// Cache hits and misses.
    pub cache_hits: u64,
    /// Cache misses.
    pub cache_misses: u64,
    /// What soft recovery replayed at open.
    pub recovery: ReplayStats,
}

/// An attached database inside the core.
#[derive(Debug)]
pub(crate) struct Database {
    pub path: PathBuf,
    pub file: DbFile,
    pub header: DbHeader,
    pub tables: HashMap<String, u32>,
    /// The tables' root pages: what a [`TableId`] of this database may name.
    pub roots: rustc_hash::FxHashSet<u32>,
    /// The lock on the file (behaviour.md §1.3), released when the database is detached.
    pub _lock: FileLock,
}

/// The engine state of one instance.
pub struct Core {
    storage: StorageRef,
    params: InstanceParams,
    log: Log,
    cache: Cache,
    flusher: Flusher,
    flush_in_flight: bool,
    flush_started_at: Lsn,
    checkpoint: Checkpoint,
    /// The owner tokens this instance issued: every checkpoint carries them, and the one that
    /// first carries a token is written before the header that holds it.
    owner_tokens: crate::db::OwnerTokens,
    dbs: BTreeMap<u32, Database>,
    next_dbid: u32,
    sessions: rustc_hash::FxHashMap<u64, Option<Txn>>,
    next_session: u64,
    /// The id of the last transaction begun ([`Core::transaction_id`]).
    last_txn: u64,
    commit_seq: u64,
    conflicts: Conflicts,
    notify: Arc<Mutex<Option<Notify>>>,
    unavailable: Option<Error>,
    stats: CoreStats,
    backup: Option<crate::backup::BackupState>,
    /// Id of the running backup, or of the last one: ids are never reused within the core's
    /// life, so a caller can end exactly the backup it began.
    backup_seq: u64,
    /// The first handle the next backup gives out: handles are never reused within the
    /// core's life, so a read still on disk cannot name a later backup's file.
    next_backup_handle: u64,
    backup_forbidden: bool,
    /// Changes to a page whose full image was logged before this position log a full image
    /// again (the tip when the last flush began).
    image_horizon: Lsn,
    /// Recent horizons: the only positions a checkpoint may take.
    horizons: std::collections::VecDeque<Lsn>,
    /// Pages commits installed while fetches were on disk (the stale-fetch rule).
    installs: fetch::Installs,
    /// The locks on the system and log directories. Last, so that they are dropped after
    /// the log writer and the flusher have stopped and the databases are closed.
    _locks: locks::InstanceLocks,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("log", &self.log)
            .field("dbs", &self.dbs.len())
            .finish()
    }
}

impl Core {
    /// Opens an instance's files: checks the parameters, locks the system and log
    /// directories (`FileAccessDenied` if another process or engine holds them; nothing is
    /// read or written then), runs soft recovery (which leaves every database it replayed
    /// clean and detached), and starts the log writer and the flusher. Blocks while recovery
    /// runs. The locks are held until the core is dropped, and released if `open` fails.
    pub fn open(storage: StorageRef, params: InstanceParams) -> Result<Core> {
        params.validate()?;
        let locks = locks::InstanceLocks::take(&*storage, &params)?;
        let cfg = LogConfig {
            dir: params.log_dir().clone(),
            base: params.base().to_string(),
            file_size: params.log_bytes(),
            circular: params.is_circular(),
        };
        let (mut log, recovered) = match recovery::recover(&*storage, &params)? {
            Some((resume, stats)) => (Log::resume(storage.clone(), cfg, resume)?, stats),
            None => (Log::create(storage.clone(), cfg)?, ReplayStats::default()),
        };
        if recovered.uncommitted {
            // The log ends with page changes of a transaction a crash cut before its commit
            // record. Appending goes on after them: a replay that reads them later (a restore
            // rolling forward through these logs) must drop them here, not apply them with
            // the next commit. Durable before the checkpoint below points past it.
            let at = log.append(&crate::log::Record::Shutdown, true)?;
            log.wait_durable(at)?;
        }
        let chk_path = checkpoint::path(params.system_dir(), params.base());
        // Recovery read it already (a damaged one fails there): an error here is the disk's,
        // and going on would lose the owner tokens and restart the sequence below the
        // old slot's, which would then win.
        let (old_seq, owner_tokens) = checkpoint::read(&*storage, &chk_path)?
            .map_or((0, Default::default()), |c| (c.seq, c.owner_tokens));
        let checkpoint = Checkpoint {
            seq: old_seq + 1,
            log_signature: log.signature(),
            lsn: log.tip(),
            attached: vec![],
            owner_tokens: owner_tokens.clone(),
        };
        checkpoint::write(&*storage, &chk_path, &checkpoint)?;
        let notify: Arc<Mutex<Option<Notify>>> = Arc::new(Mutex::new(None));
        let flusher = Flusher::start(storage.clone(), notify.clone())?;
        let cache = Cache::new(params.cache_pages);
        let tip = log.tip();
        let mut core = Core {
            storage,
            params,
            log,
            cache,
            flusher,
            flush_in_flight: false,
            flush_started_at: tip,
            checkpoint,
            owner_tokens,
            dbs: BTreeMap::new(),
            next_dbid: 1,
            sessions: Default::default(),
            next_session: 1,
            last_txn: 0,
            commit_seq: 0,
            conflicts: Conflicts::default(),
            notify,
            unavailable: None,
            stats: CoreStats::default(),
            backup: None,
            backup_seq: 0,
            next_backup_handle: 1,
            backup_forbidden: false,
            image_horizon: tip,
            horizons: std::collections::VecDeque::from([tip]),
            installs: fetch::Installs::default(),
            _locks: locks,
        };
        core.stats.recovery = recovered;
        let gen = core.log.gen();
        core.log.set_checkpoint_gen(gen);
        Ok(core)
    }

    /// Sets a callback run (on an I/O thread) whenever the log becomes durable further or a
    /// flush completes: the actor turns it into a mailbox wake-up.
    pub fn set_notify(&self, n: Option<Notify>) {
        self.log.shared().set_notify(n.clone());
        *self.notify.lock() = n;
    }

    /// The parameters.
    pub fn params(&self) -> &InstanceParams {
        &self.params
    }

    /// The storage the instance runs on.
    pub fn storage(&self) -> &StorageRef {
        &self.storage
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The log, mutably (backup rolls and holds it).
    pub fn log_mut(&mut self) -> &mut Log {
        &mut self.log
    }

    /// The last checkpoint written.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Whether a commit is durable yet; the error that poisoned the log if it never will be.
    pub fn is_durable(&self, t: CommitTicket) -> Result<bool> {
        if self.log.durable() >= t.lsn {
            return Ok(true);
        }
        match self.log.shared().poisoned() {
            Some(e) => Err(e),
            None => Ok(false),
        }
    }

    /// Blocks until a commit is durable (for synchronous callers). Waiting on a lazy commit
    /// asks the log writer to flush, so it never waits for some later durable commit.
    pub fn wait(&self, t: CommitTicket) -> Result<()> {
        if self.log.durable() < t.lsn {
            self.log.request_sync();
        }
        self.log.wait_durable(t.lsn)
    }

    /// Fails if a fatal I/O error made the instance unavailable.
    pub fn check_available(&self) -> Result<()> {
        if let Some(e) = &self.unavailable {
            return Err(e.clone());
        }
        if let Some(e) = self.log.shared().poisoned() {
            return Err(e);
        }
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> CoreStats {
        let mut s = self.stats.clone();
        let log = self.log.shared();
        s.log_fsyncs = log.fsyncs();
        s.log_bytes = self.log.appended();
        s.log_batches = log.batches();
        (s.log_groups, s.log_group_writes, s.log_largest_group) = log.groups();
        s.cached_pages = self.cache.len();
        s.cache_hits = self.cache.hits;
        s.cache_misses = self.cache.misses;
        s
    }
}
