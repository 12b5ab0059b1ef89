//! The one place the synchronous set code meets the async object store. The set writer,
//! verify and restore run on blocking threads (the blocking pool, or a plain thread such as
//! `ese-http`'s receiving thread; never on an async worker); from there each
//! request is spawned onto the runtime the repository was opened on and awaited with
//! `block_on`, which a blocking thread may do. Several requests may be in flight at once:
//! [`Bridge::spawn`] starts one without waiting.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ese::{Error, Result};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Counts of the requests a repository sent, by kind (the benchmark reports PUTs per GiB).
#[derive(Debug, Default)]
pub struct RequestCounts {
    /// Single-object PUTs (small files, manifests).
    pub puts: AtomicU64,
    /// Multipart uploads started.
    pub uploads: AtomicU64,
    /// Parts uploaded.
    pub parts: AtomicU64,
    /// Multipart uploads completed.
    pub completes: AtomicU64,
    /// Ranged and whole GETs.
    pub gets: AtomicU64,
    /// HEADs.
    pub heads: AtomicU64,
    /// LIST calls.
    pub lists: AtomicU64,
    /// DELETEs and multipart aborts.
    pub deletes: AtomicU64,
}

/// A snapshot of [`RequestCounts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    /// Single-object PUTs.
    pub puts: u64,
    /// Multipart uploads started.
    pub uploads: u64,
    /// Parts uploaded.
    pub parts: u64,
    /// Multipart uploads completed.
    pub completes: u64,
    /// GETs.
    pub gets: u64,
    /// HEADs.
    pub heads: u64,
    /// LISTs.
    pub lists: u64,
    /// DELETEs and aborts.
    pub deletes: u64,
}

impl Requests {
    /// Every request that writes: PUTs, upload starts, parts and completions.
    pub fn writes(&self) -> u64 {
        self.puts + self.uploads + self.parts + self.completes
    }
}

impl RequestCounts {
    /// The counts now.
    pub fn snapshot(&self) -> Requests {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Requests {
            puts: g(&self.puts),
            uploads: g(&self.uploads),
            parts: g(&self.parts),
            completes: g(&self.completes),
            gets: g(&self.gets),
            heads: g(&self.heads),
            lists: g(&self.lists),
            deletes: g(&self.deletes),
        }
    }
}

/// Counts one request.
pub(crate) fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The runtime requests run on, and the counts.
#[derive(Clone, Debug)]
pub(crate) struct Bridge {
    rt: Handle,
    pub(crate) counts: Arc<RequestCounts>,
}

impl Bridge {
    /// A bridge to the runtime this is called on, counting into `counts`.
    ///
    /// # Errors
    ///
    /// `InvalidParameter` outside a tokio runtime.
    pub(crate) fn here(counts: Arc<RequestCounts>) -> Result<Bridge> {
        let rt = Handle::try_current().map_err(|_| {
            Error::InvalidParameter
                .with_detail("an object-store backup target is opened from inside a tokio runtime")
        })?;
        Ok(Bridge { rt, counts })
    }

    /// Runs `fut` on the runtime and waits for it; only ever called on a blocking thread, one
    /// that is not inside any runtime's `block_on`.
    pub(crate) fn wait<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let job = self.rt.spawn(fut);
        self.join(job)
    }

    /// Starts `fut` on the runtime without waiting.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<T> {
        self.rt.spawn(fut)
    }

    /// Waits for a request [`Bridge::spawn`] started.
    pub(crate) fn join<T>(&self, job: JoinHandle<T>) -> Result<T> {
        self.rt.block_on(job).map_err(|e| {
            Error::InternalError.with_detail(format!("an object-store request did not finish: {e}"))
        })
    }
}
