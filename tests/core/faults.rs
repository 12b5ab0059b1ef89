//! The fault matrix: each fault {fsync failure, write EIO, no space on the log volume, no space
//! on the database volume, torn page write, torn log write} at each site {commit, checkpoint,
//! page flush, backup read, log roll, restore}. The operation fails with one of behaviour.md's
//! errors (or the instance becomes unavailable), no acknowledged commit is lost after reopening,
//! and nothing panics. The test prints the matrix (`cargo test --test core faults -- --nocapture`).

use crate::support;

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ese::internals::backup::stream;
use ese::io::{Fault, FaultStorage, StorageRef};
use ese::restore::{external_restore, RestoreSpec};
use ese::{BackupBegin, BackupEnd, Commit, Core, Direction, InstanceParams, SessionId, TableId};
use support::core::*;

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy, Debug, PartialEq)]
enum F {
    FsyncFail,
    WriteEio,
    NoSpaceLog,
    NoSpaceDb,
    TornPage,
    TornLog,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Site {
    Commit,
    Checkpoint,
    PageFlush,
    BackupRead,
    LogRoll,
    Restore,
}

/// Errors behaviour.md allows when the disk fails under an operation.
const ALLOWED: [i32; 7] = [-510, -1092, -1090, -1022, -1808, -1018, -612];

fn params() -> InstanceParams {
    InstanceParams::new("/f")
        .log_file_size(64 * 1024)
        .page_size(4096)
        .cache_pages(64)
}

fn arm(fs: &FaultStorage, f: F, site: Site) {
    let on = |s: &str| Some(s.to_string());
    // Where the fault lands: the file the site writes, or any file for sites that mix.
    let path = match site {
        Site::Commit | Site::LogRoll => on(".log"),
        Site::Checkpoint => on(".chk"),
        Site::PageFlush => on(".edb"),
        Site::BackupRead => None,
        Site::Restore => on("restored"),
    };
    let fault = match f {
        F::FsyncFail => Fault::FailSync {
            nth: 1,
            path_contains: path,
        },
        F::WriteEio => Fault::FailWrite {
            nth: 1,
            path_contains: path,
        },
        F::NoSpaceLog => Fault::NoSpace {
            path_contains: on(if site == Site::Restore {
                "restored"
            } else {
                ".log"
            }),
            after_bytes: 0,
        },
        F::NoSpaceDb => Fault::NoSpace {
            path_contains: on(if site == Site::Restore {
                "restored"
            } else {
                ".edb"
            }),
            after_bytes: 0,
        },
        F::TornPage => Fault::TornWrite {
            nth: 1,
            path_contains: on(".edb"),
            keep: 700,
        },
        F::TornLog => Fault::TornWrite {
            nth: 1,
            path_contains: on(".log"),
            keep: 100,
        },
    };
    // A torn write only matters if the power fails before the file is synced: make that
    // sync fail, so the crash that follows the site keeps just the torn prefix.
    if let Fault::TornWrite { path_contains, .. } = &fault {
        fs.arm(Fault::FailSync {
            nth: 1,
            path_contains: path_contains.clone(),
        });
    }
    fs.arm(fault);
}

struct Work {
    core: Core,
    s: SessionId,
    tbl: TableId,
    acked: BTreeSet<u32>,
    next: u32,
}

impl Work {
    fn commit(&mut self, n: u32) -> ese::Result<()> {
        for _ in 0..n {
            let i = self.next;
            self.next += 1;
            self.core.begin_transaction(self.s)?;
            self.core.put(
                self.s,
                self.tbl,
                format!("k{i:06}").as_bytes(),
                &[i as u8; 300],
            )?;
            let t = self.core.commit(self.s, Commit::Durable)?;
            self.core.wait(t)?;
            self.acked.insert(i);
        }
        Ok(())
    }

    fn backup(&mut self, into: Option<&Path>) -> ese::Result<Option<(u32, u32)>> {
        self.core.backup_begin(BackupBegin::empty())?;
        let (h, _) = self.core.backup_open(&db_path(Path::new("/f")))?;
        let img = self.read(h)?;
        self.core.backup_close(h)?;
        self.commit(3)?;
        self.core.backup_prepare_logs()?;
        let (lo, hi, files) = self.core.backup_log_info()?;
        let mut logs = Vec::new();
        for f in files {
            let (h, _) = self.core.backup_open(&f)?;
            logs.push((f, self.read(h)?));
            self.core.backup_close(h)?;
            self.commit(1)?;
        }
        self.core.backup_end(BackupEnd::NORMAL)?;
        if let Some(dir) = into {
            let st = self.core.storage().clone();
            st.create_dir_all(dir)?;
            write(&*st, &dir.join("img.edb"), &img)?;
            for (f, b) in logs {
                write(&*st, &dir.join(f.file_name().unwrap()), &b)?;
            }
            return Ok(Some((lo, hi)));
        }
        Ok(None)
    }

    fn read(&mut self, h: u64) -> ese::Result<Vec<u8>> {
        let sig = self.core.log().signature();
        let log = self.core.log().shared().clone();
        let mut out = Vec::new();
        loop {
            let (ticket, plan) = self.core.backup_plan_read(h, 16 * 4096)?;
            let res = stream::execute(&**self.core.storage(), &plan, sig, &|| log.durable());
            let chunk = self.core.backup_read_done(ticket, res)?;
            assert_eq!(chunk.crc32c, crc32c::crc32c(&chunk.bytes), "chunk sum");
            let chunk = chunk.bytes;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
        }
    }
}

fn write(st: &dyn ese::io::Storage, p: &Path, b: &[u8]) -> ese::Result<()> {
    let f = st.open(p, ese::io::OpenMode::Create)?;
    f.write_at(b, 0)?;
    f.sync()
}

fn setup(storage: &StorageRef) -> Work {
    let (core, tbl) = open_db(storage, &params());
    let mut core = core;
    let s = core.begin_session().unwrap();
    let mut w = Work {
        core,
        s,
        tbl,
        acked: BTreeSet::new(),
        next: 0,
    };
    w.commit(30).unwrap();
    w
}

/// Runs the site's operation with the fault armed; returns the error it met, if any.
fn act(w: &mut Work, fs: &FaultStorage, f: F, site: Site) -> Option<ese::Error> {
    let r: ese::Result<()> = (|| match site {
        Site::Commit => {
            arm(fs, f, site);
            w.commit(40)
        }
        Site::Checkpoint => {
            w.commit(5)?;
            arm(fs, f, site);
            w.core.checkpoint_now()?;
            w.commit(5)
        }
        Site::PageFlush => {
            arm(fs, f, site);
            w.commit(150)?;
            w.core.checkpoint_now()
        }
        Site::BackupRead => {
            arm(fs, f, site);
            w.backup(None).map(|_| ())
        }
        Site::LogRoll => {
            arm(fs, f, site);
            w.core.log_mut().roll()?;
            w.commit(3)
        }
        Site::Restore => unreachable!(),
    })();
    r.err()
}

/// Reopens after a crash and checks every acknowledged commit.
fn check(storage: &StorageRef, acked: &BTreeSet<u32>) -> usize {
    let (mut core, tbl) = open_db(storage, &params());
    let s = core.begin_session().unwrap();
    let rows = core
        .scan(
            s,
            tbl,
            Bound::Unbounded,
            Bound::Unbounded,
            Direction::Forward,
        )
        .unwrap();
    for i in acked {
        let k = format!("k{i:06}").into_bytes();
        let row = rows.iter().find(|(rk, _)| *rk == k);
        assert_eq!(
            row.map(|(_, v)| v.clone()),
            Some(vec![*i as u8; 300]),
            "acknowledged commit {i} lost"
        );
    }
    verify_all_pages(&mut core, tbl.db());
    core.term_clean().unwrap();
    acked.len()
}

fn cell(f: F, site: Site) -> String {
    let fs = FaultStorage::new();
    let storage: StorageRef = std::sync::Arc::new(fs.clone());
    let mut w = setup(&storage);
    if site == Site::Restore {
        return restore_cell(&fs, &storage, w, f);
    }
    let err = act(&mut w, &fs, f, site);
    if let Some(e) = &err {
        assert!(
            ALLOWED.contains(&e.code()),
            "{f:?} at {site:?}: unexpected {e}"
        );
    }
    let acked = std::mem::take(&mut w.acked);
    w.core.term_dirty();
    fs.crash();
    fs.restart();
    fs.disarm_all();
    let n = check(&storage, &acked);
    match err {
        Some(e) => format!(
            "{} ({}), {n} acked kept",
            e.name().trim_start_matches("JET_err"),
            e.code()
        ),
        None => format!("ok, {n} acked kept"),
    }
}

fn restore_cell(fs: &FaultStorage, storage: &StorageRef, mut w: Work, f: F) -> String {
    let set = PathBuf::from("/f/set");
    let (lo, hi) = w.backup(Some(&set)).unwrap().unwrap();
    let original = db_path(Path::new("/f"));
    let restored = PathBuf::from("/f/set/restored.edb");
    let image = fs.read_file(&set.join("img.edb")).unwrap();
    let spec = RestoreSpec {
        checkpoint_dir: set.clone(),
        log_dir: set.clone(),
        backup_log_dir: set.clone(),
        gen_low: lo,
        gen_high: hi,
        base_name: "edb".into(),
        restore_map: vec![(original, restored.clone())],
        stop_at: None,
    };
    fs.write_file_raw(&restored, &image);
    arm(fs, f, Site::Restore);
    let err = external_restore(&**storage, &spec).err();
    if let Some(e) = &err {
        assert!(
            ALLOWED.contains(&e.code()),
            "{f:?} at restore: unexpected {e}"
        );
    }
    fs.crash();
    fs.restart();
    fs.disarm_all();
    // After the fault, a restore from the untouched set succeeds.
    fs.write_file_raw(&restored, &image);
    let rep = external_restore(&**storage, &spec).unwrap();
    assert!(rep.commits > 0);
    let acked = std::mem::take(&mut w.acked);
    w.core.term_dirty();
    let n = check(storage, &acked);
    match err {
        Some(e) => format!(
            "{} ({}), retry ok, {n} acked kept",
            e.name().trim_start_matches("JET_err"),
            e.code()
        ),
        None => format!("ok, {n} acked kept"),
    }
}

#[test]
fn fault_matrix() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        prev(info);
    }));
    let faults = [
        F::FsyncFail,
        F::WriteEio,
        F::NoSpaceLog,
        F::NoSpaceDb,
        F::TornPage,
        F::TornLog,
    ];
    let sites = [
        Site::Commit,
        Site::Checkpoint,
        Site::PageFlush,
        Site::BackupRead,
        Site::LogRoll,
        Site::Restore,
    ];
    let mut table = String::from("| fault | site | outcome |\n|---|---|---|\n");
    let mut cells = 0;
    for f in faults {
        for site in sites {
            let outcome = cell(f, site);
            table.push_str(&format!("| {f:?} | {site:?} | {outcome} |\n"));
            cells += 1;
        }
    }
    eprintln!("{table}");
    assert_eq!(cells, 36);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
}
