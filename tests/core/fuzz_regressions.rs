//! Regression tests for what the fuzz targets (`fuzz/`, `cargo fuzz`) and their review found:
//! each replays the damaging input and checks that the engine answers with an ESE error
//! instead of panicking.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ese::internals::backup::stream;
use ese::internals::log::{frame_payload, read_record, PageImage, Record, LOG_HEADER_SIZE};
use ese::io::{FaultStorage, StorageRef};
use ese::restore::{external_restore, RestoreSpec};
use ese::{BackupBegin, BackupEnd, Commit, Core, Error, InstanceParams};

/// A streamed image and its logs, as `fuzz/src/lib.rs` makes them for `restore_mutated_set`.
struct Set {
    original: PathBuf,
    image: Vec<u8>,
    logs: Vec<(u32, Vec<u8>)>,
}

fn read_all(core: &mut Core, h: u64) -> Vec<u8> {
    let sig = core.log().signature();
    let log = core.log().shared().clone();
    let mut out = Vec::new();
    loop {
        let (ticket, plan) = core.backup_plan_read(h, 64 * 1024).unwrap();
        let res = stream::execute(&**core.storage(), &plan, sig, &|| log.durable());
        let chunk = core.backup_read_done(ticket, res).unwrap();
        assert_eq!(chunk.crc32c, crc32c::crc32c(&chunk.bytes));
        let chunk = chunk.bytes;
        if chunk.is_empty() {
            return out;
        }
        out.extend_from_slice(&chunk);
    }
}

fn build_set() -> Set {
    let fs = FaultStorage::new();
    let storage: StorageRef = Arc::new(fs);
    let params = InstanceParams::new("/f")
        .log_file_size(64 * 1024)
        .page_size(4096)
        .cache_pages(64);
    let mut core = Core::open(storage, params).unwrap();
    let original = PathBuf::from("/f/test.edb");
    let (db, t) = core.create_database(&original).unwrap();
    core.wait(t).unwrap();
    let s = core.begin_session().unwrap();
    let (tbl, t) = core.create_table(db, "t").unwrap();
    core.wait(t).unwrap();
    let commit = |core: &mut Core, from: u32, n: u32| {
        for i in from..from + n {
            core.begin_transaction(s).unwrap();
            core.put(s, tbl, format!("k{i:05}").as_bytes(), &[i as u8; 60])
                .unwrap();
            let t = core.commit(s, Commit::Durable).unwrap();
            core.wait(t).unwrap();
        }
    };
    commit(&mut core, 0, 10);
    core.checkpoint_now().unwrap();
    core.backup_begin(BackupBegin::empty()).unwrap();
    let (h, _) = core.backup_open(&original).unwrap();
    let image = read_all(&mut core, h);
    core.backup_close(h).unwrap();
    commit(&mut core, 10, 4);
    core.backup_prepare_logs().unwrap();
    let (lo, _, files) = core.backup_log_info().unwrap();
    let mut logs = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (h, _) = core.backup_open(f).unwrap();
        logs.push((lo + i as u32, read_all(&mut core, h)));
        core.backup_close(h).unwrap();
    }
    core.backup_end(BackupEnd::NORMAL).unwrap();
    core.term_clean().unwrap();
    Set {
        original,
        image,
        logs,
    }
}

/// Lays the set out in a fresh storage and restores it.
fn restore(set: &Set) -> ese::Result<ese::restore::RestoreReport> {
    let fs = FaultStorage::new();
    let dir = Path::new("/r");
    fs.write_file_raw(&dir.join("restored.edb"), &set.image);
    for (g, b) in &set.logs {
        fs.write_file_raw(&ese::internals::log::names::archived(dir, "edb", *g), b);
    }
    let spec = RestoreSpec {
        checkpoint_dir: dir.to_path_buf(),
        log_dir: dir.to_path_buf(),
        backup_log_dir: dir.to_path_buf(),
        gen_low: set.logs[0].0,
        gen_high: set.logs.last().unwrap().0,
        base_name: "edb".into(),
        restore_map: vec![(set.original.clone(), dir.join("restored.edb"))],
        stop_at: None,
    };
    external_restore(&fs, &spec)
}

/// Found by review of `restore_mutated_set`'s record-rewriting mutation: a Pages record,
/// checksummed correctly, whose page image is shorter than a page header. Replay read the
/// image's log position at bytes 8..16 and panicked (slice index out of range); it is now
/// `LogFileCorrupt`.
#[test]
fn restore_rejects_a_page_image_shorter_than_a_page() {
    let mut set = build_set();
    assert!(
        restore(&set).unwrap().commits > 0,
        "the untouched set restores"
    );
    // Rewrite the first Pages record of the first log into two images of the same total
    // size, the first of them 8 bytes long; frame it again at the same place so it verifies.
    let (gen, log) = &mut set.logs[0];
    let mut off = LOG_HEADER_SIZE as usize;
    let (start, framed) = loop {
        let f = read_record(log, *gen, off).expect("a Pages record in the first log");
        if matches!(f.record, Record::Pages(_)) {
            break (off, f);
        }
        off = f.end.offset() as usize;
    };
    let Record::Pages(images) = &framed.record else {
        unreachable!()
    };
    let first = &images[0];
    let mut split = vec![
        PageImage {
            dbid: first.dbid,
            pgno: first.pgno,
            image: first.image[..8].to_vec(),
        },
        PageImage {
            dbid: first.dbid,
            pgno: first.pgno,
            image: first.image[8 + 12..].to_vec(),
        },
    ];
    split.extend(images[1..].iter().cloned());
    let rec = Record::Pages(split);
    let payload = rec.payload();
    let bytes = frame_payload(1, &payload, framed.start, framed.durable_mark);
    assert_eq!(
        bytes.len(),
        framed.end.offset() as usize - start,
        "same size"
    );
    log[start..start + bytes.len()].copy_from_slice(&bytes);
    assert_eq!(read_record(log, *gen, start).unwrap().record, rec);
    let err = restore(&set).unwrap_err();
    assert_eq!(err.code(), Error::LogFileCorrupt.code(), "{err}");
}
