//! A `Storage` whose reads (or writes, or file removals) can be slowed down or held at a
//! latch, for tests that need a read to be "still on disk" while something else happens. One
//! helper for every such test.
//!
//! ```ignore
//! let gated = GatedStorage::new(ese::io::os());
//! let latch = gated.latch_reads("db.edb");      // every read of db.edb now waits
//! // ... start a cold scan, then check that stop_service is answered ...
//! latch.wait_arrived(1);                        // a read is held at the latch
//! latch.release();                              // let it (and every later one) go
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ese::io::{File, FileLock, FileRef, OpenMode, Storage, StorageRef};
use parking_lot::{Condvar, Mutex};

/// Longest a read waits at a latch that is never released.
const MAX_HOLD: Duration = Duration::from_secs(60);

/// A gate that reads wait at until it is released. Cheap to clone; clones share the gate.
#[derive(Clone, Default)]
pub struct Latch {
    inner: Arc<LatchInner>,
}

#[derive(Default)]
struct LatchInner {
    state: Mutex<LatchState>,
    cv: Condvar,
}

#[derive(Default)]
struct LatchState {
    released: bool,
    arrived: usize,
}

impl Latch {
    /// Lets every read held now, and every later one, through.
    pub fn release(&self) {
        self.inner.state.lock().released = true;
        self.inner.cv.notify_all();
    }

    /// How many reads have reached the latch so far.
    pub fn arrived(&self) -> usize {
        self.inner.state.lock().arrived
    }

    /// Blocks (the calling thread) until `n` reads have reached the latch; panics after 30 s so
    /// that a test that waits for a read that never comes fails instead of hanging.
    pub fn wait_arrived(&self, n: usize) {
        let mut s = self.inner.state.lock();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while s.arrived < n {
            if self.inner.cv.wait_until(&mut s, deadline).timed_out() {
                panic!("only {} of {n} reads reached the latch in 30 s", s.arrived);
            }
        }
    }

    /// The async form of [`Latch::wait_arrived`], for tests on a runtime.
    pub async fn arrived_at_least(&self, n: usize) {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.wait_arrived(n))
            .await
            .expect("latch waiter");
    }

    /// Holds the read until the latch is released, or for at most `MAX_HOLD`: a test that
    /// panicked before releasing would otherwise leave the read on a blocking thread forever,
    /// and the runtime's shutdown would wait for it, hiding the panic behind a hang.
    pub(super) fn pass(&self) {
        let mut s = self.inner.state.lock();
        s.arrived += 1;
        self.inner.cv.notify_all();
        let deadline = std::time::Instant::now() + MAX_HOLD;
        while !s.released {
            if self.inner.cv.wait_until(&mut s, deadline).timed_out() {
                eprintln!("a read held at a latch for {MAX_HOLD:?} was let go: never released");
                return;
            }
        }
    }
}

enum Hold {
    Sleep(Duration),
    Latch(Latch),
}

/// What a rule holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Remove,
}

struct Rule {
    op: Op,
    path_contains: String,
    hold: Hold,
    /// How many more reads this rule holds; `None` = every read.
    left: Option<usize>,
}

/// A [`Storage`] over another one whose reads (`read_at`) of chosen files can be delayed or
/// held at a [`Latch`]. Everything else passes straight through.
#[derive(Clone)]
pub struct GatedStorage {
    inner: StorageRef,
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl fmt::Debug for GatedStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedStorage").finish_non_exhaustive()
    }
}

impl GatedStorage {
    /// Wraps `inner`; no read is held until a rule is added.
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

    /// Every read of a file whose path contains `path_contains` sleeps `by` first.
    pub fn delay_reads(&self, path_contains: &str, by: Duration) {
        self.add(Op::Read, path_contains, Hold::Sleep(by), None);
    }

    /// The next read of a matching file sleeps `by` first; later reads pass.
    pub fn delay_next_read(&self, path_contains: &str, by: Duration) {
        self.add(Op::Read, path_contains, Hold::Sleep(by), Some(1));
    }

    /// Every read of a matching file waits at the returned latch until it is released.
    pub fn latch_reads(&self, path_contains: &str) -> Latch {
        let latch = Latch::default();
        self.add(Op::Read, path_contains, Hold::Latch(latch.clone()), None);
        latch
    }

    /// Every write to a matching file waits at the returned latch until it is released.
    pub fn latch_writes(&self, path_contains: &str) -> Latch {
        let latch = Latch::default();
        self.add(Op::Write, path_contains, Hold::Latch(latch.clone()), None);
        latch
    }

    /// Every removal of a matching file (a log truncation) waits at the returned latch.
    pub fn latch_removes(&self, path_contains: &str) -> Latch {
        let latch = Latch::default();
        self.add(Op::Remove, path_contains, Hold::Latch(latch.clone()), None);
        latch
    }

    /// Drops every rule (reads already held at a latch stay held until it is released).
    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    fn add(&self, op: Op, path_contains: &str, hold: Hold, left: Option<usize>) {
        self.rules.lock().push(Rule {
            op,
            path_contains: path_contains.to_string(),
            hold,
            left,
        });
    }

    /// Applies the first rule matching `op` on `path`, outside the rules' lock.
    fn before(&self, op: Op, path: &Path) {
        let hold = {
            let mut rules = self.rules.lock();
            let text = path.to_string_lossy();
            let found = rules
                .iter()
                .position(|r| r.op == op && text.contains(&r.path_contains));
            let Some(i) = found else {
                return;
            };
            let hold = match &rules[i].hold {
                Hold::Sleep(d) => Hold::Sleep(*d),
                Hold::Latch(l) => Hold::Latch(l.clone()),
            };
            if let Some(n) = rules[i].left.as_mut() {
                *n -= 1;
                if *n == 0 {
                    rules.remove(i);
                }
            }
            hold
        };
        match hold {
            Hold::Sleep(d) => std::thread::sleep(d),
            Hold::Latch(l) => l.pass(),
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
    fn read_at(&self, buf: &mut [u8], offset: u64) -> ese::Result<usize> {
        self.gate.before(Op::Read, &self.path);
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> ese::Result<()> {
        self.gate.before(Op::Write, &self.path);
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> ese::Result<()> {
        self.inner.sync()
    }
    fn len(&self) -> ese::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> ese::Result<()> {
        self.inner.set_len(len)
    }
}

impl Storage for GatedStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> ese::Result<FileRef> {
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(GatedFile {
            inner,
            path: path.to_path_buf(),
            gate: self.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> ese::Result<()> {
        self.before(Op::Remove, path);
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> ese::Result<()> {
        self.inner.rename(from, to)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn list(&self, dir: &Path) -> ese::Result<Vec<PathBuf>> {
        self.inner.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> ese::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }
    fn list_entries(&self, dir: &Path) -> ese::Result<Vec<PathBuf>> {
        self.inner.list_entries(dir)
    }
    fn remove_dir(&self, dir: &Path) -> ese::Result<()> {
        self.inner.remove_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> ese::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn is_link(&self, path: &Path) -> bool {
        self.inner.is_link(path)
    }
    fn lock(&self, path: &Path) -> ese::Result<FileLock> {
        self.inner.lock(path)
    }
}
