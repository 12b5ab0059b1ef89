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
}

/// `manifest.json` of a backup set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// Manifest format version (1).
    pub format: u32,
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
        m.check_names(set)?;
        Ok(m)
    }

    /// The manifest as written into a set.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| {
            Error::InternalError.with_detail(format!("the manifest could not be encoded: {e}"))
        })
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
            let inside = file.starts_with(folder)
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
    let f = set.open_read(name).map_err(missing)?;
    let len = f.len().map_err(|e| e.in_file(path))?;
    if len > MANIFEST_MAX {
        return Err(Error::InvalidBackup.with_detail(format!(
            "{}: {len} bytes: too large for a backup manifest",
            path.display()
        )));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0).map_err(|e| e.in_file(path))?;
    Ok(buf)
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
