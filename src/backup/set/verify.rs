//! [`verify_set`]: checks a set without restoring it, wherever it is kept. Synchronous
//! (callers on a runtime run it on a blocking thread). Every error names the file and what
//! is wrong with it.

use std::path::Path;

use super::manifest::BackupManifest;
use super::store::Content;
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
    verify_set_with(set, VerifyDepth::Full)
}

/// How much of a set [`verify_set_with`] reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VerifyDepth {
    /// Reads nothing but the manifest: every file is present with the size the manifest
    /// gives for what is stored ([`Files::stored_len`]: a `HEAD` on an object store).
    Quick,
    /// [`VerifyDepth::Quick`] for every file, then reads back about `percent` of the files
    /// (at least one), chosen from `seed`, and checks their sizes and checksums: a nightly
    /// partial read that covers the whole set over a few nights.
    Sample {
        /// Share of the files to read, 0 to 100.
        percent: f64,
        /// Chooses the files; a different seed each night reads different ones.
        seed: u64,
    },
    /// Reads every file back: sizes, checksums, the log chain and every page
    /// ([`verify_set`]).
    Full,
}

/// Checks a backup set as deep as `depth` says; [`verify_set`] is the full form.
///
/// # Errors
///
/// Those of [`verify_set`]; the quick form finds a missing file (`MissingRestoreLogFiles`
/// -557 for a log, `FileNotFound` -1811 for a database image) and a stored size other than
/// the manifest's (`LogFileCorrupt` -501, `DatabaseCorrupted` -1206).
pub fn verify_set_with<F: Files + ?Sized>(set: &F, depth: VerifyDepth) -> Result<VerifyReport> {
    let m = read_manifest(set)?;
    let (pages, logs) = match depth {
        VerifyDepth::Full => {
            let found = check_structure(set, &m)?;
            check_sums(set, &m, |_| true)?;
            found
        }
        VerifyDepth::Quick => {
            check_present(set, &m)?;
            (0, 0)
        }
        VerifyDepth::Sample { percent, seed } => {
            check_present(set, &m)?;
            let chosen = sample(m.files().count(), percent, seed);
            check_sums(set, &m, |i| chosen.contains(&i))?;
            (0, chosen.len())
        }
    };
    Ok(VerifyReport {
        manifest: m,
        pages,
        logs,
    })
}

/// The set's manifest, read and checked (digest, names), with as many logs as its range.
pub fn read_manifest<F: Files + ?Sized>(set: &F) -> Result<BackupManifest> {
    let m = BackupManifest::read_from(set)?;
    check_log_count(set, &m)?;
    Ok(m)
}

/// The manifest lists one log per generation of its range (`MissingRestoreLogFiles`
/// otherwise): the check [`read_manifest`] adds to reading, for a manifest read already.
pub fn check_log_count<F: Files + ?Sized>(set: &F, m: &BackupManifest) -> Result<()> {
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
    Ok(())
}

/// The structure of the set's files, each kind of damage with its specific error: the log
/// sequence (signatures, contiguity, whole files) and every database image (header, trailer,
/// pages, the logs it needs, the signature the manifest gives). Returns the pages and logs
/// checked.
pub fn check_structure<F: Files + ?Sized>(files: &F, m: &BackupManifest) -> Result<(u64, usize)> {
    let sig = m.signature()?;
    let logs = checks::log_sequence(
        files,
        Path::new("logs"),
        &m.base_name,
        m.gen_low,
        m.gen_high,
        Some(sig),
    )?;
    let mut pages = 0;
    for d in &m.databases {
        let path = files.shown(&d.file);
        let img = checks::database_image(files, &d.file, Some(sig), Some((m.gen_low, m.gen_high)))?;
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
    Ok((pages, logs.len()))
}

/// Sizes and checksums of the files `chosen` picks (by their index in
/// [`BackupManifest::files`]), logs before databases, read back whole.
fn check_sums<F: Files + ?Sized>(
    set: &F,
    m: &BackupManifest,
    chosen: impl Fn(usize) -> bool,
) -> Result<()> {
    let mut files: Vec<_> = m.files().enumerate().filter(|(i, _)| chosen(*i)).collect();
    files.sort_by_key(|(_, f)| !f.log);
    for (_, f) in files {
        check_file(set, f.file, f.size, f.crc32c, damaged(f.log))?;
    }
    Ok(())
}

/// The error for a file whose bytes are not the manifest's.
fn damaged(log: bool) -> Error {
    match log {
        true => Error::LogFileCorrupt,
        false => Error::DatabaseCorrupted,
    }
}

/// Every file is there with the stored size the manifest gives; reads no content.
fn check_present<F: Files + ?Sized>(set: &F, m: &BackupManifest) -> Result<()> {
    let first_log = m.logs.first().map(|l| l.file.as_path());
    for f in m.files() {
        let path = set.shown(f.file);
        // As the log checks say it: the first log missing is a missing file, a later one a
        // gap in the logs.
        let gap = f.log && Some(f.file) != first_log;
        let len = set.stored_len(f.file).map_err(|e| {
            missing(e, gap).with_detail(format!("{}: missing or unreadable", path.display()))
        })?;
        let want = f.stored_size();
        if len != want {
            return Err(damaged(f.log).with_detail(format!(
                "{}: expected {want} stored bytes, found {len}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// A missing log is a gap in the logs; a missing image is a missing file.
fn missing(e: Error, log: bool) -> Error {
    match e.clone().plain() {
        Error::FileNotFound if log => Error::MissingRestoreLogFiles,
        _ => e,
    }
}

/// About `percent` of `n` indices (at least one when `n > 0`), chosen from `seed`.
fn sample(n: usize, percent: f64, seed: u64) -> Vec<usize> {
    let want = ((n as f64 * percent.clamp(0.0, 100.0) / 100.0).ceil() as usize).clamp(n.min(1), n);
    // A small xorshift: the choice needs spread, not strength.
    let mut x = seed | 1;
    let mut order: Vec<(u64, usize)> = (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x, i)
        })
        .collect();
    order.sort_unstable();
    let mut picked: Vec<usize> = order.into_iter().take(want).map(|(_, i)| i).collect();
    picked.sort_unstable();
    picked
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
    let log = damaged == Error::LogFileCorrupt;
    let f = set.open_read(name).map_err(|e| {
        missing(e, log).with_detail(format!("{}: missing or unreadable", path.display()))
    })?;
    let len = f.len().map_err(|e| e.in_file(path))?;
    if len != size {
        return compare_sums(path, size, crc_hex, Content { len, crc32c: 0 }, log);
    }
    let crc = crc_of(&*f, len).map_err(|e| e.in_file(path))?;
    compare_sums(path, size, crc_hex, Content { len, crc32c: crc }, log)
}

/// What was found of a file (`found`) against what the manifest says: the size first, then
/// the CRC-32C, each mismatch `LogFileCorrupt` for a log and `DatabaseCorrupted` for an
/// image, naming `path`.
pub fn compare_sums(
    path: &Path,
    size: u64,
    crc_hex: &str,
    found: Content,
    log: bool,
) -> Result<()> {
    if found.len != size {
        return Err(damaged(log).with_detail(format!(
            "{}: expected size {size} bytes, found {}",
            path.display(),
            found.len
        )));
    }
    let crc = format!("{:08x}", found.crc32c);
    if crc != crc_hex {
        return Err(damaged(log).with_detail(format!(
            "{}: expected crc32c {crc_hex}, found {crc}",
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
