//! A database that moves to another log stream: a clean database may be attached by any
//! instance (a restored copy, a file moved to a new instance). Its pages carry log positions
//! of the stream that last wrote them, which may run far past the new instance's log; redo
//! compares a page's position with a record's, so such a page would look newer than every
//! change the new stream makes to it. Two instances continuing one stream (a copied instance
//! directory) name it alike: the owner token an instance keeps for each header it wrote clean
//! tells its own databases from theirs.

use crate::support;

use std::path::Path;

use ese::internals::db::DbFile;
use ese::io::{FaultStorage, Storage, StorageRef};
use ese::{Commit, Core};
use support::core::*;

const ROWS: u32 = 400;

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

/// How instance A leaves the database: cleanly, or by a crash and the recovery of its next
/// start, which leaves it clean and detached (the attach once went by the header's
/// `consistent_lsn`, which recovery did not set then).
#[derive(Clone, Copy)]
enum Leave {
    Term,
    CrashAndRecovery,
}

#[test]
fn commits_after_an_attach_from_a_longer_log_stream_survive_a_crash() {
    move_then_crash(Leave::Term);
}

#[test]
fn commits_after_an_attach_of_a_database_recovery_left_clean_survive_a_crash() {
    move_then_crash(Leave::CrashAndRecovery);
}

fn move_then_crash(leave: Leave) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_fs, storage) = fault_fs();
    let params_a = small_params(a.path());
    let (mut core, tbl) = open_db(&storage, &params_a);
    let a_gen = run_far(&mut core, tbl);
    match leave {
        Leave::Term => core.term_clean().unwrap(),
        Leave::CrashAndRecovery => {
            core.term_dirty();
            Core::open(storage.clone(), params_a.clone())
                .unwrap()
                .term_clean()
                .unwrap();
        }
    }
    storage.create_dir_all(b.path()).unwrap();
    storage
        .rename(&db_path(a.path()), &db_path(b.path()))
        .unwrap();
    // Instance B starts its own stream at generation 1.
    commit_crash_and_check(&storage, b.path(), a_gen);
}

/// Instance A writes every row several times over, checkpointing, so that its pages go to
/// disk stamped with positions in a late generation of its log; returns that generation.
fn run_far(core: &mut Core, tbl: ese::TableId) -> u32 {
    for round in 0..4u8 {
        put_every_row(core, tbl, round);
        core.checkpoint_now().unwrap();
    }
    let gen = core.log().gen();
    assert!(gen >= 4, "the log reached generation {gen} only");
    gen
}

/// The instance in `dir`, whose log is behind `far_gen`, attaches the database moved there,
/// commits three rows durably and crashes before their pages reach the file: recovery must
/// redo the commits, over pages that another instance's log stamped.
fn commit_crash_and_check(storage: &StorageRef, dir: &Path, far_gen: u32) {
    commit_crash_and_check_at(storage, dir, &db_path(dir), far_gen);
}

/// [`commit_crash_and_check`] with the database at `db`.
fn commit_crash_and_check_at(storage: &StorageRef, dir: &Path, db: &Path, far_gen: u32) {
    let params_b = small_params(dir);
    let mut core = Core::open(storage.clone(), params_b.clone()).unwrap();
    let id = core.attach_database(db).unwrap();
    let tbl = core.open_table(id, "t").unwrap();
    assert!(core.log().gen() < far_gen);
    let s = core.begin_session().unwrap();
    for i in [0, ROWS / 2, ROWS - 1] {
        core.begin_transaction(s).unwrap();
        core.put(s, tbl, &key(i), b"after the move").unwrap();
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
    }
    core.term_dirty();

    let mut core = Core::open(storage.clone(), params_b.clone()).unwrap();
    let id = core.attach_database(db).unwrap();
    let tbl = core.open_table(id, "t").unwrap();
    let s = core.begin_session().unwrap();
    for i in 0..ROWS {
        let want: &[u8] = match i == 0 || i == ROWS / 2 || i == ROWS - 1 {
            true => b"after the move",
            false => &[3; 200],
        };
        let got = core.get(s, tbl, &key(i)).unwrap();
        assert_eq!(got.as_deref(), Some(want), "row {i} after recovery");
    }
    verify_all_pages(&mut core, id);
    core.term_clean().unwrap();
}

/// An attach that fails after it stamped the pages with its own log's positions (here its
/// log write fails) must leave a header that makes the next attach stamp them again, also
/// when that attach is by the instance the database came from: otherwise its pages would sit
/// at the failed instance's later positions, and redo would skip that instance's commits.
#[test]
fn a_failed_attach_from_a_longer_stream_leaves_the_database_to_be_stamped_again() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (fs, storage) = fault_fs();
    let params_a = small_params(a.path());
    let (core, _) = open_db(&storage, &params_a);
    core.term_clean().unwrap();

    // Instance B runs its own log well past A's, on a database of its own.
    let params_b = small_params(b.path());
    let (mut core_b, tbl_b) = open_db(&storage, &params_b);
    let s = core_b.begin_session().unwrap();
    for i in 0..ROWS * 3 {
        core_b.begin_transaction(s).unwrap();
        core_b.put(s, tbl_b, &key(i), &[7; 200]).unwrap();
        core_b.commit(s, Commit::Lazy).unwrap();
    }
    core_b.checkpoint_now().unwrap();
    assert!(core_b.log().gen() > 2);
    let b_log = b.path().join("edb.log").display().to_string();
    fs.arm(ese::io::Fault::FailWrite {
        nth: 1,
        path_contains: Some(b_log),
    });
    assert!(core_b.attach_database(&db_path(a.path())).is_err());
    fs.disarm_all();
    core_b.term_dirty();

    // Back on A: three durable commits, then a crash before their pages are written.
    let (mut core, tbl) = open_db(&storage, &params_a);
    let s = core.begin_session().unwrap();
    for i in 0..3 {
        core.begin_transaction(s).unwrap();
        core.put(s, tbl, &key(i), b"on a again").unwrap();
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
    }
    core.term_dirty();
    let (mut core, tbl) = open_db(&storage, &params_a);
    let s = core.begin_session().unwrap();
    for i in 0..3 {
        let got = core.get(s, tbl, &key(i)).unwrap();
        assert_eq!(
            got.as_deref(),
            Some(&b"on a again"[..]),
            "row {i} after recovery"
        );
    }
    core.term_clean().unwrap();
}

/// Two instances that continue one log stream (here a copied instance directory) name it
/// alike. A database one of them wrote clean after the copy still moves to the other as a
/// database from another stream: the receiving instance does not hold the owner token its
/// header carries.
#[test]
fn commits_after_a_move_between_instances_continuing_one_stream_survive_a_crash() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (fs, storage) = fault_fs();
    let params_a = small_params(a.path());
    let (core, _) = open_db(&storage, &params_a);
    core.term_clean().unwrap();
    copy_dir(&fs, a.path(), b.path());

    // A runs on from the copy, far past where B's copy of the log ends.
    let (mut core, tbl) = open_db(&storage, &params_a);
    let a_gen = run_far(&mut core, tbl);
    core.term_clean().unwrap();
    let moved = DbFile::open(&*storage, &db_path(a.path())).unwrap().1;
    let copy = DbFile::open(&*storage, &db_path(b.path())).unwrap().1;
    assert_eq!(moved.log_signature, copy.log_signature, "one stream");
    assert_ne!(moved.owner_token, copy.owner_token);

    storage.remove(&db_path(b.path())).unwrap();
    storage
        .rename(&db_path(a.path()), &db_path(b.path()))
        .unwrap();
    commit_crash_and_check(&storage, b.path(), a_gen);
}

/// Recovery leaves the owner token of a database it finds clean as it is, also one its
/// checkpoint still lists: here instance A detached it and crashed before its next
/// checkpoint, and meanwhile the file went to B (a copy of A's directory, so the same
/// stream), took commits far along B's log and came back. With a token from A's recovery, A
/// would attach it unstamped.
#[test]
fn a_database_that_came_back_clean_while_its_instance_was_down_is_stamped() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (fs, storage) = fault_fs();
    let params_a = small_params(a.path());
    let (core, _) = open_db(&storage, &params_a);
    core.term_clean().unwrap();
    copy_dir(&fs, a.path(), b.path());
    let (mut core, _) = open_db(&storage, &params_a);
    core.detach_database(&db_path(a.path())).unwrap();
    core.term_dirty();

    storage.remove(&db_path(b.path())).unwrap();
    storage
        .rename(&db_path(a.path()), &db_path(b.path()))
        .unwrap();
    let (mut core, tbl) = open_db(&storage, &small_params(b.path()));
    let b_gen = run_far(&mut core, tbl);
    core.term_clean().unwrap();
    let from_b = DbFile::open(&*storage, &db_path(b.path())).unwrap().1;
    storage
        .rename(&db_path(b.path()), &db_path(a.path()))
        .unwrap();

    let core = Core::open(storage.clone(), params_a).unwrap();
    let after = DbFile::open(&*storage, &db_path(a.path())).unwrap().1;
    assert_eq!(after.owner_token, from_b.owner_token, "B's token replaced");
    drop(core);
    commit_crash_and_check(&storage, a.path(), b_gen);
}

/// The owner tokens an instance keeps are its own databases' headers: coming back after a
/// clean term, after a detach, and after a crash and the recovery that cleans the database,
/// it is attached as it was, without a stamp (a stamp would rewrite every page and clear
/// the backup records, making the next incremental backup `MissingFullBackup`).
#[test]
fn an_instance_attaches_its_own_clean_database_without_stamping_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_fs, storage) = fault_fs();
    let params = small_params(dir.path());
    let path = db_path(dir.path());
    let (mut core, tbl) = open_db(&storage, &params);
    put_every_row(&mut core, tbl, 1);
    core.term_clean().unwrap();
    let written = page_positions(&storage, &path);

    // After a clean term.
    let (mut core, _) = open_db(&storage, &params);
    assert!(core.log().tip().0 > written.iter().copied().max().unwrap());
    assert_unstamped(&storage, &path, &written);
    // After a detach.
    core.detach_database(&path).unwrap();
    let token = DbFile::open(&*storage, &path).unwrap().1.owner_token;
    assert_ne!(token, 0);
    core.attach_database(&path).unwrap();
    assert_unstamped(&storage, &path, &written);
    let attached = DbFile::open(&*storage, &path).unwrap().1.owner_token;
    assert_ne!(attached, token, "the attach writes a token of its own");
    // After a crash and recovery, which keeps the attach's token.
    core.term_dirty();
    let core = Core::open(storage.clone(), params.clone()).unwrap();
    let recovered = DbFile::open(&*storage, &path).unwrap().1;
    assert!(recovered.is_clean());
    assert_eq!(recovered.owner_token, attached);
    drop(core);
    let (core, _) = open_db(&storage, &params);
    assert_unstamped(&storage, &path, &written);
    core.term_clean().unwrap();
}

/// An attach whose header write fails after its token reached the checkpoint (here the
/// write fails, twice; a crash there leaves the same files) leaves the header under the
/// token it had, as does a detach whose clean header write fails. That token is still the
/// instance's: after a crash and recovery the database is attached as its own, unstamped.
#[test]
fn header_writes_that_failed_after_their_token_was_kept_leave_the_database_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, storage) = fault_fs();
    let params = small_params(dir.path());
    let path = db_path(dir.path());
    let fail_next_write = || {
        fs.arm(ese::io::Fault::FailWrite {
            nth: 1,
            path_contains: Some(path.display().to_string()),
        })
    };
    let (mut core, _) = open_db(&storage, &params);
    core.detach_database(&path).unwrap();
    let written = page_positions(&storage, &path);
    for _ in 0..2 {
        fail_next_write();
        assert_eq!(core.attach_database(&path).unwrap_err().code(), -1022);
        fs.disarm_all();
    }
    core.term_dirty();
    let (mut core, _) = open_db(&storage, &params);
    assert_unstamped(&storage, &path, &written);

    // The detach's clean header write fails: the attach's dirty header stays.
    fail_next_write();
    assert_eq!(core.detach_database(&path).unwrap_err().code(), -1022);
    fs.disarm_all();
    core.term_dirty();
    let (core, _) = open_db(&storage, &params);
    assert_unstamped(&storage, &path, &written);
    core.term_clean().unwrap();
}

/// A copy of an instance directory recovers the files its log names, which are the
/// original's: here the original had attached its database again after the copy, run far
/// ahead and crashed. The copy's recovery cleans the file, and its attach must still stamp
/// it: the token the original's attach wrote is not the copy's.
#[test]
fn a_copy_that_recovered_the_originals_file_stamps_it_on_attach() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (fs, storage) = fault_fs();
    let params_a = small_params(a.path());
    let (mut core, tbl) = open_db(&storage, &params_a);
    put_every_row(&mut core, tbl, 9);
    core.checkpoint_now().unwrap();
    core.term_dirty();
    copy_dir(&fs, a.path(), b.path());

    let (mut core, tbl) = open_db(&storage, &params_a);
    let a_gen = run_far(&mut core, tbl);
    core.term_dirty();

    // B's recovery replays its copy of the log into A's file, which its log names.
    let core = Core::open(storage.clone(), small_params(b.path())).unwrap();
    assert!(DbFile::open(&*storage, &db_path(a.path()))
        .unwrap()
        .1
        .is_clean());
    drop(core);
    commit_crash_and_check_at(&storage, b.path(), &db_path(a.path()), a_gen);
}

/// Every row, each in a lazy transaction of its own, its value 200 bytes of `v`.
fn put_every_row(core: &mut Core, tbl: ese::TableId, v: u8) {
    let s = core.begin_session().unwrap();
    for i in 0..ROWS {
        core.begin_transaction(s).unwrap();
        core.put(s, tbl, &key(i), &[v; 200]).unwrap();
        core.commit(s, Commit::Lazy).unwrap();
    }
    core.end_session(s);
}

/// The database's pages are where they were: an attach did not stamp them.
fn assert_unstamped(storage: &StorageRef, path: &Path, written: &[u64]) {
    assert_eq!(page_positions(storage, path), written, "stamped on attach");
}

/// Each data page's log position, as on disk.
fn page_positions(storage: &StorageRef, path: &Path) -> Vec<u64> {
    let (file, _) = DbFile::open(&**storage, path).unwrap();
    let last = ese::internals::btree::decode_meta(&file.read_page(1).unwrap())
        .unwrap()
        .last_page;
    (1..=last)
        .map(|p| ese::internals::page::lsn(&file.read_page_raw(p).unwrap()))
        .collect()
}

/// Copies every file of an instance directory, as a copy of a stopped instance would.
fn copy_dir(fs: &FaultStorage, from: &Path, to: &Path) {
    fs.create_dir_all(to).unwrap();
    for p in fs.list(from).unwrap() {
        if let Some(bytes) = fs.read_file(&p) {
            fs.write_file_raw(&to.join(p.file_name().unwrap()), &bytes);
        }
    }
}
