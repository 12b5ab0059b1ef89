//! Checks of backed-up files, each with its own ESE error (behaviour.md §3): the log sequence
//! (presence, signatures, contiguity, checksums) and database images (header, backup mark,
//! trailer, pages, required generations).

use std::path::{Path, PathBuf};

use crate::db::{DbHeader, Signature, Trailer};
use crate::io::Files;
use crate::log::names;
use crate::log::reader::{self, LogFile, Tail};
use crate::page;
use crate::{Error, Result};

/// Reads and checks the backed-up logs `gen_low..=gen_high` of `dir`, in order: a missing
/// generation is `MissingRestoreLogFiles` (`FileNotFound` for the first), a damaged one
/// `LogFileCorrupt`, a signature that differs from the previous file's
/// `GivenLogFileHasBadSignature`, a file whose recorded predecessor is not the previous file
/// `GivenLogFileIsNotContiguous`. Errors name each file as `files` shows it.
pub fn log_sequence<F: Files + ?Sized>(
    files: &F,
    dir: &Path,
    base: &str,
    gen_low: u32,
    gen_high: u32,
    expect_sig: Option<Signature>,
) -> Result<Vec<(PathBuf, LogFile)>> {
    let mut out: Vec<(PathBuf, LogFile)> = Vec::new();
    for gen in gen_low..=gen_high {
        let path = names::archived(dir, base, gen);
        let prev = out.last().map(|(_, p)| p);
        let f = one_log(files, &path, gen, gen == gen_low, prev, expect_sig)
            .map_err(|e| e.in_file(&files.shown(&path)))?;
        out.push((path, f));
    }
    Ok(out)
}

/// One log of [`log_sequence`]: present, readable, of the stream, continuing `prev`, whole.
/// Errors say what is wrong; the caller adds the file.
fn one_log<F: Files + ?Sized>(
    files: &F,
    path: &Path,
    gen: u32,
    first: bool,
    prev: Option<&LogFile>,
    expect_sig: Option<Signature>,
) -> Result<LogFile> {
    let file = files.open_read(path).map_err(|e| match e.clone().plain() {
        Error::FileNotFound if first => {
            Error::FileNotFound.with_detail(format!("missing (generation {gen})"))
        }
        Error::FileNotFound => {
            Error::MissingRestoreLogFiles.with_detail(format!("missing (generation {gen})"))
        }
        _ => e,
    })?;
    let f = reader::read_from(&*file)?;
    let want_sig = prev.map(|p| p.header.signature).or(expect_sig);
    if let Some(want) = want_sig.filter(|s| *s != f.header.signature) {
        return Err(Error::GivenLogFileHasBadSignature.with_detail(format!(
            "log signature {}, expected {} (a log of another stream)",
            f.header.signature.to_hex(),
            want.to_hex()
        )));
    }
    if f.header.gen != gen {
        return Err(Error::GivenLogFileIsNotContiguous
            .with_detail(format!("holds generation {}, expected {gen}", f.header.gen)));
    }
    if prev.is_some_and(|p| f.header.prev_created_ms != p.header.created_ms) {
        return Err(Error::GivenLogFileIsNotContiguous
            .with_detail("does not continue the previous log (its predecessor differs)"));
    }
    if f.tail != Tail::Complete {
        return Err(Error::LogFileCorrupt
            .with_detail("the log is not whole: no end record (cut short or damaged)"));
    }
    Ok(f)
}

/// What a checked database image says about itself.
#[derive(Clone, Debug)]
pub struct ImageInfo {
    /// The header copy (with the backup mark).
    pub header: DbHeader,
    /// The trailer.
    pub trailer: Trailer,
}

/// Checks a streamed database image: a database header (`DatabaseCorrupted`), made by a
/// backup (`RestoreOfNonBackupDatabase`), with a trailer that matches it
/// (`DatabasePatchFileMismatch`), of the size the trailer implies
/// (`DatabasePatchFileMismatch`), every page verifying (`DatabaseCorrupted`), and needing
/// only logs in `gen_low..=gen_high` (`StartingRestoreLogTooHigh`, `EndingRestoreLogTooLow`).
pub fn database_image<F: Files + ?Sized>(
    files: &F,
    path: &Path,
    log_signature: Option<Signature>,
    range: Option<(u32, u32)>,
) -> Result<ImageInfo> {
    image_checks(files, path, log_signature, range).map_err(|e| e.in_file(&files.shown(path)))
}

fn image_checks<F: Files + ?Sized>(
    files: &F,
    path: &Path,
    log_signature: Option<Signature>,
    range: Option<(u32, u32)>,
) -> Result<ImageInfo> {
    let f = files.open_read(path)?;
    let len = f.len()?;
    let mut head = vec![0u8; 4096.min(len as usize)];
    f.read_exact_at(&mut head, 0)
        .map_err(|_| Error::DatabaseCorrupted)?;
    let ps = DbHeader::peek_page_size(&head).ok_or(Error::DatabaseCorrupted)?;
    let mut hp = vec![0u8; ps as usize];
    f.read_exact_at(&mut hp, 0)
        .map_err(|_| Error::DatabaseCorrupted)?;
    let header = DbHeader::decode(&hp)?;
    let mark = header.backup_mark.ok_or_else(|| {
        Error::RestoreOfNonBackupDatabase.with_detail("no backup mark: not a streamed backup copy")
    })?;
    if len < 3 * ps as u64 || len % ps as u64 != 0 {
        return Err(Error::DatabasePatchFileMismatch.with_detail(format!(
            "size {len} is not a whole number of {ps}-byte pages with a trailer"
        )));
    }
    let mut tp = vec![0u8; ps as usize];
    f.read_exact_at(&mut tp, len - ps as u64)?;
    let trailer = Trailer::decode(&tp)?;
    let matches = trailer.db_signature == header.db_signature
        && trailer.log_signature == header.log_signature
        && trailer.backup.mark == mark.mark
        && trailer.page_size == ps
        && (trailer.last_page as u64 + 3) * ps as u64 == len;
    if !matches || log_signature.is_some_and(|s| s != trailer.log_signature) {
        let expected = (trailer.last_page as u64 + 3) * ps as u64;
        return Err(Error::DatabasePatchFileMismatch.with_detail(format!(
            "the trailer does not match the header or the logs (size {len}, the trailer implies {expected})"
        )));
    }
    verify_pages(&*f, ps, trailer.last_page)?;
    if let Some((low, high)) = range {
        if header.gen_min_required < low {
            return Err(Error::StartingRestoreLogTooHigh.with_detail(format!(
                "needs logs from generation {}, the first given is {low}",
                header.gen_min_required
            )));
        }
        if trailer.backup.gen_high > high {
            return Err(Error::EndingRestoreLogTooLow.with_detail(format!(
                "needs logs up to generation {}, the last given is {high}",
                trailer.backup.gen_high
            )));
        }
    }
    Ok(ImageInfo { header, trailer })
}

fn verify_pages(f: &dyn crate::io::File, ps: u32, last_page: u32) -> Result<()> {
    const BATCH: u32 = 256;
    let mut pgno = 1;
    while pgno <= last_page {
        let n = BATCH.min(last_page - pgno + 1);
        let mut buf = vec![0u8; (n * ps) as usize];
        f.read_exact_at(&mut buf, page::page_offset(pgno, ps))?;
        for (i, p) in buf.chunks(ps as usize).enumerate() {
            page::verify(p, pgno + i as u32).map_err(|_| {
                Error::DatabaseCorrupted
                    .with_detail(format!("page {} does not verify", pgno + i as u32))
            })?;
        }
        pgno += n;
    }
    Ok(())
}
