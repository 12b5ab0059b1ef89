//! Clean tokens: which clean database headers this instance wrote.
//!
//! A database's header names the log stream it belongs to, but two instances can continue one
//! stream (a copied instance directory, an instance started on a restore's logs). A database
//! moved between them would be taken for one that never left, and its pages, stamped with the
//! other instance's later positions, would hide this instance's changes from redo. So every
//! clean header an instance writes (detach, clean term, the end of soft recovery) carries a
//! fresh random token, and the instance keeps the token in its checkpoint file *before* the
//! header is written. An attach takes a header as this instance's own only when its stream
//! matches and the instance holds its token; anything else is stamped as a database from
//! another stream. A crash between the two writes leaves a token the instance holds and a
//! header it never saw written clean (a dirty one, which recovery cleans with a new token),
//! so a crash never makes an own database look foreign.

use super::{DbHeader, Signature};

/// The clean tokens an instance wrote, oldest first: (database signature, token).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanTokens {
    entries: Vec<(Signature, u64)>,
}

impl CleanTokens {
    /// How many databases an instance remembers; the oldest is forgotten first. A database
    /// that comes back after more than this many others were written clean is stamped again,
    /// which costs one rewrite and its backup records (the next incremental is
    /// `MissingFullBackup`). 128 entries take 3 KiB of the checkpoint's 32 KiB slot.
    pub const REMEMBERED: usize = 128;

    /// Tokens as stored, oldest first.
    pub fn from_entries(mut entries: Vec<(Signature, u64)>) -> CleanTokens {
        if entries.len() > Self::REMEMBERED {
            entries.drain(..entries.len() - Self::REMEMBERED);
        }
        CleanTokens { entries }
    }

    /// The stored entries, oldest first.
    pub fn entries(&self) -> &[(Signature, u64)] {
        &self.entries
    }

    /// A new token for the next clean header of database `db`, remembered in place of its
    /// previous one. Never 0, which marks a header written before tokens.
    pub fn issue(&mut self, db: Signature) -> u64 {
        let token = loop {
            let t = Signature::generate().random;
            if t != 0 {
                break t;
            }
        };
        self.entries.retain(|(s, _)| *s != db);
        if self.entries.len() >= Self::REMEMBERED {
            self.entries.remove(0);
        }
        self.entries.push((db, token));
        token
    }

    /// Whether this instance wrote `h` clean. A header from before tokens (token 0) is taken
    /// on its stream alone, as it was then.
    pub fn wrote(&self, h: &DbHeader) -> bool {
        h.clean_token == 0
            || self
                .entries
                .iter()
                .any(|(s, t)| *s == h.db_signature && *t == h.clean_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(db: Signature, token: u64) -> DbHeader {
        let mut h = DbHeader::new(4096, Signature::generate());
        h.db_signature = db;
        h.clean_token = token;
        h
    }

    #[test]
    fn only_the_latest_token_of_a_database_is_its_own() {
        let mut t = CleanTokens::default();
        let db = Signature::generate();
        let first = t.issue(db);
        assert!(t.wrote(&header(db, first)));
        let second = t.issue(db);
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
    fn the_oldest_database_is_forgotten_past_the_limit() {
        let mut t = CleanTokens::default();
        let dbs: Vec<Signature> = (0..=CleanTokens::REMEMBERED)
            .map(|_| Signature::generate())
            .collect();
        let tokens: Vec<u64> = dbs.iter().map(|d| t.issue(*d)).collect();
        assert_eq!(t.entries().len(), CleanTokens::REMEMBERED);
        assert!(!t.wrote(&header(dbs[0], tokens[0])));
        assert!(t.wrote(&header(
            dbs[CleanTokens::REMEMBERED],
            tokens[CleanTokens::REMEMBERED]
        )));
        let stored = CleanTokens::from_entries(t.entries().to_vec());
        assert_eq!(stored, t);
    }
}
