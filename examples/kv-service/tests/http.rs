//! The example service as a user runs it: the real binary, real HTTP on loopback, real
//! signals. Requests, transactions under contention, a backup taken while writes go on, and
//! a SIGTERM in the middle of a backup that still terms cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ese_actors::{Engine, Instance, InstanceParams, KeyRange, OpenOptions, TableId, Term};

/// The service running as a child process on a free loopback port.
struct Running {
    child: Child,
    base: String,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Running {
    fn start(dir: &Path) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv-service"))
            .args(["--dir", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start kv-service");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Running {
            child,
            base: format!("http://{addr}"),
            stdout,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit; returns the rest of its output.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        (status, rest)
    }
}

/// Opens the service's database in `inst_dir` on a new instance (soft recovery first): the
/// instance and the `kv` table.
async fn open_kv(engine: &Engine, name: &str, inst_dir: &Path) -> (Instance, TableId) {
    let inst = engine
        .create_instance(name, InstanceParams::new(inst_dir))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst
        .open_database(inst_dir.join("kv.edb"), OpenOptions::default())
        .await
        .unwrap();
    let t = inst.open_table(db, "kv").await.unwrap();
    (inst, t)
}

/// `n` rows `{prefix}{i:04}` of `size` bytes, each PUT answered 204.
async fn put_rows(c: &reqwest::Client, svc: &Running, prefix: &str, n: usize, size: usize) {
    for i in 0..n {
        let url = svc.url(&format!("/kv/{prefix}{i:04}"));
        let r = c.put(url).body(vec![b'v'; size]).send().await.unwrap();
        assert_eq!(r.status(), 204);
    }
}

/// Starts a backup (`POST /backup{query}`, answered 202): its set's folder.
async fn start_backup(c: &reqwest::Client, svc: &Running, query: &str) -> std::path::PathBuf {
    let r = c
        .post(svc.url(&format!("/backup{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let started: serde_json::Value = r.json().await.unwrap();
    std::path::PathBuf::from(started["dir"].as_str().unwrap())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_transactions_scans_and_errors_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Running::start(dir.path());
    let c = client();
    for i in 0..50 {
        let r = c
            .put(svc.url(&format!("/kv/user:{i:03}")))
            .body(format!("v{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let r = c.get(svc.url("/kv/user:007")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "v7");
    // Not found, and a key over the 1,024-byte limit: the caller's fault, with the ESE code.
    let r = c.get(svc.url("/kv/nobody")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], -1601);
    let long = "x".repeat(1025);
    let r = c
        .put(svc.url(&format!("/kv/{long}")))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], -408);
    // Scans: a prefix with a limit, reversed, and resumed after a key.
    let lines = |t: String| -> Vec<String> {
        t.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let first = c
        .get(svc.url("/scan?prefix=user:&limit=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        lines(first.text().await.unwrap()),
        ["user:000", "user:001", "user:002"]
    );
    let last = c
        .get(svc.url("/scan?prefix=user:&limit=2&reverse=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(lines(last.text().await.unwrap()), ["user:049", "user:048"]);
    let next = c
        .get(svc.url("/scan?prefix=user:&limit=2&after=user:002"))
        .send()
        .await
        .unwrap();
    assert_eq!(lines(next.text().await.unwrap()), ["user:003", "user:004"]);
    // 40 concurrent increments of one counter: conflicts are retried, none is lost.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (c, url) = (c.clone(), svc.url("/incr/counter"));
        tasks.push(tokio::spawn(async move {
            c.post(url).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let r = c.get(svc.url("/kv/counter")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "40");
    let r = c.delete(svc.url("/kv/user:000")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = c.delete(svc.url("/kv/user:000")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let (status, out) = svc.terminate();
    assert!(status.success(), "exit {status:?}");
    assert!(out.contains("terminated cleanly"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_writes_go_on_verifies_and_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Running::start(dir.path());
    let c = client();
    put_rows(&c, &svc, "before:", 200, 2000).await;
    let set = start_backup(&c, &svc, "").await;
    // Writes keep coming while the backup runs; every one succeeds.
    let mut writes = 0;
    let done = loop {
        let url = svc.url(&format!("/kv/during:{writes:05}"));
        assert_eq!(c.put(url).body("d").send().await.unwrap().status(), 204);
        writes += 1;
        let s: serde_json::Value = c
            .get(svc.url("/backup"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["state"] == "done" {
            break s;
        }
        assert_eq!(s["state"], "running", "{s}");
    };
    assert!(done["id"].is_string() || done["id"].is_number(), "{done}");
    let report = ese_actors::verify_backup_set(&set).unwrap();
    assert!(report.pages > 0);
    let (status, _) = svc.terminate();
    assert!(status.success());
    // The set restores to a database holding every row written before the backup began.
    let restored = dir.path().join("restored");
    let engine = Engine::new();
    ese_actors::restore_backup_chain_to(&engine, &[set], &restored, None)
        .await
        .unwrap();
    let (inst, t) = open_kv(&engine, "check", &restored).await;
    let before = inst.scan(t, KeyRange::prefix(b"before:")).await.unwrap();
    assert_eq!(before.len(), 200);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_backup_stops_it_and_terms_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Running::start(dir.path());
    let c = client();
    put_rows(&c, &svc, "row:", 300, 4000).await;
    // Throttled so that it is still running when the signal comes.
    let set = start_backup(&c, &svc, "?max_rate=65536").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s: serde_json::Value = c
        .get(svc.url("/backup"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["state"], "running", "{s}");
    let (status, out) = svc.terminate();
    assert!(status.success(), "exit {status:?}: {out}");
    assert!(out.contains("terminated cleanly"), "{out}");
    // The partial set is gone; the instance comes back without replaying anything, with
    // every row.
    assert!(!set.join("manifest.json").exists());
    assert!(!set.exists(), "partial set left at {}", set.display());
    let engine = Engine::new();
    let (inst, t) = open_kv(&engine, "again", &dir.path().join("instance")).await;
    assert_eq!(
        inst.stats().await.unwrap().recovery.commits,
        0,
        "a clean term"
    );
    assert_eq!(inst.scan(t, KeyRange::all()).await.unwrap().len(), 300);
    inst.term(Term::empty()).await.unwrap();
}
