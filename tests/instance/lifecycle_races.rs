//! Races through the mailbox: many tasks send lifecycle and data messages to one instance
//! while the host calls `stop_service` or `term` at a random moment. Every reply must be one
//! behaviour.md allows, nothing may hang or panic, and no acknowledged commit may be lost.
//! Each race runs 200 times.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ese::io::{FaultStorage, StorageRef};
use ese_actors::{Engine, Instance, InstanceParams, TableId, Term};
use rand::Rng;
use tokio::sync::Mutex;

const ROUNDS: usize = 200;
const WRITERS: usize = 6;

fn params() -> InstanceParams {
    InstanceParams::new("/r")
        .log_file_size(256 * 1024)
        .page_size(4096)
        .cache_pages(128)
}

#[derive(Clone, Copy, Debug)]
enum Host {
    StopService,
    Term(Term),
}

async fn setup(engine: &Engine, storage: &StorageRef) -> (Instance, TableId) {
    let i = engine
        .create_instance_on("r", params(), storage.clone())
        .await
        .unwrap();
    i.init().await.unwrap();
    let path = Path::new("/r/r.edb");
    let t = if storage.exists(path) {
        let db = i.attach_database(path).await.unwrap();
        i.open_table(db, "t").await.unwrap()
    } else {
        let db = i.create_database(path).await.unwrap();
        i.create_table(db, "t").await.unwrap()
    };
    (i, t)
}

/// One race; returns the acknowledged keys.
async fn race(host: Host, round: usize, engine: &Engine, storage: &StorageRef) -> Vec<Vec<u8>> {
    let (inst, t) = setup(engine, storage).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let inst = inst.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let s = match inst.begin_session().await {
                Ok(s) => s,
                Err(e) => return assert_allowed("begin_session", e.code(), host),
            };
            for n in 0.. {
                let key = format!("r{round}-w{w}-{n}").into_bytes();
                match s.put(t, &key, b"v").await {
                    Ok(()) => acked.lock().await.push(key),
                    Err(e) => return assert_allowed("put", e.code(), host),
                }
            }
        }));
    }
    // A task sending lifecycle messages meanwhile.
    let life = {
        let inst = inst.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                if let Err(e) = inst.init().await {
                    assert!(
                        matches!(e.code(), -1030 | -1329 | -1000 | -1115),
                        "init: {}",
                        e.code()
                    );
                }
                if let Err(e) = inst.stop_backup().await {
                    assert_eq!(e.code(), -1115, "stop_backup skips the gate");
                }
                if let Err(e) = inst.stats().await {
                    assert!(
                        matches!(e.code(), -1329 | -1000 | -1115),
                        "stats: {}",
                        e.code()
                    );
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let delay = rand::thread_rng().gen_range(0..1500);
    tokio::time::sleep(Duration::from_micros(delay)).await;
    match host {
        Host::StopService => {
            inst.stop_service().await.unwrap();
            // Term still works after stop_service.
            inst.term(Term::empty()).await.unwrap();
        }
        Host::Term(g) => {
            let r = inst.term(g).await;
            assert!(r.is_ok(), "term {g:?}: {r:?}");
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    life.await.unwrap();
    let v = acked.lock().await.clone();
    v
}

fn assert_allowed(what: &str, code: i32, host: Host) {
    let ok = match host {
        Host::StopService => matches!(code, -1329 | -1000 | -1115),
        Host::Term(_) => matches!(code, -1000 | -1115),
    };
    assert!(ok, "{what} got {code} racing {host:?}");
}

async fn verify(engine: &Engine, storage: &StorageRef, acked: &[Vec<u8>]) {
    let (inst, t) = setup(engine, storage).await;
    let s = inst.begin_session().await.unwrap();
    for k in acked {
        assert!(
            s.get(t, k).await.unwrap().is_some(),
            "acknowledged {:?} lost",
            String::from_utf8_lossy(k)
        );
    }
    drop(s);
    inst.term(Term::empty()).await.unwrap();
}

async fn run(host: Host) {
    let fs = FaultStorage::new();
    let storage: StorageRef = Arc::new(fs.clone());
    let engine = Engine::new();
    for round in 0..ROUNDS {
        let acked = tokio::time::timeout(
            Duration::from_secs(20),
            race(host, round, &engine, &storage),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round} of {host:?} hung"));
        if matches!(host, Host::Term(t) if t.contains(Term::DIRTY)) {
            // A dirty term is a crash of the process for the files: drop what was not synced.
            fs.crash();
            fs.restart();
        }
        verify(&engine, &storage, &acked).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_service_races_writers() {
    run(Host::StopService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_races_writers() {
    run(Host::Term(Term::empty())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_term_races_writers() {
    run(Host::Term(Term::DIRTY)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_term_races_writers() {
    run(Host::Term(Term::ABRUPT | Term::STOP_BACKUP)).await;
}
