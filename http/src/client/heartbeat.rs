//! Keeping a backup's lease while the client works on its own side.
//!
//! The server renews the lease with every request and every chunk it sends. A client busy
//! elsewhere sends nothing: waiting for its disk or an object store (a retried upload can
//! take minutes), it stops reading the socket, the server stops sending, and the lease would
//! run out while the client is alive and well, losing a backup that was nearly done. A
//! status request every third of the lease keeps it while the run makes progress; a client
//! that dies stops asking, and one whose run has made none for `max_stall` (a write that
//! never returns) stops renewing, so the lease ends the backup and frees the server's logs
//! either way.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::api::Api;
use super::error::RemoteError;
use super::progress::RemoteProgress;

/// The renewing task; it stops when this is dropped.
pub(crate) struct Heartbeat(JoinHandle<()>);

impl Heartbeat {
    /// Renews backup `id`'s lease of `ttl` every `ttl / 3` until dropped, until the run's
    /// `progress` has not moved for `max_stall`, or until the server answers that the backup
    /// is over (the run's next request reports why).
    pub fn start(
        api: Api,
        id: String,
        ttl: Duration,
        mut progress: watch::Receiver<RemoteProgress>,
        max_stall: Duration,
    ) -> Heartbeat {
        let every = (ttl / 3).max(Duration::from_millis(50));
        Heartbeat(tokio::spawn(async move {
            let mut moved = Instant::now();
            let mut last = moving_part(&progress.borrow_and_update());
            loop {
                tokio::time::sleep(every).await;
                let now = moving_part(&progress.borrow_and_update());
                if now != last {
                    (last, moved) = (now, Instant::now());
                } else if moved.elapsed() >= max_stall {
                    tracing::warn!(
                        backup = %id,
                        "no progress for {max_stall:?}: the lease is no longer renewed"
                    );
                    return;
                }
                match api.files(&id).await {
                    // A connection or a proxy failing now is the run's to report, if it lasts.
                    Ok(_) | Err(RemoteError::Transport { .. } | RemoteError::Protocol { .. }) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "lease renewal stopped");
                        return;
                    }
                }
            }
        }))
    }
}

/// What changes while a run makes progress (resumes alone are not progress).
fn moving_part(p: &RemoteProgress) -> (u64, u64, usize, ese_actors::BackupPhase) {
    (p.bytes_received, p.bytes_done, p.files_done, p.phase)
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}
