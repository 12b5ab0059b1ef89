//! How far an open database file is known to reach, and what it lost: shared by every clone
//! of a [`DbFile`](super::DbFile), since the flusher writes through one and sessions and
//! backups read through others.
//!
//! An attached database file never shrinks by the engine's doing, so bytes below the end of
//! what this process saw or wrote that the file no longer holds were lost behind its back (a
//! file cut short, say). Such pages must not pass for pages never written, which read as
//! zeros and verify: a backup would carry zeros where data was. A cut is found when a read
//! meets the file's end below what was written, or when the flusher, before writing, finds
//! the file shorter; the bytes between are remembered as lost, so a page there that reads
//! as zeros after a later write re-extended the file over a hole is still known for lost.
//! What is remembered lives as long as the open file: a restart forgets it.

use std::sync::atomic::{AtomicU64, Ordering};

/// See the module docs. Offsets in bytes.
#[derive(Debug)]
pub struct Reach {
    /// The file's length when opened, then the end of every page written.
    written_end: AtomicU64,
    /// Lost bytes are within `[lost_from, lost_to)`; empty (`MAX`, 0) until a cut is found.
    lost_from: AtomicU64,
    lost_to: AtomicU64,
}

impl Reach {
    /// A file opened at `len` bytes.
    pub fn new(len: u64) -> Reach {
        Reach {
            written_end: AtomicU64::new(len),
            lost_from: AtomicU64::new(u64::MAX),
            lost_to: AtomicU64::new(0),
        }
    }

    /// How far the file is known to reach. A reader takes it before reading: every write it
    /// counts finished before the read began, so the read sees that write's bytes.
    pub fn reached(&self) -> u64 {
        self.written_end.load(Ordering::SeqCst)
    }

    /// A write that ended at `end` finished.
    pub fn wrote(&self, end: u64) {
        self.written_end.fetch_max(end, Ordering::SeqCst);
    }

    /// The file was found ending at `len` while it had reached `reached`: bytes between are
    /// lost. Answers whether this is the first cut found (to be reported once).
    pub fn cut_found(&self, len: u64, reached: u64) -> bool {
        if len >= reached {
            return false;
        }
        let first = self.lost_from.fetch_min(len, Ordering::SeqCst) == u64::MAX;
        self.lost_to.fetch_max(reached, Ordering::SeqCst);
        first
    }

    /// Whether any of `[at, at + len)` was lost.
    pub fn is_lost(&self, at: u64, len: u64) -> bool {
        let from = self.lost_from.load(Ordering::SeqCst);
        let to = self.lost_to.load(Ordering::SeqCst);
        at < to && at.saturating_add(len) > from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_lost_until_a_cut_is_found() {
        let r = Reach::new(100);
        assert!(!r.is_lost(0, u64::MAX));
        r.wrote(300);
        r.wrote(200);
        assert_eq!(r.reached(), 300);
        assert!(
            !r.cut_found(300, 300),
            "a file as long as written lost nothing"
        );
        assert!(!r.is_lost(0, 1000));
    }

    #[test]
    fn a_cut_marks_the_bytes_between_lost_for_good() {
        let r = Reach::new(1000);
        assert!(r.cut_found(400, 1000));
        assert!(r.is_lost(400, 10));
        assert!(r.is_lost(300, 101), "a range reaching into the loss");
        assert!(!r.is_lost(300, 100));
        assert!(!r.is_lost(1000, 10));
        // A later write re-extends the file; what was lost stays lost.
        r.wrote(2000);
        assert!(r.is_lost(500, 10));
        assert!(!r.cut_found(1500, 1000), "not past what was reached then");
        assert!(
            !r.cut_found(300, 2000),
            "a second cut widens the loss but is not the first"
        );
        assert!(r.is_lost(300, 10));
        assert!(r.is_lost(1999, 1));
    }
}
