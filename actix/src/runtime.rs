//! [`InstanceRuntime`]: the tokio runtime an instance's task lives on, chosen so that it
//! outlives every actix thread that talks to the instance.
//!
//! An instance's task runs on the runtime its `Engine::create_instance` was awaited on. On an
//! actix-web worker that is the worker's own single-thread runtime, which ends when the worker
//! stops (a graceful restart, a worker that panicked, the server's shutdown): the instance
//! would end with it, mid-backup or mid-commit. So the adapter never lets that happen: the
//! instance is created, and every message is forwarded, on an `InstanceRuntime`, either one
//! of its own (threads named `ese-instance`) or the host's main tokio runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ese_actors::{Engine, Error, Instance, InstanceParams, Result};
use tokio::runtime::{Builder, Handle, Runtime};

/// How long dropping the last handle on a dedicated runtime, outside any async context, waits
/// for its blocking work (a log fsync, a backup chunk) before leaving it behind.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// The runtime an instance's task lives on. Cheap to clone; a dedicated runtime is shut down
/// when the last clone (and the last [`InstanceActor`](crate::InstanceActor) holding one) is
/// dropped. Term the instance before that: a runtime shut down under a live instance drops its
/// task, which leaves its files as a crash does (the next `init` recovers them).
#[derive(Clone, Debug)]
pub struct InstanceRuntime {
    handle: Handle,
    /// `Some` for a runtime of our own, kept alive by every clone.
    _owned: Option<Arc<Owned>>,
}

/// A runtime this crate built, shut down when its last holder goes.
#[derive(Debug)]
struct Owned(Option<Runtime>);

impl Drop for Owned {
    fn drop(&mut self) {
        let Some(rt) = self.0.take() else { return };
        // Waiting inside an async context (an actix thread dropping the last holder) would
        // block that thread and makes tokio panic; there the runtime is left to stop by itself.
        if Handle::try_current().is_ok() {
            rt.shutdown_background();
        } else {
            rt.shutdown_timeout(SHUTDOWN_WAIT);
        }
    }
}

impl InstanceRuntime {
    /// A multi-thread tokio runtime of its own with `threads` workers (at least one), named
    /// `ese-instance`: the instance then depends on no thread of the host.
    ///
    /// # Errors
    ///
    /// The operating system's, if the threads cannot be started.
    pub fn dedicated(threads: usize) -> std::io::Result<InstanceRuntime> {
        let rt = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("ese-instance")
            .enable_all()
            .build()?;
        Ok(InstanceRuntime {
            handle: rt.handle().clone(),
            _owned: Some(Arc::new(Owned(Some(rt)))),
        })
    }

    /// The host's own runtime, e.g. the main tokio runtime of a process that also runs an
    /// actix System on another thread. Its owner decides when it ends; it must not be the
    /// runtime of an actix-web worker or of an actix `System` that may stop before the
    /// instance is termed.
    pub fn on(handle: Handle) -> InstanceRuntime {
        InstanceRuntime {
            handle,
            _owned: None,
        }
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `fut` as a task of this runtime and awaits its output, from any runtime (an actix
    /// worker included). The task goes on if the caller stops waiting. Use it for the calls
    /// that are not one message (`backup_to`, `start_backup`, `shutdown`, a restore), so that
    /// their tasks live on the instance's runtime too.
    ///
    /// # Errors
    ///
    /// `fut`'s; `InvalidInstance` (-1115) if the runtime is shut down (or the task panicked).
    pub async fn run<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        match self.handle.spawn(fut).await {
            Ok(out) => out,
            Err(e) => Err(gone(&e.to_string())),
        }
    }

    /// `engine.create_instance(name, params)` awaited on this runtime, so that the instance's
    /// task lives here, whatever runtime the caller is on.
    ///
    /// # Errors
    ///
    /// [`Engine::create_instance`]'s; `InvalidInstance` (-1115) if the runtime is shut down.
    pub async fn create_instance(
        &self,
        engine: &Engine,
        name: &str,
        params: InstanceParams,
    ) -> Result<Instance> {
        let (engine, name) = (engine.clone(), name.to_string());
        self.run(async move { engine.create_instance(&name, params).await })
            .await
    }
}

/// The error of a message whose forwarding never finished, or of a task that did not: the
/// runtime the instance lives on is gone, and the instance with it.
pub(crate) fn gone(why: &str) -> Error {
    Error::InvalidInstance.with_detail(format!("the instance's runtime is gone: {why}"))
}
