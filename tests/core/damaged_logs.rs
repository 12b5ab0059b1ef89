//! What soft recovery does with odd or damaged log folders: which files it trusts, what it
//! replays, which error it answers, and that a refusal leaves every file as it was, so a retry
//! after the operator's fix loses nothing.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ese::internals::log::names;
use ese::io::{os, StorageRef};
use ese::{Commit, Core, InstanceParams, TableId};
use support::core::*;

fn params(dir: &Path) -> InstanceParams {
    small_params(dir).log_file_size(64 * 1024)
}

/// Durable rows `from..to` (key `k{i}`, value of 300 bytes of `i as u8`).
fn put_rows(core: &mut Core, tbl: TableId, from: u32, to: u32) {
    let s = core.begin_session().unwrap();
    for i in from..to {
        core.begin_transaction(s).unwrap();
        core.put(s, tbl, format!("k{i:04}").as_bytes(), &[i as u8; 300])
            .unwrap();
        let t = core.commit(s, Commit::Durable).unwrap();
        core.wait(t).unwrap();
    }
    core.end_session(s);
}

fn assert_rows(core: &mut Core, tbl: TableId, from: u32, to: u32) {
    let s = core.begin_session().unwrap();
    for i in from..to {
        assert_eq!(
            core.get(s, tbl, format!("k{i:04}").as_bytes()).unwrap(),
            Some(vec![i as u8; 300]),
            "row {i} lost"
        );
    }
    core.end_session(s);
}

/// Every file of the folder, by name, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn open_err(storage: &StorageRef, params: &InstanceParams) -> ese::Error {
    Core::open(storage.clone(), params.clone()).expect_err("open must fail")
}

/// The log file size parameter changed between two runs. Every file of a stream keeps the size
/// its header names (a reader refuses any other length), so appending to `<base>.log` as if it
/// had the new size (or zeroing its tail up to it) makes the file unreadable: the next init
/// failed with `LogFileCorrupt` and every commit in that file was lost. As ESE, init refuses
/// with `LogFileSizeMismatch` (-541) and touches nothing; the old size still opens.
#[test]
fn a_changed_log_file_size_is_log_file_size_mismatch_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let storage = os();
    let params = params(dir.path());
    let (mut core, tbl) = open_db(&storage, &params);
    put_rows(&mut core, tbl, 0, 20);
    core.term_clean().unwrap();
    for other in [256 * 1024, 128 * 1024] {
        let changed = params.clone().log_file_size(other);
        let before = snapshot(dir.path());
        assert_eq!(open_err(&storage, &changed).code(), -541);
        assert_eq!(snapshot(dir.path()), before, "a refused init changed files");
    }
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 20);
    put_rows(&mut core, tbl, 20, 40);
    core.term_dirty();
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 40);
    core.term_clean().unwrap();
}

/// An instance with rows `0..150` in several generations (rows past a checkpoint in
/// `<base>.log`), stopped as a crash does.
fn several_generations(dir: &Path) -> (StorageRef, InstanceParams) {
    let storage = os();
    let params = params(dir);
    let (mut core, tbl) = open_db(&storage, &params);
    put_rows(&mut core, tbl, 0, 140);
    core.checkpoint_now().unwrap();
    put_rows(&mut core, tbl, 140, 150);
    core.term_dirty();
    assert!(
        names::archived(dir, "edb", 3).exists(),
        "workload too small"
    );
    (storage, params)
}

/// Moves the checkpoint back to the start of generation 1: an older checkpoint is always
/// valid (redo is idempotent), and it makes every archived log needed.
fn rewind_checkpoint(storage: &StorageRef, dir: &Path) {
    use ese::internals::log::checkpoint;
    let path = dir.join("edb.chk");
    let mut chk = checkpoint::read(&**storage, &path).unwrap().unwrap();
    chk.seq += 1;
    chk.lsn = ese::Lsn::new(1, 4096);
    checkpoint::write(&**storage, &path, &chk).unwrap();
}

/// `<base>.log` holding an older generation than archived logs beside it (an operator put an
/// old copy back). Recovery took it as the end of the stream: it replayed up to it, silently
/// dropping every commit of the newer archived logs, and the next rolls renamed new files
/// over those archived logs. The newest generation must be `<base>.log`: anything else is
/// `LogGenerationMismatch` (-513), with nothing touched.
#[test]
fn a_current_log_older_than_an_archived_one_is_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = several_generations(dir.path());
    rewind_checkpoint(&storage, dir.path());
    let current = names::current(dir.path(), "edb");
    let kept = std::fs::read(&current).unwrap();
    std::fs::copy(names::archived(dir.path(), "edb", 2), &current).unwrap();
    let before = snapshot(dir.path());
    assert_eq!(open_err(&storage, &params).code(), -513);
    assert_eq!(snapshot(dir.path()), before, "a refused init changed files");
    // The operator puts the right file back: everything is there.
    std::fs::write(&current, kept).unwrap();
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 150);
    core.term_clean().unwrap();
}

/// `<base>.log` whose first block was lost (read back as zeros) while its records are intact.
/// Recovery took it for the empty file a roll that crashed before the new header was durable
/// would leave, replayed the archived logs only and wrote a new `<base>.log` over it: the
/// durable commits in it were gone, without an error. A roll installs `<base>.log` only once
/// it is written and synced whole, so a file with anything but zeros is damaged:
/// `LogFileCorrupt` (-501), with nothing touched.
#[test]
fn a_current_log_with_a_zeroed_header_but_records_is_log_file_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = several_generations(dir.path());
    let current = names::current(dir.path(), "edb");
    let kept = std::fs::read(&current).unwrap();
    let mut b = kept.clone();
    b[..4096].fill(0);
    std::fs::write(&current, &b).unwrap();
    // With the checkpoint in the damaged file, and with an older one.
    for rewind in [false, true] {
        if rewind {
            rewind_checkpoint(&storage, dir.path());
        }
        let before = snapshot(dir.path());
        assert_eq!(open_err(&storage, &params).code(), -501);
        assert_eq!(snapshot(dir.path()), before, "a refused init changed files");
    }
    std::fs::write(&current, kept).unwrap();
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 150);
    core.term_clean().unwrap();
}

/// A checkpoint file of another instance's stream put in place of this one's. Its log
/// signature matches none of the logs, which agree among themselves: the checkpoint is the
/// odd file, `BadCheckpointSignature` (-532), not a log of the wrong stream (-530), which sent
/// the operator after logs that are fine.
#[test]
fn a_checkpoint_of_another_stream_is_bad_checkpoint_signature() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let (storage, params) = several_generations(dir.path());
    let _ = several_generations(other.path());
    let chk = dir.path().join("edb.chk");
    let kept = std::fs::read(&chk).unwrap();
    std::fs::copy(other.path().join("edb.chk"), &chk).unwrap();
    let before = snapshot(dir.path());
    assert_eq!(open_err(&storage, &params).code(), -532);
    assert_eq!(snapshot(dir.path()), before, "a refused init changed files");
    std::fs::write(&chk, kept).unwrap();
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 150);
    core.term_clean().unwrap();
}

/// `<base>.log` gone while the checkpoint points into the generation after the last archived
/// one, the generation `<base>.log` held. The checkpoint is sound; the current log is missing:
/// `MissingLogFile` (-528, ESE's "current log file missing"), not `CheckpointCorrupt` (-533),
/// which invited the operator to drop the checkpoint, after which recovery would start from
/// the oldest log and end, silently, without the lost file's commits.
#[test]
fn a_missing_current_log_the_checkpoint_points_into_is_missing_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = several_generations(dir.path());
    // The checkpoint in `<base>.log`'s generation, wherever the flushes left it.
    let (mut core, tbl) = open_db(&storage, &params);
    put_rows(&mut core, tbl, 150, 160);
    core.checkpoint_now().unwrap();
    core.term_dirty();
    let current = names::current(dir.path(), "edb");
    let cur_gen = ese::internals::log::reader::read_file(&*storage, &current)
        .unwrap()
        .header
        .gen;
    let chk = ese::internals::log::checkpoint::read(&*storage, &dir.path().join("edb.chk"))
        .unwrap()
        .unwrap();
    assert_eq!(chk.lsn.gen(), cur_gen);
    let kept = std::fs::read(&current).unwrap();
    std::fs::remove_file(&current).unwrap();
    let before = snapshot(dir.path());
    assert_eq!(open_err(&storage, &params).code(), -528);
    assert_eq!(snapshot(dir.path()), before, "a refused init changed files");
    std::fs::write(&current, kept).unwrap();
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 160);
    core.term_clean().unwrap();
}

/// `<base>.log` gone while the checkpoint stands in the last archived generation, where the
/// flushes usually leave it. Recovery took the folder for one a crash left between a roll's
/// renames, replayed the archived logs and started a new `<base>.log`: the durable commits of
/// the lost file were gone, and init said nothing. A roll now builds the next file whole before
/// it renames `<base>.log` away, so only a folder holding that file is a cut roll; anything
/// else is `MissingLogFile` (-528), with nothing touched.
#[test]
fn a_missing_current_log_is_missing_log_file_wherever_the_checkpoint_is() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = several_generations(dir.path());
    let current = names::current(dir.path(), "edb");
    let kept = std::fs::read(&current).unwrap();
    std::fs::remove_file(&current).unwrap();
    // With the checkpoint wherever the flushes left it, and with the oldest one.
    for rewind in [false, true] {
        if rewind {
            rewind_checkpoint(&storage, dir.path());
        }
        let before = snapshot(dir.path());
        assert_eq!(open_err(&storage, &params).code(), -528);
        assert_eq!(snapshot(dir.path()), before, "a refused init changed files");
    }
    std::fs::write(&current, kept).unwrap();
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 150);
    core.term_clean().unwrap();
}

/// The archived log the checkpoint points into is gone (alone, or with every older one): ESE's
/// `MissingPreviousLogFile` (-509, "missing the log file for the checkpoint"), not the
/// `MissingLogFile` (-528, "current log file missing") it was, which sent the operator after
/// `<base>.log`, which is there.
#[test]
fn the_checkpoints_log_missing_is_missing_previous_log_file() {
    use ese::internals::log::checkpoint;
    for older_too in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (storage, params) = several_generations(dir.path());
        let path = dir.path().join("edb.chk");
        let mut chk = checkpoint::read(&*storage, &path).unwrap().unwrap();
        chk.seq += 1;
        chk.lsn = ese::Lsn::new(3, 4096);
        checkpoint::write(&*storage, &path, &chk).unwrap();
        let good = snapshot(dir.path());
        let gone: Vec<u32> = if older_too { vec![1, 2, 3] } else { vec![3] };
        for g in &gone {
            std::fs::remove_file(names::archived(dir.path(), "edb", *g)).unwrap();
        }
        let before = snapshot(dir.path());
        assert_eq!(
            open_err(&storage, &params).code(),
            -509,
            "older too: {older_too}"
        );
        assert_eq!(snapshot(dir.path()), before, "a refused init changed files");
        for (p, b) in &good {
            std::fs::write(p, b).unwrap();
        }
        let (mut core, tbl) = open_db(&storage, &params);
        assert_rows(&mut core, tbl, 0, 150);
        core.term_clean().unwrap();
    }
}

/// Damage in a sealed (archived) log the replay needs, each refused with its error and nothing
/// touched (the databases included: replay had got past earlier generations when it met the
/// damage); the operator puts the good file back and the retry recovers every row.
#[test]
fn damage_in_an_archived_log_is_refused_and_the_retry_after_the_fix_recovers_everything() {
    type Damage = fn(&Path, &Path);
    let cases: [(&str, Damage, i32); 5] = [
        (
            "a flipped bit in a record",
            |d, _| flip(&names::archived(d, "edb", 3), 6000),
            -501,
        ),
        (
            "cut to its header",
            |d, _| cut(&names::archived(d, "edb", 3), 4096),
            -501,
        ),
        (
            "cut to nothing",
            |d, _| cut(&names::archived(d, "edb", 3), 0),
            -501,
        ),
        (
            "swapped with the next generation",
            |d, _| {
                let (a, b) = (names::archived(d, "edb", 2), names::archived(d, "edb", 3));
                let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
                std::fs::write(&a, y).unwrap();
                std::fs::write(&b, x).unwrap();
            },
            -513,
        ),
        (
            "replaced by another instance's",
            |d, other| {
                std::fs::copy(
                    names::archived(other, "edb", 3),
                    names::archived(d, "edb", 3),
                )
                .unwrap();
            },
            -530,
        ),
    ];
    let other = tempfile::tempdir().unwrap();
    let _ = several_generations(other.path());
    for (what, damage, code) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (storage, params) = several_generations(dir.path());
        rewind_checkpoint(&storage, dir.path());
        let good = snapshot(dir.path());
        damage(dir.path(), other.path());
        let before = snapshot(dir.path());
        assert_eq!(open_err(&storage, &params).code(), code, "{what}");
        assert_eq!(
            snapshot(dir.path()),
            before,
            "{what}: a refused init changed files"
        );
        for (p, b) in &good {
            std::fs::write(p, b).unwrap();
        }
        let (mut core, tbl) = open_db(&storage, &params);
        assert_rows(&mut core, tbl, 0, 150);
        core.term_clean().unwrap();
    }
}

/// Files whose names look like logs but are not the stream's are left alone.
#[test]
fn files_with_log_like_names_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, params) = several_generations(dir.path());
    for name in [
        "edb.log.bak",
        "edb00000000.log",
        "edb0000000G.log",
        "edb000000001.log",
        "abc00000001.log",
        "edb.jrs",
        "edbres00001.jrs",
    ] {
        std::fs::write(dir.path().join(name), b"junk").unwrap();
    }
    let (mut core, tbl) = open_db(&storage, &params);
    assert_rows(&mut core, tbl, 0, 150);
    core.term_clean().unwrap();
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

fn cut(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

/// A checkpoint file cut to nothing (or to one slot's half) is `CheckpointCorrupt` (-533) with
/// nothing touched; the operator's fix, as with ESE, is to delete it: recovery then starts from
/// the oldest log and every row is there.
#[test]
fn a_cut_checkpoint_is_checkpoint_corrupt_and_deleting_it_recovers_everything() {
    for len in [0, 16 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let (storage, params) = several_generations(dir.path());
        let chk = dir.path().join("edb.chk");
        cut(&chk, len);
        let before = snapshot(dir.path());
        assert_eq!(open_err(&storage, &params).code(), -533, "cut to {len}");
        assert_eq!(snapshot(dir.path()), before, "a refused init changed files");
        std::fs::remove_file(&chk).unwrap();
        let (mut core, tbl) = open_db(&storage, &params);
        assert_rows(&mut core, tbl, 0, 150);
        core.term_clean().unwrap();
    }
}
