//! A host for the tests: a real instance on files in a tempdir, a writer committing, and the
//! backup router served on loopback.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ese_actors::ese::io::{FaultStorage, StorageRef};
use ese_actors::{Commit, Engine, Instance, InstanceParams, OpenOptions, TableId, WriteBatch};
use ese_http::{BackupServer, Builder, Tokens};
use http_body_util::BodyExt;

/// How many rows the database holds before the test starts (about 2 MiB of values).
pub const PRELOAD: usize = 2000;
/// The size of every engine read in the tests: several chunks per database image.
pub const CHUNK: usize = 64 << 10;

pub fn params(dir: &Path) -> InstanceParams {
    InstanceParams::new(dir).log_file_size(256 << 10)
}

/// A writer committing `w{i}` keys in order until stopped.
pub struct Writer {
    pub stop: Arc<AtomicBool>,
    pub acked: Arc<AtomicI64>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

pub struct Host {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    pub inst: Instance,
    pub table: TableId,
    pub db_path: PathBuf,
    pub url: String,
    pub server: BackupServer,
    pub http: reqwest::Client,
}

/// Options of a test host.
pub struct Opts {
    pub ttl: Duration,
    pub tokens: Option<&'static str>,
    /// The resume window, if not the default.
    pub window: Option<u64>,
    /// A file page (8 KiB, from 0) of the database damaged on disk before the router serves:
    /// the instance is shut down cleanly, a byte of the page flipped, and the instance opened
    /// again.
    pub damaged_page: Option<u64>,
    /// The instance's files on this fault-injecting storage instead of the disk.
    pub faults: Option<Arc<FaultStorage>>,
}

impl Default for Opts {
    fn default() -> Opts {
        // Long enough never to expire in a test that does not wait for it.
        Opts {
            ttl: Duration::from_secs(600),
            tokens: None,
            window: None,
            damaged_page: None,
            faults: None,
        }
    }
}

pub async fn host(opts: Opts) -> Host {
    host_with(opts, |b, _| b).await
}

/// A host whose router `more` configures further (it gets the host's tempdir).
pub async fn host_with(opts: Opts, more: impl FnOnce(Builder, &Path) -> Builder) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let storage = match &opts.faults {
        Some(fs) => fs.clone() as StorageRef,
        None => ese_actors::ese::io::os(),
    };
    let inst = engine
        .create_instance_on("src", params(&dir.path().join("inst")), storage)
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db_path = dir.path().join("inst").join("data.edb");
    let db = inst
        .open_database(&db_path, OpenOptions { create: true })
        .await
        .unwrap();
    let table = inst.ensure_table(db, "t").await.unwrap();
    let value = vec![7u8; 1000];
    for start in (0..PRELOAD).step_by(200) {
        let mut b = WriteBatch::new();
        for i in start..start + 200 {
            b.put(table, format!("p{i:06}").as_bytes(), &value);
        }
        inst.write(b, Commit::Lazy).await.unwrap();
    }
    let inst = match opts.damaged_page {
        Some(page) => {
            reopened_with_damage(&engine, inst, &dir.path().join("inst"), &db_path, page).await
        }
        None => inst,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut b = Builder::new()
        .instance("src", inst.clone())
        .lease_ttl(opts.ttl)
        .chunk_bytes(CHUNK);
    if let Some(n) = opts.window {
        b = b.window_bytes(n);
    }
    if let Some(t) = opts.tokens {
        b = b.tokens(Tokens::parse(t).unwrap());
    }
    let server = more(b, dir.path()).build(addr).unwrap();
    tokio::spawn(ese_http::serve(listener, server.router()));
    Host {
        dir,
        engine,
        inst,
        table,
        db_path,
        url: format!("http://{addr}/v1/instances/src"),
        server,
        http: reqwest::Client::new(),
    }
}

/// `inst` shut down cleanly, a byte of file page `page` of `db` flipped, and the instance
/// opened again with the database attached (attaching reads the catalog, not that page).
async fn reopened_with_damage(
    engine: &Engine,
    inst: Instance,
    dir: &Path,
    db: &Path,
    page: u64,
) -> Instance {
    use std::os::unix::fs::FileExt;
    inst.term(ese_actors::Term::empty()).await.unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .unwrap();
    let at = page * 8192 + 100;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    f.sync_all().unwrap();
    let inst = engine.create_instance("src", params(dir)).await.unwrap();
    inst.init().await.unwrap();
    inst.attach_database(db).await.unwrap();
    inst
}

impl Host {
    pub fn writer(&self) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicI64::new(-1));
        let (inst, table, s, a) = (self.inst.clone(), self.table, stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut i: i64 = 0;
            while !s.load(Ordering::Relaxed) {
                let mut tx = inst.transaction().await.unwrap();
                tx.put(table, format!("w{i:08}").as_bytes(), &[1u8; 64])
                    .await
                    .unwrap();
                tx.commit(Commit::Durable).await.unwrap();
                a.store(i, Ordering::SeqCst);
                i += 1;
            }
        });
        Writer { stop, acked, task }
    }

    pub fn backup(&self, id: &str) -> String {
        format!("{}/backups/{id}", self.url)
    }

    /// Begins a backup of `kind` and answers its id.
    pub async fn begin(&self, kind: &str) -> String {
        let res = self
            .http
            .post(format!("{}/backups", self.url))
            .json(&serde_json::json!({ "kind": kind }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let v: serde_json::Value = res.json().await.unwrap();
        v["id"].as_str().unwrap().to_string()
    }
}

/// The status and the ESE error of a failed answer: (status, code, name).
pub async fn ese_error(res: reqwest::Response) -> (u16, i64, String) {
    let status = res.status().as_u16();
    let v: serde_json::Value = res.json().await.unwrap();
    let e = &v["error"];
    assert!(e["message"].is_string(), "{v}");
    (
        status,
        e["code"].as_i64().unwrap(),
        e["name"].as_str().unwrap().to_string(),
    )
}

/// A whole response body and its trailers (the request must carry `TE: trailers`).
pub struct Pulled {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
    pub trailers: Option<reqwest::header::HeaderMap>,
}

impl Pulled {
    pub fn trailer(&self, name: &str) -> Option<u32> {
        let v = self.trailers.as_ref()?.get(name)?.to_str().ok()?;
        u32::from_str_radix(v, 16).ok()
    }
}

pub async fn get_file(h: &Host, id: &str, file: &str, range: Option<u64>) -> reqwest::Response {
    let mut req = h
        .http
        .get(format!("{}/files/{file}", h.backup(id)))
        .header("te", "trailers");
    if let Some(n) = range {
        req = req.header("range", format!("bytes={n}-"));
    }
    req.send().await.unwrap()
}

/// Reads a response to its end, data and trailers.
pub async fn pull(res: reqwest::Response) -> Pulled {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let res: axum::http::Response<reqwest::Body> = res.into();
    let mut body = res.into_body();
    let mut bytes = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(d) => bytes.extend_from_slice(&d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    Pulled {
        status,
        headers,
        bytes,
        trailers,
    }
}

/// Reads at least `n` bytes of a response's body, then drops it (a cut connection).
pub async fn pull_some(res: reqwest::Response, n: usize) -> Vec<u8> {
    let res: axum::http::Response<reqwest::Body> = res.into();
    let mut body = res.into_body();
    let mut bytes = Vec::new();
    while bytes.len() < n {
        let frame = body.frame().await.unwrap().unwrap();
        if let Ok(d) = frame.into_data() {
            bytes.extend_from_slice(&d);
        }
    }
    bytes
}

pub fn crc(b: &[u8]) -> u32 {
    crc32c::crc32c(b)
}

/// A response's JSON body.
pub async fn json(res: reqwest::Response) -> serde_json::Value {
    res.json().await.unwrap()
}

/// Requests on one backup's resources: `what` is "" for the backup itself, or "/databases",
/// "/logs", "/record", "/truncation", "/end".
impl Host {
    pub async fn get(&self, id: &str, what: &str) -> reqwest::Response {
        let url = format!("{}{what}", self.backup(id));
        self.http.get(url).send().await.unwrap()
    }

    pub async fn post(&self, id: &str, what: &str) -> reqwest::Response {
        let url = format!("{}{what}", self.backup(id));
        self.http.post(url).send().await.unwrap()
    }

    pub async fn delete(&self, id: &str) -> reqwest::Response {
        self.http.delete(self.backup(id)).send().await.unwrap()
    }

    /// `POST .../end` with `body` (e.g. `{"mode": "normal"}`).
    pub async fn end(&self, id: &str, body: serde_json::Value) -> reqwest::Response {
        let url = format!("{}/end", self.backup(id));
        self.http.post(url).json(&body).send().await.unwrap()
    }

    pub async fn end_normal(&self, id: &str) -> reqwest::Response {
        self.end(id, serde_json::json!({"mode": "normal"})).await
    }

    /// The database list (`GET .../databases`).
    pub async fn databases(&self, id: &str) -> serde_json::Value {
        json(self.get(id, "/databases").await).await
    }

    /// Seals the logs (`POST .../logs`): the log info.
    pub async fn seal(&self, id: &str) -> serde_json::Value {
        json(self.post(id, "/logs").await).await
    }

    /// `POST .../backups` with `body`, with a bearer token if given.
    pub async fn begin_with(
        &self,
        body: serde_json::Value,
        token: Option<&str>,
    ) -> reqwest::Response {
        let req = self.http.post(format!("{}/backups", self.url)).json(&body);
        match token {
            Some(t) => send_as(req, t).await,
            None => req.send().await.unwrap(),
        }
    }

    /// Starts a push of `kind` into `target`: the id of the push.
    pub async fn push(&self, kind: &str, target: &str) -> String {
        let res = self
            .begin_with(serde_json::json!({"kind": kind, "target": target}), None)
            .await;
        assert_eq!(res.status(), 201);
        json(res).await["id"].as_str().unwrap().to_string()
    }

    /// Polls a push until it has an outcome; its last status, and every phase seen.
    pub async fn push_outcome(&self, id: &str) -> (serde_json::Value, Vec<String>) {
        let mut phases: Vec<String> = Vec::new();
        for _ in 0..6000 {
            let st = json(self.get(id, "").await).await;
            let phase = st["phase"].as_str().unwrap().to_string();
            if phases.last() != Some(&phase) {
                phases.push(phase);
            }
            if !st["outcome"].is_null() {
                return (st, phases);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the push {id} did not finish within a minute: {phases:?}");
    }

    /// Polls a push until its phase is `phase` (or later, once over).
    pub async fn push_reaches(&self, id: &str, phase: &str) -> serde_json::Value {
        for _ in 0..6000 {
            let st = json(self.get(id, "").await).await;
            if st["phase"] == phase || !st["outcome"].is_null() {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the push {id} never reached {phase}");
    }
}

/// Streams the running full backup (from its database phase) through the instance's own
/// calls, as a host does, and ends it normally.
pub async fn host_finish(inst: &Instance) {
    let mut files = inst.get_attach_info().await.unwrap();
    let mut logs_listed = false;
    loop {
        for path in std::mem::take(&mut files) {
            let (f, _) = inst.open_file(&path).await.unwrap();
            while !inst.read_file(f, CHUNK).await.unwrap().is_empty() {}
            inst.close_file(f).await.unwrap();
        }
        if logs_listed {
            break;
        }
        files = inst.get_log_info().await.unwrap().files;
        logs_listed = true;
    }
    inst.end_external_backup(ese_actors::BackupEnd::NORMAL)
        .await
        .unwrap();
}

/// Attaches a restored database in an instance of its own and checks it holds every preloaded
/// row and the writer's keys as a gap-free prefix (a consistent state).
pub async fn assert_restored(h: &Host, db: &Path) {
    let chk = h
        .engine
        .create_instance("check", params(&h.dir.path().join("chk")))
        .await
        .unwrap();
    chk.init().await.unwrap();
    let db = chk.attach_database(db).await.unwrap();
    let t = chk.open_table(db, "t").await.unwrap();
    let preloaded = chk
        .scan(t, ese_actors::KeyRange::prefix(b"p"))
        .await
        .unwrap();
    assert_eq!(preloaded.len(), PRELOAD);
    let written = chk
        .scan(t, ese_actors::KeyRange::prefix(b"w"))
        .await
        .unwrap();
    for (i, (k, _)) in written.iter().enumerate() {
        assert_eq!(
            k.as_ref(),
            format!("w{i:08}").as_bytes(),
            "the writer's keys are a prefix"
        );
    }
    chk.term(ese_actors::Term::empty()).await.unwrap();
}

/// Sends a request with a bearer token.
pub async fn send_as(req: reqwest::RequestBuilder, token: &str) -> reqwest::Response {
    req.bearer_auth(token).send().await.unwrap()
}

/// A new bucket `{prefix}-{pid}` in the shared Garage cluster, the process's AWS environment
/// set for it (as an operator sets it for `s3://` targets), and a runtime built only then:
/// the environment must be set before any other thread runs, so call this first in a test
/// binary of its own.
pub fn garage_bucket(prefix: &str) -> (String, tokio::runtime::Runtime) {
    let cluster = ese_garage::shared();
    let bucket = format!("{prefix}-{}", std::process::id());
    cluster.create_bucket(&bucket).unwrap();
    for (k, v) in cluster.env(1) {
        // No other thread runs yet: the runtime is built below.
        std::env::set_var(k, v);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    (bucket, rt)
}
