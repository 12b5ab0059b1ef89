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
//! from another stream. A crash between the two writes leaves a token the instance holds and
//! a header written under an earlier one it also held (a dirty header is the attach's, whose
//! token the instance keeps while the database is attached), so a crash never makes an own
//! database look foreign. Soft recovery keeps each header's token as it finds it: a file its
//! log names may have been attached by another instance since.

use super::{DbHeader, Signature};

/// The owner tokens an instance wrote, oldest first: (database signature, token).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerTokens {
    entries: Vec<(Signature, u64)>,
}

impl OwnerTokens {
    /// How many databases an instance remembers; the oldest detached one is forgotten first.
    /// A database that comes back after more than this many others were written is stamped
    /// again, which costs one rewrite and its backup records (the next incremental is
    /// `MissingFullBackup`). It is also the most databases an instance attaches, so that an
    /// attached database's token is never forgotten. 128 entries take 3 KiB of the
    /// checkpoint's 32 KiB slot.
    pub const REMEMBERED: usize = 128;

    /// Tokens as stored, oldest first.
    pub fn from_entries(mut entries: Vec<(Signature, u64)>) -> OwnerTokens {
        if entries.len() > Self::REMEMBERED {
            entries.drain(..entries.len() - Self::REMEMBERED);
        }
        OwnerTokens { entries }
    }

    /// The stored entries, oldest first.
    pub fn entries(&self) -> &[(Signature, u64)] {
        &self.entries
    }

    /// A new token for the next header of database `db`, remembered in place of its previous
    /// one. When full, the oldest token of a database `attached` does not name is forgotten.
    /// Never 0, which marks a header written before tokens.
    pub fn issue(&mut self, db: Signature, attached: impl Fn(&Signature) -> bool) -> u64 {
        let token = loop {
            let t = Signature::generate().random;
            if t != 0 {
                break t;
            }
        };
        self.entries.retain(|(s, _)| *s != db);
        if self.entries.len() >= Self::REMEMBERED {
            let oldest = self.entries.iter().position(|(s, _)| !attached(s));
            self.entries.remove(oldest.unwrap_or(0));
        }
        self.entries.push((db, token));
        token
    }

    /// Whether this instance wrote `h` last. A header from before tokens (token 0) is taken
    /// on its stream alone, as it was then.
    pub fn wrote(&self, h: &DbHeader) -> bool {
        h.owner_token == 0
            || self
                .entries
                .iter()
                .any(|(s, t)| *s == h.db_signature && *t == h.owner_token)
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
    fn only_the_latest_token_of_a_database_is_its_own() {
        let mut t = OwnerTokens::default();
        let db = Signature::generate();
        let first = t.issue(db, none);
        assert!(t.wrote(&header(db, first)));
        let second = t.issue(db, none);
        assert_ne!(first, second);
        assert!(t.wrote(&header(db, second)));
        assert!(
            !t.wrote(&header(db, first)),
            "a replaced token is another's"
        );
        assert!(!t.wrote(&header(Signature::generate(), second)));
        assert!(t.wrote(&header(db, 0)), "a header from before tokens");
        assert_eq!(t.entries().len(), 1);
    }

    #[test]
    fn the_oldest_detached_database_is_forgotten_past_the_limit() {
        let mut t = OwnerTokens::default();
        let n = OwnerTokens::REMEMBERED;
        let dbs: Vec<Signature> = (0..=n + 1).map(|_| Signature::generate()).collect();
        let tokens: Vec<u64> = dbs.iter().map(|d| t.issue(*d, none)).take(n).collect();
        // The oldest is attached: the next oldest goes.
        let attached = |s: &Signature| *s == dbs[0];
        let last = t.issue(dbs[n], attached);
        assert_eq!(t.entries().len(), n);
        assert!(t.wrote(&header(dbs[0], tokens[0])));
        assert!(!t.wrote(&header(dbs[1], tokens[1])));
        assert!(t.wrote(&header(dbs[n], last)));
        // Nothing attached: the oldest goes.
        t.issue(dbs[n + 1], none);
        assert!(!t.wrote(&header(dbs[0], tokens[0])));
        let stored = OwnerTokens::from_entries(t.entries().to_vec());
        assert_eq!(stored, t);
    }
}
