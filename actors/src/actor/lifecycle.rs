//! Init, term, stop_service, stop_backup (behaviour.md §1.2).

use ese::{Core, Error, Result, Term as TermBits};

use super::Actor;
use crate::gate::Lifecycle;
use crate::messages::{Command, Reply};

impl Actor {
    pub(super) fn on_init(&mut self, r: Reply<()>) {
        let early = match self.lifecycle {
            Lifecycle::Terminated => Some(Error::InvalidInstance),
            _ if self.stop_service => Some(Error::ClientRequestToStopJetService),
            Lifecycle::Terminating => Some(Error::TermInProgress),
            Lifecycle::Initialising => Some(Error::NotInitialized),
            Lifecycle::Running => Some(Error::AlreadyInitialized),
            Lifecycle::Created => None,
        };
        if let Some(e) = early {
            let _ = r.send(Err(e));
            return;
        }
        // Another instance of the engine on the same paths: refused before anything is
        // touched, and the instance stays created.
        if let Err(e) = self.claim_instance_paths() {
            let _ = r.send(Err(e));
            return;
        }
        self.lifecycle = Lifecycle::Initialising;
        tracing::info!(event_id = 102u32, "instance initialising (soft recovery)");
        let storage = self.storage.clone();
        let params = self.params.clone();
        self.job(true, move |_| {
            let opened = Core::open(storage, params);
            let finish: super::Finish = Box::new(move |a: &mut Actor| a.init_done(opened, r));
            (None, finish)
        });
    }

    fn init_done(&mut self, opened: Result<Core>, r: Reply<()>) {
        match opened {
            Ok(core) => {
                core.set_notify(Some(self.notifier()));
                self.log_shared = Some(core.log().shared().clone());
                self.core = Some(core);
                if self.lifecycle == Lifecycle::Initialising {
                    self.lifecycle = Lifecycle::Running;
                }
                tracing::info!(event_id = 105u32, "instance running");
                let _ = r.send(Ok(()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "init failed");
                // The core released its locks when `open` failed; the engine's claims follow.
                self.release_all_paths();
                if self.lifecycle == Lifecycle::Initialising {
                    self.lifecycle = Lifecycle::Created;
                }
                let _ = r.send(Err(e));
            }
        }
    }

    pub(super) fn on_stop_service(&mut self, r: Reply<()>) {
        let res = match self.lifecycle {
            Lifecycle::Terminated => Err(Error::InvalidInstance),
            _ => {
                if !self.stop_service {
                    tracing::info!(
                        "stop service: every later call fails with ClientRequestToStopJetService"
                    );
                }
                self.stop_service = true;
                self.wake_held_reads();
                Ok(())
            }
        };
        let _ = r.send(res);
    }

    pub(super) fn on_stop_backup(&mut self, r: Reply<()>) {
        let res = match self.lifecycle {
            Lifecycle::Terminated => Err(Error::InvalidInstance),
            _ => self.stop_backup_flag(),
        };
        let _ = r.send(res);
    }

    /// Sets the server's stop flag on a running backup (no lasting effect without one).
    pub(super) fn stop_backup_flag(&mut self) -> Result<()> {
        self.wake_held_reads();
        match self.core.as_mut() {
            Some(c) => c.backup_stop(),
            None if self.busy => self.stop_backup_pending = true,
            None => {}
        }
        Ok(())
    }

    pub(super) fn on_term(&mut self, grbit: TermBits, r: Reply<()>) {
        self.wake_held_reads();
        match self.lifecycle {
            Lifecycle::Terminated => {
                let _ = r.send(Err(Error::InvalidInstance));
            }
            Lifecycle::Terminating => {
                let _ = r.send(Err(Error::TermInProgress));
            }
            Lifecycle::Created => {
                self.terminated();
                let _ = r.send(Ok(()));
            }
            Lifecycle::Initialising | Lifecycle::Running
                if self.busy || self.reads_in_flight > 0 =>
            {
                // Term waits for the job in flight; meanwhile every other call gets
                // TermInProgress. It runs first when the core comes back.
                self.lifecycle = Lifecycle::Terminating;
                self.pending_term = Some((grbit, r));
                self.refuse_deferred_after_term();
            }
            Lifecycle::Initialising | Lifecycle::Running => self.term_now(grbit, r),
        }
    }

    /// Commands queued behind the core would now be refused by the gate: answer them.
    fn refuse_deferred_after_term(&mut self) {
        let queued: Vec<Command> = self.deferred.drain(..).collect();
        for cmd in queued {
            self.defer(cmd);
        }
    }

    /// Runs a term now that the core is at hand.
    pub(super) fn term_now(&mut self, grbit: TermBits, r: Reply<()>) {
        let dirty = grbit.contains(TermBits::DIRTY);
        let Some(core) = self.core.as_mut() else {
            // Init failed or never ran while term waited.
            self.terminated();
            let _ = r.send(Ok(()));
            return;
        };
        if core.backup_running() && !dirty && core.check_available().is_ok() {
            if grbit.intersects(TermBits::ABRUPT | TermBits::STOP_BACKUP) {
                core.backup_abort_by_server();
            } else {
                // The instance keeps running and its backup can still end, but no new backup
                // may begin until it is terminated and created again.
                core.forbid_new_backups();
                self.lifecycle = Lifecycle::Running;
                let _ = r.send(Err(Error::BackupInProgress.with_detail(
                    "a backup is running: stop it first (stop_backup, then let the backup end), \
                     or term with Term::STOP_BACKUP to end it as aborted by the server; \
                     Instance::shutdown does the first, then terms",
                )));
                return;
            }
        }
        self.lifecycle = Lifecycle::Terminating;
        tracing::info!(grbit = grbit.bits(), dirty, "term");
        self.job(true, move |core| {
            if let Some(core) = core {
                if dirty || core.check_available().is_err() {
                    core.term_dirty();
                } else if let Err(e) = core.term_clean() {
                    // The files are left for recovery, as after a dirty term.
                    tracing::warn!(error = %e, "clean term failed; the next init recovers");
                }
            }
            let finish: super::Finish = Box::new(move |a: &mut Actor| {
                a.terminated();
                let _ = r.send(Ok(()));
            });
            (None, finish)
        });
    }

    /// The instance is gone: waiters and deferred commands are answered, the engine forgets it.
    pub(super) fn terminated(&mut self) {
        self.lifecycle = Lifecycle::Terminated;
        // The core, and with it its locks, is gone by now: its paths are free.
        self.release_all_paths();
        for cmd in self.deferred.drain(..) {
            cmd.refuse(Error::InvalidInstance);
        }
        if let Some((_, r)) = self.pending_term.take() {
            let _ = r.send(Ok(()));
        }
        if let Some(engine) = self.engine.upgrade() {
            engine.deregister(&self.name, self.id);
        }
        tracing::info!(event_id = 103u32, "instance terminated");
    }
}
