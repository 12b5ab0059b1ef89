//! Helpers shared by the integration tests, one module per layer the tests drive:
//! [`core`] for tests that drive `ese::Core` directly, [`actor`] for tests that go through
//! the actor runtime (`ese_actors`). Each test binary (`tests/<layer>/main.rs`) includes the
//! tree once, with `#[path = "../support/mod.rs"] mod support;`, and compiles all of it.
//! `child.rs`, the child process of the tests that kill one, is outside this tree (see there).
#![allow(dead_code)]

pub mod actor;
pub mod core;
