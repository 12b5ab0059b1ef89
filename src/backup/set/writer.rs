//! [`SetWriter`]: writes one backup set in the set format on any [`SetStore`]. Synchronous
//! and free of any async runtime: a caller on a runtime runs each step on a blocking thread.
//!
//! The writer knows the format: where each file goes, its size and CRC-32C, the database
//! signature an image's header carries, the manifest and the backup's id. The store knows
//! the place. Every failure is returned with the file it concerns; after
//! [`SetWriter::remove`] every step is refused, so a step still queued when its backup was
//! dropped cannot bring back what was removed.

use std::path::{Path, PathBuf};

use super::frames::Compressing;
use super::manifest::{
    backup_id, image_name, log_name, BackupManifest, ManifestDatabase, ManifestLog,
};
use super::store::{Content, SetFile, SetStore};
use super::{BackupKind, Stored, FORMAT};
use crate::db::{BackupInfo, DbHeader, Signature};
use crate::{Error, Result};

/// Bytes kept of a database image's first chunk: enough for its header page at any size.
const HEAD: usize = 64 * 1024;

/// A log larger than this is stored as it streams, never held to be compared with an
/// earlier set's copy (logs are 5 MiB by default): what a backup holds for this stays within
/// one part of an object store's upload.
const REUSE_MAX: usize = 16 << 20;

/// A log an earlier set of the same chain already holds: a set that backs up the same log
/// (same name, so the same generation of the same stream, with the same size and
/// checksum) references that object instead of storing it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reusable {
    /// Its entry in the earlier set's manifest.
    pub log: ManifestLog,
    /// The set whose folder holds the object.
    pub set: String,
}

/// What the manifest says besides the files: the facts of the instance and of the backup.
#[derive(Clone, Debug)]
pub struct SetFacts {
    /// What kind of backup.
    pub kind: BackupKind,
    /// The id of the backup an incremental or differential continues.
    pub parent_id: Option<String>,
    /// The instance's name.
    pub instance: String,
    /// Log base name.
    pub base_name: String,
    /// Database page size.
    pub page_size: u32,
    /// The log stream's signature.
    pub log_signature: Signature,
    /// First log generation in the set.
    pub gen_low: u32,
    /// Last log generation in the set.
    pub gen_high: u32,
    /// The record the databases' headers keep for this backup (its mark and time).
    pub record: BackupInfo,
}

/// What the file being written will be in the manifest.
enum Entry {
    Database { original: PathBuf },
    Log { gen: u32 },
}

/// The file being written.
struct Open {
    name: PathBuf,
    /// `None` while the file is held in `held`, to be compared with a reusable copy.
    file: Option<Box<dyn SetFile>>,
    held: Option<Vec<u8>>,
    entry: Entry,
    len: u64,
    crc: u32,
    /// The first bytes of a database image (its header page).
    head: Vec<u8>,
}

/// One set being written. Steps in order: [`SetWriter::prepare`]; for each file a start
/// ([`SetWriter::start_database`], [`SetWriter::start_log`]), appends and
/// [`SetWriter::finish_file`]; [`SetWriter::seal`]; [`SetWriter::publish`].
pub struct SetWriter {
    store: Box<dyn SetStore>,
    open: Option<Open>,
    /// zstd level for every file, `None` for plain copies.
    compress: Option<i32>,
    reusable: Vec<Reusable>,
    databases: Vec<ManifestDatabase>,
    logs: Vec<ManifestLog>,
    removed: bool,
}

impl SetWriter {
    /// A writer of a new set in `store`; touches nothing yet.
    pub fn new(store: Box<dyn SetStore>) -> SetWriter {
        SetWriter {
            store,
            open: None,
            compress: None,
            reusable: Vec::new(),
            databases: Vec::new(),
            logs: Vec::new(),
            removed: false,
        }
    }

    /// Compresses every file at zstd `level` ([`super::frames`]).
    pub fn compress(&mut self, level: i32) {
        self.compress = Some(level);
    }

    /// Logs earlier sets hold that this set may reference instead of storing again.
    pub fn reuse(&mut self, logs: Vec<Reusable>) {
        self.reusable = logs;
    }

    /// Where the set goes, as a person reads it.
    pub fn location(&self) -> String {
        self.store.location()
    }

    /// Refuses a location that cannot take a new set ([`SetStore::check_new`]).
    pub fn check_new(&self) -> Result<()> {
        self.store.check_new()
    }

    /// Makes room for the set's files.
    pub fn prepare(&mut self) -> Result<()> {
        self.check_live()?;
        self.store.prepare()
    }

    /// Starts the image of the next database, attached at `original`.
    pub fn start_database(&mut self, original: &Path) -> Result<()> {
        let name = image_name(self.databases.len(), original);
        self.start(
            name,
            Entry::Database {
                original: original.to_path_buf(),
            },
        )
    }

    /// Starts the copy of the log of generation `gen`, whose file in the instance is `source`.
    pub fn start_log(&mut self, gen: u32, source: &Path) -> Result<()> {
        let name = log_name(source).ok_or_else(|| Error::InvalidPath.in_file(source))?;
        self.start(name, Entry::Log { gen })
    }

    fn start(&mut self, name: PathBuf, entry: Entry) -> Result<()> {
        self.check_live()?;
        if self.open.is_some() {
            return Err(
                Error::InternalError.with_detail("a set file started before the last one finished")
            );
        }
        let reusable = matches!(entry, Entry::Log { .. }) && self.reusable_for(&name).is_some();
        let (file, held) = match reusable {
            true => (None, Some(Vec::new())),
            false => (Some(self.create(&name)?), None),
        };
        self.open = Some(Open {
            name,
            file,
            held,
            entry,
            len: 0,
            crc: 0,
            head: Vec::new(),
        });
        Ok(())
    }

    /// Appends a chunk to the file being written.
    pub fn append(&mut self, chunk: &[u8]) -> Result<()> {
        self.check_live()?;
        let mut f = self.open.take().ok_or(Error::InternalError)?;
        let r = self.append_to(&mut f, chunk);
        self.open = Some(f);
        r
    }

    fn append_to(&mut self, f: &mut Open, chunk: &[u8]) -> Result<()> {
        match (&mut f.file, &mut f.held) {
            (Some(file), _) => file.append(chunk)?,
            (None, Some(held)) if held.len() + chunk.len() <= REUSE_MAX => {
                held.extend_from_slice(chunk)
            }
            (None, held) => {
                // Too large to hold: stored as it streams, like any file.
                let mut file = self.create(&f.name)?;
                if let Some(held) = held.take() {
                    file.append(&held)?;
                }
                file.append(chunk)?;
                f.file = Some(file);
            }
        }
        f.len += chunk.len() as u64;
        f.crc = crc32c::crc32c_append(f.crc, chunk);
        if matches!(f.entry, Entry::Database { .. }) && f.head.len() < HEAD {
            let take = (HEAD - f.head.len()).min(chunk.len());
            f.head.extend_from_slice(&chunk[..take]);
        }
        Ok(())
    }

    /// What was appended to the file being written so far (its length and CRC-32C, the
    /// sum its manifest entry will carry); `None` between files. A copier that has the
    /// source's own sum compares it with this one rather than summing every byte again.
    pub fn written(&self) -> Option<Content> {
        self.open.as_ref().map(|f| Content {
            len: f.len,
            crc32c: f.crc,
        })
    }

    /// Makes the file being written durable and enters it into the manifest.
    pub fn finish_file(&mut self) -> Result<()> {
        self.check_live()?;
        let mut f = self.open.take().ok_or(Error::InternalError)?;
        let crc32c = format!("{:08x}", f.crc);
        let content = Content {
            len: f.len,
            crc32c: f.crc,
        };
        let stored = match (f.file.take(), f.held.take()) {
            (Some(file), _) => file.finish(content)?,
            (None, held) => match self.reusable_for(&f.name) {
                Some(r) if r.log.size == f.len && r.log.crc32c == crc32c => {
                    tracing::debug!(file = %f.name.display(), set = %r.set, "log already stored: referenced");
                    let mut stored = r.log.stored.clone().unwrap_or(Stored {
                        size: r.log.size,
                        ..Stored::default()
                    });
                    stored.set = Some(stored.set.take().unwrap_or_else(|| r.set.clone()));
                    Some(stored)
                }
                _ => {
                    let mut file = self.create(&f.name)?;
                    file.append(held.as_deref().unwrap_or_default())?;
                    file.finish(content)?
                }
            },
        };
        match f.entry {
            Entry::Database { original } => {
                let header = image_header(&f.head).map_err(|e| e.in_file(&original))?;
                self.databases.push(ManifestDatabase {
                    original_path: original,
                    file: f.name.clone(),
                    size: f.len,
                    crc32c,
                    db_signature: header.db_signature.to_hex(),
                    stored,
                });
            }
            Entry::Log { gen } => self.logs.push(ManifestLog {
                gen,
                file: f.name.clone(),
                size: f.len,
                crc32c,
                stored,
            }),
        }
        tracing::info!(set = %self.store.location(), file = %f.name.display(), size = f.len, "backed up");
        Ok(())
    }

    /// Makes the names of every file written durable; call it once every file is finished.
    pub fn seal(&mut self) -> Result<()> {
        self.check_live()?;
        self.store.seal()
    }

    /// Writes the manifest, last: the set is complete and visible when this returns.
    pub fn publish(&mut self, facts: SetFacts) -> Result<BackupManifest> {
        self.check_live()?;
        if self.open.is_some() {
            return Err(Error::InternalError
                .with_detail("the manifest was written before the last file finished"));
        }
        let mut manifest = BackupManifest {
            format: FORMAT,
            name: self.store.name(),
            kind: facts.kind,
            id: backup_id(&facts.log_signature, &facts.record),
            parent_id: facts.parent_id,
            instance: facts.instance,
            base_name: facts.base_name,
            page_size: facts.page_size,
            log_signature: facts.log_signature.to_hex(),
            gen_low: facts.gen_low,
            gen_high: facts.gen_high,
            mark: facts.record.mark,
            mark_time_ms: facts.record.time_ms,
            databases: self.databases.clone(),
            logs: self.logs.clone(),
            digest: None,
        };
        self.check_stored(&manifest)?;
        manifest.seal()?;
        self.store.publish(&manifest.to_json()?)?;
        Ok(manifest)
    }

    /// Removes what was written of the set, the manifest first. Best effort; later steps
    /// are refused.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        self.open = None;
        self.store.discard();
        tracing::info!(set = %self.store.location(), "partial backup set removed");
    }

    /// Every file the manifest will name is where it says, with its stored size: a file of
    /// this set lost since it was written (a prune of what looked like an orphan, a hand
    /// clean-up) or a referenced log another set no longer holds fails the backup here,
    /// before the set is visible and before any log is truncated.
    fn check_stored(&self, m: &BackupManifest) -> Result<()> {
        for f in m.files() {
            let holder = f.stored.and_then(|s| s.set.as_deref());
            let want = f.stored_size();
            let found = self.store.stored_len_in(holder, f.file);
            match found {
                Ok(n) if n == want => {}
                Ok(n) => {
                    return Err(Error::DiskIO(crate::IoError::new(std::io::Error::other(
                        "a set file changed after it was written",
                    )))
                    .with_detail(format!(
                        "{}: {n} bytes stored, {want} written: the set is not published",
                        self.shown(holder, f.file)
                    )))
                }
                Err(e) => {
                    let why = e.detail_or_message();
                    return Err(e.with_detail(format!(
                        "{}: not found where it was stored ({why}): the set is not published",
                        self.shown(holder, f.file)
                    )));
                }
            }
        }
        Ok(())
    }

    fn shown(&self, holder: Option<&str>, file: &Path) -> String {
        match holder {
            Some(set) => format!("{} (held by set {set})", file.display()),
            None => format!("{}/{}", self.store.location(), file.display()),
        }
    }

    /// The store's file `name`, compressing if asked to.
    fn create(&mut self, name: &Path) -> Result<Box<dyn SetFile>> {
        let file = self.store.create(name)?;
        Ok(match self.compress {
            Some(level) => Box::new(Compressing::new(file, level)?),
            None => file,
        })
    }

    fn reusable_for(&self, name: &Path) -> Option<&Reusable> {
        self.reusable.iter().find(|r| r.log.file == name)
    }

    fn check_live(&self) -> Result<()> {
        if self.removed {
            return Err(Error::BackupAbortByCaller.with_detail(format!(
                "the backup set {} was removed: its backup was dropped or failed",
                self.store.location()
            )));
        }
        Ok(())
    }
}

/// The header copy at the start of a streamed image.
fn image_header(head: &[u8]) -> Result<DbHeader> {
    let ps = DbHeader::peek_page_size(head).ok_or(Error::DatabaseCorrupted)? as usize;
    DbHeader::decode(head.get(..ps).ok_or(Error::DatabaseCorrupted)?)
}
