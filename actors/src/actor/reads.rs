//! Reads off the actor. A read — `get`, the existence check of `delete`, one slice of a
//! scan — is served from memory only. When it misses, its fetch runs on the blocking pool
//! without the core (like a backup read), and the fetch's completion takes the pages in and
//! serves the same read again; it may miss again deeper in the tree, and loops. Meanwhile the
//! actor serves everything else: commits, `stop_service`, backups.
//!
//! A read being re-served skips the gate: it was being served when a `stop_service` came, so
//! it completes normally (behaviour.md §1.2). `term` waits for fetches in flight as it waits for
//! backup reads (`reads_in_flight`).

use std::ops::Bound;

use bytes::Bytes;
use ese::{Direction, Error, Fetch, FetchDone, Fetched, Read, SessionId, Slice, TableId};

use super::{Actor, Finish};
use crate::messages::{Delete, Get, Reply, Scan};
use crate::types::{ScanCursor, ScanSlice};

/// What a scan reads: the range left and whose view it takes.
#[derive(Clone, Debug)]
pub(crate) struct ScanSpec {
    pub session: SessionId,
    pub table: TableId,
    pub lo: Bound<Vec<u8>>,
    pub hi: Bound<Vec<u8>>,
    pub direction: Direction,
}

impl From<&Scan> for ScanSpec {
    fn from(m: &Scan) -> ScanSpec {
        ScanSpec {
            session: m.session.0,
            table: m.table,
            lo: m.lo.clone(),
            hi: m.hi.clone(),
            direction: match m.reverse {
                true => Direction::Reverse,
                false => Direction::Forward,
            },
        }
    }
}

/// A read the actor is serving, kept across its fetches.
pub(crate) enum ReadCmd {
    Get(Get, Reply<Option<Bytes>>),
    /// A delete, with the id of the transaction it was issued in (for one sent by a
    /// transaction: `in_transaction`), taken when it was first served.
    Delete(Delete, Option<u64>, Reply<()>),
    /// One slice of a scan; `cursor` is `None` for its first slice.
    Slice {
        spec: ScanSpec,
        cursor: Option<u64>,
        max_rows: usize,
        reply: Reply<ScanSlice>,
    },
}

impl ReadCmd {
    fn fail(self, e: Error) {
        match self {
            ReadCmd::Get(_, r) => drop(r.send(Err(e))),
            ReadCmd::Delete(_, _, r) => drop(r.send(Err(e))),
            ReadCmd::Slice { reply, .. } => drop(reply.send(Err(e))),
        }
    }
}

impl Actor {
    /// `get`: from memory, or once its pages are fetched.
    pub(super) fn on_get(&mut self, m: Get, r: Reply<Option<Bytes>>) {
        self.serve_read(ReadCmd::Get(m, r), Fetched::default());
    }

    /// `delete`: its existence check is a read; the delete itself is a write.
    pub(super) fn on_delete(&mut self, m: Delete, r: Reply<()>) {
        let txn = self.core_mut().transaction_id(m.session.0);
        self.serve_read(ReadCmd::Delete(m, txn, r), Fetched::default());
    }

    /// The first slice of a scan.
    pub(super) fn on_scan(&mut self, m: Scan, r: Reply<ScanSlice>) {
        let cmd = ReadCmd::Slice {
            spec: ScanSpec::from(&m),
            cursor: None,
            max_rows: m.max_rows,
            reply: r,
        };
        self.serve_read(cmd, Fetched::default());
    }

    /// The next slice of an open scan (the gate checked that the cursor is open).
    pub(super) fn on_scan_next(
        &mut self,
        cursor: ScanCursor,
        max_rows: usize,
        r: Reply<ScanSlice>,
    ) {
        let Some(spec) = self.scans.get(&cursor.0).cloned() else {
            let _ = r.send(Err(Error::InvalidTableId));
            return;
        };
        let cmd = ReadCmd::Slice {
            spec,
            cursor: Some(cursor.0),
            max_rows,
            reply: r,
        };
        self.serve_read(cmd, Fetched::default());
    }

    /// Closes a scan its caller stopped reading (the gate checked that the cursor is open).
    pub(super) fn on_close_scan(&mut self, cursor: ScanCursor, r: Reply<()>) {
        self.close_cursor(Some(cursor.0));
        let _ = r.send(Ok(()));
    }

    /// Serves a read from memory, or sends its fetch to disk.
    fn serve_read(&mut self, cmd: ReadCmd, mut fetched: Fetched) {
        match self.try_read(cmd, &mut fetched) {
            None => self.core_mut().end_read(fetched),
            Some((cmd, fetch)) => self.start_fetch(cmd, fetched, fetch),
        }
    }

    /// Tries the read once: answers it, or gives it back with the fetch it needs.
    fn try_read(&mut self, cmd: ReadCmd, fetched: &mut Fetched) -> Option<(ReadCmd, Fetch)> {
        let core = self.core_mut();
        match cmd {
            ReadCmd::Get(m, r) => match core.try_get(m.session.0, m.table, &m.key, fetched) {
                Ok(Read::Miss(f)) => return Some((ReadCmd::Get(m, r), f)),
                Ok(Read::Done(v)) => drop(r.send(Ok(v.map(Bytes::from)))),
                Err(e) => drop(r.send(Err(e))),
            },
            // Checked on every try, as the transaction may have been rolled back while the
            // delete's pages were fetched: the delete must not then commit on its own, nor
            // join a transaction the session began since.
            ReadCmd::Delete(m, txn, r)
                if m.in_transaction
                    && (txn.is_none() || core.transaction_id(m.session.0) != txn) =>
            {
                drop(r.send(Err(Error::NotInTransaction)))
            }
            ReadCmd::Delete(m, txn, r) => {
                match core.try_delete(m.session.0, m.table, &m.key, fetched) {
                    Ok(Read::Miss(f)) => return Some((ReadCmd::Delete(m, txn, r), f)),
                    Ok(Read::Done(t)) => self.answer_after(Ok(t), r),
                    Err(e) => drop(r.send(Err(e))),
                }
            }
            ReadCmd::Slice {
                spec,
                cursor,
                max_rows,
                reply,
            } => {
                let lo = as_ref(&spec.lo);
                let hi = as_ref(&spec.hi);
                let s = spec.session;
                match core.try_scan(s, spec.table, lo, hi, max_rows, spec.direction, fetched) {
                    Ok(Read::Miss(f)) => {
                        let cmd = ReadCmd::Slice {
                            spec,
                            cursor,
                            max_rows,
                            reply,
                        };
                        return Some((cmd, f));
                    }
                    Ok(Read::Done(slice)) => self.slice_done(spec, cursor, slice, reply),
                    Err(e) => {
                        self.close_cursor(cursor);
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
        None
    }

    /// Answers a slice; a scan that goes on keeps (or gets) a cursor resuming after its last
    /// key, a finished one loses it.
    fn slice_done(
        &mut self,
        spec: ScanSpec,
        cursor: Option<u64>,
        slice: Slice,
        reply: Reply<ScanSlice>,
    ) {
        let next = match slice.resume {
            // A caller that stopped waiting will not ask for the rest.
            Some(last) if !reply.is_closed() => self.keep_cursor(spec, cursor, last),
            _ => {
                self.close_cursor(cursor);
                None
            }
        };
        let rows = slice
            .rows
            .into_iter()
            .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
            .collect();
        let _ = reply.send(Ok(ScanSlice { rows, next }));
    }

    /// The cursor of a scan's next slice, resuming past `last` in the scan's direction. A cursor closed while its
    /// slice was being fetched stays closed (its caller stopped reading).
    fn keep_cursor(
        &mut self,
        mut spec: ScanSpec,
        cursor: Option<u64>,
        last: Vec<u8>,
    ) -> Option<ScanCursor> {
        let id = match cursor {
            Some(c) if self.scans.contains_key(&c) => c,
            Some(_) => return None,
            None => {
                self.next_scan += 1;
                self.next_scan
            }
        };
        match spec.direction {
            Direction::Forward => spec.lo = Bound::Excluded(last),
            Direction::Reverse => spec.hi = Bound::Excluded(last),
        }
        self.scans.insert(id, spec);
        Some(ScanCursor(id))
    }

    fn close_cursor(&mut self, cursor: Option<u64>) {
        if let Some(c) = cursor {
            self.scans.remove(&c);
        }
    }

    /// Runs a read's fetch on the blocking pool, without the core.
    fn start_fetch(&mut self, cmd: ReadCmd, fetched: Fetched, fetch: Fetch) {
        self.reads_in_flight += 1;
        self.job(false, move |_| {
            let done = fetch.run();
            let finish: Finish = Box::new(move |a: &mut Actor| a.fetch_done(cmd, fetched, done));
            (None, finish)
        });
    }

    /// A fetch is back: its pages go in and the read is served again.
    fn fetch_done(&mut self, cmd: ReadCmd, mut fetched: Fetched, done: FetchDone) {
        let Some(core) = self.core.as_mut() else {
            if self.busy {
                // A job holds the core: settle when it comes back.
                let later: Finish = Box::new(move |a: &mut Actor| a.fetch_done(cmd, fetched, done));
                self.parked.push(later);
            } else {
                // Unreachable while term waits for reads in flight; answered all the same.
                self.reads_in_flight -= 1;
                cmd.fail(Error::InvalidInstance);
            }
            return;
        };
        self.reads_in_flight -= 1;
        match core.fetched(done, &mut fetched) {
            Ok(()) => self.serve_read(cmd, fetched),
            Err(e) => {
                core.end_read(fetched);
                if let ReadCmd::Slice { cursor, .. } = &cmd {
                    let c = *cursor;
                    self.close_cursor(c);
                }
                cmd.fail(e);
            }
        }
        self.maybe_run_pending_term();
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
