//! Crashes through the fault-injecting file layer: at every Nth write of a scripted
//! workload, and with the last write torn. After recovery every acknowledged durable commit
//! is present and whole, nothing uncommitted is visible, and every page verifies.

use crate::support;

use std::ops::Bound;
use std::path::Path;

use ese::internals::db::{DbFile, STATE_CLEAN};
use ese::io::{Fault, StorageRef};
use ese::{Commit, Core, Direction, InstanceParams, TableId};
use support::core::*;

const TXNS: u32 = 60;

/// Runs the workload until it finishes or the storage dies; returns the transactions whose
/// durable commit was acknowledged.
fn workload(storage: &StorageRef, params: &InstanceParams) -> Vec<u32> {
    let mut acked = Vec::new();
    let Ok(mut core) = Core::open(storage.clone(), params.clone()) else {
        return acked;
    };
    let path = db_path(params.system_dir());
    let Ok((db, t)) = core.create_database(&path) else {
        return acked;
    };
    let Ok(s) = core.begin_session() else {
        return acked;
    };
    if core.wait(t).is_err() {
        return acked;
    }
    let tbl = match core.create_table(db, "t") {
        Ok((tbl, t)) if core.wait(t).is_ok() => tbl,
        _ => return acked,
    };
    for i in 0..TXNS {
        if run_txn(&mut core, s, tbl, i).is_err() {
            break;
        }
        acked.push(i);
        if i % 20 == 19 && core.checkpoint_now().is_err() {
            break;
        }
    }
    core.term_dirty();
    acked
}

fn run_txn(core: &mut Core, s: ese::SessionId, tbl: TableId, i: u32) -> ese::Result<()> {
    core.begin_transaction(s)?;
    for part in ["a", "b", "c"] {
        // Values of a few hundred bytes so pages fill, split and get flushed.
        core.put(
            s,
            tbl,
            format!("t{i:03}-{part}").as_bytes(),
            &vec![i as u8; 300],
        )?;
    }
    core.put(s, tbl, b"last", &i.to_le_bytes())?;
    let t = core.commit(s, Commit::Durable)?;
    core.wait(t)
}

/// Recovers and checks the invariants; returns how many transactions are visible.
fn check(storage: &StorageRef, params: &InstanceParams, acked: &[u32], what: &str) -> usize {
    let mut core = Core::open(storage.clone(), params.clone())
        .unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
    let path = db_path(params.system_dir());
    if !storage.exists(&path) {
        assert!(
            acked.is_empty(),
            "{what}: database lost with acknowledged commits"
        );
        return 0;
    }
    let db = match core.attach_database(&path) {
        Ok(db) => db,
        // A crash between making the file and logging its attach: no log names it, nothing
        // was acknowledged, and creating the database again replaces it.
        Err(ese::Error::DatabaseDirtyShutdown) if acked.is_empty() => {
            if let Err(e) = core.create_database(&path) {
                panic!("{what}: creating again over a cut creation failed: {e}");
            }
            return 0;
        }
        Err(e) => panic!("{what}: attach after recovery failed: {e}"),
    };
    let tbl = match core.open_table(db, "t") {
        Ok(tbl) => tbl,
        Err(ese::Error::ObjectNotFound) => {
            assert!(
                acked.is_empty(),
                "{what}: table lost with acknowledged commits"
            );
            return 0;
        }
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
    let mut visible = Vec::new();
    for i in 0..TXNS {
        let parts = ["a", "b", "c"]
            .iter()
            .filter(|p| {
                rows.iter().any(|(k, v)| {
                    k == format!("t{i:03}-{p}").as_bytes() && v == &vec![i as u8; 300]
                })
            })
            .count();
        assert!(
            parts == 0 || parts == 3,
            "{what}: transaction {i} partially visible ({parts}/3)"
        );
        if parts == 3 {
            visible.push(i);
        }
    }
    for i in acked {
        assert!(
            visible.contains(i),
            "{what}: acknowledged transaction {i} lost"
        );
    }
    if let Some(&max) = visible.last() {
        let last = rows
            .iter()
            .find(|(k, _)| k == b"last")
            .map(|(_, v)| v.clone());
        assert_eq!(
            last,
            Some(max.to_le_bytes().to_vec()),
            "{what}: running row disagrees"
        );
        assert_eq!(
            visible,
            (0..=max).collect::<Vec<_>>(),
            "{what}: commits visible out of order"
        );
    }
    verify_all_pages(&mut core, db);
    core.term_clean().unwrap();
    visible.len()
}

/// The most writes of three whole runs: how many there are varies with group commit, and
/// crash points past a shorter run are checked as that run's end.
fn total_writes(params: &InstanceParams) -> u64 {
    (0..3)
        .map(|_| {
            let (fs, storage) = fault_fs();
            let acked = workload(&storage, params);
            assert_eq!(acked.len() as u32, TXNS);
            fs.stats().writes
        })
        .max()
        .unwrap_or(0)
}

fn params(dir: &str) -> InstanceParams {
    small_params(Path::new(dir))
        .log_file_size(64 * 1024)
        .cache_pages(64)
}

#[test]
fn crash_at_every_write() {
    let params = params("/inst");
    let total = total_writes(&params);
    assert!(total > 50, "workload too small: {total} writes");
    let mut fired = 0;
    for nth in 1..=total {
        let (fs, storage) = fault_fs();
        fs.arm(Fault::CrashAtWrite { nth });
        let acked = workload(&storage, &params);
        // Group commit makes the write count vary from run to run (more under load): a crash
        // point may fall after the end of a shorter run, which is then checked as is. Only
        // then may it not fire.
        if fs.is_dead() {
            fired += 1;
        } else {
            let made = fs.stats().writes;
            assert!(
                nth > made,
                "crash at write {nth} did not fire in a run of {made} writes"
            );
        }
        fs.disarm_all();
        fs.restart();
        check(
            &storage,
            &params,
            &acked,
            &format!("crash at write {nth}/{total}"),
        );
    }
    // Every point within its run fired (above). How many that is follows the runs' lengths,
    // which the machine's load sets (135 of 158 is the lowest seen): a floor, not a ratio.
    assert!(fired >= 50, "only {fired} of {total} crash points fired");
}

/// A crash at each folder sync: between a roll's renames, the folder holds the archived log
/// and the next file under its temporary name, and recovery takes that for a cut roll (a
/// folder with neither `<base>.log` nor that file is refused as a lost current log).
#[test]
fn crash_at_every_directory_sync() {
    let params = params("/inst");
    let (fs, storage) = fault_fs();
    workload(&storage, &params);
    let total = fs.stats().dir_syncs;
    assert!(total > 5, "workload too small: {total} directory syncs");
    for nth in 1..=total {
        let (fs, storage) = fault_fs();
        fs.arm(Fault::CrashAtDirSync {
            nth,
            path_contains: None,
        });
        let acked = workload(&storage, &params);
        fs.disarm_all();
        fs.restart();
        check(
            &storage,
            &params,
            &acked,
            &format!("crash at directory sync {nth}/{total}"),
        );
    }
}

#[test]
fn crash_with_the_last_write_torn() {
    use rand::{Rng, SeedableRng};
    let params = params("/inst");
    let total = total_writes(&params);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for nth in (2..=total).step_by(3) {
        let (fs, storage) = fault_fs();
        // The write before the crash point is torn at a random byte, then the crash comes.
        fs.arm(Fault::TornWrite {
            nth: nth - 1,
            path_contains: None,
            keep: rng.gen_range(0..8192),
        });
        fs.arm(Fault::CrashAtWrite { nth });
        let acked = workload(&storage, &params);
        fs.disarm_all();
        fs.restart();
        check(
            &storage,
            &params,
            &acked,
            &format!("torn write {} then crash", nth - 1),
        );
    }
}

#[test]
fn recovery_is_repeatable_after_a_crash_during_recovery() {
    let params = params("/inst");
    let (fs, storage) = fault_fs();
    let acked = workload(&storage, &params);
    fs.crash();
    fs.restart();
    // Crash recovery itself at its 3rd write, then recover again.
    fs.arm(Fault::CrashAtWrite { nth: 3 });
    let _ = Core::open(storage.clone(), params.clone());
    fs.restart();
    check(&storage, &params, &acked, "crash during recovery");
}

#[test]
fn lazy_commits_are_all_or_nothing_after_crash() {
    let params = params("/inst");
    let (fs, storage) = fault_fs();
    let mut core = Core::open(storage.clone(), params.clone()).unwrap();
    let (db, t) = core.create_database(&db_path(Path::new("/inst"))).unwrap();
    core.wait(t).unwrap();
    let s = core.begin_session().unwrap();
    let (tbl, t) = core.create_table(db, "t").unwrap();
    core.wait(t).unwrap();
    for i in 0..30u32 {
        core.begin_transaction(s).unwrap();
        for p in ["a", "b", "c"] {
            core.put(
                s,
                tbl,
                format!("t{i:03}-{p}").as_bytes(),
                &vec![i as u8; 300],
            )
            .unwrap();
        }
        core.put(s, tbl, b"last", &i.to_le_bytes()).unwrap();
        core.commit(s, Commit::Lazy).unwrap();
    }
    fs.crash();
    drop(core);
    fs.restart();
    check(&storage, &params, &[], "lazy commits then crash");
}

#[test]
fn recovery_leaves_the_database_consistent_with_the_end_of_its_log() {
    let params = params("/inst");
    let (fs, storage) = fault_fs();
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    for i in 0..50u32 {
        let t = core.put(s, tbl, &i.to_be_bytes(), &[1u8; 200]).unwrap();
        core.wait(t.unwrap()).unwrap();
    }
    core.term_dirty();
    fs.crash();
    fs.restart();
    // The open replays the log and marks the database clean; the log resumes where the
    // replayed records end, and the header says the database is consistent with that.
    let core = Core::open(storage.clone(), params.clone()).unwrap();
    let replayed = core.stats().recovery;
    assert!(replayed.commits > 0, "nothing was replayed: {replayed:?}");
    let (_, h) = DbFile::open(&*storage, &db_path(Path::new("/inst"))).unwrap();
    assert_eq!(h.state, STATE_CLEAN);
    assert_eq!(h.consistent_lsn, core.log().tip().0);
    assert!(h.consistent_lsn >= replayed.last_commit.0);
    core.term_clean().unwrap();
}
