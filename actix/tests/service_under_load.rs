//! The example actix-web service (`examples/actix_service`), run in-process on a loopback
//! port with two workers, under load from a real HTTP client while online backups run into
//! a folder and into an object store: every request answers exactly what it answers with no
//! backup running (writes 204, reads of them 200 with the value, reads of a missing key 404
//! with -1601), and each backup set verifies.

#[allow(dead_code)]
#[path = "../examples/actix_service/service.rs"]
mod service;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer};
use ese_actix::InstanceRuntime;
use ese_actors::{verify_at, BackupTarget, Engine, VerifyDepth};
use service::Service;

const CLIENTS: usize = 4;

/// What one client saw: requests answered as expected, and every other answer.
#[derive(Default)]
struct Tally {
    ok: u64,
    wrong: Vec<String>,
}

/// Clients that send writes and reads until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    fn start(base: &str, phase: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let clients = (0..CLIENTS)
            .map(|c| {
                let (http, stop) = (http.clone(), stop.clone());
                let prefix = format!("{base}/kv/{phase}-c{c}");
                actix_rt::spawn(async move { client(&http, &prefix, &stop).await })
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops the clients and adds up what they saw.
    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Tally::default();
        for c in self.clients {
            let t = c.await.expect("client task");
            all.ok += t.ok;
            all.wrong.extend(t.wrong);
        }
        all
    }
}

/// One client: a write, a read of it, and every tenth round a read of a missing key.
async fn client(http: &reqwest::Client, prefix: &str, stop: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let url = format!("{prefix}-{n}");
        let value = format!("value {n}");
        check(
            &mut t,
            "put",
            http.put(&url).body(value.clone()).send().await,
            204,
            None,
        )
        .await;
        check(
            &mut t,
            "get",
            http.get(&url).send().await,
            200,
            Some(&value),
        )
        .await;
        if n.is_multiple_of(10) {
            let missing = http.get(format!("{prefix}-missing")).send().await;
            check(&mut t, "get missing", missing, 404, Some("-1601")).await;
        }
        n += 1;
    }
    t
}

/// Counts an answer as expected (its status, and its body containing `body`) or wrong.
async fn check(
    t: &mut Tally,
    what: &str,
    r: reqwest::Result<reqwest::Response>,
    status: u16,
    body: Option<&str>,
) {
    let (got, text) = match r {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => {
            t.wrong.push(format!("{what}: {e}"));
            return;
        }
    };
    if got == status && body.is_none_or(|b| text.contains(b)) {
        t.ok += 1;
    } else {
        t.wrong.push(format!("{what}: {got} {text}"));
    }
}

/// `POST /backup` with `body`, under load: returns the answer and what the clients saw
/// while the backup ran.
async fn backup_under_load(
    base: &str,
    phase: &str,
    body: serde_json::Value,
) -> (serde_json::Value, Tally) {
    let load = Load::start(base, phase);
    // Let the load get going before the backup starts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/backup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    (answer, load.finish().await)
}

#[actix_rt::test]
async fn requests_keep_succeeding_while_backups_run() {
    let dir = tempfile::tempdir().unwrap();
    let rt = InstanceRuntime::dedicated(2).unwrap();
    let store = BackupTarget::object_store(
        Arc::new(object_store::memory::InMemory::new()),
        "sets",
        "memory://sets",
    );
    let svc = Service::open(&rt, &Engine::new(), dir.path())
        .await
        .unwrap()
        .with_target("offsite", store.clone());
    let app = svc.clone();
    let server = HttpServer::new(move || App::new().configure(|cfg| app.configure(cfg)))
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    let serving = actix_rt::spawn(server);

    // Enough data that a throttled backup takes a while.
    let http = reqwest::Client::new();
    for i in 0..200 {
        let r = http
            .put(format!("{base}/kv/bulk-{i}"))
            .body(vec![b'x'; 16 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    // Without a backup: the baseline, in which nothing fails.
    let load = Load::start(&base, "baseline");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = load.finish().await;
    assert!(baseline.wrong.is_empty(), "{:?}", baseline.wrong);
    assert!(baseline.ok > 0);

    // A folder, then an object store, each while the clients keep sending.
    let sets = dir.path().join("sets");
    let targets = [
        (
            "folder",
            sets.to_string_lossy().to_string(),
            BackupTarget::parse(sets.to_str().unwrap()).unwrap(),
        ),
        ("store", "offsite".to_string(), store),
    ];
    for (phase, to, target) in targets {
        let body = serde_json::json!({ "to": to, "max_rate": 8 << 20 });
        let (answer, during) = backup_under_load(&base, phase, body).await;
        assert!(during.wrong.is_empty(), "{phase}: {:?}", during.wrong);
        assert!(
            during.ok >= 20,
            "{phase}: only {} requests during the backup",
            during.ok
        );
        let set = answer["set"].as_str().expect("the set's name").to_string();
        let report = rt
            .run(async move { verify_at(&target, &set, VerifyDepth::Full, None).await })
            .await
            .unwrap();
        assert!(report.pages > 0);
        eprintln!(
            "{phase}: {} requests answered during the backup, none failed",
            during.ok
        );
    }

    handle.stop(true).await;
    serving.await.unwrap().unwrap();
    svc.shutdown().await.unwrap();
}
