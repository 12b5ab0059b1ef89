//! The engine: a registry of instances (ESE keeps this process-global; here it is a value)
//! and its mode (behaviour.md §1).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use ese::io::StorageRef;
use ese::{Error, InstanceParams, Result};
use parking_lot::Mutex;

use crate::claims::Claims;
use crate::instance::Instance;

/// The engine's instance mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No instance yet.
    Unset,
    /// The implicit (legacy) instance runs: Windows 2000 compatibility.
    OneInstance,
    /// Named instances run.
    MultiInstance,
}

/// Name under which the implicit instance is registered (no caller can make it: names are
/// checked against it).
const IMPLICIT: &str = "\u{0}implicit";

pub(crate) struct EngineInner {
    instances: DashMap<String, Instance>,
    mode: Mutex<Mode>,
    max_instances: usize,
    next_id: AtomicU64,
    /// The paths the instances use, so a collision gets ESE's error for it (behaviour.md §1.3).
    pub(crate) claims: Claims,
}

impl std::fmt::Debug for EngineInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("instances", &self.instances.len())
            .field("mode", &*self.mode.lock())
            .finish()
    }
}

/// A registry of instances. Cheap to clone; clones share the registry.
///
/// ```no_run
/// # async fn f() -> ese::Result<()> {
/// use ese_actors::{Engine, InstanceParams, Term};
/// let engine = Engine::new();
/// let inst = engine.create_instance("main", InstanceParams::new("/tmp/ese-main")).await?;
/// inst.init().await?;
/// inst.term(Term::empty()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// An empty engine in `Unset` mode, allowing 1,024 instances. Needs no runtime until an
    /// instance is created.
    pub fn new() -> Engine {
        Engine {
            inner: Arc::new(EngineInner {
                instances: DashMap::new(),
                mode: Mutex::new(Mode::Unset),
                max_instances: 1024,
                next_id: AtomicU64::new(1),
                claims: Claims::default(),
            }),
        }
    }

    /// Sets the instance limit (`TooManyInstances` beyond it). Call before creating instances.
    pub fn with_max_instances(self, n: usize) -> Engine {
        let inner = EngineInner {
            instances: DashMap::new(),
            mode: Mutex::new(*self.inner.mode.lock()),
            max_instances: n,
            next_id: AtomicU64::new(self.inner.next_id.load(Ordering::Relaxed)),
            claims: Claims::default(),
        };
        Engine {
            inner: Arc::new(inner),
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.inner.mode.lock()
    }

    /// Number of instances registered (created and not yet terminated).
    pub fn instance_count(&self) -> usize {
        self.inner.instances.len()
    }

    /// `JetCreateInstance`: a named instance on the real file system, not yet initialised.
    pub async fn create_instance(&self, name: &str, params: InstanceParams) -> Result<Instance> {
        self.create_instance_on(name, params, ese::io::os()).await
    }

    /// Like [`Engine::create_instance`], on a given storage (the fault-injecting one in tests).
    pub async fn create_instance_on(
        &self,
        name: &str,
        params: InstanceParams,
        storage: StorageRef,
    ) -> Result<Instance> {
        if name == IMPLICIT {
            return Err(Error::InvalidParameter);
        }
        self.register(name, params, storage, Mode::MultiInstance)
    }

    /// `JetInit` of the implicit instance: switches `Unset` to `OneInstance` and initialises it.
    pub async fn init_legacy(&self, params: InstanceParams) -> Result<Instance> {
        self.init_legacy_on(params, ese::io::os()).await
    }

    /// Like [`Engine::init_legacy`], on a given storage.
    pub async fn init_legacy_on(
        &self,
        params: InstanceParams,
        storage: StorageRef,
    ) -> Result<Instance> {
        let inst = self.register(IMPLICIT, params, storage, Mode::OneInstance)?;
        if let Err(e) = inst.init().await {
            let _ = inst.term(ese::Term::empty()).await;
            return Err(e);
        }
        Ok(inst)
    }

    /// The instance-less calls, mode-checked (behaviour.md §1).
    pub fn legacy(&self) -> crate::Legacy {
        crate::Legacy {
            engine: self.clone(),
        }
    }

    pub(crate) fn implicit(&self) -> Result<Instance> {
        match self.mode() {
            Mode::MultiInstance => Err(Error::RunningInMultiInstanceMode),
            Mode::Unset => Err(Error::InvalidParameter),
            Mode::OneInstance => self
                .inner
                .instances
                .get(IMPLICIT)
                .map(|r| r.value().clone())
                .ok_or(Error::InvalidParameter),
        }
    }

    fn register(
        &self,
        name: &str,
        params: InstanceParams,
        storage: StorageRef,
        want: Mode,
    ) -> Result<Instance> {
        // The mode lock serialises every registry change; it is never held across an await.
        let mut mode = self.inner.mode.lock();
        match (*mode, want) {
            (Mode::OneInstance, Mode::MultiInstance) => {
                return Err(Error::RunningInOneInstanceMode)
            }
            (Mode::MultiInstance, Mode::OneInstance) => {
                return Err(Error::RunningInMultiInstanceMode)
            }
            (Mode::OneInstance, Mode::OneInstance) => return Err(Error::AlreadyInitialized),
            _ => {}
        }
        if self.inner.instances.contains_key(name) {
            return Err(Error::InstanceNameInUse);
        }
        if self.inner.instances.len() >= self.inner.max_instances {
            return Err(Error::TooManyInstances);
        }
        params.validate()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let inst = Instance::spawn(name, id, params, storage, Arc::downgrade(&self.inner))?;
        self.inner.instances.insert(name.to_string(), inst.clone());
        *mode = want;
        tracing::info!(instance = name, "instance created");
        Ok(inst)
    }
}

impl EngineInner {
    /// Forgets a terminated instance; the mode returns to `Unset` with the last one.
    pub(crate) fn deregister(&self, name: &str, id: u64) {
        let mut mode = self.mode.lock();
        self.instances.remove_if(name, |_, v| v.id() == id);
        if self.instances.is_empty() {
            *mode = Mode::Unset;
        }
    }
}
