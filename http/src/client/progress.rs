//! [`RemoteProgress`]: what a remote backup tells its host while it runs, on a `watch`
//! channel (a slow host only ever sees the latest figures).

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
pub(crate) struct Tracker(pub watch::Sender<RemoteProgress>);

impl Tracker {
    pub fn update(&self, f: impl FnOnce(&mut RemoteProgress)) {
        self.0.send_modify(f);
    }

    pub fn phase(&self, phase: BackupPhase) {
        self.0.send_if_modified(|p| {
            let changed = p.phase != phase;
            p.phase = phase;
            changed
        });
    }

    pub fn get(&self) -> RemoteProgress {
        *self.0.borrow()
    }
}
