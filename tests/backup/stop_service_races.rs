//! The host stops a streaming backup at a random moment — `stop_service`, `stop_backup` or
//! `term(ABRUPT)` — while a client streams it. Every reply the client gets is one the
//! behaviour.md names for that race; nothing hangs; the instance is left in a clean state.
//! Each race runs 200 times.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ese::io::{FaultStorage, StorageRef};
use ese_actors::{BackupBegin, BackupEnd, Engine, Instance, InstanceParams, Term};
use rand::Rng;

const ROUNDS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Host {
    StopService,
    StopBackup,
    TermAbrupt,
}

fn params() -> InstanceParams {
    InstanceParams::new("/s")
        .log_file_size(128 * 1024)
        .page_size(4096)
        .cache_pages(256)
}

/// The client's whole sequence; returns the first error code it met, if any.
async fn client(inst: Instance, db: std::path::PathBuf) -> Option<i32> {
    let r: ese::Result<()> = async {
        inst.begin_external_backup(BackupBegin::empty()).await?;
        let (f, _) = inst.open_file(&db).await?;
        while !inst.read_file(f, 4 * 4096).await?.is_empty() {}
        inst.close_file(f).await?;
        for p in inst.get_log_info().await?.files {
            let (f, _) = inst.open_file(&p).await?;
            while !inst.read_file(f, 8 * 4096).await?.is_empty() {}
            inst.close_file(f).await?;
        }
        inst.end_external_backup(BackupEnd::NORMAL).await
    }
    .await;
    match r {
        Ok(()) => None,
        Err(e) => {
            // The client gives up: end by abort if it still can.
            let end = inst.end_external_backup(BackupEnd::ABORT).await;
            if let Err(x) = &end {
                assert!(
                    matches!(x.code(), -1329 | -1000 | -1115 | -520),
                    "abort after {} got {}",
                    e.code(),
                    x.code()
                );
            }
            Some(e.code())
        }
    }
}

async fn round(host: Host, engine: &Engine, storage: &StorageRef, first: bool) -> bool {
    let inst = engine
        .create_instance_on("s", params(), storage.clone())
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = Path::new("/s/db.edb").to_path_buf();
    let id = if first {
        inst.create_database(&db).await.unwrap()
    } else {
        inst.attach_database(&db).await.unwrap()
    };
    if first {
        let t = inst.create_table(id, "t").await.unwrap();
        let s = inst.begin_session().await.unwrap();
        for i in 0..400u32 {
            s.put(t, &i.to_be_bytes(), &[7u8; 300]).await.unwrap();
        }
    }
    let c = tokio::spawn(client(inst.clone(), db.clone()));
    tokio::time::sleep(Duration::from_micros(rand::thread_rng().gen_range(0..3000))).await;
    let allowed: &[i32] = match host {
        Host::StopService => {
            inst.stop_service().await.unwrap();
            &[-1329]
        }
        Host::StopBackup => {
            inst.stop_backup().await.unwrap();
            &[-801]
        }
        Host::TermAbrupt => {
            inst.term(Term::ABRUPT).await.unwrap();
            &[-1000, -1115]
        }
    };
    let got = tokio::time::timeout(Duration::from_secs(20), c)
        .await
        .expect("client hung")
        .unwrap();
    if let Some(code) = got {
        assert!(allowed.contains(&code), "{host:?}: client got {code}");
    }
    let interrupted = got.is_some();
    match host {
        // Only term can clean up a backup after stop_service.
        Host::StopService => inst.term(Term::STOP_BACKUP).await.unwrap(),
        // The client ended its backup (normally or by abort): a plain term succeeds.
        Host::StopBackup => inst.term(Term::empty()).await.unwrap(),
        Host::TermAbrupt => assert_eq!(inst.term(Term::empty()).await.unwrap_err().code(), -1115),
    }
    interrupted
}

async fn run(host: Host) {
    let storage: StorageRef = Arc::new(FaultStorage::new());
    let engine = Engine::new();
    let mut interrupted = 0;
    for i in 0..ROUNDS {
        interrupted += tokio::time::timeout(
            Duration::from_secs(30),
            round(host, &engine, &storage, i == 0),
        )
        .await
        .unwrap_or_else(|_| panic!("round {i} of {host:?} hung")) as usize;
    }
    // The random moment must land inside the sequence often enough to test the race.
    assert!(
        interrupted >= ROUNDS / 10,
        "{host:?}: only {interrupted} of {ROUNDS} rounds were interrupted"
    );
    eprintln!("{host:?}: {interrupted} of {ROUNDS} rounds interrupted mid-sequence");
    // Afterwards a new backup runs from start to end.
    let inst = engine
        .create_instance_on("s", params(), storage.clone())
        .await
        .unwrap();
    inst.init().await.unwrap();
    inst.attach_database("/s/db.edb").await.unwrap();
    assert_eq!(client(inst.clone(), "/s/db.edb".into()).await, None);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_service_during_streaming() {
    run(Host::StopService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_backup_during_streaming() {
    run(Host::StopBackup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_term_during_streaming() {
    run(Host::TermAbrupt).await;
}
