//! The core's side of write-back: handing dirty pages to the flusher thread (`crate::flusher`),
//! taking in its completions and advancing the checkpoint; clean and dirty termination.

use std::collections::HashMap;

use super::Core;
use crate::db::{Signature, STATE_CLEAN};
use crate::flusher::{FlushDone, FlushJob};
use crate::log::checkpoint::{self, Checkpoint};
use crate::log::Record;
use crate::lsn::Lsn;
use crate::{Error, Result};

impl Core {
    /// Takes in what the I/O threads finished and starts more background work if due. Cheap;
    /// the actor calls it on every wake-up.
    pub fn pump(&mut self) {
        while let Ok(done) = self.flusher.done.try_recv() {
            self.flush_done(done);
        }
        self.maybe_flush();
    }

    fn flush_done(&mut self, done: FlushDone) {
        self.flush_in_flight = false;
        match done.result {
            Ok(()) => {
                self.cache.flushed(&done.keys);
                self.stats.flushes += 1;
                if let Some(c) = done.checkpoint {
                    self.log.set_checkpoint_gen(c.lsn.gen());
                    self.checkpoint = c;
                }
            }
            Err(e) => {
                self.stats.flushes_failed += 1;
                self.cache.flush_failed(&done.keys);
                self.after_failed_flush(e);
            }
        }
    }

    /// After a failed flush the instance is unavailable: the pages stay dirty in the cache
    /// and no flush starts again. Each would fail at once, and its completion wakes the actor,
    /// whose next pump would copy every dirty page for the next: a spin until term.
    fn after_failed_flush(&mut self, e: Error) {
        if let Some(log) = self.log.shared().poisoned() {
            // The log's error says why the instance stopped; the flush's own (its wait for
            // the log, or a database write) goes to the events.
            tracing::warn!(error = %e, "flush failed after the log failed");
            self.unavailable.get_or_insert(log);
            return;
        }
        tracing::error!(error = %e, "database write failed; the instance is unavailable");
        self.unavailable.get_or_insert(match e {
            Error::DiskFull(_) => Error::DiskFull(crate::error::IoError::new(
                std::io::Error::other("database volume full"),
            )),
            _ => Error::InstanceUnavailable,
        });
    }

    pub(crate) fn after_commit(&mut self) {
        self.pump();
    }

    /// Log bytes between two positions (files are fixed-size, so generations count whole).
    fn distance(&self, from: Lsn, to: Lsn) -> u64 {
        let size = self.params.log_bytes();
        (to.gen() as u64 * size + to.offset() as u64)
            .saturating_sub(from.gen() as u64 * size + from.offset() as u64)
    }

    fn maybe_flush(&mut self) {
        if self.flush_in_flight || self.unavailable.is_some() {
            return;
        }
        let due_by_log =
            self.distance(self.flush_started_at, self.log.tip()) > self.params.log_bytes() / 2;
        let due_by_cache = self.cache.len() > self.params.cache_pages;
        if due_by_log || due_by_cache {
            self.start_flush();
        }
    }

    /// Hands every dirty page to the flusher, with the checkpoint that becomes true once they
    /// are written; the flusher writes nothing before the log is durable past both.
    fn start_flush(&mut self) {
        let taken = self.cache.take_dirty();
        // The horizon rule. From here on, a page whose last full image is older than the tip
        // logs a full image at its next change. A checkpoint may only stand on such a horizon:
        // then every page's first change after the checkpoint is a full image, and a page torn
        // on disk is rebuilt from it before any delta applies.
        let horizon = self.log.tip();
        self.image_horizon = horizon;
        self.horizons.push_back(horizon);
        let candidate = taken.left_min.map_or(horizon, |m| m.min(horizon));
        let lsn = self
            .horizons
            .iter()
            .copied()
            .filter(|&h| h <= candidate)
            .max()
            .unwrap_or(self.checkpoint.lsn)
            .max(self.checkpoint.lsn);
        self.horizons.retain(|&h| h >= lsn);
        let checkpoint = Checkpoint {
            seq: self.checkpoint.seq + 1,
            log_signature: self.log.signature(),
            lsn,
            attached: self.entries(),
            owner_tokens: self.owner_tokens.clone(),
        };
        let files: HashMap<u32, _> = self
            .dbs
            .iter()
            .map(|(id, d)| (*id, d.file.clone()))
            .collect();
        let path = checkpoint::path(self.params.system_dir(), self.params.base());
        let log_first = taken.wal_lsn.max(lsn);
        if log_first > self.log.durable() {
            self.log.request_sync();
        }
        self.flush_in_flight = true;
        self.flush_started_at = self.log.tip();
        self.flusher.submit(FlushJob {
            pages: taken.pages,
            files,
            checkpoint: Some((path, checkpoint)),
            log: self.log.shared().clone(),
            log_first,
        });
    }

    /// A new owner token for database `db`, whose header on disk carries this instance's
    /// token `on_disk` (or 0), kept in memory: the next checkpoint carries it.
    pub(super) fn issue_owner_token(&mut self, db: Signature, on_disk: u64) -> u64 {
        let attached: Vec<Signature> = self.dbs.values().map(|d| d.header.db_signature).collect();
        self.owner_tokens
            .issue(db, on_disk, |s| attached.contains(s))
    }

    /// [`Core::issue_owner_token`], in the checkpoint file when this returns (the last
    /// checkpoint's position and attach list, the next sequence number, after any flush in
    /// flight), so that the header written next may carry it.
    pub(super) fn persist_owner_token(&mut self, db: Signature, on_disk: u64) -> Result<u64> {
        self.wait_flush()?;
        let token = self.issue_owner_token(db, on_disk);
        let c = Checkpoint {
            seq: self.checkpoint.seq + 1,
            owner_tokens: self.owner_tokens.clone(),
            ..self.checkpoint.clone()
        };
        let path = checkpoint::path(self.params.system_dir(), self.params.base());
        checkpoint::write(&*self.storage, &path, &c)?;
        self.checkpoint = c;
        Ok(token)
    }

    fn wait_flush(&mut self) -> Result<()> {
        if self.flush_in_flight {
            let done = self
                .flusher
                .done
                .recv()
                .map_err(|_| Error::InstanceUnavailable)?;
            self.flush_done(done);
        }
        self.check_available()
    }

    /// Blocks until every change is in the database files and the checkpoint is at the log's
    /// tip.
    pub fn flush_all(&mut self) -> Result<()> {
        self.wait_flush()?;
        let tip = self.log.tip();
        self.log.request_sync();
        self.log.wait_durable(tip)?;
        self.start_flush();
        self.wait_flush()?;
        if self.cache.dirty_count() > 0 {
            return Err(Error::InternalError);
        }
        Ok(())
    }

    /// Flushes everything and writes a checkpoint now (blocking).
    pub fn checkpoint_now(&mut self) -> Result<()> {
        self.check_available()?;
        self.flush_all()
    }

    /// Clean termination: log a shutdown, flush every page, checkpoint at the tip, mark every
    /// database clean, stop the I/O threads.
    pub fn term_clean(mut self) -> Result<()> {
        self.check_available()?;
        let at = self.log.append(&Record::Shutdown, true)?;
        self.log.wait_durable(at)?;
        // The tokens go into the checkpoint that flush writes, before any header holds them.
        let dbs: Vec<(u32, Signature, u64)> = self
            .dbs
            .iter()
            .map(|(id, d)| (*id, d.header.db_signature, d.header.owner_token))
            .collect();
        let tokens: Vec<(u32, u64)> = dbs
            .into_iter()
            .map(|(id, sig, on_disk)| (id, self.issue_owner_token(sig, on_disk)))
            .collect();
        self.flush_all()?;
        let tip = self.log.tip();
        for (id, token) in tokens {
            let d = &self.dbs[&id];
            let mut h = d.header.clone();
            h.state = STATE_CLEAN;
            h.owner_token = token;
            h.consistent_lsn = tip.0;
            h.gen_min_required = 0;
            h.gen_max_required = 0;
            d.file.write_header(&h)?;
        }
        let chk = Checkpoint {
            seq: self.checkpoint.seq + 1,
            log_signature: self.log.signature(),
            lsn: tip,
            attached: vec![],
            owner_tokens: self.owner_tokens.clone(),
        };
        checkpoint::write(
            &*self.storage,
            &checkpoint::path(self.params.system_dir(), self.params.base()),
            &chk,
        )?;
        self.flusher.stop();
        self.log.close()?;
        // The actor reports ESE's event 103 (instance stopped) once the term is done.
        tracing::info!("instance core closed cleanly");
        Ok(())
    }

    /// Dirty termination: stop without flushing the cache or marking anything clean (the
    /// next open recovers). Whatever the log writer already had is still written.
    pub fn term_dirty(mut self) {
        self.flusher.stop();
        self.log.abandon();
        tracing::info!("instance terminated dirty; the next init recovers");
    }
}
