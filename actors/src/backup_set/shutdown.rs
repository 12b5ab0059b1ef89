//! `Instance::shutdown`, and what it needs to know of the instance's backup-set runs: how
//! many run (`start_backup` tasks and `backup_to_dir` calls), whether a shutdown closed the
//! door on new ones, and the nudge that wakes a throttled run's sleep when its backup is
//! stopped, so that it meets `BackupAbortByServer` at once instead of after the sleep.

use ese::{Error, Result, Term};
use tokio::sync::watch;

use crate::instance::Instance;

#[derive(Clone, Copy, Debug, Default)]
struct Runs {
    running: usize,
    /// A shutdown began: no new run may start.
    closing: bool,
}

/// One instance's runs; lives in its handle.
pub(crate) struct BackupRuns {
    // One lock over both fields, so that a run starting and a shutdown closing cannot miss
    // each other: either the run is refused or the shutdown waits for it.
    runs: watch::Sender<Runs>,
    stops: watch::Sender<u64>,
}

impl BackupRuns {
    pub(crate) fn new() -> BackupRuns {
        BackupRuns {
            runs: watch::Sender::new(Runs::default()),
            stops: watch::Sender::new(0),
        }
    }

    /// `stop_backup` was answered: wakes the runs sleeping for their rate limit.
    pub(crate) fn stopped(&self) {
        self.stops.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A run counted from its start to its drop.
pub(crate) struct Running {
    inst: Instance,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.inst
            .backup_runs()
            .runs
            .send_modify(|r| r.running = r.running.saturating_sub(1));
    }
}

impl Instance {
    /// Counts a new run; refused once a shutdown began.
    pub(crate) fn run_started(&self) -> Result<Running> {
        let counted = self.backup_runs().runs.send_if_modified(|r| {
            if r.closing {
                return false;
            }
            r.running += 1;
            true
        });
        match counted {
            true => Ok(Running { inst: self.clone() }),
            false => Err(shutting_down()),
        }
    }

    /// Whether a shutdown began.
    pub(crate) fn closing(&self) -> bool {
        self.backup_runs().runs.borrow().closing
    }

    /// Where the stop nudges arrive; those before this call are not seen.
    pub(crate) fn backup_stops(&self) -> watch::Receiver<u64> {
        self.backup_runs().stops.subscribe()
    }

    /// Shuts the instance down for a host that is stopping: ends any running backup as
    /// stopped by the server, waits for the backup-set runs to end and remove their partial
    /// sets, then terminates cleanly (the cache flushed, every database marked clean, a
    /// checkpoint written), so the next `init` has nothing to recover.
    ///
    /// In order:
    ///
    /// 1. While it runs, new [`Instance::start_backup`] and [`Instance::backup_to_dir`]
    ///    calls are refused with `TermInProgress` (-1000), creating nothing; one whose backup
    ///    begins after step 2 ends it at once, with the same error. (After it, the instance
    ///    is terminated: the gate answers `InvalidInstance` -1115.)
    /// 2. [`Instance::stop_backup`]: the running backup's later calls fail with
    ///    `BackupAbortByServer` (-801), and a run sleeping for its rate limit wakes.
    /// 3. Waits until no run is left: each ends as aborted, removes its partial set, and its
    ///    [`BackupHandle::wait`](crate::BackupHandle::wait) gives -801; a run whose
    ///    truncation had begun gets -801 too, and keeps its complete set if logs were
    ///    deleted (behaviour.md §2.7, "keep it"). A `backup_to_dir` future must be polled (or
    ///    dropped) to end. Then the cleanups of dropped backups, as [`Instance::term`] does.
    /// 4. `term(Term::STOP_BACKUP)`: with no backup left it is `Term::empty()`'s clean term;
    ///    a backup a client drives by hand, which nothing here can wait for, is ended as
    ///    aborted by the server (event 226) rather than refusing the term.
    ///
    /// # Errors
    ///
    /// `InvalidInstance` (-1115) after a term (nothing is done); `TermInProgress` (-1000)
    /// while another term runs. Never `BackupInProgress`. A clean term whose flush fails
    /// still succeeds and leaves the files for recovery (behaviour.md §1.2).
    pub async fn shutdown(&self) -> Result<()> {
        let runs = &self.backup_runs().runs;
        let _closed = Closing::begin(runs);
        self.stop_backup().await?;
        let mut idle = runs.subscribe();
        // The sender lives in the handle we hold, so the wait cannot fail for want of it.
        let _ = idle.wait_for(|r| r.running == 0).await;
        self.settle_cleanups().await;
        self.term(Term::STOP_BACKUP).await
    }
}

/// Runs are refused while a shutdown is under way, and only then: once it is over (or its
/// future dropped) the gate answers for the instance again, `InvalidInstance` after the term.
struct Closing<'a>(&'a watch::Sender<Runs>);

impl<'a> Closing<'a> {
    fn begin(runs: &'a watch::Sender<Runs>) -> Closing<'a> {
        runs.send_modify(|r| r.closing = true);
        Closing(runs)
    }
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|r| r.closing = false);
    }
}

/// The refusal of a run while the instance shuts down.
pub(crate) fn shutting_down() -> Error {
    Error::TermInProgress
        .with_detail("the instance is shutting down (Instance::shutdown): no new backup starts")
}
