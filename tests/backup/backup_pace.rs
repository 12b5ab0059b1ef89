//! Backup reads beside busy durable commits (`BackupPace`): with a floor so low that a held
//! read would wait for hours, the host's and the client's calls still resolve at once and to
//! the contract's codes, because every state change wakes the held reads: a held read was
//! issued before the change, so it completes as a read in flight does, and the next call
//! gets the code. With `BackupPace::Full`, or with no commits to protect, nothing is held at
//! all; log reads are never held.

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ese::BackupPace;
use ese_actors::{BackupBegin, BackupEnd, BackupFile, Commit, Engine, Instance, Term};
use support::actor::*;

/// A floor of one byte per second: a read the pacer holds waits out the test many times over.
const CRAWL: BackupPace = BackupPace::YieldToCommits {
    p99_percent: 110,
    floor_bytes_per_sec: 1,
};

/// Longer than anything here takes unless a read is held by the pacer.
const HANG: Duration = Duration::from_secs(60);

const CHUNK: usize = 4 * PAGE;

struct Busy {
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

/// How the busy writers send their commits.
#[derive(Clone, Copy)]
enum Sent {
    /// Through the typed API: `Transaction::commit`.
    Typed,
    /// As raw messages with `Instance::ask`, as the actix adapter forwards them: a durable
    /// `CommitTransaction` or `ApplyBatch`.
    Raw,
}

impl Busy {
    /// Four sessions committing durably back to back, until enough commits went by for the
    /// pacer to have judged a few windows of them (each needs 100 commits and 100 ms).
    async fn start(inst: &Instance, t: ese_actors::TableId) -> Busy {
        Busy::sending(inst, t, Sent::Typed).await
    }

    async fn sending(inst: &Instance, t: ese_actors::TableId, sent: Sent) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let writers = (0..4)
            .map(|w| {
                let (inst, stop, commits) = (inst.clone(), stop.clone(), commits.clone());
                tokio::spawn(async move {
                    let mut s = inst.begin_session().await.unwrap();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("busy-{w}-{}", n % 64);
                        match sent {
                            Sent::Typed => {
                                let mut tx = s.transaction().await.unwrap();
                                tx.put(t, key.as_bytes(), &[w as u8; 100]).await.unwrap();
                                tx.commit(Commit::Durable).await.unwrap();
                            }
                            Sent::Raw => raw_commit(&inst, s.key(), t, key, w, n).await,
                        }
                        commits.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                    }
                })
            })
            .collect();
        let t0 = std::time::Instant::now();
        while commits.load(Ordering::Relaxed) < 600 || t0.elapsed() < Duration::from_millis(400) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Busy { stop, writers }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.writers {
            w.await.unwrap();
        }
    }
}

/// One durable commit as raw messages: every other one a transaction committed with
/// `CommitTransaction`, the rest an `ApplyBatch`.
async fn raw_commit(
    inst: &Instance,
    session: ese_actors::SessionKey,
    table: ese_actors::TableId,
    key: String,
    w: usize,
    n: u64,
) {
    use ese_actors::messages::{ApplyBatch, BeginTransaction, CommitTransaction, Put};
    let value = vec![w as u8; 100];
    let durability = Commit::Durable;
    if n.is_multiple_of(2) {
        let mut batch = ese_actors::WriteBatch::new();
        batch.put(table, key.as_bytes(), &value);
        inst.ask(ApplyBatch { batch, durability }).await.unwrap();
        return;
    }
    inst.ask(BeginTransaction { session }).await.unwrap();
    let put = Put {
        session,
        table,
        key: key.into_bytes(),
        value,
        in_transaction: true,
    };
    inst.ask(put).await.unwrap();
    inst.ask(CommitTransaction {
        session,
        durability,
    })
    .await
    .unwrap();
}

/// An instance with data and `pace`, a full backup begun on it, its database open.
async fn backing_up(
    engine: &Engine,
    dir: &std::path::Path,
    pace: BackupPace,
) -> (Instance, ese_actors::TableId, BackupFile) {
    let params = params(dir).backup_pace(pace);
    let (inst, t, path) = instance_with(engine, ese::io::os(), "paced", params, 2000).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let (f, _) = inst.open_file(&path).await.unwrap();
    (inst, t, f)
}

/// Reads the next chunk in a task of its own.
fn read_next(inst: &Instance, f: BackupFile) -> tokio::task::JoinHandle<ese::Result<usize>> {
    let inst = inst.clone();
    tokio::spawn(async move { inst.read_file(f, CHUNK).await.map(|b| b.len()) })
}

/// A read issued beside busy commits, shown to be held: it is still unanswered after a
/// while. Reads go on until one is (the pace is set once the commits have filled a window of
/// their own; on a slow machine that may take a few reads), at most 50. The while is 2.3 s:
/// an admitted read can take a good part of it on a loaded machine; a held one, at one byte
/// a second, takes far longer.
async fn held_read(inst: &Instance, f: BackupFile) -> tokio::task::JoinHandle<ese::Result<usize>> {
    for _ in 0..50 {
        let mut read = read_next(inst, f);
        match tokio::time::timeout(Duration::from_millis(2300), &mut read).await {
            Err(_) => return read,
            Ok(done) => assert_eq!(done.unwrap().unwrap(), CHUNK),
        }
    }
    panic!("the governor held none of 50 reads beside busy commits");
}

async fn answer(read: tokio::task::JoinHandle<ese::Result<usize>>) -> ese::Result<usize> {
    tokio::time::timeout(HANG, read)
        .await
        .expect("a held read was not woken")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_backup_lets_a_held_read_complete_and_refuses_the_next_with_801() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, f) = backing_up(&engine, dir.path(), CRAWL).await;
    let busy = Busy::start(&inst, t).await;
    let held = held_read(&inst, f).await;
    inst.stop_backup().await.unwrap();
    // Issued before the stop: it completes as a read in flight does without pacing.
    assert_eq!(answer(held).await.unwrap(), CHUNK);
    assert_eq!(code(inst.read_file(f, CHUNK).await), -801);
    busy.stop().await;
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    // Ended: the next backup begins and is not stopped.
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_service_lets_a_held_read_complete_and_refuses_the_next_with_1329() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, f) = backing_up(&engine, dir.path(), CRAWL).await;
    let busy = Busy::start(&inst, t).await;
    let held = held_read(&inst, f).await;
    inst.stop_service().await.unwrap();
    // Already being served when stop_service came: it completes normally.
    assert_eq!(answer(held).await.unwrap(), CHUNK);
    assert_eq!(code(inst.read_file(f, CHUNK).await), -1329);
    busy.stop.store(true, Ordering::Relaxed);
    inst.term(Term::STOP_BACKUP).await.unwrap();
    for w in busy.writers {
        // The writers' calls after stop_service fail; they end when their task does.
        let _ = w.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_stop_backup_does_not_wait_out_a_held_read() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, f) = backing_up(&engine, dir.path(), CRAWL).await;
    let busy = Busy::start(&inst, t).await;
    let held = held_read(&inst, f).await;
    busy.stop().await;
    tokio::time::timeout(HANG, inst.term(Term::STOP_BACKUP))
        .await
        .expect("term waited for a held read")
        .unwrap();
    // The read was in flight: term waited for it, and it completed.
    assert_eq!(answer(held).await.unwrap(), CHUNK);
}

/// Commits a host sends as raw messages (`Instance::ask`, as the actix adapter forwards
/// them) are timed as the typed calls' are: beside them a read is held too, and
/// `stop_backup` wakes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_sent_as_raw_messages_hold_backup_reads_too() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, f) = backing_up(&engine, dir.path(), CRAWL).await;
    let busy = Busy::sending(&inst, t, Sent::Raw).await;
    let held = held_read(&inst, f).await;
    inst.stop_backup().await.unwrap();
    assert_eq!(answer(held).await.unwrap(), CHUNK);
    busy.stop().await;
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pace_backup_is_not_held_beside_busy_commits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, f) = backing_up(&engine, dir.path(), BackupPace::Full).await;
    let busy = Busy::start(&inst, t).await;
    for _ in 0..8 {
        assert_eq!(answer(read_next(&inst, f)).await.unwrap(), CHUNK);
    }
    busy.stop().await;
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_commits_a_yielding_backup_reads_its_whole_image_unheld() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, f) = backing_up(&engine, dir.path(), CRAWL).await;
    // The set-up's own durable commits may fill a window: let the commits count as idle
    // (ten windows without a hundred of them), so no read is held at all.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let image = tokio::time::timeout(HANG, read_all(&inst, f, CHUNK))
        .await
        .expect("a read was held with no commits to protect");
    assert!(image.len() > 16 * CHUNK);
    inst.close_file(f).await.unwrap();
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_reads_are_never_held_beside_busy_commits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, f) = backing_up(&engine, dir.path(), CRAWL).await;
    inst.close_file(f).await.unwrap();
    let busy = Busy::start(&inst, t).await;
    let info = inst.get_log_info().await.unwrap();
    assert!(!info.files.is_empty());
    // Many small reads of every log: were logs paced, the second would wait for hours.
    let read_logs = async {
        for p in &info.files {
            let (log, size) = inst.open_file(p).await.unwrap();
            let bytes = read_all(&inst, log, 2 * PAGE).await;
            assert_eq!(bytes.len() as u64, size);
            inst.close_file(log).await.unwrap();
        }
    };
    tokio::time::timeout(HANG, read_logs)
        .await
        .expect("a log read was held");
    busy.stop().await;
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_file_answers_its_held_read_at_once_with_1003() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, f) = backing_up(&engine, dir.path(), CRAWL).await;
    let busy = Busy::start(&inst, t).await;
    let held = held_read(&inst, f).await;
    inst.close_file(f).await.unwrap();
    // Its file was closed while it waited: its bytes are not handed out.
    assert_eq!(code(answer(held).await), -1003);
    busy.stop().await;
    inst.end_external_backup(BackupEnd::ABORT).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
}
