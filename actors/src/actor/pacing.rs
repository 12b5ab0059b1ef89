//! The actor's side of backup pacing (`ese::BackupPace`; the decisions are the core's
//! `Governor`).
//!
//! A durable commit is timed where its caller waits for it: from the host API call sending it
//! (`Transaction::commit`, a session's put or delete outside a transaction, and in
//! `Instance::ask` a durable `CommitTransaction` or `ApplyBatch`: so `Instance::write` and the
//! same sent raw, as the actix adapter does) to the answer reaching the caller's task, so the time it spends in the mailbox and waiting for a
//! worker counts too. Timed from the actor's taking it to the log writer's answer, an HTTP
//! backup's share of the runtime's workers went unseen: the writers' p99 over whole seconds
//! ran 1.10x–1.40x of a quiet one's in the remote bench, against 1.14x once timed at the
//! caller.
//!
//! A backup read the governor holds is sent to the blocking pool at once and waits there,
//! never on the actor, until its time; until the backup's state may have changed (stop, end,
//! close, term, `stop_service`, the actor's end: those wake every held read, so a race
//! resolves as it would without pacing and no refusal of theirs waits for a pacing delay); or
//! until the commits went idle (a held read looks again every window: with its client
//! waiting on it, nothing else would tell the governor).

use std::sync::Arc;
use std::time::Instant;

use ese::internals::backup::pace::{CommitLatencies, Governor, WINDOW};
use ese::internals::backup::ReadPlan;
use ese::BackupPace;
use parking_lot::{Condvar, Mutex};

use super::Actor;

/// Pacing's state, shared by the actor and its held reads.
pub(crate) struct Pacing {
    /// The instance's pace, as its parameters gave it.
    pace: BackupPace,
    governor: Mutex<Governor>,
    /// Whether the pace yields at all (`BackupPace::Full` does not): then commits are timed.
    on: bool,
    latencies: CommitLatencies,
    /// A generation that every wake-up of the held reads moves on.
    generation: Mutex<u64>,
    moved: Condvar,
}

/// A held read: when it may start, and the wake-up generation it was held in.
pub(crate) struct Hold {
    until: Instant,
    generation: u64,
    pacing: Arc<Pacing>,
}

impl Hold {
    /// Waits, on the blocking pool, until the read's time, a wake-up, or idle commits.
    pub fn wait(self) {
        let p = &self.pacing;
        loop {
            let now = Instant::now();
            if now >= self.until {
                return;
            }
            let mut g = p.generation.lock();
            if *g == self.generation {
                p.moved.wait_until(&mut g, self.until.min(now + WINDOW));
            }
            if *g != self.generation {
                return;
            }
            drop(g);
            if p.unlimited(Instant::now()) {
                return;
            }
        }
    }
}

/// A durable commit on its way: recorded when its caller has the answer.
pub(crate) struct CommitTimer {
    sent: Instant,
    pacing: Arc<Pacing>,
}

impl CommitTimer {
    /// The commit was answered with success: counts its latency.
    pub fn answered(self) {
        self.pacing.latencies.record(self.sent.elapsed());
    }
}

impl Pacing {
    /// Times a durable commit about to be sent (`None` when the backup runs at full pace).
    pub fn time_commit(self: &Arc<Self>) -> Option<CommitTimer> {
        self.on.then(|| CommitTimer {
            sent: Instant::now(),
            pacing: self.clone(),
        })
    }

    pub fn new(pace: BackupPace) -> Arc<Pacing> {
        let governor = Governor::new(pace, Instant::now());
        Arc::new(Pacing {
            pace,
            on: governor.is_on(),
            governor: Mutex::new(governor),
            latencies: CommitLatencies::default(),
            generation: Mutex::new(0),
            moved: Condvar::new(),
        })
    }

    /// The instance's pace.
    pub fn pace(&self) -> BackupPace {
        self.pace
    }

    /// Closes the governor's window if it is over; answers whether reads now go unlimited.
    fn unlimited(&self, now: Instant) -> bool {
        let mut governor = self.governor.lock();
        governor.tick(now, &self.latencies);
        governor.limit().is_none()
    }
}

/// The bytes of a planned read the governor paces: a database image's only. A backup copies
/// the logs written until its log phase began, so holding their reads would only let the log
/// grow while they wait, by as much as the commits write: `ese demo`'s four writers wrote
/// about 33 MB of log a second, and with logs held too its full backup took 35 s for 166 MB.
fn paced_bytes(plan: &ReadPlan) -> Option<u64> {
    match plan {
        ReadPlan::Db { len, .. } => Some(*len as u64),
        ReadPlan::Log { .. } | ReadPlan::Eof => None,
    }
}

impl Actor {
    /// A durable commit is being queued: the governor's window may be over (commits are
    /// recorded by their callers, which cannot close it without a lock on every commit).
    pub(super) fn tick_on_commit(&mut self) {
        if self.pacing.on {
            self.pacing
                .governor
                .lock()
                .tick(Instant::now(), &self.pacing.latencies);
        }
    }

    /// Admits a planned backup read: `None` to read now, or the hold to wait out first.
    /// Only database images are paced.
    pub(super) fn pace_read(&mut self, plan: &ReadPlan) -> Option<Hold> {
        let bytes = paced_bytes(plan).filter(|_| self.pacing.on)?;
        let p = &self.pacing;
        let now = Instant::now();
        let until = {
            let mut governor = p.governor.lock();
            governor.tick(now, &p.latencies);
            governor.admit(bytes, now)?
        };
        Some(Hold {
            until,
            generation: *p.generation.lock(),
            pacing: p.clone(),
        })
    }

    /// Whether the governor holds reads to a rate now (then nothing is read ahead).
    pub(super) fn pace_limited(&self) -> bool {
        self.pacing.on && self.pacing.governor.lock().limit().is_some()
    }

    /// The backup's state may change: every held read goes now.
    pub(super) fn wake_held_reads(&mut self) {
        let mut g = self.pacing.generation.lock();
        *g += 1;
        self.pacing.moved.notify_all();
    }
}
