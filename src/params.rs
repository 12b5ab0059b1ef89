//! Instance parameters (ESE's system parameters that matter here).

use std::path::PathBuf;

use crate::backup::pace::BackupPace;
use crate::log::{names, MIN_LOG_FILE_SIZE};
use crate::{page, Error, Result};

/// How a commit waits for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Acknowledged only once its log records are fsync'd (ESE's default commit).
    Durable,
    /// Acknowledged at once; made durable by the next flush (ESE's `JET_bitCommitLazyFlush`).
    Lazy,
}

/// Sessions an instance allows open at once unless told otherwise. ESE's own default is
/// lower; a host that opens a session per request needs more.
pub const DEFAULT_MAX_SESSIONS: usize = 1024;

/// The settings of one instance.
///
/// ```
/// let p = ese::InstanceParams::new("/tmp/inst").base_name("abc").log_file_size(1 << 20);
/// assert_eq!(p.base(), "abc");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceParams {
    pub(crate) system_path: PathBuf,
    pub(crate) log_path: PathBuf,
    pub(crate) base_name: String,
    pub(crate) log_file_size: u64,
    pub(crate) page_size: u32,
    pub(crate) circular_logging: bool,
    pub(crate) max_open_backup_files: usize,
    pub(crate) cache_pages: usize,
    pub(crate) max_sessions: usize,
    pub(crate) backup_pace: BackupPace,
}

impl InstanceParams {
    /// System path = log path = `dir`; base name "edb"; 5 MiB log files; 8 KiB pages; no
    /// circular logging; one backup file open at a time; a 64 MiB cache; at most
    /// [`DEFAULT_MAX_SESSIONS`] sessions open at once.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        InstanceParams {
            system_path: dir.clone(),
            log_path: dir,
            base_name: "edb".into(),
            log_file_size: 5 << 20,
            page_size: 8192,
            circular_logging: false,
            max_open_backup_files: 1,
            cache_pages: 8192,
            max_sessions: DEFAULT_MAX_SESSIONS,
            backup_pace: BackupPace::default(),
        }
    }
    /// Where the log files go.
    pub fn log_path(mut self, p: impl Into<PathBuf>) -> Self {
        self.log_path = p.into();
        self
    }
    /// Where the checkpoint file goes.
    pub fn system_path(mut self, p: impl Into<PathBuf>) -> Self {
        self.system_path = p.into();
        self
    }
    /// The three-character base name of log and checkpoint files.
    pub fn base_name(mut self, three_chars: &str) -> Self {
        self.base_name = three_chars.to_string();
        self
    }
    /// Size of each log file (at least 64 KiB).
    pub fn log_file_size(mut self, bytes: u64) -> Self {
        self.log_file_size = bytes;
        self
    }
    /// Database page size: 4096, 8192, 16384 or 32768.
    pub fn page_size(mut self, bytes: u32) -> Self {
        self.page_size = bytes;
        self
    }
    /// Reuse log files the checkpoint no longer needs.
    pub fn circular_logging(mut self, on: bool) -> Self {
        self.circular_logging = on;
        self
    }
    /// How many files a backup may have open at once.
    pub fn max_open_backup_files(mut self, n: usize) -> Self {
        self.max_open_backup_files = n;
        self
    }
    /// Buffer cache size in pages (at least 64).
    pub fn cache_pages(mut self, n: usize) -> Self {
        self.cache_pages = n;
        self
    }

    /// How many sessions may be open at once (ESE's `JET_paramMaxSessions`, at least 1):
    /// one more gets `OutOfSessions` (-1101). A session costs a few hundred bytes until it
    /// writes; the cap bounds what a host that opens one per request can leak.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }
    /// How a backup's reads share the machine with durable commits: by default they slow
    /// down while commits' p99 latency rises over a tenth above its value without a backup
    /// ([`BackupPace`]).
    pub fn backup_pace(mut self, pace: BackupPace) -> Self {
        self.backup_pace = pace;
        self
    }
    /// The backup pace.
    pub fn pace(&self) -> BackupPace {
        self.backup_pace
    }
    /// The session cap.
    pub fn session_limit(&self) -> usize {
        self.max_sessions
    }

    /// The log directory.
    pub fn log_dir(&self) -> &PathBuf {
        &self.log_path
    }
    /// The system (checkpoint) directory.
    pub fn system_dir(&self) -> &PathBuf {
        &self.system_path
    }
    /// The base name.
    pub fn base(&self) -> &str {
        &self.base_name
    }
    /// The page size.
    pub fn page_bytes(&self) -> u32 {
        self.page_size
    }
    /// The log file size.
    pub fn log_bytes(&self) -> u64 {
        self.log_file_size
    }
    /// Whether circular logging is on.
    pub fn is_circular(&self) -> bool {
        self.circular_logging
    }
    /// The backup open-file limit.
    pub fn backup_file_limit(&self) -> usize {
        self.max_open_backup_files
    }

    /// Checks every value; `InvalidParameter` names the first bad one in the log.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| {
            tracing::warn!(parameter = what, "invalid instance parameter");
            Err(Error::InvalidParameter)
        };
        if names::check_base_name(&self.base_name).is_err() {
            return bad("base_name");
        }
        if self.log_file_size < MIN_LOG_FILE_SIZE || self.log_file_size > (1 << 31) {
            return bad("log_file_size");
        }
        if page::check_page_size(self.page_size).is_err() {
            return bad("page_size");
        }
        if self.log_file_size < 8 * self.page_size as u64 {
            return bad("log_file_size (must hold several pages)");
        }
        if self.max_open_backup_files == 0 || self.cache_pages < 64 {
            return bad("max_open_backup_files / cache_pages");
        }
        if self.max_sessions == 0 {
            return bad("max_sessions");
        }
        if self.system_path.as_os_str().is_empty() || self.log_path.as_os_str().is_empty() {
            return bad("path");
        }
        Ok(())
    }
}
