//! `Instance::start_backup` and its [`BackupHandle`]: the backup-set run of `drive.rs` on a
//! task of its own, with its progress, a cancel, and the wait for its result.

use std::future::pending;
use std::path::Path;
use std::sync::Arc;

use ese::backup::set::{BackupKind, BackupManifest};
use ese::{Error, Result};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::drive::{Destination, SetRun};
use super::options::BackupOptions;
use super::progress::BackupProgress;
use crate::instance::{Cleanup, Instance};

impl Instance {
    /// Starts a backup into the set folder `dir` (empty or absent) and hands back its
    /// [`BackupHandle`]; the sequence is [`Instance::backup_to_dir`]'s (behaviour.md §2.7),
    /// run on a task of its own, with `options`' chunk size and rate limit. Returns once the
    /// backup has begun (before anything is created); refusals come from here, every later
    /// failure from [`BackupHandle::wait`].
    ///
    /// # Errors
    ///
    /// The refusals of [`Instance::backup_to_dir`], before anything is created:
    /// `InvalidPath` (-1023), `BackupDirectoryNotEmpty` (-504), the gate's errors,
    /// `BackupInProgress` (-505), `BackupNotAllowedYet` (-523), `InvalidBackup` (-526),
    /// `MissingFullBackup` (-560), `TermInProgress` (-1000) once [`Instance::shutdown`]
    /// began; and `InvalidParameter` (-1003) for options that do not fit
    /// ([`BackupOptions`]: a `max_rate` of 0, a `chunk_size` that is not a multiple of the
    /// page size or under 3 pages) or when called outside a tokio runtime.
    pub async fn start_backup(
        &self,
        dir: impl AsRef<Path>,
        kind: BackupKind,
        options: BackupOptions,
    ) -> Result<BackupHandle> {
        self.start_backup_in(self.folder(dir.as_ref()), kind, options)
            .await
    }

    /// [`Instance::start_backup`] into any destination.
    pub(crate) async fn start_backup_in(
        &self,
        to: Destination,
        kind: BackupKind,
        options: BackupOptions,
    ) -> Result<BackupHandle> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::InvalidParameter.with_detail("start_backup runs its backup on a tokio runtime")
        })?;
        let run = self.begin_set(to, kind, &options).await?;
        Ok(BackupHandle::spawn(&runtime, self.clone(), run))
    }
}

/// A backup-set run started by [`Instance::start_backup`]: its progress, its cancel and its
/// result. `Send + Sync`.
///
/// **Cancel.** A [`BackupHandle::cancel`] takes effect when it comes before the run commits to
/// finishing, which it does once the set is complete, just before it asks for truncation
/// (full, incremental) or for the normal end (copy, differential), and then enters
/// [`BackupPhase::Finishing`](crate::BackupPhase::Finishing). In time, the backup ends as
/// aborted (`ABORT`, event 215, no header update), the partial set is removed (its manifest
/// too, if it was written) and [`BackupHandle::wait`] gives `BackupAbortByCaller` (-800),
/// unless the run met an error first (then that error, the set removed all the same). Too
/// late, it changes nothing: truncation may delete logs that then live only in the set, and
/// what is deleted cannot be brought back, so the run finishes and `wait` gives its manifest,
/// or the error that keeps the complete set (behaviour.md §2.7, "keep it"). `cancel` says
/// which it was.
///
/// **Drop.** Dropping the handle of an unfinished run cancels it, as above; the run is counted
/// like a dropped `backup_to_dir` call's clean-up until it is over, so [`Instance::term`],
/// [`Instance::begin_external_backup`] and the next backup wait until the backup has ended
/// (and a cancelled one's partial set is gone). So does a `cancel` not followed by `wait`.
pub struct BackupHandle {
    inst: Instance,
    progress: watch::Receiver<BackupProgress>,
    control: Arc<Control>,
    task: JoinHandle<Result<BackupManifest>>,
}

impl std::fmt::Debug for BackupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupHandle")
            .field("instance", &self.inst.name())
            .field("progress", &*self.progress.borrow())
            .finish()
    }
}

impl BackupHandle {
    fn spawn(runtime: &tokio::runtime::Handle, inst: Instance, run: SetRun) -> BackupHandle {
        let (cancel, requested) = watch::channel(false);
        let control = Arc::new(Control {
            cancel,
            state: Mutex::new(State::default()),
        });
        let progress = run.subscribe();
        let finished = Finished(control.clone());
        let control_run = control.clone();
        let task = runtime.spawn(
            async move {
                let _finished = finished;
                run.run(Cancel(Some((requested, control_run)))).await
            }
            .instrument(tracing::Span::current()),
        );
        BackupHandle {
            inst,
            progress,
            control,
            task,
        }
    }

    /// Where the run stands now.
    pub fn progress(&self) -> BackupProgress {
        *self.progress.borrow()
    }

    /// Waits until the progress changed since this handle last looked (through this call),
    /// and returns it. Once the run is over it returns the final progress at once.
    pub async fn changed(&mut self) -> BackupProgress {
        // An error means the run is gone, and its last word (a final phase) is what is left.
        let _ = self.progress.changed().await;
        *self.progress.borrow_and_update()
    }

    /// A receiver of the progress, for a host that renders it elsewhere (another task, a UI)
    /// while it awaits [`BackupHandle::wait`]: `changed().await`, then `borrow()`. Its
    /// `changed` fails once the run is over and its final phase was sent.
    pub fn subscribe(&self) -> watch::Receiver<BackupProgress> {
        self.progress.clone()
    }

    /// Whether the run is over (`wait` answers at once).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the run to end as aborted and remove its partial set; returns at once: `true` if
    /// the cancel came in time (or an earlier one did), `false` if the run had committed to
    /// finishing or was over (see the type's documentation).
    pub fn cancel(&self) -> bool {
        self.control.cancel(&self.inst)
    }

    /// The run's result, once it is over and, after a failure or a cancel, its partial set
    /// is removed. Dropping this future cancels the run, as dropping the handle does.
    ///
    /// # Errors
    ///
    /// `BackupAbortByCaller` (-800) after [`BackupHandle::cancel`] (or a drop of the handle)
    /// in time; otherwise the failures of [`Instance::backup_to_dir`], after which the
    /// backup has ended as aborted and the partial set is removed: `DiskFull` (-1808),
    /// `DiskIO` (-1022), the streaming calls' errors (`ReadVerifyFailure` -1018,
    /// `LogReadVerifyFailure` -612, `MissingFileToBackup` -569), `BackupAbortByServer`
    /// (-801) after [`Instance::stop_backup`] or during [`Instance::shutdown`], the gate's
    /// errors if the instance stops meanwhile; a failure once logs were truncated keeps the
    /// complete set and its detail says "keep it". `InternalError` (-107) if the run's task
    /// panicked or its runtime shut down.
    pub async fn wait(mut self) -> Result<BackupManifest> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => {
                Err(Error::InternalError
                    .with_detail(format!("the backup's task did not finish: {e}")))
            }
        }
    }
}

impl Drop for BackupHandle {
    fn drop(&mut self) {
        let _ = self.control.cancel(&self.inst);
    }
}

/// What the handle and its run share.
struct Control {
    cancel: watch::Sender<bool>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A cancel came before the run committed.
    cancelled: bool,
    /// The run committed to finishing: a cancel comes too late.
    committed: bool,
    /// The run's task is over (or gone): a cancel has nothing left to do.
    finished: bool,
    /// Counts a run whose handle cancelled it (or let it go) as a clean-up until it is over.
    cleanup: Option<Cleanup>,
}

impl Control {
    /// Whether the cancel came in time.
    fn cancel(&self, inst: &Instance) -> bool {
        let in_time = {
            let mut s = self.state.lock();
            if s.finished {
                return s.cancelled;
            }
            if s.cleanup.is_none() {
                s.cleanup = Some(inst.cleanup_started());
            }
            s.cancelled |= !s.committed;
            s.cancelled
        };
        if in_time {
            self.cancel.send_replace(true);
        }
        in_time
    }

    /// The run's side: whether it may go on to finish (no cancel came first).
    fn commit(&self) -> bool {
        let mut s = self.state.lock();
        s.committed = !s.cancelled;
        s.committed
    }
}

/// Owned by the run's task: however the task ends (its run over, or dropped with the
/// runtime), the run is marked finished and the clean-up a cancel counted is over.
struct Finished(Arc<Control>);

impl Drop for Finished {
    fn drop(&mut self) {
        let cleanup = {
            let mut s = self.0.state.lock();
            s.finished = true;
            s.cleanup.take()
        };
        drop(cleanup);
    }
}

/// Where a run learns of a cancel: never, for `backup_to_dir` (its caller drops the future
/// instead), or from its handle.
pub(crate) struct Cancel(Option<(watch::Receiver<bool>, Arc<Control>)>);

impl Cancel {
    pub(crate) fn never() -> Cancel {
        Cancel(None)
    }

    /// Resolves once a cancel came in time.
    pub(crate) async fn requested(&mut self) {
        match &mut self.0 {
            None => pending().await,
            Some((rx, _)) => {
                // The sender lives in the control this run holds: the wait cannot fail.
                if rx.wait_for(|asked| *asked).await.is_err() {
                    pending::<()>().await;
                }
            }
        }
    }

    /// The point of no return: `false` if a cancel came first (the run must not finish).
    pub(crate) fn commit(&self) -> bool {
        self.0.as_ref().is_none_or(|(_, control)| control.commit())
    }
}
