//! Backup targets: where `Instance::backup_to` writes a new set and where `verify`,
//! `restore`, `sets` and `prune` find sets. A target is a repository of sets: a folder
//! ([`ese::backup::repo::DirRepo`]) or a prefix of an object store ([`ObjectRepo`]), parsed
//! from a URL ([`BackupTarget::parse`]). One job per file: [`url`] (parsing, the
//! environment), [`object`] (the object-store repository), [`ops`] (the async calls on
//! top), [`watch`] (progress of reads).

pub mod object;
mod ops;
mod url;
mod watch;

pub use ese::backup::set::VerifyDepth;
pub use object::{ObjectOptions, ObjectRepo, Requests, MIN_PART};
pub use ops::{
    list_sets, prune_sets, restore_from, restore_sets, verify_at, Listed, PrunePlan, Retention,
    SetChoice, SetState, ORPHAN_GRACE_MS,
};
pub use url::BackupTarget;
pub use watch::ReadProgress;
