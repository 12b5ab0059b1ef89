//! The layers under [`Core`](crate::Core), for the actor runtime, the CLI's `dump` and
//! inspection commands, the fuzz targets, the benchmarks and the tests. Not part of the API a
//! host uses: names and shapes here change without notice, and nothing a host needs is only
//! here.

/// Tables: B+trees over pages.
pub mod btree {
    pub use crate::btree::*;
}

/// Database files: header, trailer, page I/O.
pub mod db {
    pub use crate::db::*;
}

/// The write-ahead log: format, reader, writer, checkpoint, page deltas.
pub mod log {
    pub use crate::log::*;
}

/// Page layout and verification.
pub mod page {
    pub use crate::page::*;
}

/// Redo: the replay shared by soft and hard recovery, and soft recovery.
pub mod recovery {
    pub use crate::recovery::*;
}

/// The external backup's state machine and its streamed images.
pub mod backup {
    pub use crate::backup::state::*;

    /// Reads of a backup: database images and log files as they are streamed.
    pub mod stream {
        pub use crate::backup::stream::*;
    }

    /// The backup's rate beside commits: their latencies and the pacer deciding from them.
    pub mod pace {
        pub use crate::backup::pace::{CommitLatencies, Governor, LatencyWindow, WINDOW};
    }
}

/// Restore's checks of backed-up logs and database images.
pub mod checks {
    pub use crate::restore::checks::*;
}
