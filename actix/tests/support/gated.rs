//! A `Storage` whose reads of chosen files wait at a latch until it is released: the test
//! then knows a read is on disk while it sends something else.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ese_actors::ese::io::{File, FileLock, FileRef, OpenMode, Storage, StorageRef};
use parking_lot::{Condvar, Mutex};

/// Longest a read waits at a latch nobody releases (a failed test must not hang).
const MAX_HOLD: Duration = Duration::from_secs(60);

/// A gate reads wait at. Clones share it.
#[derive(Clone, Default)]
pub struct Latch {
    inner: Arc<(Mutex<State>, Condvar)>,
}

#[derive(Default)]
struct State {
    released: bool,
    arrived: usize,
}

impl Latch {
    /// Lets every held and later read through.
    pub fn release(&self) {
        self.inner.0.lock().released = true;
        self.inner.1.notify_all();
    }

    /// How many reads reached the latch.
    pub fn arrived(&self) -> usize {
        self.inner.0.lock().arrived
    }

    /// Waits (asynchronously, polling) until `n` reads reached the latch; panics after 30 s.
    pub async fn arrived_at_least(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.arrived() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} reads reached the latch",
                self.arrived()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn pass(&self) {
        let (state, cv) = &*self.inner;
        let mut s = state.lock();
        s.arrived += 1;
        cv.notify_all();
        let deadline = std::time::Instant::now() + MAX_HOLD;
        while !s.released {
            if cv.wait_until(&mut s, deadline).timed_out() {
                return;
            }
        }
    }
}

/// Releases its latch when dropped, so a failing test never leaves a read held.
pub struct ReleaseOnDrop(pub Latch);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A [`Storage`] over another whose reads of files whose path contains a given text wait
/// at a [`Latch`]; everything else passes through.
#[derive(Clone)]
pub struct GatedStorage {
    inner: StorageRef,
    rules: Arc<Mutex<Vec<(String, Latch)>>>,
}

impl fmt::Debug for GatedStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedStorage").finish_non_exhaustive()
    }
}

impl GatedStorage {
    /// Wraps `inner`; nothing is held until [`GatedStorage::latch_reads`].
    pub fn new(inner: StorageRef) -> GatedStorage {
        GatedStorage {
            inner,
            rules: Arc::default(),
        }
    }

    /// This storage as the engine takes it.
    pub fn storage(&self) -> StorageRef {
        Arc::new(self.clone())
    }

    /// Every later read of a file whose path contains `path_contains` waits at the latch.
    pub fn latch_reads(&self, path_contains: &str) -> Latch {
        let latch = Latch::default();
        self.rules
            .lock()
            .push((path_contains.to_string(), latch.clone()));
        latch
    }

    /// Drops every rule (reads held now stay held until their latch is released).
    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    fn before_read(&self, path: &Path) {
        let text = path.to_string_lossy();
        let latch = self
            .rules
            .lock()
            .iter()
            .find(|(p, _)| text.contains(p.as_str()))
            .map(|(_, l)| l.clone());
        if let Some(l) = latch {
            l.pass();
        }
    }
}

struct GatedFile {
    inner: FileRef,
    path: PathBuf,
    gate: GatedStorage,
}

impl fmt::Debug for GatedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedFile")
            .field("path", &self.path)
            .finish()
    }
}

impl File for GatedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> ese_actors::Result<usize> {
        self.gate.before_read(&self.path);
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> ese_actors::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> ese_actors::Result<()> {
        self.inner.sync()
    }
    fn len(&self) -> ese_actors::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> ese_actors::Result<()> {
        self.inner.set_len(len)
    }
    fn will_read(&self) {
        self.inner.will_read()
    }
}

impl Storage for GatedStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> ese_actors::Result<FileRef> {
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(GatedFile {
            inner,
            path: path.to_path_buf(),
            gate: self.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> ese_actors::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> ese_actors::Result<()> {
        self.inner.rename(from, to)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn list(&self, dir: &Path) -> ese_actors::Result<Vec<PathBuf>> {
        self.inner.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> ese_actors::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }
    fn list_entries(&self, dir: &Path) -> ese_actors::Result<Vec<PathBuf>> {
        self.inner.list_entries(dir)
    }
    fn remove_dir(&self, dir: &Path) -> ese_actors::Result<()> {
        self.inner.remove_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> ese_actors::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn is_link(&self, path: &Path) -> bool {
        self.inner.is_link(path)
    }
    fn modified_ms(&self, path: &Path) -> Option<u64> {
        self.inner.modified_ms(path)
    }
    fn lock(&self, path: &Path) -> ese_actors::Result<FileLock> {
        self.inner.lock(path)
    }
}
