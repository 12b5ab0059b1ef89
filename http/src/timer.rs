//! The lease's timer: a task that sleeps until the lease's deadline, asks the lease again (a
//! request may have moved the deadline) and, when it expired, ends the backup. A backup that
//! ends through the router wakes it, and it stops at once.

use std::sync::Arc;
use std::time::Instant;

use crate::lease::Tick;
use crate::state::{expire, lock, Remote, Shared};

/// Starts the timer of a begun backup.
pub(crate) fn spawn(shared: Arc<Shared>, remote: Arc<Remote>) {
    tokio::spawn(async move {
        loop {
            let tick = lock(&remote.lease).poll(Instant::now());
            match tick {
                Tick::SleepUntil(t) => tokio::select! {
                    () = tokio::time::sleep_until(t.into()) => {}
                    () = remote.ended.notified() => {}
                },
                Tick::Expire => return expire(&shared, &remote).await,
                Tick::Stop => return,
            }
        }
    });
}
