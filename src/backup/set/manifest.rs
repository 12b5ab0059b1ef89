//! `manifest.json`: what a backup set holds, and reading it back without trusting it.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{BackupKind, MANIFEST};
use crate::db::{BackupInfo, Signature};
use crate::io::Files;
use crate::{Error, Result};

/// A manifest larger than this is not one of ours (a set of 14 databases and thousands of
/// logs stays far below); reading it whole would only cost memory.
const MANIFEST_MAX: u64 = 64 << 20;

/// The manifest format this engine writes: 2 adds the digest, the set's name and
/// [`Stored`]. Format 1 (no digest) is still read.
pub const FORMAT: u32 = 2;

/// How a file's bytes are kept when they are not a plain copy in the set's own folder: a
/// compressed object, or an object an earlier set of the chain already holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Bytes as stored (compressed, when `compression` is set).
    pub size: u64,
    /// `"zstd"` when the object is a series of zstd frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// For a compressed object: where each frame starts in the stored bytes. Frame `i`
    /// holds the content bytes from `i * FRAME` ([`crate::backup::set::FRAME`]), so a
    /// reader can fetch and decompress any part of the file on its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<u64>,
    /// The name of the set (in the same repository) whose folder holds the object, when it
    /// is not this set: a log an earlier set of the chain uploaded, referenced instead of
    /// uploaded again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
}

/// One database image in a set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDatabase {
    /// Where the database was attached.
    pub original_path: PathBuf,
    /// The image, relative to the set.
    pub file: PathBuf,
    /// Bytes.
    pub size: u64,
    /// CRC-32C of the whole file, hex.
    pub crc32c: String,
    /// The database's signature, hex.
    pub db_signature: String,
    /// How the bytes are kept, if not as a plain copy in the set's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<Stored>,
}

/// One log file in a set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestLog {
    /// Its generation.
    pub gen: u32,
    /// The file, relative to the set.
    pub file: PathBuf,
    /// Bytes.
    pub size: u64,
    /// CRC-32C of the whole file, hex.
    pub crc32c: String,
    /// How the bytes are kept, if not as a plain copy in the set's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<Stored>,
}

/// `manifest.json` of a backup set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// Manifest format version ([`FORMAT`]).
    pub format: u32,
    /// The set's name in its repository (its folder or key prefix there); `None` for a set
    /// written into a folder of its own. A manifest whose name is not its folder's belongs
    /// to another set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What kind of backup.
    pub kind: BackupKind,
    /// This backup's id: derived from the log signature and the backup record the headers
    /// keep, so a later incremental can name it as its parent.
    pub id: String,
    /// The backup this one continues (incremental and differential), if known.
    pub parent_id: Option<String>,
    /// The instance's name.
    pub instance: String,
    /// Log base name.
    pub base_name: String,
    /// Database page size.
    pub page_size: u32,
    /// Signature of the log stream, hex.
    pub log_signature: String,
    /// First log generation in the set.
    pub gen_low: u32,
    /// Last log generation in the set.
    pub gen_high: u32,
    /// The backup mark (log position) recorded in the headers.
    pub mark: u64,
    /// When the backup began, ms since the epoch.
    pub mark_time_ms: u64,
    /// Database images (none for incremental kinds).
    pub databases: Vec<ManifestDatabase>,
    /// Log files, in generation order.
    pub logs: Vec<ManifestLog>,
    /// SHA-256 of this manifest as written with this field empty, hex. A manifest cut
    /// short, damaged or edited does not match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl BackupManifest {
    /// Reads `dir/manifest.json` from the file system.
    pub fn read(dir: &Path) -> Result<BackupManifest> {
        Self::read_from(&super::SetDir::new(crate::io::os(), dir))
    }

    /// Reads the manifest of the set `set`. Errors say what is wrong with it: missing (the
    /// set is incomplete), empty, not a manifest, or naming files outside the set.
    pub fn read_from<F: Files + ?Sized>(set: &F) -> Result<BackupManifest> {
        let path = set.shown(Path::new(MANIFEST));
        let text = read_small(set, Path::new(MANIFEST))?;
        if text.is_empty() {
            return Err(Error::InvalidBackup.with_detail(format!(
                "{}: empty (0 bytes): not a backup manifest; the set is incomplete",
                path.display()
            )));
        }
        let m: BackupManifest = serde_json::from_slice(&text).map_err(|e| {
            Error::InvalidBackup
                .with_detail(format!("{}: not a backup manifest: {e}", path.display()))
        })?;
        m.check_digest(&path)?;
        m.check_names(set)?;
        Ok(m)
    }

    /// The manifest as written into a set.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| {
            Error::InternalError.with_detail(format!("the manifest could not be encoded: {e}"))
        })
    }

    /// Sets [`BackupManifest::digest`] to the digest of the rest.
    pub fn seal(&mut self) -> Result<()> {
        self.digest = Some(self.own_digest()?);
        Ok(())
    }

    /// The digest of the manifest with its digest field empty.
    fn own_digest(&self) -> Result<String> {
        use sha2::Digest;
        let mut bare = self.clone();
        bare.digest = None;
        let hash = sha2::Sha256::digest(bare.to_json()?);
        Ok(hash.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A format-2 manifest must carry its digest and match it.
    fn check_digest(&self, path: &Path) -> Result<()> {
        if self.format > FORMAT {
            return Err(Error::InvalidBackup.with_detail(format!(
                "{}: manifest format {} is newer than this engine's ({FORMAT})",
                path.display(),
                self.format
            )));
        }
        if self.format < 2 && self.digest.is_none() {
            return Ok(());
        }
        let found = self.own_digest()?;
        match &self.digest {
            Some(d) if *d == found => Ok(()),
            Some(d) => Err(Error::InvalidBackup.with_detail(format!(
                "{}: the manifest's digest is {d}, its content's is {found}: damaged, or \
                 edited after it was written",
                path.display()
            ))),
            None => Err(Error::InvalidBackup.with_detail(format!(
                "{}: the manifest carries no digest",
                path.display()
            ))),
        }
    }

    /// Every file of the set with its entry: databases first, then logs.
    pub fn files(&self) -> impl Iterator<Item = SetEntryRef<'_>> {
        let dbs = self.databases.iter().map(|d| SetEntryRef {
            file: &d.file,
            size: d.size,
            crc32c: &d.crc32c,
            stored: d.stored.as_ref(),
            log: false,
        });
        dbs.chain(self.logs.iter().map(|l| SetEntryRef {
            file: &l.file,
            size: l.size,
            crc32c: &l.crc32c,
            stored: l.stored.as_ref(),
            log: true,
        }))
    }

    /// Bytes as stored, over every file the set holds itself (not the ones it references).
    pub fn stored_bytes(&self) -> u64 {
        self.files()
            .filter(|f| f.stored.is_none_or(|s| s.set.is_none()))
            .map(|f| f.stored_size())
            .sum()
    }

    /// Bytes of content over every file (what a restore writes).
    pub fn content_bytes(&self) -> u64 {
        self.files().map(|f| f.size).sum()
    }

    /// The manifest's log signature.
    pub fn signature(&self) -> Result<Signature> {
        Signature::from_hex(&self.log_signature).ok_or_else(|| {
            Error::InvalidBackup.with_detail(format!(
                "{MANIFEST}: log_signature {:?} is not 32 hex digits",
                self.log_signature
            ))
        })
    }

    /// Files named by a manifest stay inside the set: relative, no `..`, in their folder,
    /// not a link; the base name (it builds log paths) is three letters or digits.
    fn check_names<F: Files + ?Sized>(&self, set: &F) -> Result<()> {
        crate::log::names::check_base_name(&self.base_name).map_err(|_| {
            Error::InvalidPath.with_detail(format!(
                "{MANIFEST}: base_name {:?} is not three letters or digits",
                self.base_name
            ))
        })?;
        let files = self.databases.iter().map(|d| (&d.file, "databases"));
        for (file, folder) in files.chain(self.logs.iter().map(|l| (&l.file, "logs"))) {
            // A name below the folder, not the folder itself.
            let inside = file.starts_with(folder)
                && file.components().count() > 1
                && file.components().all(|c| matches!(c, Component::Normal(_)))
                && !set.is_link(file);
            if !inside {
                return Err(Error::InvalidPath.with_detail(format!(
                    "{MANIFEST}: {} is not a file inside the set's {folder}/ folder",
                    file.display()
                )));
            }
        }
        Ok(())
    }
}

/// One file of a manifest, database or log alike.
#[derive(Clone, Copy, Debug)]
pub struct SetEntryRef<'a> {
    /// Its name in the set.
    pub file: &'a Path,
    /// Bytes of content.
    pub size: u64,
    /// CRC-32C of the content, hex.
    pub crc32c: &'a str,
    /// How it is kept, if not plainly.
    pub stored: Option<&'a Stored>,
    /// A log (else a database image).
    pub log: bool,
}

impl SetEntryRef<'_> {
    /// Bytes as stored.
    pub fn stored_size(&self) -> u64 {
        self.stored.map_or(self.size, |s| s.size)
    }
}

/// A small file of a set read whole.
fn read_small<F: Files + ?Sized>(set: &F, name: &Path) -> Result<Vec<u8>> {
    let path = &set.shown(name);
    let missing = |e: Error| match e.clone().plain() {
        Error::FileNotFound => e.with_detail(format!(
            "{}: missing: the set is incomplete (its backup did not finish) or not a backup set",
            path.display()
        )),
        _ => e.in_file(path),
    };
    set.read_whole(name, MANIFEST_MAX)
        .map_err(missing)?
        .ok_or_else(|| {
            Error::InvalidBackup.with_detail(format!(
                "{}: more than {MANIFEST_MAX} bytes: too large for a backup manifest",
                path.display()
            ))
        })
}

/// The id of a backup: its log signature and header record.
pub fn backup_id(log_signature: &Signature, info: &BackupInfo) -> String {
    let mut b = Vec::new();
    b.extend_from_slice(&log_signature.random.to_le_bytes());
    b.extend_from_slice(&log_signature.time_ms.to_le_bytes());
    b.extend_from_slice(&info.mark.to_le_bytes());
    b.extend_from_slice(&info.gen_low.to_le_bytes());
    b.extend_from_slice(&info.gen_high.to_le_bytes());
    let a = crc32c::crc32c(&b);
    let c = crc32c::crc32c_append(a, &b);
    format!("{a:08x}{c:08x}")
}

/// Where the `i`th database's image goes in a set: `databases/<i>-<file name>`, unique even
/// when two databases share a file name.
pub fn image_name(i: usize, original: &Path) -> PathBuf {
    let name = original
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("db{i}"));
    PathBuf::from("databases").join(format!("{i:02}-{name}"))
}

/// Where a log goes in a set: `logs/<its file name>`.
pub fn log_name(source: &Path) -> Option<PathBuf> {
    source.file_name().map(|n| PathBuf::from("logs").join(n))
}
