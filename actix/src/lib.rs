//! `ese-actix`: an `ese` instance for hosts on actix and actix-web. The instance stays a
//! tokio task (the core crates never depend on actix); [`InstanceActor`] holds it the way an
//! actix host holds its other actors, behind an `Addr` that takes every typed message of
//! [`ese_actors::messages`] and answers with the `Result` the `Instance` method gives.
//!
//! ```no_run
//! use actix::Actor;
//! use ese_actix::{Ask, AskExt, InstanceActor, InstanceRuntime};
//! use ese_actors::messages::{BeginBackup, EndBackup, StopService};
//! use ese_actors::{BackupBegin, BackupEnd, Engine, InstanceParams};
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // The instance lives on a runtime of its own, not on this actix thread.
//!     let rt = InstanceRuntime::dedicated(2)?;
//!     let inst = rt.create_instance(&Engine::new(), "orders", InstanceParams::new("/tmp/orders")).await?;
//!     inst.init().await?;
//!     let addr = InstanceActor::new(inst, rt).start();
//!
//!     addr.send(Ask(BeginBackup { grbit: BackupBegin::empty() })).await??;
//!     // `ask` cannot be cancelled by dropping its future: the end always lands.
//!     addr.ask(EndBackup { grbit: BackupEnd::ABORT }).await??;
//!     let stopped = addr.send(Ask(StopService {})).await?;
//!     assert!(stopped.is_ok());
//!     Ok(())
//! }
//! ```
//!
//! Which runtime does what:
//! - the adapter runs on the actix arbiter it was started on (an actix `System`, an actix-web
//!   worker, or its own thread with [`InstanceActor::start_in_thread`] for a tokio host);
//! - the instance's task runs on an [`InstanceRuntime`]: one of its own, or the host's main
//!   tokio runtime. An actix-web worker that stops ends its adapters, never the instance; a
//!   message its adapter took is still served (its forwarding finishes on that runtime).

mod actor;
mod ask;
mod forward;
mod forwarding;
mod runtime;
mod thread;

pub use actor::{Ask, InstanceActor};
pub use ask::{Answer, AskExt, Deliver};
pub use forward::Forward;
pub use runtime::InstanceRuntime;
