//! Helpers shared by the adapter's tests: an in-memory storage whose reads can be held at a
//! latch (so that "a read is on disk" is a state a test can hold), instance parameters, and
//! instances on an [`InstanceRuntime`].
#![allow(dead_code, unused_imports)]

// The root test suite's gated storage, shared rather than written again.
#[path = "../../../tests/support/actor/gated.rs"]
mod gated;

pub use gated::{GatedStorage, Latch};

/// Releases its latch when dropped: a test that fails while a read is held must not leave it
/// held, or the runtime would wait for that read instead of reporting.
pub struct ReleaseOnDrop(pub Latch);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

use std::sync::Arc;
use std::time::Duration;

use ese_actix::InstanceRuntime;
use ese_actors::ese::io::{FaultStorage, StorageRef};
use ese_actors::{Engine, Instance, InstanceParams};

pub const PAGE: usize = 4096;

/// Small logs and pages, on the in-memory storage's root `/s`.
pub fn params() -> InstanceParams {
    InstanceParams::new("/s")
        .log_file_size(128 * 1024)
        .page_size(PAGE as u32)
        .cache_pages(256)
}

/// A fresh in-memory file system behind a read gate.
pub fn gated() -> GatedStorage {
    let fs: StorageRef = Arc::new(FaultStorage::new());
    GatedStorage::new(fs)
}

/// An instance named `name` on `storage` whose task lives on `rt`, not yet initialised.
pub async fn instance_on(
    rt: &InstanceRuntime,
    engine: &Engine,
    name: &str,
    storage: StorageRef,
) -> Instance {
    let (engine, name) = (engine.clone(), name.to_string());
    rt.run(async move { engine.create_instance_on(&name, params(), storage).await })
        .await
        .expect("create the instance")
}

/// The ESE code of an error result.
pub fn code<T: std::fmt::Debug>(r: &ese_actors::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

/// Waits for `f` to hold, for at most 10 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub mod pair;
pub mod shape;
