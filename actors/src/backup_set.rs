//! Backup sets: `Instance::backup_to_dir` drives the whole streaming sequence into a
//! directory with a `manifest.json`; `verify_backup_set` checks a set without restoring it.
//!
//! Layout: `manifest.json`, `databases/<file name>`, `logs/<base>XXXXXXXX.log`.

use std::path::{Path, PathBuf};

use ese::db::{BackupInfo, Signature};
use ese::restore::checks;
use ese::{BackupBegin, BackupEnd, Error, Result};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::instance::Instance;

/// Which backup `backup_to_dir` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// Databases and logs, then truncation (`last_full`).
    Full,
    /// Logs since the last full or incremental, then truncation (`last_incremental`).
    Incremental,
    /// A full backup without truncation (`last_copy`).
    Copy,
    /// An incremental without truncation (`last_differential`).
    Differential,
}

impl BackupKind {
    fn incremental(self) -> bool {
        matches!(self, BackupKind::Incremental | BackupKind::Differential)
    }
    fn truncates(self) -> bool {
        matches!(self, BackupKind::Full | BackupKind::Incremental)
    }
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
    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<BackupManifest> {
        let text = std::fs::read_to_string(dir.join("manifest.json")).map_err(Error::from_io)?;
        let m: BackupManifest = serde_json::from_str(&text).map_err(|e| {
            tracing::warn!(error = %e, "manifest.json is not a backup manifest");
            Error::InvalidBackup
        })?;
        // Files named by a manifest stay inside the set: relative, no `..`, in their folder.
        let inside = |p: &Path, folder: &str| {
            p.starts_with(folder)
                && p.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
                && !std::fs::symlink_metadata(dir.join(p)).is_ok_and(|m| m.file_type().is_symlink())
        };
        // The base name builds log paths: three letters or digits, nothing that climbs.
        ese::log::names::check_base_name(&m.base_name).map_err(|_| Error::InvalidPath)?;
        if !m.databases.iter().all(|d| inside(&d.file, "databases"))
            || !m.logs.iter().all(|l| inside(&l.file, "logs"))
        {
            return Err(Error::InvalidPath);
        }
        Ok(m)
    }
}

/// The id of a backup: its log signature and header record.
pub(crate) fn backup_id(log_signature: &Signature, info: &BackupInfo) -> String {
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

/// Chunk size of the streaming reads.
const CHUNK: usize = 1 << 20;

impl Instance {
    /// Runs the whole streaming sequence into `dir` (which must be empty or absent) and
    /// writes `manifest.json` last: a set without a manifest is incomplete.
    pub async fn backup_to_dir(
        &self,
        dir: impl AsRef<Path>,
        kind: BackupKind,
    ) -> Result<BackupManifest> {
        let dir = dir.as_ref();
        prepare_dir(dir).await?;
        let dbs = self.instance_info().await?.databases;
        let parent = if kind.incremental() {
            self.parent_of_incremental(&dbs).await?
        } else {
            None
        };
        let grbit = if kind.incremental() {
            BackupBegin::INCREMENTAL
        } else {
            BackupBegin::empty()
        };
        self.begin_external_backup(grbit).await?;
        match self.stream_set(dir, kind).await {
            Ok((databases, logs, gen_low, gen_high)) => {
                self.end_external_backup(BackupEnd::NORMAL).await?;
                self.finish_manifest(dir, kind, parent, databases, logs, gen_low, gen_high, &dbs)
                    .await
            }
            Err(e) => {
                let _ = self.end_external_backup(BackupEnd::ABORT).await;
                Err(e)
            }
        }
    }

    async fn parent_of_incremental(&self, dbs: &[PathBuf]) -> Result<Option<String>> {
        let Some(first) = dbs.first() else {
            return Ok(None);
        };
        let info = self.database_info(first).await?;
        let prev = [info.last_full, info.last_incremental]
            .into_iter()
            .flatten()
            .max_by_key(|b| b.mark);
        let sig = self.instance_info().await?.log_signature;
        Ok(prev.map(|b| backup_id(&sig, &b)))
    }

    async fn stream_set(
        &self,
        dir: &Path,
        kind: BackupKind,
    ) -> Result<(Vec<ManifestDatabase>, Vec<ManifestLog>, u32, u32)> {
        let mut databases = Vec::new();
        if !kind.incremental() {
            for (i, path) in self.get_attach_info().await?.into_iter().enumerate() {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("db{i}"));
                let rel = PathBuf::from("databases").join(format!("{i:02}-{name}"));
                let (size, crc) = self.copy_file(&path, &dir.join(&rel)).await?;
                let header = read_header_copy(&dir.join(&rel))?;
                databases.push(ManifestDatabase {
                    original_path: path,
                    file: rel,
                    size,
                    crc32c: format!("{crc:08x}"),
                    db_signature: header.db_signature.to_hex(),
                });
            }
        }
        let info = self.get_log_info().await?;
        let mut logs = Vec::new();
        for (gen, path) in (info.gen_low..=info.gen_high).zip(info.files.iter()) {
            let rel = PathBuf::from("logs").join(path.file_name().ok_or(Error::InvalidPath)?);
            let (size, crc) = self.copy_file(path, &dir.join(&rel)).await?;
            logs.push(ManifestLog {
                gen,
                file: rel,
                size,
                crc32c: format!("{crc:08x}"),
            });
        }
        if kind.truncates() {
            self.truncate_log().await?;
        }
        Ok((databases, logs, info.gen_low, info.gen_high))
    }

    /// Streams one file of the backup into `to`; returns its size and CRC-32C.
    async fn copy_file(&self, from: &Path, to: &Path) -> Result<(u64, u32)> {
        let (h, _) = self.open_file(from).await?;
        let mut out = tokio::fs::File::create(to).await.map_err(Error::from_io)?;
        let mut crc = 0u32;
        let mut size = 0u64;
        loop {
            let chunk = self.read_file(h, CHUNK).await?;
            if chunk.is_empty() {
                break;
            }
            crc = crc32c::crc32c_append(crc, &chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(Error::from_io)?;
        }
        out.sync_all().await.map_err(Error::from_io)?;
        self.close_file(h).await?;
        tracing::info!(file = %to.display(), size, "backed up");
        Ok((size, crc))
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish_manifest(
        &self,
        dir: &Path,
        kind: BackupKind,
        parent_id: Option<String>,
        databases: Vec<ManifestDatabase>,
        logs: Vec<ManifestLog>,
        gen_low: u32,
        gen_high: u32,
        dbs: &[PathBuf],
    ) -> Result<BackupManifest> {
        let me = self.instance_info().await?;
        let sig = me.log_signature;
        let record = match dbs.first() {
            Some(p) => {
                let i = self.database_info(p).await?;
                match kind {
                    BackupKind::Full => i.last_full,
                    BackupKind::Copy => i.last_copy,
                    BackupKind::Incremental => i.last_incremental,
                    BackupKind::Differential => i.last_differential,
                }
            }
            None => None,
        };
        let record = record.unwrap_or(BackupInfo {
            mark: 0,
            time_ms: ese::lsn::now_ms(),
            gen_low,
            gen_high,
            stream: Some(sig.stream_tag()),
        });
        let manifest = BackupManifest {
            format: 1,
            kind,
            id: backup_id(&sig, &record),
            parent_id,
            instance: self.name().to_string(),
            base_name: me.base_name,
            page_size: me.page_size,
            log_signature: sig.to_hex(),
            gen_low,
            gen_high,
            mark: record.mark,
            mark_time_ms: record.time_ms,
            databases,
            logs,
        };
        let text = serde_json::to_string_pretty(&manifest).map_err(|_| Error::InternalError)?;
        let tmp = dir.join("manifest.json.tmp");
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(Error::from_io)?;
        f.write_all(text.as_bytes()).await.map_err(Error::from_io)?;
        f.sync_all().await.map_err(Error::from_io)?;
        tokio::fs::rename(&tmp, dir.join("manifest.json"))
            .await
            .map_err(Error::from_io)?;
        Ok(manifest)
    }
}

/// The header copy at the start of a streamed image.
fn read_header_copy(path: &Path) -> Result<ese::db::DbHeader> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(Error::from_io)?;
    let mut b = vec![0u8; 32 * 1024];
    let n = f.read(&mut b).map_err(Error::from_io)?;
    let ps = ese::db::DbHeader::peek_page_size(&b[..n]).ok_or(Error::DatabaseCorrupted)? as usize;
    ese::db::DbHeader::decode(b.get(..ps).ok_or(Error::DatabaseCorrupted)?)
}

async fn prepare_dir(dir: &Path) -> Result<()> {
    if let Ok(mut rd) = tokio::fs::read_dir(dir).await {
        if rd.next_entry().await.map_err(Error::from_io)?.is_some() {
            return Err(Error::BackupDirectoryNotEmpty);
        }
    }
    for sub in ["databases", "logs"] {
        tokio::fs::create_dir_all(dir.join(sub))
            .await
            .map_err(|_| Error::MakeBackupDirectoryFail)?;
    }
    Ok(())
}

/// What `verify_backup_set` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// The set's manifest.
    pub manifest: BackupManifest,
    /// Data pages verified.
    pub pages: u64,
    /// Log files verified.
    pub logs: usize,
}

/// Checks a backup set without restoring it: every file's size and checksum, the logs'
/// contiguity and signatures, each database image's header, trailer and pages. Errors are
/// the ones restore would give for the same damage.
pub fn verify_backup_set(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    let m = BackupManifest::read(dir)?;
    let storage = ese::io::os();
    let sig = Signature::from_hex(&m.log_signature).ok_or(Error::InvalidBackup)?;
    if m.logs.len() as u64 != (m.gen_high as u64 + 1).saturating_sub(m.gen_low as u64) {
        return Err(Error::MissingRestoreLogFiles);
    }
    // Structure first, so each kind of damage gets its specific error; then the checksums,
    // which catch anything the structure checks cannot see.
    let logs = checks::log_sequence(
        &*storage,
        &dir.join("logs"),
        &m.base_name,
        m.gen_low,
        m.gen_high,
        Some(sig),
    )?;
    let mut pages = 0;
    for d in &m.databases {
        let img = checks::database_image(
            &*storage,
            &dir.join(&d.file),
            Some(sig),
            Some((m.gen_low, m.gen_high)),
        )?;
        if img.header.db_signature.to_hex() != d.db_signature {
            return Err(Error::DatabasePatchFileMismatch);
        }
        pages += img.trailer.last_page as u64;
    }
    for l in &m.logs {
        check_file(&dir.join(&l.file), l.size, &l.crc32c, Error::LogFileCorrupt)?;
    }
    for d in &m.databases {
        check_file(
            &dir.join(&d.file),
            d.size,
            &d.crc32c,
            Error::DatabaseCorrupted,
        )?;
    }
    Ok(VerifyReport {
        manifest: m,
        pages,
        logs: logs.len(),
    })
}

fn check_file(path: &Path, size: u64, crc_hex: &str, damaged: Error) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if damaged.code() == Error::LogFileCorrupt.code() => {
            Error::MissingRestoreLogFiles
        }
        _ => Error::from_io(e),
    })?;
    if bytes.len() as u64 != size || format!("{:08x}", crc32c::crc32c(&bytes)) != crc_hex {
        return Err(damaged);
    }
    Ok(())
}
