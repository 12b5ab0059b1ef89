//! Which databases one instance attaches, and how many. At most 128 (the owner tokens it
//! remembers, one per database a clean term writes at once), and no more than its checkpoint
//! file records: each checkpoint slot (32 KiB) holds the attach list beside the owner tokens,
//! and a checkpoint that cannot be written would fail the next flush and make the instance
//! unavailable. The attach past either is refused with `TooManyAttachedDatabases` (-1805).
//! Two files of one database (a copy beside its original) would share its owner token: the
//! second is refused with `DatabaseSignInUse` (-1222), as ESE does. Nothing is written then.

use crate::support;

use std::path::{Path, PathBuf};

use ese::internals::db::DbFile;
use ese::internals::log::checkpoint;
use ese::{Commit, Core, Error};
use support::core::*;

/// A database path whose file name is `len` bytes and more.
fn path_of(dir: &Path, len: usize, i: usize) -> PathBuf {
    dir.join(format!("{}{i:04}.edb", "d".repeat(len)))
}

/// Creates databases until one is refused: the paths created, the refused one and its error.
fn fill(core: &mut Core, dir: &Path, len: usize) -> (Vec<PathBuf>, PathBuf, Error) {
    let mut created = Vec::new();
    loop {
        let p = path_of(dir, len, created.len());
        match core.create_database(&p) {
            Ok((_, t)) => {
                core.wait(t).unwrap();
                created.push(p);
            }
            Err(e) => return (created, p, e),
        }
        assert!(created.len() <= 1000, "never refused");
    }
}

#[test]
fn the_129th_database_is_refused_and_the_instance_stays_available() {
    let (_fs, storage) = fault_fs();
    let dir = Path::new("/inst");
    let params = small_params(dir);
    let mut core = Core::open(storage.clone(), params.clone()).unwrap();
    let (mut created, refused, e) = fill(&mut core, dir, 8);
    assert_eq!(e.code(), Error::TooManyAttachedDatabases.code());
    assert_eq!(created.len(), 128);
    assert!(!storage.exists(&refused), "the refused database was made");

    // Still available: a checkpoint records them all, a commit goes through.
    core.checkpoint_now().unwrap();
    let db = core.database_id(&created[0]).unwrap();
    let (tbl, t) = core.create_table(db, "t").unwrap();
    core.wait(t).unwrap();
    let s = core.begin_session().unwrap();
    core.begin_transaction(s).unwrap();
    core.put(s, tbl, b"k", b"v").unwrap();
    let t = core.commit(s, Commit::Durable).unwrap();
    core.wait(t).unwrap();
    core.end_session(s);

    // A detach makes room again, for an attach as for a create.
    let last = created.pop().unwrap();
    core.detach_database(&last).unwrap();
    core.attach_database(&last).unwrap();
    assert_eq!(
        core.attach_database(&refused).unwrap_err().code(),
        Error::TooManyAttachedDatabases.code()
    );
    created.push(last);
    core.term_clean().unwrap();
    // The clean term's 128 tokens all stayed: the next start attaches every one as its own
    // (a stamp would rewrite it and clear its backup records).
    let chk = checkpoint::read(&*storage, &dir.join("edb.chk"))
        .unwrap()
        .unwrap();
    for p in &created {
        let h = DbFile::open(&*storage, p).unwrap().1;
        assert!(chk.owner_tokens.wrote(&h), "{} forgotten", p.display());
        assert_ne!(h.owner_token, 0);
    }

    let mut core = Core::open(storage.clone(), params).unwrap();
    for p in &created {
        core.attach_database(p).unwrap();
    }
    let tbl = core
        .open_table(core.database_id(&created[0]).unwrap(), "t")
        .unwrap();
    let s = core.begin_session().unwrap();
    assert_eq!(core.get(s, tbl, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    core.term_clean().unwrap();
}

#[test]
fn long_paths_are_refused_once_the_checkpoint_could_not_record_them() {
    let (_fs, storage) = fault_fs();
    let dir = Path::new("/inst");
    let mut core = Core::open(storage.clone(), small_params(dir)).unwrap();
    let (created, refused, e) = fill(&mut core, dir, 1000);
    assert_eq!(e.code(), Error::TooManyAttachedDatabases.code());
    assert!(!storage.exists(&refused), "the refused database was made");
    // About 29 KiB of the slot for entries of 28 bytes and a path of 1,018.
    assert!(
        (20..128).contains(&created.len()),
        "{} created",
        created.len()
    );
    core.checkpoint_now().unwrap();
    core.term_clean().unwrap();
}

#[test]
fn a_copy_of_an_attached_database_is_refused_beside_it() {
    let (fs, storage) = fault_fs();
    let dir = Path::new("/inst");
    let params = small_params(dir);
    let (core, _) = open_db(&storage, &params);
    core.term_clean().unwrap();
    let original = db_path(dir);
    let copy = dir.join("copy.edb");
    let bytes = fs.read_file(&original).unwrap();
    fs.write_file_raw(&copy, &bytes);

    let (mut core, _) = open_db(&storage, &params);
    assert_eq!(
        core.attach_database(&copy).unwrap_err().code(),
        Error::DatabaseSignInUse.code()
    );
    assert_eq!(fs.read_file(&copy).unwrap(), bytes, "the copy was written");
    // Alone, the copy attaches.
    core.detach_database(&original).unwrap();
    core.attach_database(&copy).unwrap();
    core.term_clean().unwrap();
}
