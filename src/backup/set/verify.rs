//! [`verify_set`]: checks a set without restoring it, wherever it is kept. Synchronous
//! (callers on a runtime run it on a blocking thread). Every error names the file and what
//! is wrong with it.

use std::path::Path;

use super::manifest::BackupManifest;
use super::MANIFEST;
use crate::io::{File, Files};
use crate::restore::checks;
use crate::{Error, Result};

/// Bytes read at a time when checksumming a file.
const READ: usize = 1 << 20;

/// What [`verify_set`] found.
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
/// the ones restore would give for the same damage, with the file and what is wrong with it
/// ([`Error::detail`]).
///
/// # Errors
///
/// The manifest: `FileNotFound` (-1811) if it is missing (the set is incomplete, or no set);
/// `InvalidBackup` (-526) if it is empty, too large or not a manifest; `InvalidPath` (-1023)
/// if it names a file outside the set. The logs: `MissingRestoreLogFiles` (-557) for a
/// missing generation (`FileNotFound` -1811 for the first), `GivenLogFileHasBadSignature`
/// (-555), `GivenLogFileIsNotContiguous` (-556), `LogFileCorrupt` (-501) for a damaged log
/// or a size or checksum other than the manifest's. The databases: `DatabaseCorrupted`
/// (-1206) for a damaged image or a size or checksum other than the manifest's,
/// `DatabasePatchFileMismatch` (-552) for a trailer, size or signature that does not match,
/// `RestoreOfNonBackupDatabase` (-615), `StartingRestoreLogTooHigh` (-554) and
/// `EndingRestoreLogTooLow` (-553) for an image that needs logs outside the set's.
pub fn verify_set<F: Files + ?Sized>(set: &F) -> Result<VerifyReport> {
    let m = BackupManifest::read_from(set)?;
    let sig = m.signature()?;
    let expected_logs = (m.gen_high as u64 + 1).saturating_sub(m.gen_low as u64);
    if m.logs.len() as u64 != expected_logs {
        return Err(Error::MissingRestoreLogFiles.with_detail(format!(
            "{}: lists {} log(s) for generations {}..={} ({expected_logs} expected)",
            set.shown(Path::new(MANIFEST)).display(),
            m.logs.len(),
            m.gen_low,
            m.gen_high
        )));
    }
    // Structure first, so each kind of damage gets its specific error; then the checksums,
    // which catch anything the structure checks cannot see.
    let logs = checks::log_sequence(
        set,
        Path::new("logs"),
        &m.base_name,
        m.gen_low,
        m.gen_high,
        Some(sig),
    )?;
    let mut pages = 0;
    for d in &m.databases {
        let path = set.shown(&d.file);
        let img = checks::database_image(set, &d.file, Some(sig), Some((m.gen_low, m.gen_high)))?;
        let found = img.header.db_signature.to_hex();
        if found != d.db_signature {
            return Err(Error::DatabasePatchFileMismatch.with_detail(format!(
                "{}: database signature {found}, the manifest expects {}",
                path.display(),
                d.db_signature
            )));
        }
        pages += img.trailer.last_page as u64;
    }
    for l in &m.logs {
        check_file(set, &l.file, l.size, &l.crc32c, Error::LogFileCorrupt)?;
    }
    for d in &m.databases {
        check_file(set, &d.file, d.size, &d.crc32c, Error::DatabaseCorrupted)?;
    }
    Ok(VerifyReport {
        manifest: m,
        pages,
        logs: logs.len(),
    })
}

/// The file's size and CRC-32C against the manifest's; `damaged` is the error for a mismatch.
fn check_file<F: Files + ?Sized>(
    set: &F,
    name: &Path,
    size: u64,
    crc_hex: &str,
    damaged: Error,
) -> Result<()> {
    let path = &set.shown(name);
    let f = set.open_read(name).map_err(|e| {
        let e = match e.clone().plain() {
            Error::FileNotFound if damaged == Error::LogFileCorrupt => {
                Error::MissingRestoreLogFiles
            }
            _ => e,
        };
        e.with_detail(format!("{}: missing or unreadable", path.display()))
    })?;
    let len = f.len().map_err(|e| e.in_file(path))?;
    if len != size {
        return Err(damaged.with_detail(format!(
            "{}: expected size {size} bytes, found {len}",
            path.display()
        )));
    }
    let crc = crc_of(&*f, len).map_err(|e| e.in_file(path))?;
    let found = format!("{crc:08x}");
    if found != crc_hex {
        return Err(damaged.with_detail(format!(
            "{}: expected crc32c {crc_hex}, found {found}",
            path.display()
        )));
    }
    Ok(())
}

/// CRC-32C of the first `len` bytes, read a bounded chunk at a time.
fn crc_of(f: &dyn File, len: u64) -> Result<u32> {
    let mut buf = vec![0u8; READ];
    let mut crc = 0u32;
    let mut at = 0u64;
    while at < len {
        let n = READ.min((len - at) as usize);
        f.read_exact_at(&mut buf[..n], at)?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    Ok(crc)
}
