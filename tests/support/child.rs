//! The child process the tests kill with SIGKILL: the test binary itself, started again by
//! [`command`] to run only the test [`child_process`], which does the child's work when
//! `ESE_TEST_CHILD` is set (and nothing otherwise). So the child is a real separate process,
//! killed by a real SIGKILL, and the library ships no test binary. Not part of the `support`
//! tree: the binaries that start a child (`crash`, `instance`) include it as their module
//! `child`, the name [`command`]'s filter gives.
//!
//! `ESE_TEST_CHILD=run` (the crash loop, `tests/crash/crash_loop.rs`): commits transactions
//! forever on the instance in `ESE_TEST_CHILD_DIR`, printing `ACK i` once transaction `i` is
//! durable, and now and then runs a full backup step by step between transactions — until the
//! parent kills it.
//!
//! `ESE_TEST_CHILD=hold` (`tests/instance/file_locks.rs`): opens the instance in
//! `ESE_TEST_CHILD_DIR`, commits one durable transaction, prints `READY` and then holds the
//! instance, idle, until killed, so the parent can check that another process is refused and
//! that a kill releases the files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use ese::internals::backup::stream;
use ese::{BackupBegin, BackupEnd, Commit, Core, InstanceParams, SessionId, TableId};

/// What the child does: `run` or `hold`.
const MODE: &str = "ESE_TEST_CHILD";
/// The instance's directory.
const DIR: &str = "ESE_TEST_CHILD_DIR";

/// What the child does (see the module's documentation).
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Run,
    Hold,
}

/// The command that starts the child in `mode` on the instance in `dir`: this binary, running
/// only [`child_process`], on one thread, its output not captured (the parent reads `ACK i` and
/// `READY` from its stdout, and a panic from its stderr).
pub fn command(mode: Mode, dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("the test binary's path"));
    c.args([
        "--exact",
        "child::child_process",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ])
    .env(
        MODE,
        match mode {
            Mode::Run => "run",
            Mode::Hold => "hold",
        },
    )
    .env(DIR, dir);
    c
}

/// The instance parameters of the child, and of the parents that open its files.
pub fn params(dir: &Path) -> InstanceParams {
    InstanceParams::new(dir)
        .log_file_size(256 * 1024)
        .page_size(4096)
        .cache_pages(512)
}

/// One step of a backup at a time, so a kill can land anywhere in it.
enum Backup {
    Idle(u32),
    Db { handle: u64 },
    Logs { files: Vec<PathBuf> },
}

/// The child: does nothing unless started by [`command`].
#[test]
fn child_process() {
    let Some(mode) = std::env::var_os(MODE) else {
        return;
    };
    let dir = PathBuf::from(std::env::var_os(DIR).expect("ESE_TEST_CHILD_DIR"));
    let res = match mode.to_str() {
        Some("run") => run(&dir),
        Some("hold") => hold(&dir),
        _ => {
            eprintln!("usage: ESE_TEST_CHILD=run|hold ESE_TEST_CHILD_DIR=DIR");
            std::process::exit(2);
        }
    };
    if let Err(e) = res {
        eprintln!("child: {e}");
        std::process::exit(1);
    }
}

/// Opens the instance and its database (creating them the first time) with table "t".
fn open(dir: &Path) -> ese::Result<(Core, TableId, PathBuf)> {
    let mut core = Core::open(ese::io::os(), params(dir))?;
    let path = dir.join("crash.edb");
    let tbl = if path.exists() {
        let db = core.attach_database(&path)?;
        core.open_table(db, "t")?
    } else {
        let (db, t) = core.create_database(&path)?;
        core.wait(t)?;
        let (tbl, t) = core.create_table(db, "t")?;
        core.wait(t)?;
        tbl
    };
    Ok((core, tbl, path))
}

/// Commits key `held`, says `READY`, then keeps the instance open and idle until killed.
fn hold(dir: &Path) -> ese::Result<()> {
    let (mut core, tbl, _) = open(dir)?;
    let s = core.begin_session()?;
    core.begin_transaction(s)?;
    core.put(s, tbl, b"held", b"by the child")?;
    let t = core.commit(s, Commit::Durable)?;
    core.wait(t)?;
    let out = std::io::stdout();
    writeln!(out.lock(), "READY").map_err(ese::Error::from_io)?;
    out.lock().flush().map_err(ese::Error::from_io)?;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

fn run(dir: &Path) -> ese::Result<()> {
    let (mut core, tbl, path) = open(dir)?;
    let s = core.begin_session()?;
    let mut i = match core.get(s, tbl, b"~next")? {
        Some(v) => u64::from_le_bytes(v.try_into().map_err(|_| ese::Error::DatabaseCorrupted)?),
        None => 0,
    };
    let mut backup = Backup::Idle(0);
    let out = std::io::stdout();
    loop {
        // Only durable commits are reported: a lazy one may be lost in a crash (as a suffix).
        if txn(&mut core, s, tbl, i)? {
            writeln!(out.lock(), "ACK {i}").map_err(ese::Error::from_io)?;
            out.lock().flush().map_err(ese::Error::from_io)?;
        }
        i += 1;
        backup = step(&mut core, &path, backup)?;
    }
}

/// Commits transaction `i`; true if it was durable and is now acknowledged.
fn txn(core: &mut Core, s: SessionId, tbl: TableId, i: u64) -> ese::Result<bool> {
    core.begin_transaction(s)?;
    for part in ["a", "b", "c"] {
        core.put(
            s,
            tbl,
            format!("c{i:08}-{part}").as_bytes(),
            &vec![(i % 251) as u8; 100 + (i % 300) as usize],
        )?;
    }
    core.put(s, tbl, b"~next", &(i + 1).to_le_bytes())?;
    let d = if i % 4 == 3 {
        Commit::Lazy
    } else {
        Commit::Durable
    };
    let t = core.commit(s, d)?;
    if d == Commit::Durable {
        core.wait(t)?;
    }
    Ok(d == Commit::Durable)
}

fn read_all(core: &mut Core, handle: u64) -> ese::Result<()> {
    let sig = core.log().signature();
    let log = core.log().shared().clone();
    loop {
        let (ticket, plan) = core.backup_plan_read(handle, 64 * 4096)?;
        let res = stream::execute(&**core.storage(), &plan, sig, &|| log.durable());
        let chunk = core.backup_read_done(ticket, res)?.bytes;
        if chunk.is_empty() {
            return Ok(());
        }
    }
}

fn step(core: &mut Core, db: &Path, b: Backup) -> ese::Result<Backup> {
    Ok(match b {
        Backup::Idle(n) if n < 40 => Backup::Idle(n + 1),
        Backup::Idle(_) => {
            core.backup_begin(BackupBegin::empty())?;
            let (handle, _) = core.backup_open(db)?;
            Backup::Db { handle }
        }
        Backup::Db { handle } => {
            read_all(core, handle)?;
            core.backup_close(handle)?;
            core.backup_prepare_logs()?;
            let (_, _, files) = core.backup_log_info()?;
            Backup::Logs { files }
        }
        Backup::Logs { mut files } => match files.pop() {
            Some(f) => {
                let (h, _) = core.backup_open(&f)?;
                read_all(core, h)?;
                core.backup_close(h)?;
                Backup::Logs { files }
            }
            None => {
                core.backup_truncate()?;
                core.backup_end(BackupEnd::NORMAL)?;
                Backup::Idle(0)
            }
        },
    })
}
