//! behaviour.md §1.3: an instance uses its checkpoint and log directories and its databases
//! exclusively. A second instance of the same engine gets SystemPathInUse (-1083),
//! LogFilePathInUse (-1084) or DatabaseSharingViolation (-1215); another engine or another
//! process gets FileAccessDenied (-1032); the refused one touches nothing and the holder keeps
//! working. Locks go with term (every grbit), detach, the drop of every handle, a failed init
//! and the death of the process.

use crate::child;
use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ese::io::{FaultStorage, StorageRef};
use ese::Core;
use ese_actors::{Commit, Engine, Instance, InstanceParams, TableId, Term};
use support::actor::{code, params};

/// An initialised instance with a database at `db` holding table "t": the table.
async fn holder(engine: &Engine, name: &str, p: InstanceParams, db: &Path) -> (Instance, TableId) {
    let inst = engine.create_instance(name, p).await.unwrap();
    inst.init().await.unwrap();
    let id = inst.create_database(db).await.unwrap();
    let t = inst.create_table(id, "t").await.unwrap();
    (inst, t)
}

/// The holder still commits durably and reads its commit back.
async fn still_works(inst: &Instance, t: TableId, key: &[u8]) {
    let mut s = inst.begin_session().await.unwrap();
    let mut tx = s.transaction().await.unwrap();
    tx.put(t, key, b"after the refusal").await.unwrap();
    tx.commit(Commit::Durable).await.unwrap();
    assert_eq!(
        s.get(t, key).await.unwrap().as_deref(),
        Some(&b"after the refusal"[..])
    );
}

/// Every file under `dir`: bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let m = std::fs::metadata(&p).unwrap().modified().unwrap();
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), m));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_second_instance_on_the_same_directory_gets_system_path_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    let engine = Engine::new();
    let (a, t) = holder(&engine, "a", params(&x), &x.join("a.edb")).await;
    let b = engine.create_instance("b", params(&x)).await.unwrap();
    assert_eq!(code(b.init().await), -1083);
    // The system path alone collides too, whatever the log path.
    let c = engine
        .create_instance("c", params(&x).log_path(dir.path().join("c-logs")))
        .await
        .unwrap();
    assert_eq!(code(c.init().await), -1083);
    assert!(
        !dir.path().join("c-logs").exists(),
        "the refused instance created its log directory"
    );
    still_works(&a, t, b"k").await;
    // A refused init leaves the instance created: it can be terminated.
    b.term(Term::empty()).await.unwrap();
    c.term(Term::empty()).await.unwrap();
    a.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_shared_log_path_with_another_system_path_gets_log_file_path_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let engine = Engine::new();
    let pa = params(&dir.path().join("a-sys")).log_path(&logs);
    let (a, t) = holder(&engine, "a", pa, &dir.path().join("a.edb")).await;
    let pb = params(&dir.path().join("b-sys")).log_path(&logs);
    let b = engine.create_instance("b", pb).await.unwrap();
    assert_eq!(code(b.init().await), -1084);
    assert!(
        !dir.path().join("b-sys").exists(),
        "the refused instance created its system directory"
    );
    // The same directory spelled another way is the same directory.
    let pc = params(&dir.path().join("c-sys")).log_path(dir.path().join("x/../logs/."));
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    let c = engine.create_instance("c", pc).await.unwrap();
    assert_eq!(code(c.init().await), -1084);
    still_works(&a, t, b"k").await;
    a.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_path_used_in_another_role_is_no_collision() {
    // As in ESE, system paths are compared with system paths and log paths with log paths:
    // a's checkpoint directory may hold b's logs without any file in common.
    let dir = tempfile::tempdir().unwrap();
    let (p, q) = (dir.path().join("p"), dir.path().join("q"));
    let engine = Engine::new();
    let (a, t) = holder(
        &engine,
        "a",
        params(&p).log_path(&q),
        &dir.path().join("a.edb"),
    )
    .await;
    let b = engine
        .create_instance("b", params(&q).log_path(&p))
        .await
        .unwrap();
    b.init().await.unwrap();
    still_works(&a, t, b"k").await;
    b.term(Term::empty()).await.unwrap();
    a.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_database_attached_by_another_instance_gets_database_sharing_violation() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared.edb");
    let engine = Engine::new();
    let (a, t) = holder(&engine, "a", params(&dir.path().join("a")), &shared).await;
    let b = engine
        .create_instance("b", params(&dir.path().join("b")))
        .await
        .unwrap();
    b.init().await.unwrap();
    let before = std::fs::read(&shared).unwrap();
    assert_eq!(code(b.attach_database(&shared).await), -1215);
    let other_spelling = dir.path().join("b/../shared.edb");
    assert_eq!(code(b.attach_database(&other_spelling).await), -1215);
    assert_eq!(code(b.create_database(&shared).await), -1215);
    assert_eq!(
        std::fs::read(&shared).unwrap(),
        before,
        "the refused attach wrote to the database"
    );
    still_works(&a, t, b"k").await;
    // The holder itself gets its own answer for a second attach.
    assert_eq!(code(a.attach_database(&shared).await), -1201);
    b.term(Term::empty()).await.unwrap();
    a.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn two_engines_of_one_process_get_file_access_denied() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    let shared = dir.path().join("shared.edb");
    let (e1, e2) = (Engine::new(), Engine::new());
    let (a, t) = holder(&e1, "a", params(&x), &shared).await;
    let b = e2.create_instance("b", params(&x)).await.unwrap();
    assert_eq!(code(b.init().await), -1032);
    let lp = params(&dir.path().join("c")).log_path(&x);
    let c = e2.create_instance("c", lp).await.unwrap();
    assert_eq!(code(c.init().await), -1032, "log directory");
    let d = e2
        .create_instance("d", params(&dir.path().join("d")))
        .await
        .unwrap();
    d.init().await.unwrap();
    assert_eq!(code(d.attach_database(&shared).await), -1032);
    // The core, opened directly, meets the same lock.
    let direct = Core::open(ese::io::os(), params(&x));
    assert_eq!(direct.map(|_| ()).unwrap_err().code(), -1032);
    still_works(&a, t, b"k").await;
    a.term(Term::empty()).await.unwrap();
    d.attach_database(&shared).await.unwrap();
    d.term(Term::empty()).await.unwrap();
    b.init().await.unwrap();
    b.term(Term::empty()).await.unwrap();
}

/// The child process; killed when dropped, so a failing test leaves no process behind.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the child holding the instance in `dir` and waits for its `READY`.
fn spawn_holder(dir: &Path) -> Holder {
    let mut child = child::command(child::Mode::Hold, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let out = child.stdout.take().unwrap();
    let child = Holder(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line == "READY" {
                let _ = tx.send(());
            }
        }
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(60)).is_ok(),
        "the child never said READY"
    );
    child
}

#[tokio::test]
async fn an_instance_held_by_another_process_is_refused_untouched_until_the_process_dies() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    let mut child = spawn_holder(&x);
    let before = snapshot(&x);
    // The core, the actor and a database attach from another instance: all refused.
    let direct = Core::open(ese::io::os(), child::params(&x));
    assert_eq!(direct.map(|_| ()).unwrap_err().code(), -1032);
    let engine = Engine::new();
    let a = engine
        .create_instance("a", child::params(&x))
        .await
        .unwrap();
    assert_eq!(code(a.init().await), -1032);
    let b = engine
        .create_instance("b", child::params(&dir.path().join("b")))
        .await
        .unwrap();
    b.init().await.unwrap();
    assert_eq!(code(b.attach_database(x.join("crash.edb")).await), -1032);
    assert_eq!(
        snapshot(&x),
        before,
        "a refused open changed the files of the running instance"
    );
    // A killed holder never blocks recovery: the same open now succeeds and recovers.
    child.0.kill().expect("SIGKILL");
    child.0.wait().unwrap();
    a.init().await.unwrap();
    let db = a.attach_database(x.join("crash.edb")).await.unwrap();
    let t = a.open_table(db, "t").await.unwrap();
    let s = a.begin_session().await.unwrap();
    assert_eq!(
        s.get(t, b"held").await.unwrap().as_deref(),
        Some(&b"by the child"[..])
    );
    drop(s);
    a.term(Term::empty()).await.unwrap();
    b.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn term_of_every_kind_releases_the_locks() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    let shared = dir.path().join("shared.edb");
    let engine = Engine::new();
    let other = Engine::new();
    let kinds = [
        Term::empty(),
        Term::COMPLETE,
        Term::ABRUPT,
        Term::STOP_BACKUP,
        Term::DIRTY,
    ];
    for (n, grbit) in kinds.into_iter().enumerate() {
        let a = engine
            .create_instance(&format!("a{n}"), params(&x))
            .await
            .unwrap();
        a.init().await.unwrap();
        if n == 0 {
            a.create_database(&shared).await.unwrap();
        } else {
            a.attach_database(&shared).await.unwrap();
        }
        let b = engine
            .create_instance(&format!("b{n}"), params(&x))
            .await
            .unwrap();
        assert_eq!(code(b.init().await), -1083, "{grbit:?}");
        let c = other
            .create_instance(&format!("c{n}"), params(&x))
            .await
            .unwrap();
        assert_eq!(code(c.init().await), -1032, "{grbit:?}");
        a.term(grbit).await.unwrap();
        // Another engine, then the same one, may use the files at once.
        c.init().await.unwrap();
        c.attach_database(&shared).await.unwrap();
        c.term(Term::empty()).await.unwrap();
        b.init().await.unwrap();
        b.term(Term::empty()).await.unwrap();
    }
}

#[tokio::test]
async fn detach_releases_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared.edb");
    let engine = Engine::new();
    let other = Engine::new();
    let (a, _) = holder(&engine, "a", params(&dir.path().join("a")), &shared).await;
    let b = engine
        .create_instance("b", params(&dir.path().join("b")))
        .await
        .unwrap();
    b.init().await.unwrap();
    let c = other
        .create_instance("c", params(&dir.path().join("c")))
        .await
        .unwrap();
    c.init().await.unwrap();
    assert_eq!(code(b.attach_database(&shared).await), -1215);
    assert_eq!(code(c.attach_database(&shared).await), -1032);
    a.detach_database(&shared).await.unwrap();
    b.attach_database(&shared).await.unwrap();
    assert_eq!(code(a.attach_database(&shared).await), -1215);
    assert_eq!(code(c.attach_database(&shared).await), -1032);
    b.detach_database(&shared).await.unwrap();
    c.attach_database(&shared).await.unwrap();
    for i in [a, b, c] {
        i.term(Term::empty()).await.unwrap();
    }
}

#[tokio::test]
async fn dropping_every_handle_releases_the_locks() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    let shared = dir.path().join("shared.edb");
    let engine = Engine::new();
    let (a, _) = holder(&engine, "a", params(&x), &shared).await;
    let other = Engine::new();
    let b = other.create_instance("b", params(&x)).await.unwrap();
    assert_eq!(code(b.init().await), -1032);
    drop(a);
    drop(engine);
    // The actor stops, then its core is dropped on the blocking pool: shortly after.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match b.init().await {
            Ok(()) => break,
            Err(e) if e.code() == -1032 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("init after the drop: {e}"),
        }
    }
    b.attach_database(&shared).await.unwrap();
    b.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn a_failed_init_releases_what_it_took() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    let engine = Engine::new();
    let other = Engine::new();
    let (a, _) = holder(&engine, "a", params(&x), &x.join("a.edb")).await;
    a.term(Term::empty()).await.unwrap();
    let chk = x.join("edb.chk");
    let good = std::fs::read(&chk).unwrap();
    std::fs::write(&chk, vec![0u8; good.len()]).unwrap();
    // Each failed init answers the damage (-533), not a lock left by the one before.
    let b = engine.create_instance("b", params(&x)).await.unwrap();
    assert_eq!(code(b.init().await), -533);
    let c = engine.create_instance("c", params(&x)).await.unwrap();
    assert_eq!(code(c.init().await), -533);
    let d = other.create_instance("d", params(&x)).await.unwrap();
    assert_eq!(code(d.init().await), -533);
    std::fs::write(&chk, &good).unwrap();
    b.init().await.unwrap();
    assert_eq!(code(c.init().await), -1083);
    assert_eq!(code(d.init().await), -1032);
    b.term(Term::empty()).await.unwrap();
    d.init().await.unwrap();
    d.term(Term::empty()).await.unwrap();
}

#[test]
fn the_fault_layer_holds_locks_until_drop_or_crash() {
    let fs = FaultStorage::new();
    let storage: StorageRef = Arc::new(fs.clone());
    let p = params(Path::new("/x"));
    let first = Core::open(storage.clone(), p.clone()).unwrap();
    let second = Core::open(storage.clone(), p.clone());
    assert_eq!(second.map(|_| ()).unwrap_err().code(), -1032);
    // A crash kills the process that held the locks: recovery goes ahead.
    fs.crash();
    let recovered = Core::open(storage.clone(), p.clone()).unwrap();
    // The dead process's handles, dropped late, do not release the new holder's locks.
    drop(first);
    let third = Core::open(storage.clone(), p.clone());
    assert_eq!(third.map(|_| ()).unwrap_err().code(), -1032);
    drop(recovered);
    Core::open(storage, p).unwrap().term_dirty();
}

#[test]
fn recovery_skips_a_database_another_instance_holds() {
    let fs = FaultStorage::new();
    let storage: StorageRef = Arc::new(fs.clone());
    let (pa, pb) = (params(Path::new("/a")), params(Path::new("/b")));
    let shared = Path::new("/shared.edb");
    // a writes to the database, detaches it (clean) and dies.
    let mut a = Core::open(storage.clone(), pa.clone()).unwrap();
    let (db, t) = a.create_database(shared).unwrap();
    a.wait(t).unwrap();
    let s = a.begin_session().unwrap();
    let (tbl, t) = a.create_table(db, "t").unwrap();
    a.wait(t).unwrap();
    a.begin_transaction(s).unwrap();
    a.put(s, tbl, b"k", b"from a").unwrap();
    let t = a.commit(s, Commit::Durable).unwrap();
    a.wait(t).unwrap();
    a.detach_database(shared).unwrap();
    a.term_dirty();
    // b attaches it; a's recovery must leave it alone.
    let mut b = Core::open(storage.clone(), pb).unwrap();
    let db = b.attach_database(shared).unwrap();
    let tbl = b.open_table(db, "t").unwrap();
    let writes = fs.stats().writes_by_path_contains("shared.edb");
    let a = Core::open(storage.clone(), pa).unwrap();
    assert_eq!(fs.stats().writes_by_path_contains("shared.edb"), writes);
    let s = b.begin_session().unwrap();
    b.begin_transaction(s).unwrap();
    b.put(s, tbl, b"k2", b"from b").unwrap();
    let t = b.commit(s, Commit::Durable).unwrap();
    b.wait(t).unwrap();
    assert_eq!(
        b.get(s, tbl, b"k").unwrap().as_deref(),
        Some(&b"from a"[..])
    );
    b.term_clean().unwrap();
    a.term_clean().unwrap();
}
