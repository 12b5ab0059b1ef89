//! The crash loop, in a real child process killed with SIGKILL. The child is this test binary
//! itself, started again to run only the test `child::child_process` (`support/child.rs`).
//!
//! Alone in its binary: each of its many spawns gives the child, until its `exec`, a copy of
//! every descriptor of this process, the `flock`ed ones included, so a test of this process that
//! released a lock and took it again at that moment would find it still held.

#[path = "../support/mod.rs"]
mod support;

/// The child process; `Mode::Hold` is for `file_locks` (binary `instance`).
#[path = "../support/child.rs"]
#[allow(dead_code)]
mod child;

mod crash_loop;
