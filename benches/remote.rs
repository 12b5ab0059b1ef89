//! Backing up a running instance over HTTP (`ese-http`'s router on loopback, pulled with
//! `ese_http::client::RemoteBackup`) against a local `Instance::backup_to_dir` of the same
//! instance, in one run. Prints one table and writes it as JSON to `target/bench/remote.json`.
//!
//! `cargo bench -p ese-bench --bench remote --features remote`; `ESE_BENCH_QUICK=1` runs the
//! short form (a 64 MiB database instead of 256 MiB, 2-second commit windows instead of 5).
//!
//! The figures:
//!
//! 1. **Pull rate**: a full backup pulled over loopback HTTP into a set in a folder, MiB/s of
//!    content, against `backup_to_dir` (full) of the same instance into a folder on the same
//!    disk. Both write and fsync a whole set (images, logs, manifest) and truncate logs; after
//!    one unmeasured round of each, they run interleaved, 9 times each, and the medians are
//!    compared. Target >= 0.8x. The detail gives the CPU time each took per GiB (every
//!    thread of the process: server, engine and client for the pull), which varies far less
//!    from run to run than the rate on a shared machine.
//!    1r, information: the same file copied raw through a loopback TCP connection (a thread
//!    reading and sending, a thread receiving and writing: no HTTP, no engine) against a raw
//!    local copy, to tell what the socket itself costs here from what the pull's stack costs.
//! 2. **Resume cost**: the same pull through a TCP proxy that drops the connection once, in
//!    the middle of the database image. The client resumes with `Range`; the figure is the
//!    file-body bytes the client received (`RemoteProgress::bytes_received`) minus the set's
//!    content bytes, in chunks of the router's 1 MiB: what reached the client twice. Target
//!    <= 1 chunk. The detail also gives what the server sent twice (a layer around the router
//!    counts every byte of every `.../files/...` body it produced): the bytes that were in
//!    flight in socket buffers when the connection dropped, lost, and sent again from the
//!    resume window; on loopback that is what the kernel buffers, several MiB.
//! 3. **Commit p99 during a remote backup**: 8 sessions commit durably for a window with no
//!    backup, then for a window while the database image is pulled over HTTP back to back
//!    (begin, `GET .../databases`, `GET .../files/0` read to its end, `DELETE`: figure 4's
//!    load of the main table, full backup streams of the image, served over HTTP); the p99 of
//!    the second over the first, against figure 4's bound for a local backup (<= 1.25x).
//!    Beside it, information:
//!    3b, figure 4's own local load in the same run, so a miss can be told from what any
//!    backup stream costs on this machine; 3c, whole remote backups back to back (every log
//!    sealed, logs truncated, headers updated, the set written to memory: `/dev/shm` where
//!    there is one, as a client on another machine does not share the server's disk); 3d,
//!    the same with `RemoteOptions::max_rate` at 100 MiB/s (`ese backup --url
//!    --max-rate-mib 100`), what an operator does to spare the writers
//!    (`ESE_BENCH_PACED_MIB=N` paces it at N MiB/s instead, to find the rate a machine's
//!    writers bear).
//!
//! `ESE_BENCH_ONLY=pull|resume|p99` runs one figure; `ESE_BENCH_ONLY=pull-loop|local-loop|
//! image-loop|stream-loop|raw-loop` runs 20 pulls (or 20 `backup_to_dir`, 20 image pulls over
//! HTTP with nothing written, 20 streams of the image by the engine alone, 20 raw copies
//! through loopback TCP) back to back and prints each one's rate and CPU time, for a profiler
//! (`perf record -D` past the database's loading). `ESE_BENCH_CHUNK_MIB=N` sets the router's
//! chunk to N MiB instead of its default 1 MiB.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use ese_actors::{BackupKind, BackupTarget, Commit, Engine, Instance};
use ese_bench::figures::{Ratio, Row, Spec, Target};
use ese_bench::run::AnyResult;
use ese_bench::table::{out_dir, print_table};
use ese_bench::workloads::{
    commit_run, cpu_secs, fill_database, latency_under_backup, median, mib, percentile,
    stream_backup, CommitRun, Filled,
};
use ese_http::client::{RemoteBackup, RemoteOptions};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The router's read size (`Builder`'s default).
const CHUNK: u64 = 1 << 20;
const REPS: usize = 3;
/// Figure 1's pairs: its ratio moves by 0.1x from run to run at 3 on this shared machine,
/// more than the distance to its target, so it takes more pairs than the other figures.
const PULL_REPS: usize = 9;
const WRITERS: usize = 8;

static PULL_RATE: Spec = Spec {
    key: "remote.pull_rate",
    label: "1",
    name: "full backup pulled over loopback HTTP into a set, {} MiB db",
    unit: "MiB/s",
    baseline: "backup_to_dir",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_least(0.8)),
    peer: false,
};
static RAW_COPY: Spec = Spec {
    key: "remote.raw_loopback_copy",
    label: "1r",
    name: "raw copy of the database file through loopback TCP (no HTTP, no engine)",
    unit: "MiB/s",
    baseline: "raw local copy",
    ratio: Ratio::OursOverBaseline,
    target: None,
    peer: false,
};
static RESUME_COST: Spec = Spec {
    key: "remote.resume_resent",
    label: "2",
    name: "bytes a client received twice after one cut mid-image, in 1 MiB chunks",
    unit: "chunks",
    baseline: "",
    ratio: Ratio::None,
    target: Some(Target::at_most(1.0)),
    peer: false,
};
static P99_REMOTE: Spec = Spec {
    key: "remote.p99_under_pull",
    label: "3",
    name: "p99 durable commit, {} sessions, during image pulls over HTTP",
    unit: "ms",
    baseline: "no backup",
    ratio: Ratio::OursOverBaseline,
    target: Some(Target::at_most(1.25)),
    peer: false,
};
static P99_FULL: Spec = Spec {
    key: "remote.p99_under_full_pulls",
    label: "3c",
    name: "p99 durable commit, {} sessions, during whole remote backups back to back",
    unit: "ms",
    baseline: "no backup",
    ratio: Ratio::OursOverBaseline,
    target: None,
    peer: false,
};
static P99_LOCAL: Spec = Spec {
    key: "remote.p99_under_local",
    label: "3b",
    name: "p99 durable commit, {} sessions, during local backup streams (figure 4's load)",
    unit: "ms",
    baseline: "no backup",
    ratio: Ratio::OursOverBaseline,
    target: None,
    peer: false,
};

static P99_PACED: Spec = Spec {
    key: "remote.p99_under_paced_pulls",
    label: "3d",
    name: "p99 durable commit, {} sessions, during whole remote backups at max_rate {} MiB/s",
    unit: "ms",
    baseline: "no backup",
    ratio: Ratio::OursOverBaseline,
    target: None,
    peer: false,
};

/// Figure 3d's `RemoteOptions::max_rate`, in MiB/s: about a tenth of an unpaced pull here.
const PACED_MIB: u64 = 100;

/// Figure 3d's rate: `ESE_BENCH_PACED_MIB` if set to a positive number, else [`PACED_MIB`].
fn paced_mib() -> u64 {
    std::env::var("ESE_BENCH_PACED_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(PACED_MIB)
}

/// The router on loopback, with a count of the file-body bytes it sent.
struct Served {
    url: String,
    addr: std::net::SocketAddr,
    file_bytes: Arc<AtomicU64>,
}

async fn serve(inst: &Instance) -> AnyResult<Served> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut builder = ese_http::Builder::new().instance("bench", inst.clone());
    if let Some(mib) = std::env::var("ESE_BENCH_CHUNK_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        builder = builder.chunk_bytes(mib << 20);
    }
    let server = builder.build(addr)?;
    let file_bytes = Arc::new(AtomicU64::new(0));
    let counter = file_bytes.clone();
    let router = server
        .router()
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let counter = counter.clone();
            async move { count_file_bodies(req, next, counter).await }
        }));
    tokio::spawn(ese_http::serve(listener, router));
    Ok(Served {
        url: format!("http://{addr}/v1/instances/bench"),
        addr,
        file_bytes,
    })
}

/// Counts every byte of a file body as the router hands it to hyper.
async fn count_file_bodies(req: Request, next: Next, counter: Arc<AtomicU64>) -> Response {
    let is_file = req.uri().path().contains("/files/");
    let res = next.run(req).await;
    if !is_file {
        return res;
    }
    res.map(|body| {
        Body::new(body.map_frame(move |f| {
            if let Some(d) = f.data_ref() {
                counter.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
            f
        }))
    })
}

/// A TCP proxy to `upstream` that drops every connection once, the first time the bytes it
/// carried from the server reach `cut_at` (counted over all connections).
async fn cutting_proxy(upstream: std::net::SocketAddr, cut_at: u64) -> AnyResult<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let carried = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (carried, cut) = (carried.clone(), cut.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = pipe(client, server, carried, cut, cut_at).await;
            });
        }
    });
    Ok(format!("http://{addr}/v1/instances/bench"))
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    carried: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
    cut_at: u64,
) -> std::io::Result<()> {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = sr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let total = carried.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total >= cut_at && !cut.swap(true, Ordering::Relaxed) {
            // Both sockets dropped mid-body: the client sees its connection reset.
            up.abort();
            return Ok(());
        }
        cw.write_all(&buf[..n]).await?;
    }
    up.abort();
    Ok(())
}

/// What one pull did.
struct Pulled {
    content: u64,
    secs: f64,
    /// CPU seconds of the whole process during the pull.
    cpu: f64,
    resumes: u64,
    received: u64,
}

/// One full pull into a new set under `dir`.
async fn pull(url: &str, dir: &Path) -> AnyResult<Pulled> {
    pull_with(url, dir, RemoteOptions::default()).await
}

/// One full pull with `options`.
async fn pull_with(url: &str, dir: &Path, options: RemoteOptions) -> AnyResult<Pulled> {
    let (t, c) = (Instant::now(), cpu_secs());
    let backup = RemoteBackup::new(url, options.kind(BackupKind::Full))?;
    let target = BackupTarget::parse(dir.to_str().unwrap_or_default())?;
    let done = backup.run(&target).await?;
    Ok(Pulled {
        content: done.manifest.content_bytes(),
        secs: t.elapsed().as_secs_f64(),
        cpu: cpu_since(c),
        resumes: u64::from(done.progress.resumes),
        received: done.progress.bytes_received,
    })
}

/// One full `backup_to_dir` into `dir`, measured as a pull is.
async fn local(inst: &Instance, dir: &Path) -> AnyResult<Pulled> {
    let (t, c) = (Instant::now(), cpu_secs());
    let m = inst.backup_to_dir(dir, BackupKind::Full).await?;
    Ok(Pulled {
        content: m.content_bytes(),
        secs: t.elapsed().as_secs_f64(),
        cpu: cpu_since(c),
        resumes: 0,
        received: 0,
    })
}

/// CPU seconds since `before` (0 where the machine does not tell).
fn cpu_since(before: Option<f64>) -> f64 {
    match (before, cpu_secs()) {
        (Some(a), Some(b)) => (b - a).max(0.0),
        _ => 0.0,
    }
}

impl Pulled {
    fn rate(&self) -> f64 {
        mib(self.content) / self.secs.max(1e-9)
    }

    /// CPU seconds per GiB of content.
    fn cpu_per_gib(&self) -> f64 {
        self.cpu / gib(self.content)
    }
}

/// `ESE_BENCH_ONLY=pull-loop|local-loop|image-loop|stream-loop|raw-loop`: one kind of work
/// 20 times, each printed: whole pulls, `backup_to_dir`, the image over HTTP with nothing
/// written (figure 3's pull), the image streamed by the engine alone (`read_file` to its
/// end), figure 1r's raw copy through loopback TCP.
async fn profile_loop(f: &Filled, s: &Served, dir: &Path, kind: &str) -> AnyResult<()> {
    let http = reqwest::Client::new();
    for i in 0..20 {
        let d = dir.join(format!("loop-{i}"));
        let (t, c) = (Instant::now(), cpu_secs());
        let r = match kind {
            "pull" => pull(&s.url, &d).await?,
            "local" => local(&f.inst, &d).await?,
            "image" => streamed(image_pull(&http, &s.url).await?, t, c),
            "stream" => streamed(
                stream_backup(&f.inst, &f.path, CHUNK as usize, None)
                    .await?
                    .bytes,
                t,
                c,
            ),
            "raw" => {
                let (src, dst) = (f.path.clone(), d.clone());
                let r = tokio::task::spawn_blocking(move || raw_copy(&src, &dst, true)).await??;
                let _ = std::fs::remove_file(&d);
                r
            }
            other => return Err(format!("no loop of kind {other:?}").into()),
        };
        remove(&d);
        eprintln!(
            "  {kind} {:.1} MiB/s, {:.3} s, CPU {:.3} s ({:.2} s/GiB)",
            r.rate(),
            r.secs,
            r.cpu,
            r.cpu_per_gib()
        );
    }
    Ok(())
}

/// `bytes` streamed since `t` with the process's CPU at `c` then, measured as a pull is.
fn streamed(bytes: u64, t: Instant, c: Option<f64>) -> Pulled {
    Pulled {
        content: bytes,
        secs: t.elapsed().as_secs_f64(),
        cpu: cpu_since(c),
        resumes: 0,
        received: 0,
    }
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

async fn pull_rate(inst: &Instance, s: &Served, dir: &Path, db_mib: f64) -> AnyResult<Row> {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_cpu, mut theirs_cpu) = (Vec::new(), Vec::new());
    // The first backup after the database's loading is a third slower whichever kind it is
    // (`ESE_BENCH_ONLY=pull-loop` and `local-loop` both show it): one unmeasured round of
    // each first, so that the kind that happens to go first does not pay for it.
    let warm = dir.join("warm-up");
    pull(&s.url, &warm.join("pull")).await?;
    local(inst, &warm.join("local")).await?;
    remove(&warm);
    for i in 0..PULL_REPS {
        let (p, l) = (
            dir.join(format!("pull-{i}")),
            dir.join(format!("local-{i}")),
        );
        // Alternate which goes first, so a warmer cache or a quieter disk favours neither.
        let (r, b) = if i % 2 == 0 {
            let r = pull(&s.url, &p).await?;
            (r, local(inst, &l).await?)
        } else {
            let b = local(inst, &l).await?;
            (pull(&s.url, &p).await?, b)
        };
        remove(&p);
        remove(&l);
        ours.push(r.rate());
        theirs.push(b.rate());
        ours_cpu.push(r.cpu_per_gib());
        theirs_cpu.push(b.cpu_per_gib());
        eprintln!("  pull {:.1} MiB/s, local {:.1} MiB/s", ours[i], theirs[i]);
    }
    Ok(PULL_RATE
        .row(&[&format!("{db_mib:.0}")], median(&ours))
        .baseline(median(&theirs))
        .detail(format!(
            "medians of {PULL_REPS}, interleaved; pull {ours:.1?}, backup_to_dir {theirs:.1?} MiB/s; \
             CPU per GiB (all threads) pull {:.2} s, backup_to_dir {:.2} s",
            median(&ours_cpu),
            median(&theirs_cpu)
        )))
}

/// Figure 1r: what the loopback socket alone costs on this machine, so that figure 1's miss
/// can be told from the socket's. The database file (the bytes figure 1 pulls) copied
/// through a TCP connection on loopback, one thread reading the file and sending, one
/// receiving and writing, against the same file copied by one thread; both in 1 MiB reads and
/// writes through the engine's file layer, with the set writer's writeback hint, fsynced.
/// Interleaved, medians of `REPS`, and the CPU time per GiB of each.
async fn raw_copies(src: std::path::PathBuf, dir: std::path::PathBuf) -> AnyResult<Row> {
    let (through, local, bytes, cpu) = tokio::task::spawn_blocking(move || {
        let (mut through, mut local) = (Vec::new(), Vec::new());
        let (mut through_cpu, mut local_cpu) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for i in 0..REPS {
            let (t, l) = (
                dir.join(format!("raw-tcp-{i}")),
                dir.join(format!("raw-local-{i}")),
            );
            let (a, b) = if i % 2 == 0 {
                let a = raw_copy(&src, &t, true)?;
                (a, raw_copy(&src, &l, false)?)
            } else {
                let b = raw_copy(&src, &l, false)?;
                (raw_copy(&src, &t, true)?, b)
            };
            let _ = std::fs::remove_file(&t);
            let _ = std::fs::remove_file(&l);
            bytes = a.content;
            through.push(a.rate());
            local.push(b.rate());
            through_cpu.push(a.cpu_per_gib());
            local_cpu.push(b.cpu_per_gib());
        }
        let cpu = (median(&through_cpu), median(&local_cpu));
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((through, local, bytes, cpu))
    })
    .await?
    .map_err(|e| e.to_string())?;
    Ok(RAW_COPY
        .row(&[], median(&through))
        .baseline(median(&local))
        .detail(format!(
            "{:.0} MiB file, medians of {REPS}, interleaved; through loopback {through:.1?}, \
             local {local:.1?} MiB/s; CPU per GiB through loopback {:.2} s, local {:.2} s",
            mib(bytes),
            cpu.0,
            cpu.1
        )))
}

/// Figure 1r's detail gains where a pull's CPU goes: the database image streamed by the
/// engine alone (`read_file` to its end, nothing written) and the same image over HTTP
/// (figure 3's pull: nothing written), in CPU seconds per GiB, medians of `REPS`. A whole
/// pull adds the set's writing to the second, `backup_to_dir` to the first.
async fn with_image_layers(raw: Row, f: &Filled, s: &Served) -> AnyResult<Row> {
    let http = reqwest::Client::new();
    let (mut engine, mut over_http) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        let (t, c) = (Instant::now(), cpu_secs());
        let bytes = stream_backup(&f.inst, &f.path, CHUNK as usize, None)
            .await?
            .bytes;
        engine.push(streamed(bytes, t, c).cpu_per_gib());
        let (t, c) = (Instant::now(), cpu_secs());
        let bytes = image_pull(&http, &s.url).await?;
        over_http.push(streamed(bytes, t, c).cpu_per_gib());
    }
    let detail = format!(
        "{}; the image alone, CPU per GiB: the engine's stream {:.2} s, over HTTP {:.2} s",
        raw.detail,
        median(&engine),
        median(&over_http)
    );
    Ok(raw.detail(detail))
}

/// `bytes` in GiB (never zero, as a divisor).
fn gib(bytes: u64) -> f64 {
    (bytes as f64 / f64::from(1u32 << 30)).max(1e-9)
}

/// One raw copy of `src` into `dst` (through a loopback TCP connection when `tcp`),
/// measured as a pull is.
fn raw_copy(src: &Path, dst: &Path, tcp: bool) -> AnyResult<Pulled> {
    use ese::io::{OpenMode, OsStorage, Storage};
    use std::io::{Read, Write};
    let from = OsStorage.open(src, OpenMode::ReadOnly)?;
    let to = OsStorage.open(dst, OpenMode::Create)?;
    let (t, c) = (Instant::now(), cpu_secs());
    let read = move |sink: &mut dyn FnMut(&[u8]) -> AnyResult<()>| -> AnyResult<u64> {
        let mut buf = vec![0u8; CHUNK as usize];
        let mut at = 0;
        loop {
            let n = from.read_at(&mut buf, at)?;
            if n == 0 {
                return Ok(at);
            }
            sink(&buf[..n])?;
            at += n as u64;
        }
    };
    let mut written = 0u64;
    let mut hinted = 0u64;
    let mut write = |chunk: &[u8]| -> AnyResult<()> {
        to.write_at(chunk, written)?;
        written += chunk.len() as u64;
        if written - hinted >= RAW_WRITEBACK {
            let from = hinted.saturating_sub(RAW_WRITEBACK);
            to.write_back(from, written - from);
            hinted = written;
        }
        Ok(())
    };
    if tcp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let sender = std::thread::spawn(move || -> AnyResult<u64> {
            let mut out = std::net::TcpStream::connect(addr)?;
            read(&mut |c| Ok(out.write_all(c)?))
        });
        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0u8; CHUNK as usize];
        // Whole 1 MiB writes, as the local copy makes: the socket's reads are gathered.
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                match conn.read(&mut buf[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                break;
            }
            write(&buf[..filled])?;
        }
        let sent = sender.join().map_err(|_| "the raw sender panicked")??;
        if sent != written {
            return Err(format!("sent {sent} bytes, received {written}").into());
        }
    } else {
        read(&mut write)?;
    }
    to.sync()?;
    Ok(streamed(written, t, c))
}

/// The set writer's writeback hint interval (`DirFile`'s), used by the raw copies too.
const RAW_WRITEBACK: u64 = 8 << 20;

async fn resume_cost(s: &Served, db_bytes: u64, dir: &Path) -> AnyResult<Row> {
    let proxy = cutting_proxy(s.addr, db_bytes / 2).await?;
    let before = s.file_bytes.load(Ordering::Relaxed);
    let set = dir.join("cut");
    let r = pull(&proxy, &set).await?;
    let sent = s.file_bytes.load(Ordering::Relaxed) - before;
    remove(&set);
    if r.resumes == 0 {
        return Err("the proxy's cut did not make the client resume".into());
    }
    let twice = r.received.saturating_sub(r.content);
    let server_twice = sent.saturating_sub(r.content);
    Ok(RESUME_COST
        .row(&[], twice as f64 / CHUNK as f64)
        .detail(format!(
            "{} resume(s); the client received {} file-body bytes for {} bytes of content \
             ({twice} twice); the server sent {sent} ({server_twice} twice: lost in flight in \
             socket buffers at the cut, sent again from its window) in {:.2} s",
            r.resumes, r.received, r.content, r.secs
        )))
}

fn p99_ms(r: &CommitRun) -> f64 {
    percentile(&r.latencies, 99.0) * 1e3
}

/// One stream of the database image over HTTP: begin, the image read to its end, the
/// backup aborted. Answers the bytes received.
async fn image_pull(http: &reqwest::Client, url: &str) -> AnyResult<u64> {
    let begun: serde_json::Value = http
        .post(format!("{url}/backups"))
        .json(&json!({"kind": "full"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = begun["id"].as_str().ok_or("no backup id")?.to_string();
    let backup = format!("{url}/backups/{id}");
    http.get(format!("{backup}/databases"))
        .send()
        .await?
        .error_for_status()?;
    let mut res = http
        .get(format!("{backup}/files/0"))
        .send()
        .await?
        .error_for_status()?;
    let mut n = 0;
    while let Some(c) = res.chunk().await? {
        n += c.len() as u64;
    }
    http.delete(&backup).send().await?.error_for_status()?;
    Ok(n)
}

/// What one figure-3 window saw: the writers' run, the loads begun, and the file bytes the
/// server sent while the writers ran (the backups' progress beside them, paced or not).
struct Loaded {
    run: CommitRun,
    loads: u64,
    sent: u64,
}

/// Commits for `window` while `load` runs back to back.
async fn under<F, Fut>(f: &Filled, s: &Served, window: Duration, load: F) -> AnyResult<Loaded>
where
    F: Fn(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = AnyResult<()>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let task = tokio::spawn(async move {
        let mut n = 0;
        while !st.load(Ordering::Relaxed) {
            if let Err(e) = load(n).await {
                eprintln!("  (a backup of the load failed: {e})");
            }
            n += 1;
        }
        n
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = s.file_bytes.load(Ordering::Relaxed);
    let run = commit_run(&f.inst, f.table, WRITERS, window, Commit::Durable).await;
    let sent = s.file_bytes.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let loads = task.await?;
    Ok(Loaded {
        run: run?,
        loads,
        sent,
    })
}

async fn p99_rows(f: &Filled, s: &Served, window: Duration) -> AnyResult<Vec<Row>> {
    let quiet = commit_run(&f.inst, f.table, WRITERS, window, Commit::Durable).await?;
    let (http, url) = (reqwest::Client::new(), s.url.clone());
    let images = under(f, s, window, move |_| {
        let (http, url) = (http.clone(), url.clone());
        async move { image_pull(&http, &url).await.map(|_| ()) }
    })
    .await?;
    let local = latency_under_backup(f, f.table, WRITERS, window).await?;
    let shm = client_disk();
    let (url, root) = (s.url.clone(), shm.path().to_path_buf());
    let whole = under(f, s, window, move |n| {
        let (url, d) = (url.clone(), root.join(format!("run-{n}")));
        async move {
            let r = pull(&url, &d).await.map(|_| ());
            remove(&d);
            r
        }
    })
    .await?;
    let (url, root) = (s.url.clone(), shm.path().to_path_buf());
    let rate = paced_mib();
    let paced = under(f, s, window, move |n| {
        let (url, d) = (url.clone(), root.join(format!("paced-{n}")));
        let options = RemoteOptions::default().max_rate(rate << 20);
        async move {
            let r = pull_with(&url, &d, options).await.map(|_| ());
            remove(&d);
            r
        }
    })
    .await?;
    let q = p99_ms(&quiet);
    let secs = window.as_secs_f64();
    let beside = |l: &Loaded, what: &str| {
        format!(
            "{} {what} begun; {:.0} MiB sent while the writers ran ({:.0} MiB/s); commits/s \
             {:.0}",
            l.loads,
            mib(l.sent),
            mib(l.sent) / secs,
            l.run.rate()
        )
    };
    Ok(vec![
        P99_REMOTE
            .row(&[&WRITERS], p99_ms(&images.run))
            .baseline(q)
            .detail(format!(
                "{secs:.1} s windows; {}; quiet commits/s {:.0}",
                beside(&images, "image pulls"),
                quiet.rate()
            )),
        P99_LOCAL
            .row(&[&WRITERS], p99_ms(&local.loaded))
            .baseline(p99_ms(&local.quiet))
            .detail(format!(
                "its own quiet window; {:.0} MiB streamed in the window; commits/s {:.0}",
                mib(local.backup_bytes),
                local.loaded.rate()
            )),
        P99_FULL
            .row(&[&WRITERS], p99_ms(&whole.run))
            .baseline(q)
            .detail(format!(
                "{}; sets into {}",
                beside(&whole, "whole backups"),
                shm.path().display()
            )),
        P99_PACED
            .row(&[&WRITERS, &rate], p99_ms(&paced.run))
            .baseline(q)
            .detail(beside(&paced, "paced backups")),
    ])
}

/// Where the p99 figure's client writes: memory if the machine has `/dev/shm`.
fn client_disk() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let b = tempfile::Builder::new()
        .prefix("ese-remote-bench")
        .to_owned();
    match shm.is_dir() {
        true => b.tempdir_in(shm),
        false => b.tempdir(),
    }
    .unwrap_or_else(|_| tempfile::tempdir().expect("a temporary directory"))
}

async fn run(quick: bool, dir: &Path) -> AnyResult<Vec<Row>> {
    let engine = Engine::new();
    let db_bytes: u64 = if quick { 64 << 20 } else { 256 << 20 };
    let window = Duration::from_secs(if quick { 2 } else { 5 });
    eprintln!("remote: loading a {} MiB database", db_bytes >> 20);
    let f = fill_database(&engine, "bench", &dir.join("inst"), db_bytes).await?;
    let served = serve(&f.inst).await?;
    let sets = dir.join("sets");
    std::fs::create_dir_all(&sets)?;
    let only = std::env::var("ESE_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only == name;
    let mut rows = Vec::new();
    if let Some(kind) = only.strip_suffix("-loop") {
        profile_loop(&f, &served, &sets, kind).await?;
    }
    if wanted("pull") {
        eprintln!("1: pull rate against backup_to_dir");
        rows.push(pull_rate(&f.inst, &served, &sets, mib(f.file_bytes)).await?);
        eprintln!("1r: raw copies of the database file, through loopback TCP and locally");
        let raw = raw_copies(f.path.clone(), sets.clone()).await?;
        rows.push(with_image_layers(raw, &f, &served).await?);
    }
    if wanted("resume") {
        eprintln!("2: a pull cut once mid-image");
        rows.push(resume_cost(&served, f.file_bytes, &sets).await?);
    }
    if wanted("p99") {
        eprintln!("3: commit p99 during pulls and during local backup streams");
        rows.extend(p99_rows(&f, &served, window).await?);
    }
    f.inst.term(ese_actors::Term::empty()).await?;
    Ok(rows)
}

fn main() -> AnyResult<()> {
    let quick = std::env::var("ESE_BENCH_QUICK").is_ok_and(|v| v != "0");
    let mode = if quick { "quick" } else { "full" };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let tmp = tempfile::Builder::new()
        .prefix("ese-remote-bench")
        .tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let t0 = Instant::now();
    let rows = rt.block_on(run(quick, tmp.path()))?;
    println!();
    println!(
        "ese remote bench ({mode} mode, {cpus} CPUs; {:.0} s); ese-http on loopback, \
         RemoteBackup with its defaults, the router's 1 MiB chunks",
        t0.elapsed().as_secs_f64()
    );
    print_table(&rows, "baseline");
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let out = json!({ "mode": mode, "machine": { "cpus": cpus }, "rows": rows });
    std::fs::write(dir.join("remote.json"), serde_json::to_vec_pretty(&out)?)?;
    Ok(())
}
