//! Reading log files back: header, then records until the end record (an archived file) or
//! the first invalid record (the current file's tail).

use std::path::Path;

use super::format::{read_record, Framed, LogHeader, Record, LOG_HEADER_SIZE};
use crate::io::{File, OpenMode, Storage};
use crate::lsn::Lsn;
use crate::{Error, Result};

/// How a file's records ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// An end record: the file is complete.
    Complete,
    /// No valid record at this offset and none provably durable after it: a torn or
    /// unfinished tail.
    Open {
        /// Offset of the first byte that is not a valid record.
        at: u32,
    },
}

/// A whole log file, read.
#[derive(Debug)]
pub struct LogFile {
    /// The header.
    pub header: LogHeader,
    /// Every valid record, in order (the end record excluded).
    pub records: Vec<Framed>,
    /// How it ended.
    pub tail: Tail,
}

/// Reads a whole log file (the whole file is the best read-ahead for replay).
pub fn read_file(storage: &dyn Storage, path: &Path) -> Result<LogFile> {
    let f = storage.open(path, OpenMode::ReadOnly)?;
    read_from(&*f)
}

/// Reads and parses a log file from an open handle.
pub fn read_from(f: &dyn File) -> Result<LogFile> {
    let len = f.len()?;
    // No log is larger (`InstanceParams::log_file_size` refuses more): a file that
    // claims to be is damaged, and is not read into memory whole.
    if len > MAX_LOG_FILE {
        return Err(Error::LogFileCorrupt.with_detail(format!(
            "{len} bytes: larger than any log file ({MAX_LOG_FILE})"
        )));
    }
    let len = len as usize;
    let mut bytes = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = f.read_at(&mut bytes[done..], done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    bytes.truncate(done);
    parse(&bytes)
}

/// The largest log file a reader takes: the largest `InstanceParams::log_file_size` allows.
pub const MAX_LOG_FILE: u64 = 1 << 31;

/// Parses a log file's bytes. A damaged record that is followed by a record proving it had
/// been made durable is `LogFileCorrupt`; otherwise the file simply ends there.
pub fn parse(bytes: &[u8]) -> Result<LogFile> {
    let header = LogHeader::decode(bytes)?;
    if header.file_size != bytes.len() as u64 {
        // Log files have one fixed size: a shorter or longer one was cut or padded.
        return Err(Error::LogFileCorrupt);
    }
    let gen = header.gen;
    let mut records = Vec::new();
    let mut off = LOG_HEADER_SIZE as usize;
    loop {
        match read_record(bytes, gen, off) {
            Some(f) if f.record == Record::End => {
                return Ok(LogFile {
                    header,
                    records,
                    tail: Tail::Complete,
                })
            }
            Some(f) => {
                off = f.end.offset() as usize;
                records.push(f);
            }
            None => {
                if proven_durable_after(bytes, gen, off) {
                    return Err(Error::LogFileCorrupt);
                }
                return Ok(LogFile {
                    header,
                    records,
                    tail: Tail::Open { at: off as u32 },
                });
            }
        }
    }
}

/// Whether some valid record after `off` carries a durable mark past `off`. The bytes
/// checksummed are budgeted (a crafted file with a record magic at every offset would
/// otherwise cost quadratic time); a file that exhausts the budget is treated as corrupt.
fn proven_durable_after(bytes: &[u8], gen: u32, off: usize) -> bool {
    let here = Lsn::new(gen, off as u32);
    let mut budget = bytes.len().saturating_mul(4).saturating_add(1 << 20);
    let mut at = off + 8;
    while at + super::format::FRAME <= bytes.len() {
        let Some(len) = super::format::claimed_len(bytes, at) else {
            at += 8;
            continue;
        };
        let cost = super::format::FRAME.saturating_add(len.min(bytes.len()));
        if cost > budget {
            return true;
        }
        budget -= cost;
        if let Some(f) = read_record(bytes, gen, at) {
            if f.durable_mark > here {
                return true;
            }
            at = f.end.offset() as usize;
        } else {
            at += 8;
        }
    }
    false
}
