//! Integration tests of online backup through the actor runtime (`ese_actors`): the sequence,
//! headers, refusals, cancel, stale reads, backup sets, backups under load, the host stopping
//! a backup, the backup handle (progress, rate limit, cancel, shutdown), and the model-based
//! races. One module per scenario family.

#[path = "../support/mod.rs"]
mod support;

mod backup_cancel;
mod backup_chunk_sums;
mod backup_contract;
mod backup_handle;
mod backup_headers;
mod backup_pace;
mod backup_read_ahead;
mod backup_refusals;
mod backup_sequence;
mod backup_set;
mod backup_set_crash;
mod backup_set_full_disk;
mod backup_set_stopped;
mod backup_stale_reads;
mod backup_under_load;
mod model_backup;
mod stop_service_races;
