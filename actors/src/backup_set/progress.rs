//! What a backup-set run tells its host while it goes: [`BackupProgress`], published on a
//! `watch` channel by the run's [`Tracker`], so a host renders it without polling and a slow
//! host only ever sees the latest figures.

use tokio::sync::watch;

/// Where a backup-set run stands, in the order a run goes through them. An incremental or
/// differential skips `Databases`. The last three are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackupPhase {
    /// The backup has begun; the set's folders are being made.
    Starting,
    /// Database images are streaming into the set.
    Databases,
    /// Logs are streaming into the set (the log was rolled: the range is fixed).
    Logs,
    /// Every file is written and synced; the folders are synced and the manifest written.
    Publishing,
    /// The set is complete and the run is committed to it: the logs it made redundant are
    /// deleted (full, incremental) and the backup ends normally. A cancel has no effect from
    /// here on ([`BackupHandle`](crate::BackupHandle)).
    Finishing,
    /// The set is complete and recorded in the databases' headers.
    Done,
    /// Cancelled through its handle: the backup ended as aborted, the partial set is removed.
    Cancelled,
    /// Failed; the run's result says why (and whether the set was kept).
    Failed,
}

impl BackupPhase {
    /// Whether the run is over.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BackupPhase::Done | BackupPhase::Cancelled | BackupPhase::Failed
        )
    }
}

/// A snapshot of a backup-set run.
///
/// `bytes_total` is the sum of the sizes known so far, so it never is below `bytes_done`:
/// each database's stream size is added when the run opens it (`open_file`), and the logs'
/// once the first log is opened (every log file of an instance has the same size, design.md
/// "Log files"). Before that it is a lower bound; from the first log's opening on it is the
/// final figure, and `total_known` says so. At `Done`, `bytes_done` equals `bytes_total`
/// and the sum of the sizes in the set's manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupProgress {
    /// Where the run stands.
    pub phase: BackupPhase,
    /// Bytes written into the set (each chunk counts once it is written).
    pub bytes_done: u64,
    /// Bytes the set will hold, as far as known (see above).
    pub bytes_total: u64,
    /// Whether `bytes_total` is final.
    pub total_known: bool,
    /// Files written and synced.
    pub files_done: usize,
    /// Files the set will hold: the databases once listed, the logs once the range is fixed.
    pub files_total: usize,
}

impl BackupProgress {
    fn start() -> BackupProgress {
        BackupProgress {
            phase: BackupPhase::Starting,
            bytes_done: 0,
            bytes_total: 0,
            total_known: false,
            files_done: 0,
            files_total: 0,
        }
    }
}

/// The run's side of the channel, and what it needs to keep `bytes_total` honest.
pub(crate) struct Tracker {
    tx: watch::Sender<BackupProgress>,
    /// Logs listed but not opened yet.
    logs_unopened: usize,
    /// The size of the first log opened: what each log not opened yet counts for.
    log_size: Option<u64>,
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        Tracker {
            tx: watch::Sender::new(BackupProgress::start()),
            logs_unopened: 0,
            log_size: None,
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<BackupProgress> {
        self.tx.subscribe()
    }

    pub(crate) fn phase(&self, phase: BackupPhase) {
        self.tx.send_if_modified(|p| {
            let changed = p.phase != phase;
            p.phase = phase;
            changed
        });
    }

    pub(crate) fn databases_listed(&self, n: usize) {
        self.tx.send_modify(|p| p.files_total += n);
    }

    pub(crate) fn database_opened(&self, size: u64) {
        self.tx.send_modify(|p| p.bytes_total += size);
    }

    pub(crate) fn logs_listed(&mut self, n: usize) {
        self.logs_unopened = n;
        self.tx.send_modify(|p| {
            p.files_total += n;
            // No log to come: the total is what the databases made it.
            p.total_known = n == 0;
        });
    }

    /// A log's real size replaces what it was counted for; the first one opened also stands
    /// for every log still to come.
    pub(crate) fn log_opened(&mut self, size: u64) {
        self.logs_unopened = self.logs_unopened.saturating_sub(1);
        let rest = self.logs_unopened as u64;
        let counted = self.log_size;
        self.log_size.get_or_insert(size);
        self.tx.send_modify(|p| {
            p.bytes_total = match counted {
                None => p.bytes_total + size.saturating_mul(rest + 1),
                Some(c) => (p.bytes_total + size).saturating_sub(c),
            };
            p.total_known = true;
        });
    }

    pub(crate) fn written(&self, bytes: u64) {
        self.tx.send_modify(|p| p.bytes_done += bytes);
    }

    pub(crate) fn file_done(&self) {
        self.tx.send_modify(|p| p.files_done += 1);
    }
}

impl Drop for Tracker {
    /// A run that ends without a final phase (its future dropped, its task gone with the
    /// runtime) still ends its watchers' wait: they see `Failed`.
    fn drop(&mut self) {
        self.tx.send_if_modified(|p| {
            let open = !p.phase.is_finished();
            if open {
                p.phase = BackupPhase::Failed;
            }
            open
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_follows_what_is_known_and_never_falls_below_done() {
        let mut t = Tracker::new();
        let rx = t.subscribe();
        t.databases_listed(2);
        t.database_opened(300);
        t.written(300);
        t.file_done();
        t.database_opened(100);
        t.written(100);
        t.file_done();
        assert_eq!(rx.borrow().bytes_total, 400);
        assert!(!rx.borrow().total_known);
        t.logs_listed(3);
        t.log_opened(50);
        let p = *rx.borrow();
        assert_eq!(
            (p.bytes_total, p.total_known, p.files_total),
            (550, true, 5)
        );
        t.written(50);
        // A log of another size (it would be refused as corrupt) still keeps the sum exact.
        t.log_opened(60);
        t.log_opened(50);
        assert_eq!(rx.borrow().bytes_total, 560);
        t.written(110);
        assert_eq!(rx.borrow().bytes_done, 560);
    }

    #[test]
    fn a_run_dropped_unfinished_reads_as_failed() {
        let t = Tracker::new();
        let rx = t.subscribe();
        t.phase(BackupPhase::Logs);
        drop(t);
        assert_eq!(rx.borrow().phase, BackupPhase::Failed);

        let t = Tracker::new();
        let rx = t.subscribe();
        t.phase(BackupPhase::Done);
        drop(t);
        assert_eq!(rx.borrow().phase, BackupPhase::Done);
    }
}
