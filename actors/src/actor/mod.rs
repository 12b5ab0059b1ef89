//! The instance actor: one tokio task per instance. It owns the storage core and serves the
//! mailbox one message at a time; state changes happen between messages. It never awaits
//! disk I/O inside a handler: durable commits are answered by the log writer once their
//! position is durable; reads that miss the cache fetch their pages as a job without the core
//! and are served again when the pages are in (`reads.rs`); scans are served in bounded
//! slices; and the rare whole-instance steps (recovery, attach, detach, term) run as a *job*
//! on the blocking pool, holding the core while the actor keeps answering what needs no core
//! (`stop_service`, `stop_backup`, gate refusals). I/O threads wake the actor through an
//! unbounded completion channel, which the loop prefers over new commands. Commands are
//! routed in `route.rs`, by the kind and gate their line in the `messages!` table gives them.

mod backup;
mod data;
mod exclusive;
mod lifecycle;
#[cfg(test)]
mod observability_tests;
pub(crate) mod pacing;
mod prefetch;
mod reads;
mod route;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use ese::io::StorageRef;
use ese::Lsn;
use ese::{Core, Error, InstanceParams, Result};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::engine::EngineInner;
use crate::gate::Lifecycle;
use crate::messages::{Command, Reply};
use reads::ScanSpec;

/// What a finished job does to the actor.
type Finish = Box<dyn FnOnce(&mut Actor) + Send>;

pub(crate) enum Completion {
    /// The log or the flusher made progress.
    Wake,
    /// A job finished: the core comes back (if it was lent), then `Finish` runs.
    Job(Box<JobDone>),
}

/// What a finished job sends back to the actor.
pub(crate) struct JobDone {
    /// The job was lent the core: the actor is no longer busy once it is back.
    pub held_core: bool,
    /// The core the job gives back; `None` from a job that never held it, or that ended it
    /// (term) or was to make it (init, whose `Finish` installs it).
    pub core: Option<Core>,
    /// What the actor does with the job's result.
    pub finish: Finish,
}

pub(crate) struct Actor {
    pub name: String,
    pub id: u64,
    pub params: InstanceParams,
    pub storage: StorageRef,
    pub engine: Weak<EngineInner>,
    /// Where the instance is in its life.
    pub lifecycle: Lifecycle,
    pub stop_service: bool,
    pub core: Option<Core>,
    /// A job holds the core.
    pub busy: bool,
    /// Commands that need the core, queued while it is lent to a job (mailbox order kept).
    pub deferred: VecDeque<Command>,
    /// The log's durable position and poison, shared with its writer thread.
    pub log_shared: Option<Arc<ese::internals::log::LogShared>>,
    pub completions: mpsc::UnboundedSender<Completion>,
    pub wake_pending: Arc<AtomicBool>,
    /// A term that arrived while a job held the core; it runs when the job is done.
    pub pending_term: Option<(ese::Term, Reply<()>)>,
    /// Reads on disk now (backup chunks, page fetches): term waits for them.
    pub reads_in_flight: usize,
    /// Backup reads that finished while a job held the core.
    pub parked_reads: Vec<ParkedRead>,
    /// Page fetches that finished while a job held the core: each serves its read again.
    pub parked: Vec<Finish>,
    /// Scans between two slices, by cursor.
    pub scans: HashMap<u64, ScanSpec>,
    /// The last cursor number given out.
    pub next_scan: u64,
    /// `stop_backup` arrived while a job held the core.
    pub stop_backup_pending: bool,
    /// The database chunk read ahead of the backup client (`prefetch.rs`).
    pub prefetch: Option<prefetch::Prefetch>,
    /// How many log bytes were appended when the last backup read was asked for: the
    /// read-ahead only runs while none were since (`prefetch.rs`).
    pub log_at_read: u64,
    /// Backup reads beside durable commits (`pacing.rs`).
    pub pacing: Arc<pacing::Pacing>,
}

/// A finished read waiting for the core, with the ticket of the backup and file it read.
pub(crate) type ParkedRead = (
    ese::internals::backup::ReadTicket,
    Result<ese::internals::backup::stream::Streamed>,
    backup::ReadReply,
);

/// What hosts send an instance: the bounded mailbox, and the unbounded channel of commands
/// sent from `Drop`, which cannot wait for room.
pub(crate) struct Inbox {
    pub mailbox: mpsc::Receiver<Command>,
    pub orphans: mpsc::UnboundedReceiver<Command>,
}

/// Starts the actor task of an instance; answers its pacing, which the instance's handles
/// time durable commits into.
pub(crate) fn start(
    rt: &tokio::runtime::Handle,
    name: String,
    id: u64,
    params: InstanceParams,
    storage: StorageRef,
    engine: Weak<EngineInner>,
    inbox: Inbox,
) -> Arc<pacing::Pacing> {
    let (ctx, crx) = mpsc::unbounded_channel();
    let span = tracing::info_span!("instance", name = %name);
    let pacing = pacing::Pacing::new(params.pace());
    let actor = Actor {
        name,
        id,
        params,
        storage,
        engine,
        lifecycle: Lifecycle::Created,
        stop_service: false,
        core: None,
        busy: false,
        deferred: VecDeque::new(),
        log_shared: None,
        completions: ctx,
        wake_pending: Arc::new(AtomicBool::new(false)),
        pending_term: None,
        reads_in_flight: 0,
        parked_reads: Vec::new(),
        parked: Vec::new(),
        scans: HashMap::new(),
        next_scan: 0,
        stop_backup_pending: false,
        prefetch: None,
        log_at_read: 0,
        pacing: pacing.clone(),
    };
    rt.spawn(actor.run(inbox, crx).instrument(span));
    pacing
}

impl Actor {
    async fn run(mut self, inbox: Inbox, mut completions: mpsc::UnboundedReceiver<Completion>) {
        let Inbox {
            mut mailbox,
            mut orphans,
        } = inbox;
        while self.lifecycle != Lifecycle::Terminated {
            tokio::select! {
                biased;
                Some(c) = completions.recv() => self.on_completion(c),
                // Before the mailbox: when the last handle goes, what its drops sent is served
                // before the loop sees the mailbox closed.
                Some(cmd) = orphans.recv() => self.on_command(cmd),
                cmd = mailbox.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None if self.busy => {
                        // Every handle is gone, but a job still holds the core: let it finish.
                        if let Some(c) = completions.recv().await { self.on_completion(c) }
                    }
                    None => break,
                },
            }
        }
        // Gone: held backup reads go now, and the messages still queued get `InvalidInstance`
        // (behaviour.md §1.1), not a channel error.
        self.wake_held_reads();
        mailbox.close();
        while let Some(cmd) = mailbox.recv().await {
            cmd.refuse(Error::InvalidInstance);
        }
        if let Some(core) = self.core.take() {
            // Every handle dropped without a term: leave the files for recovery. The core's
            // locks go when it is dropped, at the end of the dirty term.
            tokio::task::spawn_blocking(move || core.term_dirty());
        }
        self.release_all_paths();
    }

    fn on_completion(&mut self, c: Completion) {
        match c {
            Completion::Wake => {
                self.wake_pending.store(false, Ordering::Release);
                if let Some(core) = &mut self.core {
                    core.pump();
                }
            }
            Completion::Job(done) => {
                let JobDone {
                    held_core,
                    core,
                    finish,
                } = *done;
                if held_core {
                    self.core = core;
                    self.busy = false;
                    if std::mem::take(&mut self.stop_backup_pending) {
                        if let Some(c) = self.core.as_mut() {
                            c.backup_stop();
                        }
                    }
                }
                finish(self);
                if self.core.is_some() {
                    for (ticket, res, r) in std::mem::take(&mut self.parked_reads) {
                        self.read_finished(ticket, res, r);
                    }
                    for later in std::mem::take(&mut self.parked) {
                        later(self);
                    }
                }
                self.maybe_run_pending_term();
                self.run_deferred();
            }
        }
    }

    /// Runs a term that waited for the job or the reads in flight, once none is left.
    pub fn maybe_run_pending_term(&mut self) {
        if self.busy || self.reads_in_flight > 0 || self.lifecycle == Lifecycle::Terminated {
            return;
        }
        if let Some((grbit, r)) = self.pending_term.take() {
            self.term_now(grbit, r);
        }
    }

    /// Lends the core (if `with_core`) to a blocking job; `Finish` runs on the actor after.
    /// The job runs in the span current when it is started (the instance's, or a backup's),
    /// so its events stay the instance's.
    pub fn job<F>(&mut self, with_core: bool, f: F)
    where
        F: FnOnce(Option<Core>) -> (Option<Core>, Finish) + Send + 'static,
    {
        let core = if with_core { self.core.take() } else { None };
        self.busy |= with_core;
        let tx = self.completions.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let (core, finish) = span.in_scope(|| f(core));
            let done = JobDone {
                held_core: with_core,
                core,
                finish,
            };
            let _ = tx.send(Completion::Job(Box::new(done)));
        });
    }

    /// Runs a read without the core on the blocking pool; `Finish` runs on the actor after.
    pub fn read_job(&mut self, f: impl FnOnce() -> Finish + Send + 'static) {
        self.job(false, move |_| (None, f()));
    }

    /// Runs a core call that touches disk as a job holding the core, and answers with its
    /// result.
    pub fn core_job<T: Send + 'static>(
        &mut self,
        r: Reply<T>,
        f: impl FnOnce(&mut Core) -> Result<T> + Send + 'static,
    ) {
        self.job(true, move |mut core| {
            let res = core.as_mut().map_or(Err(Error::NotInitialized), f);
            let finish: Finish = Box::new(move |_| {
                let _ = r.send(res);
            });
            (core, finish)
        });
    }

    /// The callback the core's I/O threads call: one wake-up in flight at a time.
    pub fn notifier(&self) -> ese::internals::log::Notify {
        let tx = self.completions.clone();
        let pending = self.wake_pending.clone();
        Arc::new(move || {
            if !pending.swap(true, Ordering::AcqRel) {
                let _ = tx.send(Completion::Wake);
            }
        })
    }

    /// Runs `w` once `lsn` is durable: the log writer answers it right after its fsync, so a
    /// durable commit's reply does not wait for this task to be scheduled.
    pub fn when_durable(&self, lsn: Lsn, w: ese::internals::log::Waiter) {
        match &self.log_shared {
            Some(shared) => shared.when_durable(lsn, w),
            None => w(Err(Error::NotInitialized)),
        }
    }
}
