//! A full backup streams while eight sessions commit continuously: every streamed page
//! verifies, writers keep committing, and no log the backup lists is deleted or recycled,
//! with and without circular logging.

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ese::internals::page;
use ese_actors::{BackupBegin, BackupEnd, Commit, Engine, Term};
use support::actor::*;

async fn stream_under_load(circular: bool) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let inst = engine
        .create_instance("load", params(dir.path()).circular_logging(circular))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let path = dir.path().join("db.edb");
    let db = inst.create_database(&path).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    put_rows(&inst, t, 0..2000).await;

    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (inst, stop, commits) = (inst.clone(), stop.clone(), commits.clone());
            tokio::spawn(async move {
                let mut s = inst.begin_session().await.unwrap();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let mut tx = s.transaction().await.unwrap();
                    tx.put(t, format!("w{w}-{n}").as_bytes(), &[w as u8; 300])
                        .await
                        .unwrap();
                    // Disjoint keys per writer: the test is about the backup, not about conflicts.
                    let k = (n as usize * 8 + w) % 2000;
                    tx.put(t, format!("k{k:06}").as_bytes(), &[n as u8; 200])
                        .await
                        .unwrap();
                    let d = if n.is_multiple_of(2) {
                        Commit::Durable
                    } else {
                        Commit::Lazy
                    };
                    tx.commit(d).await.unwrap();
                    commits.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();

    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let before = commits.load(Ordering::Relaxed);
    let (f, size) = inst.open_file(&path).await.unwrap();
    // Small chunks so the copy takes many round trips while the writers commit.
    let image = read_all(&inst, f, 4 * PAGE).await;
    inst.close_file(f).await.unwrap();
    assert_eq!(image.len() as u64, size);
    let last_page = (size / PAGE as u64 - 3) as u32;
    for p in 1..=last_page {
        let off = (p as usize + 1) * PAGE;
        page::verify(&image[off..off + PAGE], p)
            .unwrap_or_else(|e| panic!("streamed page {p}: {e}"));
    }
    let info = inst.get_log_info().await.unwrap();
    // Writers go on; the listed logs must all stay on disk until the end.
    put_rows(&inst, t, 2000..2600).await;
    for p in &info.files {
        assert!(
            p.exists(),
            "{} was removed while the backup needs it",
            p.display()
        );
        let (f, _) = inst.open_file(p).await.unwrap();
        read_all(&inst, f, 128 * 1024).await;
        inst.close_file(f).await.unwrap();
    }
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let during = commits.load(Ordering::Relaxed) - before;
    assert!(during > 0, "writers must keep committing during the backup");
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_backup_while_eight_sessions_commit() {
    stream_under_load(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_backup_while_eight_sessions_commit_with_circular_logging() {
    stream_under_load(true).await;
}
