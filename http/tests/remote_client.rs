//! `RemoteBackup` against the router on loopback, with real instances on real files: a full
//! and an incremental pulled while a writer commits restore to a gap-free prefix; downloads
//! cut by a proxy resume without fetching anything twice; a stalled client loses its lease;
//! `stop_backup`, `stop_service` and `term` on the host reach the client with their codes.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ese_actors::ese::backup::set::{SetFile, SetStore};
use ese_actors::ese::io::{Fault, FaultStorage, FileRef, Files};
use ese_actors::{BackupKind, BackupTarget, KeyRange, Term};
use ese_http::client::{RemoteBackup, RemoteError, RemoteOptions, RemoteOutcome};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy between the client and the server: counts the bytes it delivers to the client,
/// cuts every connection when that count reaches a planned offset, and can stall.
struct Proxy {
    addr: SocketAddr,
    /// Bytes delivered from the server to the client, every connection together.
    down: Arc<AtomicU64>,
    /// Offsets (in `down`) at which to cut, ascending; each is used once.
    cuts: Arc<Mutex<Vec<u64>>>,
    /// Offsets (in `down`) of bytes delivered with their bits inverted.
    flips: Arc<Mutex<Vec<u64>>>,
    stalled: Arc<AtomicBool>,
    /// The offset (in `down`) at which the proxy stalls by itself; `u64::MAX`: never.
    stall_at: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Proxy {
            addr: listener.local_addr().unwrap(),
            down: Arc::default(),
            cuts: Arc::default(),
            flips: Arc::default(),
            stalled: Arc::default(),
            stall_at: Arc::new(AtomicU64::new(u64::MAX)),
        };
        let (down, cuts, stalled) = (p.down.clone(), p.cuts.clone(), p.stalled.clone());
        let (flips, stall_at) = (p.flips.clone(), p.stall_at.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (down, cuts, stalled) = (down.clone(), cuts.clone(), stalled.clone());
                let (flips, stall_at) = (flips.clone(), stall_at.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let st = stalled.clone();
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 << 10];
                        loop {
                            while st.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if sw.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = sw.shutdown().await;
                    });
                    let mut buf = vec![0u8; 16 << 10];
                    loop {
                        while stalled.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        // Counting, cutting and stalling under one lock: two connections
                        // never both pass a cut or the stall point.
                        let (pass, cut, stall) = {
                            let mut c = cuts.lock().unwrap();
                            let before = down.load(Ordering::SeqCst);
                            for at in flips.lock().unwrap().iter() {
                                if let Some(i) = at.checked_sub(before).filter(|&i| i < n as u64) {
                                    buf[i as usize] ^= 0xff;
                                }
                            }
                            let at_stall = stall_at.load(Ordering::SeqCst);
                            match c.first().copied() {
                                Some(at) if before + n as u64 >= at => {
                                    c.remove(0);
                                    let pass = (at.saturating_sub(before)) as usize;
                                    down.fetch_add(pass as u64, Ordering::SeqCst);
                                    (pass, true, false)
                                }
                                _ if before + n as u64 >= at_stall => {
                                    stall_at.store(u64::MAX, Ordering::SeqCst);
                                    stalled.store(true, Ordering::SeqCst);
                                    let pass = (at_stall.saturating_sub(before)) as usize;
                                    down.fetch_add(n as u64, Ordering::SeqCst);
                                    (pass, false, true)
                                }
                                _ => {
                                    down.fetch_add(n as u64, Ordering::SeqCst);
                                    (n, false, false)
                                }
                            }
                        };
                        if cw.write_all(&buf[..pass]).await.is_err() || cut {
                            break;
                        }
                        if stall {
                            // The rest of this read goes out once the stall is lifted.
                            while stalled.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if cw.write_all(&buf[pass..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                    // Both halves of both sockets go: the client sees the connection drop.
                    up.abort();
                });
            }
        });
        p
    }

    fn url(&self) -> String {
        format!("http://{}/v1/instances/src", self.addr)
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }

    /// Stalls by itself once `bytes` more have been delivered to the client.
    fn stall_after(&self, bytes: u64) {
        let at = self.down.load(Ordering::SeqCst) + bytes;
        self.stall_at.store(at, Ordering::SeqCst);
    }

    /// Waits (at most 30 s) until the proxy has stalled by itself ([`Proxy::stall_after`]).
    async fn stalled_by_itself(&self) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !self.stalled.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the pull never reached the stall point");
    }
}

fn server_addr(h: &Host) -> SocketAddr {
    let rest = h.url.strip_prefix("http://").unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

async fn pull(url: &str, kind: BackupKind, to: &Path) -> Result<RemoteOutcome, RemoteError> {
    let b = RemoteBackup::new(url, RemoteOptions::default().kind(kind)).unwrap();
    b.run(&BackupTarget::parse(to.to_str().unwrap()).unwrap())
        .await
}

/// Opens the restored database and answers its rows under `prefix`.
async fn restored_rows(h: &Host, sets: &[PathBuf], name: &str) -> (usize, Vec<Vec<u8>>) {
    let report = ese_actors::restore_backup_chain(&h.engine, sets, h.dir.path().join(name))
        .await
        .unwrap();
    let chk = h
        .engine
        .create_instance(name, params(&h.dir.path().join(format!("{name}-chk"))))
        .await
        .unwrap();
    chk.init().await.unwrap();
    let db = chk.attach_database(&report.databases[0].1).await.unwrap();
    let t = chk.open_table(db, "t").await.unwrap();
    let pre = chk.scan(t, KeyRange::prefix(b"p")).await.unwrap().len();
    let w = chk
        .scan(t, KeyRange::prefix(b"w"))
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k.to_vec())
        .collect();
    chk.term(Term::empty()).await.unwrap();
    (pre, w)
}

/// Whether any complete set (a manifest) exists under `dir`.
fn any_manifest(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = e.path();
        p.join("manifest.json").exists() || (p.is_dir() && any_manifest(&p))
    })
}

/// A full, then an incremental, pulled while a writer commits: both sets verify, and the
/// chain restores every preloaded row and a gap-free prefix of the writer's rows that holds
/// every row acknowledged before the incremental began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_and_incremental_pulled_while_writing_restore_a_prefix() {
    let h = host(Opts::default()).await;
    let w = h.writer();
    let sets = h.dir.path().join("sets");
    let full = pull(&h.url, BackupKind::Full, &sets).await.unwrap();
    assert_eq!(full.manifest.kind, BackupKind::Full);
    assert_eq!(full.manifest.parent_id, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = w.acked.load(Ordering::SeqCst);
    let inc = pull(&h.url, BackupKind::Incremental, &sets).await.unwrap();
    w.stop().await;
    assert_eq!(inc.manifest.kind, BackupKind::Incremental);
    assert_eq!(
        inc.manifest.parent_id.as_deref(),
        Some(full.manifest.id.as_str())
    );
    assert!(inc.manifest.gen_high > full.manifest.gen_high);
    assert!(h
        .inst
        .database_info(&h.db_path)
        .await
        .unwrap()
        .last_incremental
        .is_some());
    h.inst.term(Term::empty()).await.unwrap();

    let (fdir, idir) = (PathBuf::from(&full.location), PathBuf::from(&inc.location));
    ese_actors::verify_backup_set(&fdir).unwrap();
    ese_actors::verify_backup_set(&idir).unwrap();
    let (pre, written) = restored_rows(&h, &[fdir, idir], "restored").await;
    assert_eq!(pre, PRELOAD);
    for (i, k) in written.iter().enumerate() {
        assert_eq!(k, format!("w{i:08}").as_bytes(), "a gap at row {i}");
    }
    assert!(
        written.len() as i64 > acked,
        "{} rows restored, {} acknowledged before the incremental",
        written.len(),
        acked + 1
    );
}

/// Bytes the proxy may carry besides file bodies in one backup: status lines, headers, JSON
/// answers and chunk framing (measured below at a few KiB).
const OVERHEAD: u64 = 16 << 10;

/// Cuts in the middle of a database image and of a log: the client resumes each, the set
/// verifies and restores, and the proxy delivered no more than the files plus protocol
/// overhead plus one chunk per cut. What is counted: every byte the proxy passed from the
/// server to the client, on every connection, so a client that fetched anything twice (a
/// file restarted from 0, a resume from before what it had) shows up in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_downloads_resume_and_fetch_nothing_twice() {
    let h = host(Opts::default()).await;
    let sets = h.dir.path().join("sets");
    // No writer: the second full's database image has the size of the first's.
    let p0 = Proxy::start(server_addr(&h)).await;
    let base = pull(&p0.url(), BackupKind::Full, &sets).await.unwrap();
    let overhead = p0.down.load(Ordering::SeqCst) - base.manifest.content_bytes();
    assert!(overhead <= OVERHEAD, "protocol overhead {overhead} bytes");
    assert_eq!(base.progress.resumes, 0);

    let image = base.manifest.databases[0].size;
    let log = base.manifest.logs[0].size;
    assert!(image > 4 * CHUNK as u64 && log >= 4 * CHUNK as u64);
    let p = Proxy::start(server_addr(&h)).await;
    // Half way into the image; half way into the first log (after the image, its resumed
    // answer's headers and the JSON in between, which are far less than half a log).
    *p.cuts.lock().unwrap() = vec![image / 2, image + log / 2];
    let cut = pull(&p.url(), BackupKind::Full, &sets).await.unwrap();
    assert!(p.cuts.lock().unwrap().is_empty(), "both cuts happened");
    assert_eq!(cut.progress.resumes, 2);
    assert_eq!(cut.manifest.databases[0].size, image);
    let content = cut.manifest.content_bytes();
    assert_eq!(cut.progress.bytes_received, content);
    let carried = p.down.load(Ordering::SeqCst);
    eprintln!(
        "files {content} bytes; carried {carried} (without cuts the overhead was {overhead})"
    );
    assert!(
        carried <= content + OVERHEAD + 2 * CHUNK as u64,
        "the proxy carried {carried} bytes for {content} bytes of files"
    );
    h.inst.term(Term::empty()).await.unwrap();

    let dir = PathBuf::from(&cut.location);
    ese_actors::verify_backup_set(&dir).unwrap();
    let (pre, _) = restored_rows(&h, &[dir], "restored").await;
    assert_eq!(pre, PRELOAD);
}

/// One byte of the database image damaged on the way: the client finds the file's sum wrong
/// and fails with a damaged transfer, removes its partial set and aborts the backup (a new
/// one begins at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_byte_fails_the_backup_and_leaves_no_set() {
    let h = host(Opts::default()).await;
    let p = Proxy::start(server_addr(&h)).await;
    // Half a chunk into the image's third chunk: file bytes, far from the chunked framing
    // (the answers before the image and its framing are a few KiB).
    *p.flips.lock().unwrap() = vec![2 * CHUNK as u64 + CHUNK as u64 / 2];
    let sets = h.dir.path().join("sets");
    let e = pull(&p.url(), BackupKind::Full, &sets).await.unwrap_err();
    assert!(
        matches!(&e, RemoteError::Integrity(m) if m.contains("CRC-32C")),
        "not a damaged transfer: {e}"
    );
    assert!(!any_manifest(&sets));
    assert!(
        std::fs::read_dir(&sets).map_or(true, |mut d| d.next().is_none()),
        "the partial set was left"
    );
    h.begin("full").await;
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// Waits until a run has received file bytes.
async fn first_bytes(
    progress: &mut tokio::sync::watch::Receiver<ese_http::client::RemoteProgress>,
) {
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|p| p.bytes_received > 0),
    )
    .await
    .unwrap()
    .unwrap();
}

/// Drops a run's future (as a host that gave up on it), after checking that the run is in
/// the middle of the database image.
async fn drop_mid_image(
    progress: &tokio::sync::watch::Receiver<ese_http::client::RemoteProgress>,
    run: tokio::task::JoinHandle<Result<RemoteOutcome, RemoteError>>,
) {
    {
        let p = progress.borrow();
        assert!(
            p.phase == ese_actors::BackupPhase::Databases
                && p.bytes_received < p.bytes_total
                && p.bytes_done < p.bytes_total,
            "not in the middle of the image: {p:?}"
        );
    }
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
}

/// Starts a pull through `p` and answers it once the proxy has stalled by itself, 256 KiB
/// into the pull (the database image is about 2 MiB): the stall cannot come too late for a
/// test task that wakes late.
async fn stalled_pull(
    p: &Proxy,
    to: PathBuf,
) -> tokio::task::JoinHandle<Result<RemoteOutcome, RemoteError>> {
    let b = RemoteBackup::new(&p.url(), RemoteOptions::default()).unwrap();
    p.stall_after(256 << 10);
    let run = tokio::spawn(async move {
        b.run(&BackupTarget::parse(to.to_str().unwrap()).unwrap())
            .await
    });
    p.stalled_by_itself().await;
    run
}

async fn code_of(run: tokio::task::JoinHandle<Result<RemoteOutcome, RemoteError>>) -> i32 {
    let e = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    e.code().unwrap_or_else(|| panic!("no ESE code in {e}"))
}

/// A client stalled for longer than the lease: the server ends the backup, and the client
/// fails with NoBackup (-520) once it hears from the server again; no set is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_loses_its_lease_with_520() {
    let h = host(Opts {
        ttl: Duration::from_millis(800),
        ..Opts::default()
    })
    .await;
    let p = Proxy::start(server_addr(&h)).await;
    let sets = h.dir.path().join("sets");
    let run = stalled_pull(&p, sets.clone()).await;
    let mut expired = h.server.expirations();
    tokio::time::timeout(Duration::from_secs(10), expired.wait_for(|n| *n >= 1))
        .await
        .unwrap()
        .unwrap();
    p.stall(false);
    assert_eq!(code_of(run).await, -520);
    assert!(!any_manifest(&sets));
    h.inst.term(Term::empty()).await.unwrap();
}

/// `stop_backup` while the client streams: -801; the client aborted the backup (a new one
/// begins) and removed its partial set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_backup_reaches_the_client_as_801() {
    let h = host(Opts::default()).await;
    let p = Proxy::start(server_addr(&h)).await;
    let sets = h.dir.path().join("sets");
    let run = stalled_pull(&p, sets.clone()).await;
    h.inst.stop_backup().await.unwrap();
    p.stall(false);
    assert_eq!(code_of(run).await, -801);
    assert!(!any_manifest(&sets));
    h.begin("full").await;
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// `stop_service` while the client streams: -1329, no set left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_service_reaches_the_client_as_1329() {
    let h = host(Opts::default()).await;
    let p = Proxy::start(server_addr(&h)).await;
    let sets = h.dir.path().join("sets");
    let run = stalled_pull(&p, sets.clone()).await;
    h.inst.stop_service().await.unwrap();
    p.stall(false);
    assert_eq!(code_of(run).await, -1329);
    assert!(!any_manifest(&sets));
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// `term` with STOP_BACKUP while the client streams: the backup is ended by the server and
/// the instance is gone, so the client's next call meets InvalidInstance (-1115, contract
/// 1.1: a terminated instance's handle). No set is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_reaches_the_client_as_1115() {
    let h = host(Opts::default()).await;
    let p = Proxy::start(server_addr(&h)).await;
    let sets = h.dir.path().join("sets");
    let run = stalled_pull(&p, sets.clone()).await;
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
    p.stall(false);
    assert_eq!(code_of(run).await, -1115);
    assert!(!any_manifest(&sets));
}

/// A plain `term` while the client streams fails with BackupInProgress (-505, contract
/// 1.2): the instance keeps running and the client's backup completes; a later begin is
/// BackupNotAllowedYet (-523).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_term_leaves_the_client_running() {
    let h = host(Opts::default()).await;
    let p = Proxy::start(server_addr(&h)).await;
    let sets = h.dir.path().join("sets");
    let run = stalled_pull(&p, sets.clone()).await;
    assert_eq!(h.inst.term(Term::empty()).await.unwrap_err().code(), -505);
    p.stall(false);
    let done = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    ese_actors::verify_backup_set(Path::new(&done.location)).unwrap();
    let e = pull(&h.url, BackupKind::Full, &sets).await.unwrap_err();
    assert_eq!(e.code(), Some(-523), "{e}");
}

/// Kinds the router does not serve are refused before anything is sent; a URL with nothing
/// listening is a transport error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_and_without_a_server() {
    let e = RemoteBackup::new(
        "http://127.0.0.1:1/v1/instances/x",
        RemoteOptions::default().kind(BackupKind::Copy),
    )
    .unwrap_err();
    assert_eq!(e.code(), Some(-1003));
    let e = RemoteBackup::new("ftp://h/v1/instances/x", RemoteOptions::default()).unwrap_err();
    assert_eq!(e.code(), Some(-1003));
    let dir = tempfile::tempdir().unwrap();
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/instances/x", free.local_addr().unwrap());
    drop(free);
    let e = pull(&url, BackupKind::Full, dir.path()).await.unwrap_err();
    assert!(matches!(e, RemoteError::Transport { .. }), "{e}");
    assert!(e.to_string().contains(&url), "{e}");
    assert!(!any_manifest(dir.path()));
}

/// An incremental pulled into a folder repository that lacks its parent (the full went
/// to another one): refused with -560 right after the begin, which names the parent, so
/// nothing was transferred, no set is left and the server's backup ended as aborted, its
/// logs not truncated; the next incremental into the full's repository continues the full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_pulled_into_a_repository_without_its_parent_is_refused() {
    let h = host(Opts::default()).await;
    let (sets, elsewhere) = (h.dir.path().join("sets"), h.dir.path().join("elsewhere"));
    let full = pull(&h.url, BackupKind::Full, &sets).await.unwrap();
    let b = RemoteBackup::new(
        &h.url,
        RemoteOptions::default().kind(BackupKind::Incremental),
    )
    .unwrap();
    let progress = b.subscribe();
    let e = b
        .run(&BackupTarget::parse(elsewhere.to_str().unwrap()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(-560), "{e}");
    let p = *progress.borrow();
    assert_eq!(
        (p.files_total, p.bytes_received),
        (0, 0),
        "the refusal came after a transfer: {p:?}"
    );
    let text = e.to_string();
    assert!(text.contains(&full.manifest.id), "{text}");
    assert!(text.contains(elsewhere.to_str().unwrap()), "{text}");
    assert!(
        std::fs::read_dir(&elsewhere).map_or(true, |mut d| d.next().is_none()),
        "a set was left in {}",
        elsewhere.display()
    );
    let inc = pull(&h.url, BackupKind::Incremental, &sets).await.unwrap();
    assert_eq!(
        inc.manifest.parent_id.as_deref(),
        Some(full.manifest.id.as_str())
    );
    assert!(
        inc.manifest.gen_low <= full.manifest.gen_high + 1,
        "logs were lost"
    );
    h.begin("full").await;
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// A read the server's disk fails: the client fails with the engine's -1022 at once (the
/// server answers every request for that file with it once the stream broke, rather than
/// cutting each resume at the same byte), removes its partial set, and the server's backup
/// is ended, so the next one begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_on_the_server_fails_the_pull_with_its_code_and_leaves_no_set() {
    let fs = Arc::new(FaultStorage::new());
    let h = host(Opts {
        faults: Some(fs.clone()),
        ..Opts::default()
    })
    .await;
    fs.arm(Fault::FailRead {
        nth: 1,
        path_contains: Some("data.edb".into()),
    });
    let sets = h.dir.path().join("sets");
    let run = pull(&h.url, BackupKind::Full, &sets);
    let e = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the client kept resuming")
        .unwrap_err();
    assert_eq!(e.code(), Some(-1022), "{e}");
    assert!(!any_manifest(&sets));
    h.begin("full").await;
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// A set store that takes `delay` to seal the set: a slow disk or object store on the
/// client's side, during which the client sends the server nothing of the backup itself.
/// With `slow_appends` set, every append after that many (counted over all files) takes
/// `delay` too; with `panicking` also set, such an append panics instead (a bug in a store).
#[derive(Debug)]
struct SlowStore {
    inner: Box<dyn SetStore>,
    delay: Duration,
    slow_appends: Option<Arc<AtomicUsize>>,
    panicking: bool,
}

/// A file of a [`SlowStore`] with slow appends.
struct SlowFile {
    inner: Box<dyn SetFile>,
    delay: Duration,
    /// Appends still to let through at full speed.
    fast: Arc<AtomicUsize>,
    panicking: bool,
}

impl SetFile for SlowFile {
    fn append(&mut self, chunk: &[u8]) -> ese_actors::Result<()> {
        let fast = self
            .fast
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !fast {
            assert!(!self.panicking, "a store's bug");
            std::thread::sleep(self.delay);
        }
        self.inner.append(chunk)
    }
    fn finish(
        self: Box<Self>,
        content: ese_actors::ese::backup::set::Content,
    ) -> ese_actors::Result<Option<ese_actors::ese::backup::set::Stored>> {
        self.inner.finish(content)
    }
}

impl Files for SlowStore {
    fn open_read(&self, name: &Path) -> ese_actors::Result<FileRef> {
        self.inner.open_read(name)
    }
    fn shown(&self, name: &Path) -> PathBuf {
        self.inner.shown(name)
    }
    fn stored_len(&self, name: &Path) -> ese_actors::Result<u64> {
        self.inner.stored_len(name)
    }
}

impl SetStore for SlowStore {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn name(&self) -> Option<String> {
        self.inner.name()
    }
    fn check_new(&self) -> ese_actors::Result<()> {
        self.inner.check_new()
    }
    fn prepare(&mut self) -> ese_actors::Result<()> {
        self.inner.prepare()
    }
    fn create(&mut self, name: &Path) -> ese_actors::Result<Box<dyn SetFile>> {
        let inner = self.inner.create(name)?;
        Ok(match &self.slow_appends {
            Some(fast) => Box::new(SlowFile {
                inner,
                delay: self.delay,
                fast: fast.clone(),
                panicking: self.panicking,
            }),
            None => inner,
        })
    }
    fn seal(&mut self) -> ese_actors::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.seal()
    }
    fn stored_len_in(&self, set: Option<&str>, name: &Path) -> ese_actors::Result<u64> {
        self.inner.stored_len_in(set, name)
    }
    fn publish(&mut self, manifest: &[u8]) -> ese_actors::Result<()> {
        self.inner.publish(manifest)
    }
    fn discard(&mut self) {
        self.inner.discard()
    }
}

/// A host with a lease of `ttl`, and a store for the new set `name` in its `sets` folder that
/// takes `delay` to seal.
async fn slow_sealing(
    ttl: Duration,
    name: &str,
    delay: Duration,
) -> (Host, BackupTarget, Box<SlowStore>) {
    let h = host(Opts {
        ttl,
        ..Opts::default()
    })
    .await;
    let target = BackupTarget::parse(h.dir.path().join("sets").to_str().unwrap()).unwrap();
    let inner = target.open().unwrap().new_set(name).unwrap();
    let store = SlowStore {
        inner,
        delay,
        slow_appends: None,
        panicking: false,
    };
    (h, target, Box::new(store))
}

/// A client busy on its own side for three leases (sealing its set on a slow store) keeps
/// its backup: it renews the lease while it works, so the backup is not ended under it as a
/// dead client's would be, and the set completes, truncates and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_busy_longer_than_the_lease_keeps_its_backup() {
    // The heartbeat renews every third of a lease: 1.5 s leaves a second for a loaded
    // machine's scheduling delays.
    let ttl = Duration::from_millis(1500);
    let (h, target, store) = slow_sealing(ttl, "slow-seal", 3 * ttl).await;
    let b = RemoteBackup::new(&h.url, RemoteOptions::default()).unwrap();
    let done = b.run_in(store).await.unwrap();
    assert_eq!(*h.server.expirations().borrow(), 0, "a lease expired");
    ese_actors::verify_at(&target, "slow-seal", ese_actors::VerifyDepth::Full, None)
        .await
        .unwrap();
    assert!(done.manifest.content_bytes() > 0);
    h.inst.term(Term::empty()).await.unwrap();
}

/// A client stuck in its own write for longer than `max_stall` stops renewing its lease: the
/// server ends the backup as for a dead client (its logs are not held for ever), and the
/// client, once its write returns, fails with NoBackup (-520) and removes its set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalled_past_max_stall_loses_its_lease_with_520() {
    let ttl = Duration::from_millis(400);
    let (h, _, store) = slow_sealing(ttl, "stuck", 10 * ttl).await;
    let sets = h.dir.path().join("sets");
    let opts = RemoteOptions::default().max_stall(2 * ttl);
    let e = RemoteBackup::new(&h.url, opts)
        .unwrap()
        .run_in(store)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(-520), "{e}");
    assert_eq!(*h.server.expirations().borrow(), 1);
    assert!(!any_manifest(&sets));
    h.begin("full").await;
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// A token that could not finish the backup (no `truncate`, or no `end`) is refused right
/// after the begin, before a byte is transferred, with PermissionDenied (-1809); a token with
/// every scope a pull needs backs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_could_not_finish_is_refused_before_any_transfer() {
    let h = host(Opts {
        tokens: Some(
            "reader-token-0000001 read\n\
             no-end-token-0000002 read,truncate\n\
             puller-token-0000003 read,truncate,end\n",
        ),
        ..Opts::default()
    })
    .await;
    let sets = h.dir.path().join("sets");
    let target = BackupTarget::parse(sets.to_str().unwrap()).unwrap();
    for (token, scope) in [
        ("reader-token-0000001", "truncate and end"),
        ("no-end-token-0000002", "end"),
    ] {
        let b = RemoteBackup::new(&h.url, RemoteOptions::default().token(token)).unwrap();
        let e = b.run(&target).await.unwrap_err();
        assert_eq!(e.code(), Some(-1809), "{e}");
        assert!(e.to_string().contains(scope), "{e}");
        assert_eq!(b.subscribe().borrow().bytes_received, 0);
        assert!(!any_manifest(&sets));
        // Its backup runs on until its lease ends (it may not end it); the host ends it here.
        h.inst.stop_backup().await.unwrap();
        h.inst
            .end_external_backup(ese_actors::BackupEnd::ABORT)
            .await
            .unwrap();
    }
    let b = RemoteBackup::new(
        &h.url,
        RemoteOptions::default().token("puller-token-0000003"),
    )
    .unwrap();
    b.run(&target).await.unwrap();
    assert!(any_manifest(&sets));
    h.inst.term(Term::empty()).await.unwrap();
}

/// `max_rate` holds the whole pull to the rate: it takes at least its bytes divided by it,
/// and the set is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_pull_takes_at_least_its_bytes_over_the_rate() {
    let h = host(Opts::default()).await;
    let sets = h.dir.path().join("sets");
    let rate = 8u64 << 20;
    let b = RemoteBackup::new(&h.url, RemoteOptions::default().max_rate(rate)).unwrap();
    let started = std::time::Instant::now();
    let out = b
        .run(&BackupTarget::parse(sets.to_str().unwrap()).unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    let received = b.subscribe().borrow().bytes_received;
    assert!(
        received > 2 * rate / 10,
        "a pull long enough to pace: {received} bytes"
    );
    let least = Duration::from_secs_f64(received as f64 / rate as f64);
    assert!(
        took >= least,
        "{received} bytes in {took:?}, under {least:?} at the rate"
    );
    let report = ese_actors::verify_backup_set(Path::new(&out.location)).unwrap();
    assert!(report.pages > 0);
    h.inst.term(Term::empty()).await.unwrap();
}

/// A run whose future is dropped in the middle of the database image (a host that gave up
/// on it), while its download waits for bytes that do not come: the thread receiving the
/// file stops at once rather than when its read times out, the partial set is removed, and
/// the server's backup is aborted, so a new one begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_stops_receiving_removes_its_set_and_aborts_its_backup() {
    let h = host(Opts::default()).await;
    let p = Proxy::start(server_addr(&h)).await;
    let sets = h.dir.path().join("sets");
    let opts = RemoteOptions {
        read_timeout: Duration::from_secs(120),
        ..RemoteOptions::default()
    };
    let b = RemoteBackup::new(&p.url(), opts).unwrap();
    let mut progress = b.subscribe();
    let target = BackupTarget::parse(sets.to_str().unwrap()).unwrap();
    // 256 KiB into the 2 MiB image, however late this task wakes.
    p.stall_after(256 << 10);
    let run = tokio::spawn(async move { b.run(&target).await });
    p.stalled_by_itself().await;
    // Until the client has read what was on its way: its download then waits on the socket.
    let mut seen = progress.borrow().bytes_received;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = progress.borrow().bytes_received;
        if now == seen {
            break;
        }
        seen = now;
    }
    drop_mid_image(&progress, run).await;
    // The receiving thread holds the last sender of the progress channel.
    let ended = async { while progress.changed().await.is_ok() {} };
    tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the receiving thread went on waiting after its run was dropped");
    p.stall(false);
    let gone = async {
        while std::fs::read_dir(&sets).is_ok_and(|mut d| d.next().is_some()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("the dropped run's partial set was left");
    let begun = async {
        loop {
            let res = h
                .http
                .post(format!("{}/backups", h.url))
                .json(&serde_json::json!({ "kind": "full" }))
                .send()
                .await
                .unwrap();
            if res.status() == 201 {
                return;
            }
            let v: serde_json::Value = res.json().await.unwrap();
            assert_eq!(v["error"]["code"], -505, "{v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), begun)
        .await
        .expect("the dropped run's backup was not aborted");
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// A run dropped while its receiving thread is inside a slow write: the write ends in its
/// own time, but its bytes are not counted into the next run's figures, and the next run on
/// the same client ends with figures that add up; the dropped run's set is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_outlives_its_dropped_run_does_not_count_in_the_next_run() {
    let h = host(Opts::default()).await;
    let sets = h.dir.path().join("sets");
    let target = BackupTarget::parse(sets.to_str().unwrap()).unwrap();
    // The image's first frame is written at once; the next append takes 1.5 s, so the run
    // is dropped inside it however late this task wakes.
    let store = SlowStore {
        inner: target.open().unwrap().new_set("dropped").unwrap(),
        delay: Duration::from_millis(1500),
        slow_appends: Some(Arc::new(AtomicUsize::new(1))),
        panicking: false,
    };
    let b = Arc::new(RemoteBackup::new(&h.url, RemoteOptions::default()).unwrap());
    let mut progress = b.subscribe();
    let first = b.clone();
    let run = tokio::spawn(async move { first.run_in(Box::new(store)).await });
    first_bytes(&mut progress).await;
    // The receiving thread is in its next append by now, for 1.5 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop_mid_image(&progress, run).await;
    let done = b.run(&target).await.unwrap();
    // Past the end of the dropped run's write, and its chance to count.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let p = *progress.borrow();
    assert_eq!(p, done.progress, "figures changed after the run ended");
    assert_eq!(p.bytes_done, p.bytes_total);
    assert_eq!(p.bytes_received, p.bytes_total);
    assert!(
        !sets.join("dropped").exists(),
        "the dropped run's set was left"
    );
    ese_actors::verify_backup_set(Path::new(&done.location)).unwrap();
    h.inst.term(Term::empty()).await.unwrap();
}

/// A set store whose append panics (a bug, not an error): the run fails with
/// `InternalError` naming the panic instead of hanging or taking the host down, removes its
/// set, and the server's backup is aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_set_store_fails_the_run_with_internal_error() {
    let h = host(Opts::default()).await;
    let sets = h.dir.path().join("sets");
    let target = BackupTarget::parse(sets.to_str().unwrap()).unwrap();
    let store = SlowStore {
        inner: target.open().unwrap().new_set("panics").unwrap(),
        delay: Duration::ZERO,
        slow_appends: Some(Arc::new(AtomicUsize::new(0))),
        panicking: true,
    };
    let b = RemoteBackup::new(&h.url, RemoteOptions::default()).unwrap();
    let e = b.run_in(Box::new(store)).await.unwrap_err();
    assert_eq!(e.code(), Some(-107), "{e}");
    assert!(e.to_string().contains("a store's bug"), "{e}");
    assert!(!sets.join("panics").exists(), "the set was left");
    h.begin("full").await;
    h.inst.term(Term::STOP_BACKUP).await.unwrap();
}

/// A host on a current-thread runtime (`#[tokio::main(flavor = "current_thread")]`) serves
/// and pulls on its one thread: the client's receiving thread waits on its own runtime and
/// writes outside any, so nothing blocks the host's only worker, and the set verifies.
#[tokio::test(flavor = "current_thread")]
async fn a_pull_on_a_current_thread_runtime_completes() {
    let h = host(Opts::default()).await;
    let sets = h.dir.path().join("sets");
    let out = pull(&h.url, BackupKind::Full, &sets).await.unwrap();
    assert!(out.progress.bytes_done > 0);
    let report = ese_actors::verify_backup_set(Path::new(&out.location)).unwrap();
    assert!(report.pages > 0);
    h.inst.term(Term::empty()).await.unwrap();
}
