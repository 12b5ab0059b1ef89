//! How a backup shares the machine with the commits it runs beside.
//!
//! A backup streams a whole database image while writers commit. On a small machine the
//! stream's reads, checks and sends take the cores the commit path needs (the instance's
//! task, the log writer), and durable commits wait: measured on this project's 2-core
//! machine, a backup at full speed raised the writers' p99 commit latency 2 to 5 times,
//! while one held to 5–10 MiB/s raised it 7–46%. So by default a backup yields: the engine
//! measures every durable commit's latency, learns its p99 while no backup reads, and while
//! a backup reads a database image it slows those reads (halving their rate; logs are never
//! held, design.md says why) whenever the p99 of the last
//! window rose over the allowed share, and lets them speed up (a tenth more per window)
//! while it did not. Without commits to protect, or with [`BackupPace::Full`], reads run as
//! fast as the client asks. This is the same goal as LEDBAT's background transfers: use what
//! the foreground leaves, measured by the delay the foreground sees.

mod governor;
mod latency;

pub use governor::{Governor, WINDOW};
pub use latency::{CommitLatencies, LatencyWindow};

/// How a backup's reads share the machine with durable commits
/// ([`crate::InstanceParams::backup_pace`]).
///
/// ```
/// use ese::{BackupPace, InstanceParams};
/// let p = InstanceParams::new("/tmp/inst").backup_pace(BackupPace::Full);
/// assert_eq!(p.pace(), BackupPace::Full);
/// assert!(matches!(BackupPace::default(), BackupPace::YieldToCommits { .. }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupPace {
    /// Reads as fast as the backup client asks.
    Full,
    /// Slows the backup's reads while durable commits are slower than without a backup.
    YieldToCommits {
        /// How high the durable commits' p99 latency may rise while a backup reads, in percent
        /// of its value without one (110: by a tenth).
        p99_percent: u32,
        /// The least rate the backup reads at, in bytes per second, however busy the commits:
        /// a backup always ends.
        floor_bytes_per_sec: u64,
    },
}

/// [`BackupPace::YieldToCommits`]'s default share: the p99 may rise by a tenth.
pub const DEFAULT_P99_PERCENT: u32 = 110;
/// [`BackupPace::YieldToCommits`]'s default floor: 4 MiB/s.
pub const DEFAULT_FLOOR_BYTES_PER_SEC: u64 = 4 << 20;

impl Default for BackupPace {
    fn default() -> Self {
        BackupPace::YieldToCommits {
            p99_percent: DEFAULT_P99_PERCENT,
            floor_bytes_per_sec: DEFAULT_FLOOR_BYTES_PER_SEC,
        }
    }
}
