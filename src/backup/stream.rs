//! The reads behind `read_file`, run on an I/O thread: database images (header twice,
//! verified pages, trailer) and verified log files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::ReadPlan;
use crate::db::DbFile;
use crate::io::{BufferPool, OpenMode, Storage};
use crate::log::reader::{self, Tail};
use crate::log::LogHeader;
use crate::page;
use crate::{Error, Result};

/// Times a page that fails verification is read again: a read that raced with a page
/// write can see a torn page; a real defect fails every time.
const RETRIES: u32 = 16;

/// What one planned read produced.
#[derive(Clone, Debug, Default)]
pub struct Streamed {
    /// The chunk for the client.
    pub chunk: Bytes,
    /// A log's whole verified file, on its first read (kept for the following reads).
    pub whole_log: Option<Bytes>,
    /// Database pages this read verified (checksum, page number, kind): the data pages of the
    /// chunk; 0 for a log, a header copy or the trailer.
    pub pages_verified: u64,
}

/// Performs a planned read: the chunk, and for a log's first read the whole verified file
/// (kept for the following reads).
pub fn execute(
    storage: &dyn Storage,
    plan: &ReadPlan,
    expect_sig: crate::db::Signature,
) -> Result<Streamed> {
    match plan {
        ReadPlan::Eof => Ok(Streamed::default()),
        ReadPlan::Db {
            file,
            pos,
            len,
            header,
            last_page,
            trailer,
            buffers,
        } => {
            let image = Image {
                file,
                header,
                last_page: *last_page,
                trailer: trailer.as_deref(),
            };
            let (chunk, pages_verified) = db_chunk(&image, *pos, *len, buffers)?;
            Ok(Streamed {
                chunk,
                whole_log: None,
                pages_verified,
            })
        }
        ReadPlan::Log {
            path,
            gen,
            pos,
            len,
            bytes,
        } => {
            let whole = match bytes {
                Some(b) => b.clone(),
                None => read_log(storage, path, *gen, expect_sig)?,
            };
            let start = (*pos as usize).min(whole.len());
            let end = (start + len).min(whole.len());
            let fresh = bytes.is_none().then(|| whole.clone());
            Ok(Streamed {
                chunk: whole.slice(start..end),
                whole_log: fresh,
                pages_verified: 0,
            })
        }
    }
}

/// The parts of a database image a chunk is made of.
struct Image<'a> {
    file: &'a DbFile,
    header: &'a [u8],
    last_page: u32,
    trailer: Option<&'a [u8]>,
}

/// Bytes `[pos, pos+len)` of a database image: page slots 0 and 1 are the header copy,
/// slot `p + 1` is data page `p`, the slot after the last page is the trailer. With the
/// number of data pages verified. The chunk's buffer comes from `buffers` and every byte of
/// it is written here, so a reused buffer needs no zero fill.
fn db_chunk(
    image: &Image,
    pos: u64,
    len: usize,
    buffers: &Arc<BufferPool>,
) -> Result<(Bytes, u64)> {
    let ps = image.file.page_size as usize;
    let mut out = buffers.take_len(len);
    let first_slot = (pos / ps as u64) as u32;
    let slots = (len / ps) as u32;
    let data_first = first_slot.max(2);
    let data_last = (first_slot + slots).min(image.last_page + 2); // exclusive slot bound
    let mut verified = 0;
    if data_first < data_last {
        let at = (data_first - first_slot) as usize * ps;
        let n = (data_last - data_first) as usize * ps;
        verified = read_pages(image.file, data_first - 1, &mut out[at..at + n])?;
    }
    for slot in first_slot..first_slot + slots {
        let at = (slot - first_slot) as usize * ps;
        let dst = &mut out[at..at + ps];
        if slot < 2 {
            dst.copy_from_slice(image.header);
        } else if slot == image.last_page + 2 {
            dst.copy_from_slice(image.trailer.ok_or(Error::InternalError)?);
        } else if slot >= data_last {
            // Past the trailer: never in a planned read, but a stale byte must not leak.
            dst.fill(0);
        }
    }
    out[slots as usize * ps..].fill(0);
    Ok((buffers.share(out), verified))
}

/// Reads consecutive pages from `first` into `buf` with one read, then verifies each page,
/// reading a failing page again up to [`RETRIES`] times. Returns how many pages verified:
/// all of them, since the first page that never does fails the read.
fn read_pages(file: &DbFile, first: u32, buf: &mut [u8]) -> Result<u64> {
    let ps = file.page_size as usize;
    fill(file, page::page_offset(first, file.page_size), buf)?;
    let mut verified = 0;
    for (i, p) in buf.chunks_mut(ps).enumerate() {
        let pgno = first + i as u32;
        let mut tries = 0;
        while let Err(e) = file.verify_page(p, pgno) {
            tries += 1;
            if tries > RETRIES {
                tracing::warn!(pgno, error = %e, "page fails verification");
                let lost = e.code() == Error::ReadLostFlushVerifyFailure.code();
                return Err(if lost {
                    as_verify_failure(e)
                } else {
                    Error::ReadVerifyFailure
                });
            }
            std::thread::sleep(Duration::from_millis(tries as u64));
            fill(file, page::page_offset(pgno, file.page_size), p)?;
        }
        verified += 1;
    }
    Ok(verified)
}

/// Reads as much as the file has; bytes past its end stay zero (pages never written). A
/// file cut short behind the engine's back lost pages that were written: such a page fails
/// verification like any damaged one (`DbFile::read_pages_at`), so that no backup carries
/// zeros where data was.
fn fill(file: &DbFile, offset: u64, buf: &mut [u8]) -> Result<()> {
    file.read_pages_at(buf, offset).map_err(as_verify_failure)
}

/// A lost page, in a backup, is a page that fails verification (-1018), with what was lost.
fn as_verify_failure(e: Error) -> Error {
    if e.code() == Error::ReadLostFlushVerifyFailure.code() {
        Error::ReadVerifyFailure.with_detail(e.detail_or_message())
    } else {
        e
    }
}

/// Reads an archived log and verifies it whole: header, generation, signature, every
/// record up to its end record. Any defect is `LogReadVerifyFailure`.
fn read_log(
    storage: &dyn Storage,
    path: &Path,
    gen: u32,
    sig: crate::db::Signature,
) -> Result<Bytes> {
    let f = storage
        .open(path, OpenMode::ReadOnly)
        .map_err(|e| match e {
            Error::FileNotFound => Error::MissingFileToBackup,
            e => e,
        })?;
    let len = f.len()? as usize;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, 0)
        .map_err(|_| Error::LogReadVerifyFailure)?;
    let bad = |what: &str| {
        tracing::error!(path = %path.display(), what, "log fails verification");
        Error::LogReadVerifyFailure
    };
    let header = LogHeader::decode(&buf).map_err(|_| bad("header"))?;
    if header.gen != gen || header.signature != sig {
        return Err(bad("generation or signature"));
    }
    let parsed = reader::parse(&buf).map_err(|_| bad("record"))?;
    if parsed.tail != Tail::Complete {
        return Err(bad("no end record"));
    }
    Ok(Bytes::from(buf))
}
