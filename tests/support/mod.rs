//! Helpers shared by the integration tests, one module per layer the tests drive:
//! [`core`] for tests that drive `ese::Core` directly, [`actor`] for tests that go through
//! the actor runtime (`ese_actors`). Every test binary compiles the whole tree.
#![allow(dead_code)]

pub mod actor;
pub mod core;
