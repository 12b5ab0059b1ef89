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
use crate::lsn::Lsn;
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
    /// The chunk's CRC-32C. For a database image it is put together from the sums that
    /// verifying its pages computed (`crate::crc`), not from another pass over the chunk.
    pub crc32c: u32,
}

/// Performs a planned read: the chunk, and for a log's first read the whole verified file
/// (kept for the following reads).
///
/// `durable` answers the log's durable position; a database image's trailer asks it once its
/// last chunk's pages are read (see `finished_trailer`).
pub fn execute(
    storage: &dyn Storage,
    plan: &ReadPlan,
    expect_sig: crate::db::Signature,
    durable: &dyn Fn() -> Lsn,
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
                trailer: trailer.as_ref(),
                durable,
            };
            let (chunk, pages_verified, crc32c) = db_chunk(&image, *pos, *len, buffers)?;
            Ok(Streamed {
                chunk,
                whole_log: None,
                pages_verified,
                crc32c,
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
            let chunk = whole.slice(start..end);
            Ok(Streamed {
                crc32c: crc32c::crc32c(&chunk),
                chunk,
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
    trailer: Option<&'a crate::db::Trailer>,
    durable: &'a dyn Fn() -> Lsn,
}

/// Bytes `[pos, pos+len)` of a database image: page slots 0 and 1 are the header copy,
/// slot `p + 1` is data page `p`, the slot after the last page is the trailer. With the
/// number of data pages verified and the chunk's CRC-32C. The chunk's buffer comes from
/// `buffers` and every byte of it is written here, so a reused buffer needs no zero fill.
fn db_chunk(
    image: &Image,
    pos: u64,
    len: usize,
    buffers: &Arc<BufferPool>,
) -> Result<(Bytes, u64, u32)> {
    let ps = image.file.page_size as usize;
    let mut out = buffers.take_len(len);
    let first_slot = (pos / ps as u64) as u32;
    let slots = (len / ps) as u32;
    let data_first = first_slot.max(2);
    let data_last = (first_slot + slots).min(image.last_page + 2); // exclusive slot bound
    let mut bodies = Vec::new();
    if data_first < data_last {
        let at = (data_first - first_slot) as usize * ps;
        let n = (data_last - data_first) as usize * ps;
        bodies = read_pages(image.file, data_first - 1, &mut out[at..at + n])?;
    }
    let trailer_slot = image.last_page + 2;
    let trailer = if (first_slot..first_slot + slots).contains(&trailer_slot) {
        let planned = image.trailer.ok_or(Error::InternalError)?;
        Some(finished_trailer(planned, (image.durable)()))
    } else {
        None
    };
    for slot in first_slot..first_slot + slots {
        let at = (slot - first_slot) as usize * ps;
        let dst = &mut out[at..at + ps];
        if slot < 2 {
            dst.copy_from_slice(image.header);
        } else if slot == trailer_slot {
            dst.copy_from_slice(trailer.as_deref().ok_or(Error::InternalError)?);
        } else if slot >= data_last {
            // Past the trailer: never in a planned read, but a stale byte must not leak.
            dst.fill(0);
        }
    }
    out[slots as usize * ps..].fill(0);
    let crc = chunk_crc(&out, ps, data_first - first_slot, &bodies);
    Ok((buffers.share(out), bodies.len() as u64, crc))
}

/// The planned trailer with its backup record's last generation raised to that of the log's
/// durable position after the image's last pages were read. Those pages were read after the
/// plan, and the flusher may have written one meanwhile with a change of a later generation;
/// the trailer tells restore how far it must replay at least, and a point-in-time stop
/// before that change would leave the page newer than the database around it. The flusher
/// writes a page only once the log is durable past the end of every commit that changed it
/// (design.md, "Write-ahead rule in the flusher"), so the durable position read afterwards
/// covers every page read, with the whole of each commit even where it spans a log roll.
/// The pages' own positions would not: each is where its record ends, not its commit, and a
/// database attached from another log stream carries that stream's positions.
fn finished_trailer(planned: &crate::db::Trailer, durable_after_read: Lsn) -> Vec<u8> {
    let mut t = planned.clone();
    t.backup.gen_high = t.backup.gen_high.max(durable_after_read.gen());
    t.encode()
}

/// The CRC-32C of a chunk of page slots whose slots `first_data..` hold the verified pages
/// with body sums `bodies`: those pages are summed from their first 4 bytes and their body
/// sum, every other byte (header copies, trailer, zeros) directly.
fn chunk_crc(chunk: &[u8], ps: usize, first_data: u32, bodies: &[u32]) -> u32 {
    let shift = page::body_shift(ps as u32);
    let data = first_data as usize..first_data as usize + bodies.len();
    let mut slots = chunk.chunks_exact(ps);
    let mut crc = 0;
    for (i, slot) in slots.by_ref().enumerate() {
        crc = if data.contains(&i) {
            shift.combine(
                crc32c::crc32c_append(crc, &slot[..4]),
                bodies[i - data.start],
            )
        } else {
            crc32c::crc32c_append(crc, slot)
        };
    }
    crc32c::crc32c_append(crc, slots.remainder())
}

/// Reads consecutive pages from `first` into `buf` with one read, then verifies each page,
/// reading a failing page again up to [`RETRIES`] times. Returns the body sum of each page
/// ([`DbFile::verify_page`]): every page verified, since the first page that never does
/// fails the read.
fn read_pages(file: &DbFile, first: u32, buf: &mut [u8]) -> Result<Vec<u32>> {
    let ps = file.page_size as usize;
    fill(file, page::page_offset(first, file.page_size), buf)?;
    let mut bodies = Vec::with_capacity(buf.len() / ps);
    for (i, p) in buf.chunks_mut(ps).enumerate() {
        let pgno = first + i as u32;
        let mut tries = 0;
        let body = loop {
            let e = match file.verify_page(p, pgno) {
                Ok(body) => break body,
                Err(e) => e,
            };
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
        };
        bodies.push(body);
    }
    Ok(bodies)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::PageKind;

    fn sealed(ps: u32, pgno: u32, fill: u8) -> Vec<u8> {
        let mut p = page::new_page(ps, pgno, PageKind::Leaf);
        p[page::PAGE_HEADER..].fill(fill);
        page::seal(&mut p);
        p
    }

    #[test]
    fn a_chunks_sum_from_its_pages_sums_is_its_sum() {
        for ps in page::PAGE_SIZES {
            // Slots: a header copy, pages 1 to 3 (page 2 never written), the trailer, and
            // bytes past the last whole slot.
            let header = vec![7u8; ps as usize];
            let pages = [
                sealed(ps, 1, 0xA5),
                vec![0u8; ps as usize],
                sealed(ps, 3, 0x3C),
            ];
            let trailer = vec![9u8; ps as usize];
            let mut chunk = header.clone();
            let mut bodies = Vec::new();
            for (i, p) in pages.iter().enumerate() {
                bodies.push(page::verify_summed(p, i as u32 + 1).unwrap());
                chunk.extend_from_slice(p);
            }
            chunk.extend_from_slice(&trailer);
            chunk.extend_from_slice(&[0u8; 100]);
            assert_eq!(
                chunk_crc(&chunk, ps as usize, 1, &bodies),
                crc32c::crc32c(&chunk)
            );
            // No verified page at all: every byte summed directly.
            assert_eq!(
                chunk_crc(&header, ps as usize, 0, &[]),
                crc32c::crc32c(&header)
            );
        }
    }

    #[test]
    fn the_trailer_needs_the_log_durable_after_its_read() {
        let planned = crate::db::Trailer {
            page_size: 4096,
            db_signature: crate::db::Signature::generate(),
            log_signature: crate::db::Signature::generate(),
            backup: crate::db::BackupInfo {
                gen_low: 2,
                gen_high: 4,
                ..Default::default()
            },
            last_page: 3,
        };
        let decoded = |durable: Lsn| {
            crate::db::Trailer::decode(&finished_trailer(&planned, durable)).unwrap()
        };
        // The log went on to generation 6 while the pages were read.
        let raised = decoded(Lsn::new(6, 4096));
        assert_eq!(raised.backup.gen_high, 6);
        assert_eq!(raised.backup.gen_low, 2);
        assert_eq!(raised.db_signature, planned.db_signature);
        // Still in the planned generation, or (never, but harmless) before it.
        assert_eq!(decoded(Lsn::new(4, 100)), planned);
        assert_eq!(decoded(Lsn::new(3, 0)), planned);
    }
}
