//! Keeping a backup's lease while the client works on its own side.
//!
//! The server renews the lease with every request and every chunk it sends. A client busy
//! elsewhere sends nothing: waiting for its disk or an object store (a retried upload can
//! take minutes), it stops reading the socket, the server stops sending, and the lease would
//! run out while the client is alive and well, losing a backup that was nearly done. A
//! status request every third of the lease keeps it for as long as the client runs; a client
//! that dies stops asking, and the lease ends the backup as before.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::api::Api;
use super::error::RemoteError;

/// The renewing task; it stops when this is dropped.
pub(crate) struct Heartbeat(JoinHandle<()>);

impl Heartbeat {
    /// Renews backup `id`'s lease of `ttl` every `ttl / 3` until dropped, or until the server
    /// answers that the backup is over (the client's next request reports why).
    pub fn start(api: Api, id: String, ttl: Duration) -> Heartbeat {
        let every = (ttl / 3).max(Duration::from_millis(50));
        Heartbeat(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match api.files(&id).await {
                    // A failed connection is the download's to report; keep trying.
                    Ok(_) | Err(RemoteError::Transport { .. }) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "lease renewal stopped");
                        return;
                    }
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}
