//! Integration tests of the storage core, driven through the synchronous `ese` API
//! (`ese::Core`, the log, recovery, restore) on the fault-injecting file layer: one module per
//! scenario family.

#[path = "../support/mod.rs"]
mod support;

mod attach_limits;
mod bad_input;
mod crash_recovery;
mod damaged_logs;
mod faults;
mod foreign_stream;
mod fuzz_regressions;
mod log_behaviour;
mod storage_roundtrip;
mod txn_atomicity;
mod txn_semantics;
