//! The actor's side of behaviour.md §1.3: it claims its paths in the engine before the core
//! touches them, and gives them back when it stops using them. The core's own operating
//! system locks then stop every other engine and process.

use std::path::Path;

use ese::Result;

use super::Actor;

impl Actor {
    /// Claims the system and log paths before init touches them.
    pub(super) fn claim_instance_paths(&self) -> Result<()> {
        match self.engine.upgrade() {
            Some(engine) => engine.claims.claim_instance(self.id, &self.params),
            // An instance that outlived its engine meets only the operating system's locks.
            None => Ok(()),
        }
    }

    /// Claims a database path before an attach or create; true if the claim is new, and so
    /// is to be given back if the attach fails.
    pub(super) fn claim_database(&self, path: &Path) -> Result<bool> {
        match self.engine.upgrade() {
            Some(engine) => engine.claims.claim_database(self.id, path),
            None => Ok(false),
        }
    }

    /// Gives a database path back: it was detached, or its attach failed.
    pub(super) fn release_database(&self, path: &Path) {
        if let Some(engine) = self.engine.upgrade() {
            engine.claims.release_database(self.id, path);
        }
    }

    /// Gives back every path the instance claimed: term, a failed init, the actor's end.
    pub(super) fn release_all_paths(&self) {
        if let Some(engine) = self.engine.upgrade() {
            engine.claims.release_all(self.id);
        }
    }
}
