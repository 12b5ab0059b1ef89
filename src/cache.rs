//! Layer 3: the buffer cache. Pages changed by commits stay here, dirty, until the flusher
//! writes them; clean pages are evicted by a clock sweep when the cache is over capacity.
//! The write-ahead rule starts here: a flush takes every dirty page with the log position
//! its changes end at (`wal_lsn`), and the flusher writes none of them before the log is
//! durable that far.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::lsn::Lsn;

/// Frames the clock hand looks at, at most, per page added (four times as many when over by
/// more): bounded, so an install never sweeps the whole cache. The price: while the hand
/// clears use bits the cache may hold about 1/32 more pages than its capacity.
const EVICT_STEP: usize = 32;

/// (database id, page number).
pub type PageKey = (u32, u32);

#[derive(Debug)]
pub(crate) struct Frame {
    pub data: Vec<u8>,
    pub dirty: bool,
    /// Where redo must start to rebuild this page's unflushed changes.
    pub rec_lsn: Lsn,
    /// End of the commit that last changed the page.
    pub wal_lsn: Lsn,
    /// A copy is being written by the flusher.
    pub in_flight: bool,
    /// End of the last log record that carried this page's full image (0: none since it was
    /// read): a change may be logged as a delta only while this is at or past the horizon.
    pub imaged_at: Lsn,
    hot: bool,
}

/// What a flush takes from the cache.
#[derive(Debug)]
pub(crate) struct Taken {
    /// Copies of the dirty pages, by key.
    pub pages: Vec<(PageKey, Vec<u8>)>,
    /// Where their changes end: none may be written before the log is durable this far.
    pub wal_lsn: Lsn,
    /// The lowest `rec_lsn` among dirty pages left behind (changed again while a copy of
    /// theirs was being written).
    pub left_min: Option<Lsn>,
}

#[derive(Debug)]
pub(crate) struct Cache {
    /// By page: Fx hashing, as SipHash was a tenth of a cached `get`.
    frames: FxHashMap<PageKey, Frame>,
    clock: VecDeque<PageKey>,
    capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            frames: FxHashMap::default(),
            clock: VecDeque::new(),
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    pub fn get(&mut self, key: PageKey) -> Option<&[u8]> {
        match self.frames.get_mut(&key) {
            Some(f) => {
                f.hot = true;
                self.hits += 1;
                Some(&f.data)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Adds a page just read from disk.
    pub fn insert_clean(&mut self, key: PageKey, data: Vec<u8>) {
        if self.frames.contains_key(&key) {
            return;
        }
        self.frames.insert(
            key,
            Frame {
                data,
                dirty: false,
                rec_lsn: Lsn(0),
                wal_lsn: Lsn(0),
                in_flight: false,
                imaged_at: Lsn(0),
                hot: true,
            },
        );
        self.clock.push_back(key);
        self.evict();
    }

    /// The cached bytes of a page and when its full image was last logged, without marking
    /// it used.
    pub fn peek(&self, key: PageKey) -> Option<(&[u8], Lsn)> {
        self.frames
            .get(&key)
            .map(|f| (f.data.as_slice(), f.imaged_at))
    }

    /// Installs a page changed by a commit whose records start at `rec_lsn` and end at
    /// `wal_lsn`; `imaged` is where its full image was logged, if this change logged one.
    pub fn install(
        &mut self,
        key: PageKey,
        data: Vec<u8>,
        rec_lsn: Lsn,
        wal_lsn: Lsn,
        imaged: Option<Lsn>,
    ) {
        match self.frames.get_mut(&key) {
            Some(f) => {
                if !f.dirty {
                    f.rec_lsn = rec_lsn;
                }
                if let Some(at) = imaged {
                    f.imaged_at = at;
                }
                f.data = data;
                f.dirty = true;
                f.wal_lsn = wal_lsn;
                f.hot = true;
            }
            None => {
                self.frames.insert(
                    key,
                    Frame {
                        data,
                        dirty: true,
                        rec_lsn,
                        wal_lsn,
                        in_flight: false,
                        imaged_at: imaged.unwrap_or(Lsn(0)),
                        hot: true,
                    },
                );
                self.clock.push_back(key);
            }
        }
        self.evict();
    }

    /// Evicts clean, idle pages while over capacity. Dirty pages stay: the flusher is asked
    /// to catch up instead (`over_dirty`).
    fn evict(&mut self) {
        let excess = self.frames.len().saturating_sub(self.capacity);
        if excess == 0 {
            return;
        }
        // A bounded step of the clock per call, not a sweep of the whole cache: when a load
        // larger than the cache keeps most pages dirty, little can go, and sweeping every
        // frame on every install made each commit cost the size of the cache (15% of a bulk
        // load's time once the table outgrew it). Every page added calls this, so the hand
        // moves [`EVICT_STEP`] frames per page added and goes on from here next call.
        let mut budget = (excess + EVICT_STEP)
            .min(self.clock.len() * 2)
            .min(EVICT_STEP * 4);
        while self.frames.len() > self.capacity && budget > 0 {
            budget -= 1;
            let Some(key) = self.clock.pop_front() else {
                break;
            };
            let Some(f) = self.frames.get_mut(&key) else {
                continue;
            };
            if f.hot || f.dirty || f.in_flight {
                f.hot = false;
                self.clock.push_back(key);
                continue;
            }
            self.frames.remove(&key);
        }
    }

    pub fn dirty_count(&self) -> usize {
        self.frames.values().filter(|f| f.dirty).count()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Every dirty page not already being written, whether or not its last change is durable
    /// yet: copies to write, marked in flight and clean. Leaving behind the pages whose last
    /// change was not durable left the pages every commit changes (the rightmost leaf, a
    /// root) behind at every flush, and their first change held the checkpoint in place.
    pub fn take_dirty(&mut self) -> Taken {
        let mut taken = Taken {
            pages: Vec::new(),
            wal_lsn: Lsn(0),
            left_min: None,
        };
        for (k, f) in self.frames.iter_mut() {
            if !f.dirty {
                continue;
            }
            if f.in_flight {
                let m = taken.left_min.map_or(f.rec_lsn, |m| m.min(f.rec_lsn));
                taken.left_min = Some(m);
            } else {
                f.dirty = false;
                f.in_flight = true;
                taken.wal_lsn = taken.wal_lsn.max(f.wal_lsn);
                taken.pages.push((*k, f.data.clone()));
            }
        }
        taken.pages.sort_by_key(|(k, _)| *k);
        taken
    }

    /// The flusher wrote these pages.
    pub fn flushed(&mut self, keys: &[PageKey]) {
        for k in keys {
            if let Some(f) = self.frames.get_mut(k) {
                f.in_flight = false;
            }
        }
        self.evict();
    }

    /// The flusher failed: the pages are dirty again.
    pub fn flush_failed(&mut self, keys: &[PageKey]) {
        for k in keys {
            if let Some(f) = self.frames.get_mut(k) {
                f.in_flight = false;
                f.dirty = true;
            }
        }
    }

    /// Drops a page whatever its state (tests: a page evicted at a chosen moment).
    #[cfg(test)]
    pub fn forget(&mut self, key: PageKey) {
        self.frames.remove(&key);
        self.clock.retain(|k| *k != key);
    }

    /// Drops every page of a database (detach).
    pub fn remove_db(&mut self, dbid: u32) {
        self.frames.retain(|k, _| k.0 != dbid);
        self.clock.retain(|k| k.0 != dbid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_pages_wait_for_the_log_and_are_not_evicted() {
        let mut c = Cache::new(2);
        c.install((1, 1), vec![1], Lsn(10), Lsn(20), None);
        c.install((1, 2), vec![2], Lsn(30), Lsn(40), None);
        c.insert_clean((1, 3), vec![3]);
        c.insert_clean((1, 4), vec![4]);
        assert!(c.get((1, 1)).is_some() && c.get((1, 2)).is_some());
        let taken = c.take_dirty();
        assert_eq!(taken.pages.len(), 2);
        assert_eq!(taken.wal_lsn, Lsn(40), "the log must be durable past both");
        assert_eq!(taken.left_min, None);
        // Changed again while its copy is written: left, and it holds the checkpoint.
        c.install((1, 2), vec![5], Lsn(50), Lsn(60), None);
        let again = c.take_dirty();
        assert!(again.pages.is_empty());
        assert_eq!(again.left_min, Some(Lsn(50)));
        c.flushed(&[(1, 1), (1, 2)]);
        assert_eq!(c.dirty_count(), 1);
        assert_eq!(c.take_dirty().pages.len(), 1);
    }

    #[test]
    fn a_cache_held_over_by_dirty_pages_comes_back_in_bounded_steps() {
        let mut c = Cache::new(100);
        for p in 0..1000 {
            c.install((1, p), vec![0], Lsn(1), Lsn(2), None);
        }
        assert_eq!(c.len(), 1000, "dirty pages are never evicted");
        let taken = c.take_dirty();
        let keys: Vec<PageKey> = taken.pages.iter().map(|(k, _)| *k).collect();
        c.flushed(&keys);
        // Each page added moves the hand a bounded step, and the cache shrinks as it goes: to
        // its capacity, give or take the pages added while the hand clears use bits (a step
        // of 32 frames per page added: about 1/32 of the capacity).
        let slack = 100 / EVICT_STEP + 2;
        let mut last = c.len();
        for p in 1000..2000 {
            c.insert_clean((1, p), vec![0]);
            assert!(
                c.len() <= last.max(100 + slack),
                "page {p}: {} > {last}",
                c.len()
            );
            last = c.len();
        }
        assert!(c.len() <= 100 + slack, "back within capacity: {}", c.len());
    }
}
