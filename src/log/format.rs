//! Log file layout: a 4 KiB header, then 8-byte aligned, checksummed records.
//!
//! Record frame (24 bytes, then payload, then zero padding to 8):
//! `magic u32 | crc32c u32 | type u8 | 0 u8 x3 | payload_len u32 | durable_mark u64`.
//! The checksum covers the record's own generation and offset, then bytes 8.. of the frame
//! and the payload, so a stale record left in a reused file, or one copied to another
//! place, does not verify. `durable_mark` is the log position known durable when the
//! record was made: a valid record whose mark lies past a damaged one proves the damaged
//! one had been fsync'd, which tells corruption from a torn tail.

use std::path::PathBuf;

use crate::db::{BackupField, BackupInfo, Signature};
use crate::lsn::Lsn;
use crate::page::{get_u32, get_u64, put_u32, put_u64};
use crate::{Error, Result};

/// Bytes of the file header; the first record starts here.
pub const LOG_HEADER_SIZE: u32 = 4096;
/// Bytes of a record frame before its payload.
pub const FRAME: usize = 24;
/// Space kept free at the end of every file for its end record.
pub const END_RESERVE: u32 = 64;
const LOG_MAGIC: &[u8; 8] = b"ESELOG01";
const REC_MAGIC: u32 = 0x4C52_5345;

/// A log file's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHeader {
    /// Generation of this file.
    pub gen: u32,
    /// The log stream's signature, made at first init.
    pub signature: Signature,
    /// When this file was created, ms since the epoch.
    pub created_ms: u64,
    /// When the previous generation was created (0 for the first), for contiguity checks.
    pub prev_created_ms: u64,
    /// Fixed size of every file of the stream.
    pub file_size: u64,
    /// The base name (3 characters).
    pub base_name: String,
}

impl LogHeader {
    /// Encodes the 4 KiB header.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; LOG_HEADER_SIZE as usize];
        b[4..12].copy_from_slice(LOG_MAGIC);
        put_u32(&mut b, 12, self.gen);
        put_u64(&mut b, 16, self.signature.random);
        put_u64(&mut b, 24, self.signature.time_ms);
        put_u64(&mut b, 32, self.created_ms);
        put_u64(&mut b, 40, self.prev_created_ms);
        put_u64(&mut b, 48, self.file_size);
        let base = self.base_name.as_bytes();
        b[56..56 + base.len().min(3)].copy_from_slice(&base[..base.len().min(3)]);
        let c = crc32c::crc32c(&b[4..]);
        put_u32(&mut b, 0, c);
        b
    }

    /// Decodes a header; `LogFileCorrupt` if it is damaged or not a log header.
    pub fn decode(b: &[u8]) -> Result<LogHeader> {
        if b.len() < LOG_HEADER_SIZE as usize {
            return Err(Error::LogFileCorrupt);
        }
        let b = &b[..LOG_HEADER_SIZE as usize];
        if &b[4..12] != LOG_MAGIC || crc32c::crc32c(&b[4..]) != get_u32(b, 0) {
            return Err(Error::LogFileCorrupt);
        }
        let base_name = String::from_utf8_lossy(&b[56..59]).into_owned();
        Ok(LogHeader {
            gen: get_u32(b, 12),
            signature: Signature {
                random: get_u64(b, 16),
                time_ms: get_u64(b, 24),
            },
            created_ms: get_u64(b, 32),
            prev_created_ms: get_u64(b, 40),
            file_size: get_u64(b, 48),
            base_name,
        })
    }
}

/// One attached database as the log names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachEntry {
    /// The instance's number for the database, used by page records.
    pub dbid: u32,
    /// The database's signature.
    pub signature: Signature,
    /// The path it was attached at.
    pub path: PathBuf,
}

/// One page image inside a [`Record::Pages`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageImage {
    /// Which database.
    pub dbid: u32,
    /// Which page.
    pub pgno: u32,
    /// The whole page after the change (its LSN is the record's end position).
    pub image: Vec<u8>,
}

/// The changed byte ranges of one page inside a [`Record::Deltas`]; the page's new log
/// position is the record's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageDelta {
    /// Which database.
    pub dbid: u32,
    /// Which page.
    pub pgno: u32,
    /// `(offset in the page, new bytes)`, from the kind byte on.
    pub ranges: Vec<(u16, Vec<u8>)>,
}

/// A log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Full page images of one transaction (one or more of these precede its commit).
    Pages(Vec<PageImage>),
    /// Changed ranges of pages whose full image was logged since the last flush horizon (part
    /// of a transaction, like [`Record::Pages`]).
    Deltas(Vec<PageDelta>),
    /// Makes the preceding page images take effect.
    Commit {
        /// Commit sequence number.
        seq: u64,
        /// Commit time, ms since the epoch.
        time_ms: u64,
    },
    /// A database attached (or created, then attached).
    Attach {
        /// The entry.
        entry: AttachEntry,
        /// Whether the database was created by this attach.
        created: bool,
        /// Page size of the database.
        page_size: u32,
    },
    /// A database detached.
    Detach {
        /// Which database.
        dbid: u32,
    },
    /// The databases attached when this generation began (first record of each file).
    AttachList(Vec<AttachEntry>),
    /// A backup header field update (behaviour.md §2.5), logged before it is applied.
    BackupUpdate {
        /// Which database.
        dbid: u32,
        /// Which field.
        field: BackupField,
        /// Its new value. Its stream is not written: it is the stream of the log the record
        /// is in, so a decoded record has `stream: None` and replay fills it in.
        info: BackupInfo,
    },
    /// Backup bookkeeping marks (begin, log preparation, end): informational.
    BackupMark {
        /// 1 begin, 2 prepare logs, 3 end normal, 4 end aborted.
        kind: u8,
    },
    /// Last record of a complete (archived) file.
    End,
    /// A clean shutdown.
    Shutdown,
}

impl Record {
    /// The record's type byte in its frame.
    pub fn type_byte(&self) -> u8 {
        match self {
            Record::Pages(_) => 1,
            Record::Commit { .. } => 2,
            Record::Attach { .. } => 3,
            Record::Detach { .. } => 4,
            Record::AttachList(_) => 5,
            Record::BackupUpdate { .. } => 6,
            Record::BackupMark { .. } => 7,
            Record::End => 8,
            Record::Shutdown => 9,
            Record::Deltas(_) => 10,
        }
    }

    /// Encodes the payload.
    pub fn payload(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(self.payload_len_hint());
        match self {
            Record::Pages(pages) => {
                w.extend_from_slice(&(pages.len() as u32).to_le_bytes());
                for p in pages {
                    w.extend_from_slice(&p.dbid.to_le_bytes());
                    w.extend_from_slice(&p.pgno.to_le_bytes());
                    w.extend_from_slice(&(p.image.len() as u32).to_le_bytes());
                    w.extend_from_slice(&p.image);
                }
            }
            Record::Commit { seq, time_ms } => {
                w.extend_from_slice(&seq.to_le_bytes());
                w.extend_from_slice(&time_ms.to_le_bytes());
            }
            Record::Attach {
                entry,
                created,
                page_size,
            } => {
                w.push(*created as u8);
                w.extend_from_slice(&page_size.to_le_bytes());
                put_entry(&mut w, entry);
            }
            Record::Detach { dbid } => w.extend_from_slice(&dbid.to_le_bytes()),
            Record::AttachList(list) => {
                w.extend_from_slice(&(list.len() as u32).to_le_bytes());
                for e in list {
                    put_entry(&mut w, e);
                }
            }
            Record::BackupUpdate { dbid, field, info } => {
                w.extend_from_slice(&dbid.to_le_bytes());
                w.push(*field as u8);
                w.extend_from_slice(&info.mark.to_le_bytes());
                w.extend_from_slice(&info.time_ms.to_le_bytes());
                w.extend_from_slice(&info.gen_low.to_le_bytes());
                w.extend_from_slice(&info.gen_high.to_le_bytes());
            }
            Record::BackupMark { kind } => w.push(*kind),
            Record::Deltas(deltas) => {
                w.extend_from_slice(&(deltas.len() as u32).to_le_bytes());
                for d in deltas {
                    w.extend_from_slice(&d.dbid.to_le_bytes());
                    w.extend_from_slice(&d.pgno.to_le_bytes());
                    w.extend_from_slice(&(d.ranges.len() as u32).to_le_bytes());
                    for (off, bytes) in &d.ranges {
                        w.extend_from_slice(&off.to_le_bytes());
                        w.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                        w.extend_from_slice(bytes);
                    }
                }
            }
            Record::End | Record::Shutdown => {}
        }
        w
    }

    /// The payload's length for the records that carry pages (exact), a small guess for the
    /// rest: a commit's payload is built in one allocation, not grown (and copied) as it fills.
    fn payload_len_hint(&self) -> usize {
        match self {
            Record::Pages(pages) => 4 + pages.iter().map(|p| 12 + p.image.len()).sum::<usize>(),
            Record::Deltas(deltas) => {
                4 + deltas
                    .iter()
                    .map(|d| 12 + d.ranges.iter().map(|(_, b)| 4 + b.len()).sum::<usize>())
                    .sum::<usize>()
            }
            _ => 64,
        }
    }

    /// Decodes a payload of the given type; every length is checked.
    pub fn decode(ty: u8, payload: &[u8]) -> Result<Record> {
        let mut r = Cur { b: payload, at: 0 };
        let rec = match ty {
            1 => {
                let n = r.u32()? as usize;
                let mut pages = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    let dbid = r.u32()?;
                    let pgno = r.u32()?;
                    let len = r.u32()? as usize;
                    pages.push(PageImage {
                        dbid,
                        pgno,
                        image: r.bytes(len)?.to_vec(),
                    });
                }
                Record::Pages(pages)
            }
            2 => Record::Commit {
                seq: r.u64()?,
                time_ms: r.u64()?,
            },
            3 => {
                let created = r.u8()? != 0;
                let page_size = r.u32()?;
                Record::Attach {
                    entry: get_entry(&mut r)?,
                    created,
                    page_size,
                }
            }
            4 => Record::Detach { dbid: r.u32()? },
            5 => Record::AttachList(get_attach_list(&mut r)?),
            6 => Record::BackupUpdate {
                dbid: r.u32()?,
                field: BackupField::from_u8(r.u8()?).ok_or(Error::LogFileCorrupt)?,
                info: BackupInfo {
                    mark: r.u64()?,
                    time_ms: r.u64()?,
                    gen_low: r.u32()?,
                    gen_high: r.u32()?,
                    stream: None,
                },
            },
            7 => Record::BackupMark { kind: r.u8()? },
            8 => Record::End,
            9 => Record::Shutdown,
            10 => {
                let n = r.u32()? as usize;
                let mut deltas = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    let dbid = r.u32()?;
                    let pgno = r.u32()?;
                    let k = r.u32()? as usize;
                    let mut ranges = Vec::with_capacity(k.min(4096));
                    for _ in 0..k {
                        let off = r.u16()?;
                        let len = r.u16()? as usize;
                        ranges.push((off, r.bytes(len)?.to_vec()));
                    }
                    deltas.push(PageDelta { dbid, pgno, ranges });
                }
                Record::Deltas(deltas)
            }
            _ => return Err(Error::LogFileCorrupt),
        };
        if r.at != payload.len() {
            return Err(Error::LogFileCorrupt);
        }
        Ok(rec)
    }

    /// The framed bytes of this record at `at`, carrying `durable_mark`.
    pub fn frame(&self, at: Lsn, durable_mark: Lsn) -> Vec<u8> {
        frame_payload(self.type_byte(), &self.payload(), at, durable_mark)
    }
}

/// Frames an encoded payload at `at`.
pub fn frame_payload(ty: u8, payload: &[u8], at: Lsn, durable_mark: Lsn) -> Vec<u8> {
    let len = framed_len(payload.len());
    let mut b = vec![0u8; len];
    put_u32(&mut b, 0, REC_MAGIC);
    b[8] = ty;
    put_u32(&mut b, 12, payload.len() as u32);
    put_u64(&mut b, 16, durable_mark.0);
    b[FRAME..FRAME + payload.len()].copy_from_slice(payload);
    let c = record_crc(at, &b[8..FRAME + payload.len()]);
    put_u32(&mut b, 4, c);
    b
}

/// Bytes a payload of `n` bytes takes once framed and padded.
pub fn framed_len(n: usize) -> usize {
    (FRAME + n + 7) & !7
}

fn record_crc(at: Lsn, rest: &[u8]) -> u32 {
    let mut pos = [0u8; 8];
    put_u32(&mut pos, 0, at.gen());
    put_u32(&mut pos, 4, at.offset());
    crc32c::crc32c_append(crc32c::crc32c(&pos), rest)
}

/// The payload length a record header at `off` claims, if a record magic is there (nothing
/// is verified: a cheap look before the checksum).
pub fn claimed_len(bytes: &[u8], off: usize) -> Option<usize> {
    let hdr = bytes.get(off..off.checked_add(FRAME)?)?;
    (get_u32(hdr, 0) == REC_MAGIC).then(|| get_u32(hdr, 12) as usize)
}

/// A record read back from a file.
#[derive(Debug)]
pub struct Framed {
    /// Where it starts.
    pub start: Lsn,
    /// Where the next record starts (the LSN pages changed by it carry).
    pub end: Lsn,
    /// The record's durable mark.
    pub durable_mark: Lsn,
    /// The record.
    pub record: Record,
}

/// Tries to read one record at byte `off` of a file's bytes (`gen` is the file's
/// generation). `None` when nothing valid is there.
pub fn read_record(bytes: &[u8], gen: u32, off: usize) -> Option<Framed> {
    let hdr = bytes.get(off..off.checked_add(FRAME)?)?;
    if get_u32(hdr, 0) != REC_MAGIC {
        return None;
    }
    let ty = hdr[8];
    let len = get_u32(hdr, 12) as usize;
    let body_end = off.checked_add(FRAME)?.checked_add(len)?;
    let body = bytes.get(off + 8..body_end)?;
    let start = Lsn::new(gen, off as u32);
    if record_crc(start, body) != get_u32(hdr, 4) {
        return None;
    }
    let record = Record::decode(ty, &bytes[off + FRAME..body_end]).ok()?;
    let end = Lsn::new(gen, (off + framed_len(len)) as u32);
    Some(Framed {
        start,
        end,
        durable_mark: Lsn(get_u64(hdr, 16)),
        record,
    })
}

fn put_entry(w: &mut Vec<u8>, e: &AttachEntry) {
    w.extend_from_slice(&e.dbid.to_le_bytes());
    w.extend_from_slice(&e.signature.random.to_le_bytes());
    w.extend_from_slice(&e.signature.time_ms.to_le_bytes());
    let p = e.path.to_string_lossy();
    w.extend_from_slice(&(p.len() as u32).to_le_bytes());
    w.extend_from_slice(p.as_bytes());
}

/// An AttachList payload at the cursor (the checkpoint file holds one too).
pub(crate) fn get_attach_list(r: &mut Cur) -> Result<Vec<AttachEntry>> {
    let n = r.u32()? as usize;
    let mut list = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        list.push(get_entry(r)?);
    }
    Ok(list)
}

fn get_entry(r: &mut Cur) -> Result<AttachEntry> {
    let dbid = r.u32()?;
    let signature = Signature {
        random: r.u64()?,
        time_ms: r.u64()?,
    };
    let n = r.u32()? as usize;
    let path = String::from_utf8(r.bytes(n)?.to_vec()).map_err(|_| Error::LogFileCorrupt)?;
    Ok(AttachEntry {
        dbid,
        signature,
        path: PathBuf::from(path),
    })
}

/// A bounds-checked cursor; running off the end is `LogFileCorrupt`.
pub(crate) struct Cur<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Cur<'a> {
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or(Error::LogFileCorrupt)?;
        let s = self.b.get(self.at..end).ok_or(Error::LogFileCorrupt)?;
        self.at = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(get_u32(self.bytes(4)?, 0))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(get_u64(self.bytes(8)?, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_records_are_built_in_one_allocation_of_their_exact_length() {
        let recs = [
            Record::Pages(vec![
                PageImage {
                    dbid: 1,
                    pgno: 7,
                    image: vec![3; 4096],
                },
                PageImage {
                    dbid: 2,
                    pgno: 9,
                    image: vec![4; 100],
                },
            ]),
            Record::Deltas(vec![PageDelta {
                dbid: 1,
                pgno: 7,
                ranges: vec![(16, vec![1; 10]), (400, vec![2; 3])],
            }]),
        ];
        for r in recs {
            let p = r.payload();
            assert_eq!(p.len(), r.payload_len_hint(), "{r:?}");
            assert_eq!(p.capacity(), p.len(), "no growth: {r:?}");
        }
    }

    #[test]
    fn records_round_trip_and_bind_to_their_position() {
        let recs = vec![
            Record::Pages(vec![PageImage {
                dbid: 1,
                pgno: 5,
                image: vec![7; 4096],
            }]),
            Record::Commit {
                seq: 9,
                time_ms: 10,
            },
            Record::AttachList(vec![AttachEntry {
                dbid: 1,
                signature: Signature::generate(),
                path: "/x/y.edb".into(),
            }]),
            Record::BackupUpdate {
                dbid: 1,
                field: BackupField::Copy,
                info: BackupInfo {
                    mark: 1,
                    time_ms: 2,
                    gen_low: 3,
                    gen_high: 4,
                    stream: None,
                },
            },
            Record::End,
        ];
        for r in recs {
            let at = Lsn::new(3, 4096);
            let mut file = vec![0u8; 4096];
            file.extend(r.frame(at, Lsn::new(2, 100)));
            let f = read_record(&file, 3, 4096).unwrap();
            assert_eq!(f.record, r);
            assert_eq!(f.end.offset() as usize, file.len());
            assert!(
                read_record(&file, 4, 4096).is_none(),
                "same bytes, other generation"
            );
            for flip in [4096 + 10, 4096 + 17, file.len() - 1] {
                let mut bad = file.clone();
                bad[flip] ^= 0x10;
                let padding = flip >= 4096 + FRAME + r.payload().len();
                assert_eq!(read_record(&bad, 3, 4096).is_none(), !padding);
            }
        }
    }

    #[test]
    fn header_round_trip() {
        let h = LogHeader {
            gen: 7,
            signature: Signature::generate(),
            created_ms: 5,
            prev_created_ms: 4,
            file_size: 1 << 20,
            base_name: "edb".into(),
        };
        let mut b = h.encode();
        assert_eq!(LogHeader::decode(&b).unwrap(), h);
        b[20] ^= 1;
        assert!(matches!(LogHeader::decode(&b), Err(Error::LogFileCorrupt)));
    }
}
