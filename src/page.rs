//! Layer 2: the fixed-size page every database file is made of.
//!
//! Every page starts with a 32-byte header: `crc32c` of the rest of the page, the page
//! number, the log position (ESE's dbtime) of the last change, and the page kind. A page of
//! all zeros is a page that was never written: it is valid and empty (its log position is
//! zero), so redo and backup treat it as "older than anything in the log".
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | crc32c of bytes 4..page_size |
//! | 4..8 | page number (u32 LE) |
//! | 8..16 | log position of the last change (u64 LE) |
//! | 16 | kind ([`PageKind`]) |
//! | 17 | 1 if an interior node's body ends with a slot array, else 0 |
//! | 18..20 | where that slot array starts (u16 LE), else 0 |
//! | 20..32 | reserved, zero |

use std::sync::OnceLock;

use crate::crc::Shift;
use crate::{Error, Result};

/// Size of the common page header.
pub const PAGE_HEADER: usize = 32;

/// The page sizes a database may use.
pub const PAGE_SIZES: [u32; 4] = [4096, 8192, 16384, 32768];

/// What a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageKind {
    /// Never written (all zeros).
    Empty = 0,
    /// Page 1: last page, free list head, catalog root.
    Meta = 1,
    /// A B+tree leaf.
    Leaf = 2,
    /// A B+tree interior node.
    Internal = 3,
    /// Part of a large value's chain.
    Overflow = 4,
    /// On the free list.
    Free = 5,
}

impl PageKind {
    fn from_u8(v: u8) -> Option<PageKind> {
        Some(match v {
            0 => PageKind::Empty,
            1 => PageKind::Meta,
            2 => PageKind::Leaf,
            3 => PageKind::Internal,
            4 => PageKind::Overflow,
            5 => PageKind::Free,
            _ => return None,
        })
    }
}

/// Byte offset of data page `pgno` in a database file: pages 0 and 1 of the file are the
/// header and its shadow, so data page `p` sits at `(p + 1) * page_size`.
pub fn page_offset(pgno: u32, page_size: u32) -> u64 {
    (pgno as u64 + 1) * page_size as u64
}

/// Reads a little-endian u32 at `at`.
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a little-endian u64 at `at`.
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Writes a little-endian u32 at `at`.
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes a little-endian u64 at `at`.
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A fresh, zeroed page of `kind`.
pub fn new_page(page_size: u32, pgno: u32, kind: PageKind) -> Vec<u8> {
    let mut p = vec![0u8; page_size as usize];
    put_u32(&mut p, 4, pgno);
    p[16] = kind as u8;
    p
}

/// The page number stored in the page.
pub fn pgno(page: &[u8]) -> u32 {
    get_u32(page, 4)
}

/// The log position of the page's last change.
pub fn lsn(page: &[u8]) -> u64 {
    get_u64(page, 8)
}

/// Stamps the log position of a change.
pub fn set_lsn(page: &mut [u8], lsn: u64) {
    put_u64(page, 8, lsn)
}

/// The page's kind, if the byte is known.
pub fn kind(page: &[u8]) -> Option<PageKind> {
    PageKind::from_u8(page[16])
}

/// Sets the page's kind.
pub fn set_kind(page: &mut [u8], kind: PageKind) {
    page[16] = kind as u8;
}

/// Computes and stores the checksum; called just before the page goes to disk.
pub fn seal(page: &mut [u8]) {
    let c = crc32c::crc32c(&page[4..]);
    put_u32(page, 0, c);
}

/// Whether the page is all zeros (never written).
pub fn is_zero(page: &[u8]) -> bool {
    page.iter().all(|&b| b == 0)
}

/// Checks a page read from disk: checksum, page number, known kind. An all-zero page is
/// valid (never written).
pub fn verify(page: &[u8], expect_pgno: u32) -> Result<()> {
    verify_summed(page, expect_pgno).map(|_| ())
}

/// [`verify`], answering the CRC-32C of the page's bytes after its checksum field (4..), which
/// verifying computes anyway: with [`body_shift`] a run of verified pages gives the sum of
/// all its bytes without another pass over them.
pub fn verify_summed(page: &[u8], expect_pgno: u32) -> Result<u32> {
    // The checksum first: a written page passes it, and only a page that fails it is
    // scanned for the all-zero pattern of a page never written.
    let body = crc32c::crc32c(&page[4..]);
    if body != get_u32(page, 0) {
        return if is_zero(page) {
            Ok(body)
        } else {
            Err(Error::ReadVerifyFailure)
        };
    }
    if pgno(page) != expect_pgno {
        return Err(Error::ReadPgnoVerifyFailure);
    }
    if kind(page).is_none() {
        return Err(Error::ReadVerifyFailure);
    }
    Ok(body)
}

/// The shift past a page's body (all but its 4-byte checksum field): the sum of a whole
/// page is `body_shift(size).combine(crc(page[..4]), body)`, `body` from [`verify_summed`].
/// Built once per page size.
pub fn body_shift(page_size: u32) -> Shift {
    static SHIFTS: [OnceLock<Shift>; PAGE_SIZES.len()] =
        [const { OnceLock::new() }; PAGE_SIZES.len()];
    let body = (page_size as usize).saturating_sub(4);
    match PAGE_SIZES.iter().position(|&s| s == page_size) {
        Some(i) => *SHIFTS[i].get_or_init(|| Shift::new(body)),
        None => Shift::new(body),
    }
}

/// Validates a page size parameter.
pub fn check_page_size(size: u32) -> Result<()> {
    if PAGE_SIZES.contains(&size) {
        Ok(())
    } else {
        Err(Error::InvalidParameter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_verify() {
        let mut p = new_page(4096, 7, PageKind::Leaf);
        set_lsn(&mut p, 99);
        seal(&mut p);
        verify(&p, 7).unwrap();
        assert!(matches!(verify(&p, 8), Err(Error::ReadPgnoVerifyFailure)));
        p[100] ^= 1;
        assert!(matches!(verify(&p, 7), Err(Error::ReadVerifyFailure)));
    }

    #[test]
    fn zero_page_is_valid_and_offsets_skip_headers() {
        verify(&[0u8; 4096], 3).unwrap();
        assert_eq!(page_offset(1, 8192), 16384);
    }
}
