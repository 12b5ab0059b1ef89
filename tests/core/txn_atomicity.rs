//! Transactions cut by a crash: what reaches the log of a transaction whose commit record
//! never did must never come back, whichever replay reads that log later (soft recovery, or a
//! restore that rolls forward through the source's logs).

use crate::support;

use std::ops::Bound;
use std::path::{Path, PathBuf};

use ese::internals::backup::stream;
use ese::internals::log::{framed_len, Record, END_RESERVE, LOG_HEADER_SIZE};
use ese::io::{OpenMode, Storage, StorageRef};
use ese::restore::{external_restore, RestoreSpec};
use ese::{BackupBegin, BackupEnd, Commit, Core, Direction, Lsn, SessionId, TableId};
use support::core::*;

/// Reads a backup file to its end through the core's backup reads.
fn read_backup_file(core: &mut Core, h: u64) -> Vec<u8> {
    let sig = core.log().signature();
    let log = core.log().shared().clone();
    let mut out = Vec::new();
    loop {
        let (ticket, plan) = core.backup_plan_read(h, 16 * 4096).unwrap();
        let res = stream::execute(&**core.storage(), &plan, sig, &|| log.durable());
        let chunk = core.backup_read_done(ticket, res).unwrap().bytes;
        if chunk.is_empty() {
            return out;
        }
        out.extend_from_slice(&chunk);
    }
}

fn write_file(st: &dyn Storage, p: &Path, b: &[u8]) {
    let f = st.open(p, OpenMode::Create).unwrap();
    f.write_at(b, 0).unwrap();
    f.sync().unwrap();
}

/// A full backup of the test database into `dir` (image `img.edb` and the logs); its
/// generation range.
fn full_backup(core: &mut Core, db: &Path, dir: &Path) -> (u32, u32) {
    let st = core.storage().clone();
    st.create_dir_all(dir).unwrap();
    core.backup_begin(BackupBegin::empty()).unwrap();
    let (h, _) = core.backup_open(db).unwrap();
    let img = read_backup_file(core, h);
    core.backup_close(h).unwrap();
    write_file(&*st, &dir.join("img.edb"), &img);
    core.backup_prepare_logs().unwrap();
    let (lo, hi, files) = core.backup_log_info().unwrap();
    for f in files {
        let (h, _) = core.backup_open(&f).unwrap();
        let bytes = read_backup_file(core, h);
        core.backup_close(h).unwrap();
        write_file(&*st, &dir.join(f.file_name().unwrap()), &bytes);
    }
    core.backup_end(BackupEnd::NORMAL).unwrap();
    (lo, hi)
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

fn rows(core: &mut Core, s: SessionId, tbl: TableId) -> Vec<(Vec<u8>, Vec<u8>)> {
    core.scan(
        s,
        tbl,
        Bound::Unbounded,
        Bound::Unbounded,
        Direction::Forward,
    )
    .unwrap()
}

/// Pads the current log file with no-op records until a record of `len` payload bytes still
/// fits in it but a commit record after it does not.
fn pad_log_to_leave_room_for(core: &mut Core, len: usize) {
    let rec = framed_len(len) as u64;
    let commit = framed_len(16) as u64;
    let room =
        |c: &Core| c.params().log_bytes() - END_RESERVE as u64 - c.log().tip().offset() as u64;
    if room(core) < rec + commit {
        core.log_mut().roll().unwrap();
    }
    while room(core) >= rec + commit {
        core.log_mut()
            .append(&Record::BackupMark { kind: 1 }, false)
            .unwrap();
    }
    assert!(room(core) >= rec, "the padding overshot");
}

/// A transaction whose page images reached the log (a roll synced them) but whose commit
/// record did not is lost in a crash, as it should be. But the log then resumes after those
/// orphaned images, and a later replay of that generation from before them — here a restore
/// of a backup taken before the crash that rolls forward through the source's logs — held
/// them as pending and applied them with the first commit after the restart: a transaction
/// that was never committed (nor acknowledged) appeared in the restored database.
#[test]
fn an_uncommitted_transaction_cut_by_a_crash_never_comes_back_in_a_roll_forward() {
    let (fs, storage) = fault_fs();
    let params = small_params(Path::new("/i"));
    let db_file = db_path(Path::new("/i"));
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    // Enough rows for several leaves, so the lost transaction and the later one touch
    // different pages.
    core.begin_transaction(s).unwrap();
    for i in (0..400).step_by(2) {
        core.put(s, tbl, &key(i), &[1; 100]).unwrap();
    }
    let t = core.commit(s, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    let (lo, hi) = full_backup(&mut core, &db_file, Path::new("/set"));

    // The lost transaction: one row into a leaf on the left. Its only page is logged as a
    // full image (the first change since the flush), which just fits in the current file;
    // the commit record does not, so it goes to the next generation after a roll, which
    // makes the image durable. The commit is lazy: nothing makes its record durable.
    pad_log_to_leave_room_for(&mut core, 4 + 12 + 4096);
    // Flushed after the padding: no flush is due after the commit, so nothing asks for an
    // fsync of its record.
    core.flush_all().unwrap();
    let gen = core.log().gen();
    core.begin_transaction(s).unwrap();
    core.put(s, tbl, &key(11), b"never committed").unwrap();
    let t = core.commit(s, Commit::Lazy).unwrap();
    assert_eq!(
        t.lsn.gen(),
        gen + 1,
        "the commit record went to the next file"
    );
    // The roll is done (it published the new file's start as durable); then the power fails.
    let started = Lsn::new(gen + 1, LOG_HEADER_SIZE);
    while core.log().durable() < started {
        std::thread::yield_now();
    }
    fs.crash();
    core.term_dirty();
    fs.restart();

    // Recovery drops the transaction.
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    assert_eq!(core.get(s, tbl, &key(11)).unwrap(), None);
    // A later durable commit, on the rightmost leaf.
    let t = core.put(s, tbl, &key(999), b"later").unwrap().unwrap();
    core.wait(t).unwrap();
    core.term_clean().unwrap();

    // Restore the backup and roll forward through every log of the source.
    let restored = PathBuf::from("/r/restored.edb");
    storage.create_dir_all(Path::new("/r")).unwrap();
    fs.write_file_raw(&restored, &fs.read_file(Path::new("/set/img.edb")).unwrap());
    let spec = RestoreSpec {
        checkpoint_dir: PathBuf::from("/r"),
        log_dir: PathBuf::from("/i"),
        backup_log_dir: PathBuf::from("/set"),
        gen_low: lo,
        gen_high: hi,
        base_name: "edb".into(),
        restore_map: vec![(db_file, restored.clone())],
        stop_at: None,
    };
    external_restore(&*storage, &spec).unwrap();

    let probe = small_params(Path::new("/p"));
    let mut core = Core::open(storage.clone() as StorageRef, probe).unwrap();
    let db = core.attach_database(&restored).unwrap();
    let tbl = core.open_table(db, "t").unwrap();
    let s = core.begin_session().unwrap();
    let got = rows(&mut core, s, tbl);
    assert!(
        got.iter().any(|(k, _)| *k == key(999)),
        "the later commit is restored"
    );
    assert_eq!(
        got.iter().find(|(k, _)| *k == key(11)),
        None,
        "a transaction whose commit record was lost came back in the restore"
    );
    assert_eq!(got.len(), 201);
}

/// The workload of [`restore_rolls_forward_to_what_recovery_found`]: transactions of a few
/// rows of 700 bytes, lazy and durable in turn, over many log rolls, a checkpoint now and
/// then; it runs until the storage dies.
fn rolling_workload(core: &mut Core, s: SessionId, tbl: TableId) -> ese::Result<()> {
    for i in 0..120u32 {
        core.begin_transaction(s)?;
        for part in 0..3u32 {
            core.put(s, tbl, &key(1000 + i * 3 + part), &[i as u8; 700])?;
        }
        // Each transaction also replaces a row of the base, so transactions share pages.
        core.put(s, tbl, &key((i * 14) % 400), &i.to_le_bytes())?;
        let how = if i % 2 == 0 {
            Commit::Lazy
        } else {
            Commit::Durable
        };
        let t = core.commit(s, how)?;
        if i % 2 == 1 {
            core.wait(t)?;
        }
        if i % 25 == 24 {
            core.checkpoint_now()?;
        }
    }
    Ok(())
}

/// A crash at write `nth` of a workload whose transactions span log rolls, recovery, one
/// more durable commit, then a restore of a backup taken before the workload that rolls
/// forward through every log of the source: it must give exactly what recovery found plus
/// that commit. (Crashes at a write rarely leave page records without their commit; the test
/// above builds that case on purpose.)
#[test]
fn restore_rolls_forward_to_what_recovery_found() {
    for nth in (1..1200u64).step_by(3) {
        let (fs, storage) = fault_fs();
        let params = small_params(Path::new("/i"));
        let db_file = db_path(Path::new("/i"));
        let (mut core, tbl) = open_db(&storage, &params);
        let s = core.begin_session().unwrap();
        core.begin_transaction(s).unwrap();
        for i in (0..400).step_by(2) {
            core.put(s, tbl, &key(i), &[1; 100]).unwrap();
        }
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
        let (lo, hi) = full_backup(&mut core, &db_file, Path::new("/set"));
        core.flush_all().unwrap();
        fs.arm(ese::io::Fault::CrashAtWrite { nth });
        let _ = rolling_workload(&mut core, s, tbl);
        let finished = !fs.is_dead();
        core.term_dirty();
        fs.disarm_all();
        fs.restart();

        let (mut core, tbl) = open_db(&storage, &params);
        let s = core.begin_session().unwrap();
        let mut want = rows(&mut core, s, tbl);
        let t = core.put(s, tbl, &key(9999), b"after").unwrap().unwrap();
        core.wait(t).unwrap();
        want.push((key(9999), b"after".to_vec()));
        core.term_clean().unwrap();

        let restored = PathBuf::from("/r/restored.edb");
        storage.create_dir_all(Path::new("/r")).unwrap();
        fs.write_file_raw(&restored, &fs.read_file(Path::new("/set/img.edb")).unwrap());
        let spec = RestoreSpec {
            checkpoint_dir: PathBuf::from("/r"),
            log_dir: PathBuf::from("/i"),
            backup_log_dir: PathBuf::from("/set"),
            gen_low: lo,
            gen_high: hi,
            base_name: "edb".into(),
            restore_map: vec![(db_file, restored.clone())],
            stop_at: None,
        };
        external_restore(&*storage, &spec)
            .unwrap_or_else(|e| panic!("crash at write {nth}: restore failed: {e}"));
        let probe = small_params(Path::new("/p"));
        let mut core = Core::open(storage.clone() as StorageRef, probe).unwrap();
        let db = core.attach_database(&restored).unwrap();
        let tbl = core.open_table(db, "t").unwrap();
        let s = core.begin_session().unwrap();
        let got = rows(&mut core, s, tbl);
        assert!(
            got == want,
            "crash at write {nth}: the restore has {} rows, recovery found {}",
            got.len(),
            want.len()
        );
        verify_all_pages(&mut core, db);
        if finished {
            // Later crash points fall past the workload's end.
            return;
        }
    }
    panic!("every crash point fell inside the workload: widen the range");
}
