//! Integration tests of the instance through the actor runtime (`ese_actors`): the API's
//! shapes, the lifecycle and its races, the file locks (also against another process),
//! sessions, reads off the actor, 1,024 instances in one process. One module per scenario
//! family.

#[path = "../support/mod.rs"]
mod support;

/// The child process `file_locks` starts: this test binary itself, running only the test
/// `child::child_process`. `Mode::Run` is for the crash loop (binary `crash`).
#[path = "../support/child.rs"]
#[allow(dead_code)]
mod child;

mod api_shape;
mod chaos_findings;
mod file_locks;
mod lifecycle;
mod lifecycle_races;
mod open_or_create;
mod random_calls;
mod reads_off_actor;
mod scale;
mod scans;
mod session_drop;
mod transactions;
mod write_batch;
