//! [`RemoteProgress`]: what a remote backup tells its host while it runs, on a `watch`
//! channel (a slow host only ever sees the latest figures).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ese_actors::BackupPhase;
use tokio::sync::watch;

/// A snapshot of a remote backup.
///
/// `bytes_total` is the sum of the sizes the server announced so far (each file's
/// `x-ese-file-size` when its download starts), so it is a lower bound until the last file
/// started; `files_total` is final once the log range is sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteProgress {
    /// Where the run stands (the phases of a local backup-set run).
    pub phase: BackupPhase,
    /// File bytes written into the set.
    pub bytes_done: u64,
    /// File bytes announced so far.
    pub bytes_total: u64,
    /// Files written and synced.
    pub files_done: usize,
    /// Files listed so far.
    pub files_total: usize,
    /// Downloads resumed after a cut connection.
    pub resumes: u32,
    /// Body bytes of file downloads received from the network, resumed ones included:
    /// beyond the files' sizes only if the client asked for something twice (it never does).
    pub bytes_received: u64,
}

impl RemoteProgress {
    pub(crate) fn start() -> RemoteProgress {
        RemoteProgress {
            phase: BackupPhase::Starting,
            bytes_done: 0,
            bytes_total: 0,
            files_done: 0,
            files_total: 0,
            resumes: 0,
            bytes_received: 0,
        }
    }
}

/// The run's side of the channel.
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    tx: watch::Sender<RemoteProgress>,
    /// Which run the figures are: [`Tracker::restart`] counts up. A dropped run's receiving
    /// thread may still finish a write before it sees the run is gone; it must not count
    /// those bytes into the next run's figures.
    run: Arc<AtomicU64>,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker {
            tx: watch::Sender::new(RemoteProgress::start()),
            run: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<RemoteProgress> {
        self.tx.subscribe()
    }

    /// Starts a run's figures from zero; answers the handle that updates only them.
    pub fn restart(&self) -> RunTracker {
        // Counted before the figures are replaced: an update that saw the old count and
        // got the channel's lock first is replaced with the rest.
        let run = self.run.fetch_add(1, Ordering::SeqCst) + 1;
        self.tx.send_replace(RemoteProgress::start());
        RunTracker {
            tracker: self.clone(),
            run,
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut RemoteProgress)) {
        self.tx.send_modify(f);
    }

    pub fn phase(&self, phase: BackupPhase) {
        self.tx.send_if_modified(|p| {
            let changed = p.phase != phase;
            p.phase = phase;
            changed
        });
    }

    pub fn get(&self) -> RemoteProgress {
        *self.tx.borrow()
    }
}

/// The figures of one run, for its receiving thread: updates stop counting once a later
/// run started.
#[derive(Debug, Clone)]
pub(crate) struct RunTracker {
    tracker: Tracker,
    run: u64,
}

impl RunTracker {
    pub fn update(&self, f: impl FnOnce(&mut RemoteProgress)) {
        let run = self.run;
        let current = &self.tracker.run;
        self.tracker.tx.send_if_modified(|p| {
            // Checked under the channel's lock, which `restart`'s replacement also takes.
            if current.load(Ordering::SeqCst) != run {
                return false;
            }
            f(p);
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_was_followed_by_another_no_longer_counts() {
        let t = Tracker::new();
        let first = t.restart();
        first.update(|p| p.bytes_done += 5);
        assert_eq!(t.get().bytes_done, 5);
        let second = t.restart();
        first.update(|p| p.bytes_done += 7);
        assert_eq!(
            t.get().bytes_done,
            0,
            "a late write of the first run counted"
        );
        second.update(|p| p.bytes_done += 3);
        assert_eq!(t.get().bytes_done, 3);
    }
}
