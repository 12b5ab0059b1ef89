//! The crash loop: a child process commits and backs up on real files; the parent kills it with
//! SIGKILL at a random moment, recovers the files, and checks that every commit the child
//! reported acknowledged is present and whole, nothing is partly visible, every page verifies,
//! and the backup that was running is gone so a new one can begin. 20 iterations here;
//! `ESE_CRASH_ITERATIONS=N` for long runs.

use crate::child::{self, params};
use crate::support;

use std::io::{BufRead, BufReader};
use std::ops::Bound;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ese::io::os;
use ese::{BackupBegin, BackupEnd, Core, Direction};
use rand::Rng;

/// Checks the files after a kill; returns the number of transactions found.
fn check(dir: &Path, acked: &[u64], iteration: usize) -> u64 {
    let what = format!("iteration {iteration}");
    let mut core =
        Core::open(os(), params(dir)).unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
    let path = dir.join("crash.edb");
    if !path.exists() {
        assert!(
            acked.is_empty(),
            "{what}: database gone with acknowledged commits"
        );
        return 0;
    }
    let db = core
        .attach_database(&path)
        .unwrap_or_else(|e| panic!("{what}: attach failed: {e}"));
    let tbl = match core.open_table(db, "t") {
        Ok(tbl) => tbl,
        Err(ese::Error::ObjectNotFound) if acked.is_empty() => return 0,
        Err(e) => panic!("{what}: opening the table failed: {e}"),
    };
    let s = core.begin_session().unwrap();
    let rows = match core.scan(
        s,
        tbl,
        Bound::Unbounded,
        Bound::Unbounded,
        Direction::Forward,
    ) {
        Ok(r) => r,
        Err(e) => panic!("{what}: scan failed: {e}"),
    };
    let mut parts = std::collections::BTreeMap::<u64, usize>::new();
    for (k, v) in &rows {
        if k.starts_with(b"c") {
            let i: u64 = std::str::from_utf8(&k[1..9]).unwrap().parse().unwrap();
            assert_eq!(
                v,
                &vec![(i % 251) as u8; 100 + (i % 300) as usize],
                "{what}: value of {i} damaged"
            );
            *parts.entry(i).or_default() += 1;
        }
    }
    for (i, n) in &parts {
        assert_eq!(*n, 3, "{what}: transaction {i} partly visible");
    }
    for i in acked {
        assert!(
            parts.contains_key(i),
            "{what}: acknowledged transaction {i} lost"
        );
    }
    let found = parts.len() as u64;
    // A prefix: transactions commit in order.
    if let Some((&last, _)) = parts.iter().next_back() {
        assert_eq!(
            last + 1,
            found,
            "{what}: gaps in the committed transactions"
        );
    }
    support::core::verify_all_pages(&mut core, db);
    // The backup the child was running is gone: a new one begins.
    core.backup_begin(BackupBegin::empty())
        .unwrap_or_else(|e| panic!("{what}: new backup refused: {e}"));
    core.backup_end(BackupEnd::ABORT).unwrap();
    core.term_clean().unwrap();
    found
}

#[test]
fn kill_nine_loop() {
    let iterations: usize = std::env::var("ESE_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    let mut total_acked = 0usize;
    let mut last_found = 0;
    for it in 0..iterations {
        let mut child = child::command(child::Mode::Run, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let acked = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let out = child.stdout.take().unwrap();
            let acked = acked.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(n) = line.strip_prefix("ACK ") {
                        acked.lock().unwrap().push(n.parse::<u64>().unwrap());
                    }
                }
            })
        };
        // Kills land anywhere, during recovery too. On a loaded machine a child may need longer
        // than the longest delay to acknowledge anything, so the last child is killed only
        // after its first acknowledgement: the loop always checks some acknowledged commits.
        if it + 1 == iterations && total_acked == 0 {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while acked.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(!err.contains("panicked"), "child panicked: {err}");
        assert!(!status.success());
        let acked = acked.lock().unwrap().clone();
        total_acked += acked.len();
        let found = check(dir.path(), &acked, it);
        assert!(
            found >= last_found,
            "iteration {it}: committed transactions went backwards"
        );
        last_found = found;
    }
    eprintln!("crash loop: {iterations} kills, {total_acked} acknowledged commits checked, {last_found} transactions on disk, 0 lost");
    assert!(total_acked > 0, "the child never acknowledged anything");
}
