//! Opening an instance's directory from the command line (`ese backup --instance-dir`,
//! `ese serve`): its databases found, its parameters read from its files, soft recovery, attach.

use std::path::{Path, PathBuf};

use ese_actors::ese::BackupPace;
use ese_actors::{DbId, Engine, Instance, InstanceParams, Term};

use crate::progress::Step;
use crate::{Failure, Out};

/// An instance's files: its directory, the databases to attach (none: every `*.edb` there),
/// its log base name, and a database to create when there is none.
pub struct Files<'a> {
    pub dir: &'a Path,
    pub dbs: Vec<PathBuf>,
    pub base: &'a str,
    pub create: Option<PathBuf>,
}

/// Creates the instance `name` on `dir`, runs soft recovery and attaches `dbs` (default: every
/// `*.edb` in `dir`). With `create`, a directory without a database gets that one, new.
/// Answers the instance and its databases' ids.
///
/// # Errors
///
/// No database to attach; the engine's errors, with a hint when the files are in use.
pub async fn open_instance(
    engine: &Engine,
    name: &str,
    files: Files<'_>,
    pace: BackupPace,
    out: Out,
) -> Result<(Instance, Vec<DbId>), Failure> {
    let Files {
        dir,
        dbs,
        base,
        create,
    } = files;
    let dbs = if dbs.is_empty() {
        find_databases(dir)?
    } else {
        dbs
    };
    let create = create.filter(|_| dbs.is_empty());
    if dbs.is_empty() && create.is_none() {
        return Err(Failure::Other(format!(
            "no database (*.edb) in {}",
            dir.display()
        )));
    }
    let inst = engine
        .create_instance(name, params_for(dir, &dbs, base)?.backup_pace(pace))
        .await?;
    let step = Step::start(out, "soft recovery");
    inst.init().await.map_err(|e| in_use(e, dir))?;
    let mut ids = Vec::with_capacity(dbs.len() + 1);
    for db in &dbs {
        match inst.attach_database(db).await {
            Ok(id) => ids.push(id),
            Err(e) => {
                let _ = inst.term(Term::empty()).await;
                return Err(in_use(e, db));
            }
        }
    }
    if let Some(db) = create {
        match inst.create_database(&db).await {
            Ok(id) => ids.push(id),
            Err(e) => {
                let _ = inst.term(Term::empty()).await;
                return Err(in_use(e, &db));
            }
        }
    }
    step.done("instance opened");
    Ok((inst, ids))
}

/// Instance parameters that fit existing files: the databases' page size and the log
/// files' size.
fn params_for(dir: &Path, dbs: &[PathBuf], base: &str) -> Result<InstanceParams, Failure> {
    let mut p = InstanceParams::new(dir).base_name(base);
    if let Some(db) = dbs.first() {
        let head = first_bytes(db).map_err(|e| Failure::Other(format!("{}: {e}", db.display())))?;
        let ps = ese_actors::ese::internals::db::DbHeader::peek_page_size(&head)
            .ok_or(ese_actors::Error::DatabaseCorrupted)?;
        p = p.page_size(ps);
    }
    let log = dir.join(format!("{base}.log"));
    if let Ok(m) = std::fs::metadata(&log) {
        p = p.log_file_size(m.len());
    }
    Ok(p)
}

/// The start of a file, where a database header names its page size: never the whole file,
/// which may be tens of gigabytes.
fn first_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)?
        .take(4096)
        .read_to_end(&mut head)?;
    Ok(head)
}

fn find_databases(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        // A service may be started on a directory it creates.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Failure::Other(format!("{}: {e}", dir.display()))),
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "edb") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The engine's refusal to open files another process holds, with what to do instead.
fn in_use(e: ese_actors::Error, path: &Path) -> Failure {
    use ese_actors::Error as E;
    match e {
        E::FileAccessDenied
        | E::SystemPathInUse
        | E::LogFilePathInUse
        | E::DatabaseSharingViolation => Failure::EseHint(
            e,
            format!(
                "{} is in use by a running instance (or cannot be accessed); nothing was \
                 changed. Only one process may open an instance's files: back a running \
                 instance up through its host, over HTTP (`ese backup --url` against \
                 `ese serve` or a host that mounts ese-http's router) or with the instance's \
                 own backup API (Instance::start_backup or backup_to_dir).",
                path.display()
            ),
        ),
        e => Failure::Ese(e),
    }
}
