//! Layer 2: database files: the header pair and the data pages.

mod clean_tokens;
mod file;
mod header;
mod reach;

pub use clean_tokens::CleanTokens;
pub use file::DbFile;
pub use header::{BackupField, BackupInfo, DbHeader, Signature, Trailer, STATE_CLEAN, STATE_DIRTY};
