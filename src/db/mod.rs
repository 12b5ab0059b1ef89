//! Layer 2: database files: the header pair and the data pages.

mod file;
mod header;
mod owner_tokens;
mod reach;

pub use file::DbFile;
pub use header::{
    BackupField, BackupInfo, DbHeader, Signature, Trailer, STATE_CLEAN, STATE_DIRTY,
    STATE_JUST_CREATED,
};
pub use owner_tokens::{Held, OwnerTokens};
