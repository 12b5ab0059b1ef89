//! Read-ahead of a database copy: when a chunk of a database image has been handed out, the
//! next chunk of the same size is read and verified on the blocking pool while the client
//! takes the current one, so reading, verifying and the client's own work overlap on two
//! cores instead of taking turns. A read-ahead is only a guess: it is handed out when the
//! next `read_file` plans exactly that chunk (same backup, file, position and size), through
//! the same settling as any read; anything else drops it. It changes no backup state until
//! then, so `stop_backup`, `stop_service`, a close or an end decide as they would without it.
//!
//! It only runs while the backup is alone: when anything was logged since the client asked
//! for the chunk just handed out (a commit of any form: a transaction, a single put or
//! delete, a batch), there is no read-ahead, so a backup beside writers takes
//! one core as before instead of two (measured: with the read-ahead beside 63 committers the
//! fan-out of `stop_service`'s refusals took 2.0x a chunk read instead of 0.9x).

use ese::internals::backup::stream::{self, Streamed};
use ese::internals::backup::{ReadPlan, ReadTicket};
use ese::Result;

use super::backup::ReadReply;
use super::{Actor, Finish};

/// One chunk read ahead.
pub(crate) struct Prefetch {
    ticket: ReadTicket,
    /// The read's plan: read again as an ordinary read if the read-ahead fails.
    plan: ReadPlan,
    state: Ahead,
}

enum Ahead {
    /// On disk; the reply of the `read_file` that asked for it meanwhile.
    Reading(Option<ReadReply>),
    /// Read (or failed).
    Done(Result<Streamed>),
}

impl Prefetch {
    /// Whether a `read_file` waits for it: then it is settled when it comes back, never
    /// dropped.
    fn awaited(&self) -> bool {
        matches!(self.state, Ahead::Reading(Some(_)))
    }
}

/// Where a planned database read starts and how long it is.
fn chunk_of(plan: &ReadPlan) -> Option<(u64, usize)> {
    match plan {
        ReadPlan::Db { pos, len, .. } => Some((*pos, *len)),
        _ => None,
    }
}

impl Actor {
    /// Serves a planned read from the read-ahead if it is that chunk: `None` when it was,
    /// else the reply back for an ordinary read. A failed read-ahead is not handed out: the
    /// chunk is read again (a read that raced a page write may pass the second time).
    pub(super) fn take_prefetch(
        &mut self,
        ticket: ReadTicket,
        plan: &ReadPlan,
        r: ReadReply,
    ) -> Option<ReadReply> {
        let same = |p: &Prefetch| p.ticket == ticket && chunk_of(&p.plan) == chunk_of(plan);
        match self.prefetch.take() {
            Some(p) if same(&p) => match p.state {
                Ahead::Done(res @ Ok(_)) => {
                    self.reads_in_flight += 1;
                    self.read_finished(ticket, res, r);
                    None
                }
                Ahead::Done(Err(_)) => Some(r),
                Ahead::Reading(_) => {
                    self.prefetch = Some(Prefetch {
                        state: Ahead::Reading(Some(r)),
                        ..p
                    });
                    None
                }
            },
            other => {
                // Another chunk: dropped, unless a read waits for it.
                self.prefetch = other.filter(Prefetch::awaited);
                Some(r)
            }
        }
    }

    /// After a database chunk was handed out: reads the next one of `len` bytes ahead.
    pub(super) fn start_prefetch(&mut self, ticket: ReadTicket, len: usize) {
        if self.prefetch.as_ref().is_some_and(Prefetch::awaited) {
            return;
        }
        let Some(core) = self.core.as_ref() else {
            return;
        };
        if core.log().appended() != self.log_at_read || self.pace_limited() {
            return;
        }
        let Some((ticket, plan)) = core
            .backup_plan_ahead(ticket.handle, len)
            .filter(|(t, _)| *t == ticket)
        else {
            return;
        };
        let span = core.backup_span();
        let sig = core.log().signature();
        let log = core.log().shared().clone();
        let storage = self.storage.clone();
        let job_plan = plan.clone();
        self.prefetch = Some(Prefetch {
            ticket,
            plan,
            state: Ahead::Reading(None),
        });
        self.reads_in_flight += 1;
        self.read_job(move || {
            // A read-ahead never reaches the trailer, the one reader of the durable position.
            let durable = || log.durable();
            let res = span.in_scope(|| stream::execute(&*storage, &job_plan, sig, &durable));
            let chunk = chunk_of(&job_plan);
            let finish: Finish = Box::new(move |a: &mut Actor| a.prefetch_done(ticket, chunk, res));
            finish
        });
    }

    /// A read-ahead came back: to the `read_file` waiting for it, or kept for the next one.
    fn prefetch_done(
        &mut self,
        ticket: ReadTicket,
        chunk: Option<(u64, usize)>,
        res: Result<Streamed>,
    ) {
        self.reads_in_flight -= 1;
        let mine = |p: &Prefetch| p.ticket == ticket && chunk_of(&p.plan) == chunk;
        match self.prefetch.take() {
            Some(mut p) if mine(&p) => {
                match std::mem::replace(&mut p.state, Ahead::Reading(None)) {
                    Ahead::Reading(Some(r)) if res.is_ok() => {
                        // Counted again: `read_finished` settles it like any read in flight.
                        self.reads_in_flight += 1;
                        self.read_finished(ticket, res, r);
                    }
                    Ahead::Reading(Some(r)) => self.read_chunk(ticket, p.plan, r, None),
                    _ => {
                        p.state = Ahead::Done(res);
                        self.prefetch = Some(p);
                    }
                }
            }
            other => self.prefetch = other,
        }
        self.maybe_run_pending_term();
    }

    /// Drops the read-ahead when its file or backup ends, unless a read waits for it.
    pub(super) fn drop_prefetch(&mut self) {
        self.prefetch = self.prefetch.take().filter(Prefetch::awaited);
    }
}
