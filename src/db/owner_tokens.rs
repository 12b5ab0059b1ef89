//! Owner tokens: which database headers this instance wrote last.
//!
//! A database's header names the log stream it belongs to, but two instances can continue one
//! stream (a copied instance directory, an instance started on a restore's logs). A database
//! moved between them would be taken for one that never left, and its pages, stamped with the
//! other instance's later positions, would hide this instance's changes from redo.
//!
//! So the header carries a random token, replaced by every attach, create, detach and clean
//! term, and the instance keeps the token in its checkpoint file *before* the header that
//! carries it is written. Two copies of an instance part at the first of these either makes,
//! whatever they did before. An attach takes a header as this instance's own only when its
//! stream matches and the instance holds its token; anything else is stamped as a database
//! from another stream.
//!
//! A header write may fail, or a crash interrupt it, after its token was kept: the header
//! then still carries the token it had. So beside each database's newest token the instance
//! holds the one its header carried when the newest was issued, and a crash or a failed write
//! never makes an own database look foreign. Soft recovery keeps each header's token as it
//! finds it: a file its log names may have been attached by another instance since.

use super::{DbHeader, Signature};

/// One database's tokens: the newest this instance issued, and the one its header carried
/// then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The database's signature.
    pub db: Signature,
    /// The newest token.
    pub token: u64,
    /// The token the database's header carried when the newest was issued, if it was this
    /// instance's (0: none). A header write that failed, or that a crash interrupted, leaves
    /// the header under this one, and the file as it was then.
    pub before: u64,
}

/// The owner tokens an instance wrote, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerTokens {
    entries: Vec<Held>,
}

impl OwnerTokens {
    /// How many databases an instance remembers; the oldest detached one is forgotten first.
    /// A database that comes back after more than this many others were written is stamped
    /// again, which costs one rewrite and its backup records (the next incremental is
    /// `MissingFullBackup`). It is also the most databases an instance attaches, so that an
    /// attached database's token is never forgotten. 128 entries take 4 KiB of the
    /// checkpoint's 32 KiB slot.
    pub const REMEMBERED: usize = 128;

    /// Tokens as stored, oldest first.
    pub fn from_entries(mut entries: Vec<Held>) -> OwnerTokens {
        if entries.len() > Self::REMEMBERED {
            entries.drain(..entries.len() - Self::REMEMBERED);
        }
        OwnerTokens { entries }
    }

    /// The stored entries, oldest first.
    pub fn entries(&self) -> &[Held] {
        &self.entries
    }

    /// A new token for the next header of database `db`, whose header on disk carries
    /// `on_disk` (0 when it is not this instance's), which stays held: the header write may
    /// fail, or a crash interrupt it, and leave the header as it was. When full, the oldest
    /// database `attached` does not name is forgotten. Never 0, which marks a header written
    /// before tokens.
    pub fn issue(
        &mut self,
        db: Signature,
        on_disk: u64,
        attached: impl Fn(&Signature) -> bool,
    ) -> u64 {
        let token = loop {
            let t = Signature::generate().random;
            if t != 0 {
                break t;
            }
        };
        self.entries.retain(|h| h.db != db);
        if self.entries.len() >= Self::REMEMBERED {
            let oldest = self.entries.iter().position(|h| !attached(&h.db));
            self.entries.remove(oldest.unwrap_or(0));
        }
        self.entries.push(Held {
            db,
            token,
            before: on_disk,
        });
        token
    }

    /// Whether `h` is this instance's: its token is the newest this instance issued for the
    /// database, or the one its header carried then (a header write that did not happen). A
    /// header from before tokens (token 0) is taken on its stream alone, as it was then.
    pub fn wrote(&self, h: &DbHeader) -> bool {
        h.owner_token == 0
            || self.entries.iter().any(|e| {
                e.db == h.db_signature && (e.token == h.owner_token || e.before == h.owner_token)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(db: Signature, token: u64) -> DbHeader {
        let mut h = DbHeader::new(4096, Signature::generate());
        h.db_signature = db;
        h.owner_token = token;
        h
    }

    fn none(_: &Signature) -> bool {
        false
    }

    #[test]
    fn the_newest_token_of_a_database_and_the_one_on_disk_are_its_own() {
        let mut t = OwnerTokens::default();
        let db = Signature::generate();
        let first = t.issue(db, 0, none);
        assert!(t.wrote(&header(db, first)));
        // Header writes that fail, twice: the header keeps the first token.
        let second = t.issue(db, first, none);
        let third = t.issue(db, first, none);
        assert_ne!(second, third);
        assert!(t.wrote(&header(db, first)), "the header on disk");
        assert!(t.wrote(&header(db, third)));
        assert!(!t.wrote(&header(db, second)), "a token no header carries");
        // The third was written: the first is another's from now on.
        let fourth = t.issue(db, third, none);
        assert!(t.wrote(&header(db, fourth)) && t.wrote(&header(db, third)));
        assert!(!t.wrote(&header(db, first)));
        assert!(!t.wrote(&header(Signature::generate(), fourth)));
        assert!(t.wrote(&header(db, 0)), "a header from before tokens");
        assert_eq!(t.entries().len(), 1);
    }

    #[test]
    fn the_oldest_detached_database_is_forgotten_past_the_limit() {
        let mut t = OwnerTokens::default();
        let n = OwnerTokens::REMEMBERED;
        let dbs: Vec<Signature> = (0..=n + 1).map(|_| Signature::generate()).collect();
        let tokens: Vec<u64> = dbs.iter().map(|d| t.issue(*d, 0, none)).take(n).collect();
        // The oldest is attached: the next oldest goes.
        let attached = |s: &Signature| *s == dbs[0];
        let last = t.issue(dbs[n], 0, attached);
        assert_eq!(t.entries().len(), n);
        assert!(t.wrote(&header(dbs[0], tokens[0])));
        assert!(!t.wrote(&header(dbs[1], tokens[1])));
        assert!(t.wrote(&header(dbs[n], last)));
        // Nothing attached: the oldest goes.
        t.issue(dbs[n + 1], 0, none);
        assert!(!t.wrote(&header(dbs[0], tokens[0])));
        let stored = OwnerTokens::from_entries(t.entries().to_vec());
        assert_eq!(stored, t);
    }
}
