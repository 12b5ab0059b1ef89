//! The log's own rules: names, rolls, circular reuse, and poisoning after a failed fsync.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use ese::internals::log::names;
use ese::io::{Fault, Storage};
use ese::{Commit, Core};
use support::core::*;

fn count_logs(storage: &dyn Storage, dir: &Path) -> usize {
    names::list_archived(storage, dir, "edb").unwrap().len()
}

#[test]
fn archived_logs_use_eight_hex_digits_and_accumulate_without_circular_logging() {
    let (_fs, storage) = fault_fs();
    let params = small_params(Path::new("/i")).log_file_size(64 * 1024);
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    for i in 0..200u32 {
        let t = core
            .put(s, tbl, &i.to_be_bytes(), &[3u8; 400])
            .unwrap()
            .unwrap();
        core.wait(t).unwrap();
    }
    core.checkpoint_now().unwrap();
    let n = count_logs(&*storage, Path::new("/i"));
    assert!(n >= 5, "only {n} archived logs");
    assert!(storage.exists(Path::new("/i/edb00000001.log")));
    assert!(storage.exists(Path::new("/i/edb.log")));
    assert!(storage.exists(Path::new("/i/edb.chk")));
    core.term_clean().unwrap();
}

/// A writer that keeps changing the same pages (the rightmost leaf, the table's root) and
/// never asks for a checkpoint: the background flushes alone bring the checkpoint within a
/// few logs of the tip. A flush that left behind every page whose last change was not yet
/// durable left those hot pages behind at every flush, and their first change pinned the
/// checkpoint at the first log for good. How far the checkpoint trails while the writer runs
/// depends on when the flusher's thread gets a core (19 logs behind beside a busy loop), so
/// the writer goes on, for at most 30 s, until it is near.
#[test]
fn the_checkpoint_follows_a_writer_that_keeps_changing_the_same_pages() {
    let (_fs, storage) = fault_fs();
    let params = small_params(Path::new("/i")).log_file_size(64 * 1024);
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    let put = |core: &mut ese::Core, i: u32| {
        let t = core
            .put(s, tbl, &i.to_be_bytes(), &[5u8; 300])
            .unwrap()
            .unwrap();
        core.wait(t).unwrap();
    };
    for i in 0..3000u32 {
        put(&mut core, i);
    }
    let tip = core.log().gen();
    assert!(
        tip > 10,
        "the workload should have rolled many times ({tip})"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut i = 3000;
    while core.log().gen() - core.checkpoint().lsn.gen() > 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the checkpoint stayed in log {} while the tip reached log {}",
            core.checkpoint().lsn.gen(),
            core.log().gen()
        );
        put(&mut core, i);
        i += 1;
    }
    core.term_clean().unwrap();
}

#[test]
fn circular_logging_reuses_files_the_checkpoint_passed() {
    let (fs, storage) = fault_fs();
    let params = small_params(Path::new("/i"))
        .log_file_size(64 * 1024)
        .circular_logging(true);
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    let mut most = 0;
    for i in 0..3000u32 {
        let t = core
            .put(s, tbl, &(i % 50).to_be_bytes(), &[3u8; 400])
            .unwrap()
            .unwrap();
        core.wait(t).unwrap();
        if i % 50 == 0 {
            core.checkpoint_now().unwrap();
        }
        most = most.max(count_logs(&*storage, Path::new("/i")));
    }
    let gens = core.log().gen();
    assert!(
        gens > 30,
        "the workload should have rolled many times ({gens})"
    );
    assert!(
        most <= 8,
        "circular logging kept {most} archived logs of {gens} generations"
    );
    let (mut core, tbl) = crash_and_reopen(core, &fs, &storage, &params);
    let s = core.begin_session().unwrap();
    assert_eq!(
        core.get(s, tbl, &49u32.to_be_bytes()).unwrap(),
        Some(vec![3u8; 400])
    );
    core.term_clean().unwrap();
}

#[test]
fn failed_fsync_poisons_the_log_and_nothing_later_is_acknowledged() {
    let (fs, storage) = fault_fs();
    let params = small_params(Path::new("/i"));
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    let t = core.put(s, tbl, b"before", b"1").unwrap().unwrap();
    core.wait(t).unwrap();
    fs.arm(Fault::FailSync {
        nth: 1,
        path_contains: Some("edb.log".into()),
    });
    core.begin_transaction(s).unwrap();
    core.put(s, tbl, b"lost", b"2").unwrap();
    let t = core.commit(s, Commit::Durable).unwrap();
    assert_eq!(core.wait(t).unwrap_err().code(), -510);
    // Every later operation reports the poisoned log.
    assert_eq!(core.begin_transaction(s).unwrap_err().code(), -510);
    assert_eq!(core.put(s, tbl, b"x", b"y").unwrap_err().code(), -510);
    let (mut core, tbl) = crash_and_reopen(core, &fs, &storage, &params);
    let s = core.begin_session().unwrap();
    assert_eq!(core.get(s, tbl, b"before").unwrap(), Some(b"1".to_vec()));
    assert_eq!(core.get(s, tbl, b"lost").unwrap(), None);
    core.term_clean().unwrap();
}

#[test]
fn after_the_log_fails_no_flush_starts_again() {
    let (fs, storage) = fault_fs();
    // A log file large enough that no roll comes first: the flush's wait for the log is the
    // first fsync.
    let params = small_params(Path::new("/i"))
        .log_file_size(1 << 20)
        .cache_pages(64);
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    fs.arm(Fault::FailSync {
        nth: 1,
        path_contains: Some("edb.log".into()),
    });
    // One lazy commit that dirties more pages than the cache holds: a flush starts, waits
    // for the log to be durable past its pages, and the log's fsync fails.
    core.begin_transaction(s).unwrap();
    for i in 0..200u32 {
        core.put(s, tbl, &i.to_be_bytes(), &[7u8; 1500]).unwrap();
    }
    let lazy = core.commit(s, Commit::Lazy).unwrap();
    assert_eq!(core.wait(lazy).unwrap_err().code(), -510);
    // The first failed flush comes in at a pump.
    let deadline = Instant::now() + Duration::from_secs(10);
    while core.stats().flushes_failed == 0 && Instant::now() < deadline {
        core.pump();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(core.stats().flushes_failed, 1);
    // Each later pump takes in what the flusher finished; before the fix each also started a
    // new flush of every dirty page, which failed at once (and woke the actor for the next).
    for _ in 0..100 {
        core.pump();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(core.stats().flushes_failed, 1);
    assert_eq!(core.put(s, tbl, b"x", b"y").unwrap_err().code(), -510);
    let (mut core, tbl) = crash_and_reopen(core, &fs, &storage, &params);
    let s = core.begin_session().unwrap();
    assert_eq!(core.get(s, tbl, &7u32.to_be_bytes()).unwrap(), None);
    core.term_clean().unwrap();
}

#[test]
fn full_log_volume_makes_the_instance_unavailable_with_the_disk_full_cause() {
    let (fs, storage) = fault_fs();
    let params = small_params(Path::new("/i")).log_file_size(64 * 1024);
    let (mut core, tbl) = open_db(&storage, &params);
    let s = core.begin_session().unwrap();
    fs.arm(Fault::NoSpace {
        path_contains: Some(".log".into()),
        after_bytes: 0,
    });
    let mut err = None;
    for i in 0..400u32 {
        match core
            .put(s, tbl, &i.to_be_bytes(), &[1u8; 500])
            .and_then(|t| core.wait(t.unwrap()))
        {
            Ok(()) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    // A full log volume shows when a roll makes a new file: the instance then reports
    // ESE's specific cause.
    assert_eq!(err.expect("the log volume filled up").code(), -1092);
    core.term_dirty();
    fs.disarm_all();
    let (core, _) = open_db(&storage, &params);
    core.term_clean().unwrap();
}

#[test]
fn bad_parameters_are_invalid_parameter() {
    let (_fs, storage) = fault_fs();
    for p in [
        small_params(Path::new("/i")).base_name("toolong"),
        small_params(Path::new("/i")).log_file_size(1000),
        small_params(Path::new("/i")).page_size(1000),
        small_params(Path::new("/i")).max_open_backup_files(0),
    ] {
        assert_eq!(Core::open(storage.clone(), p).unwrap_err().code(), -1003);
    }
}
