//! Page allocation. Page 1 of every database is the meta page: `last_page u32`,
//! `free_head u32`, `catalog_root u32` at the start of its body. Freed pages form a chain
//! through the first word of their body. Both are ordinary logged pages, so allocation is
//! redone by recovery like any other change.

use super::PageIo;
use crate::page::{self, get_u32, put_u32, PageKind, PAGE_HEADER};
use crate::{Error, Result};

/// Page number of the meta page.
pub const META_PGNO: u32 = 1;
/// Page number of the catalog tree's root, made with the database.
pub const CATALOG_ROOT: u32 = 2;

/// The decoded meta page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Highest page number in use or on the free list.
    pub last_page: u32,
    /// First page of the free chain (0 = empty).
    pub free_head: u32,
    /// Root of the catalog tree.
    pub catalog_root: u32,
}

/// Reads the meta page.
pub fn read_meta(io: &mut dyn PageIo) -> Result<Meta> {
    decode_meta(&io.read(META_PGNO)?)
}

/// Decodes a meta page (`DatabaseCorrupted` if it is not one).
pub fn decode_meta(p: &[u8]) -> Result<Meta> {
    if page::kind(p) != Some(PageKind::Meta) {
        return Err(Error::DatabaseCorrupted);
    }
    Ok(Meta {
        last_page: get_u32(p, PAGE_HEADER),
        free_head: get_u32(p, PAGE_HEADER + 4),
        catalog_root: get_u32(p, PAGE_HEADER + 8),
    })
}

fn write_meta(io: &mut dyn PageIo, m: Meta) -> Result<()> {
    let mut p = io.read(META_PGNO)?;
    put_u32(&mut p, PAGE_HEADER, m.last_page);
    put_u32(&mut p, PAGE_HEADER + 4, m.free_head);
    put_u32(&mut p, PAGE_HEADER + 8, m.catalog_root);
    io.write(META_PGNO, p);
    Ok(())
}

/// Writes the meta page and an empty catalog root of a brand-new database.
pub fn format(io: &mut dyn PageIo) {
    let ps = io.page_size();
    let mut meta = page::new_page(ps, META_PGNO, PageKind::Meta);
    put_u32(&mut meta, PAGE_HEADER, CATALOG_ROOT);
    put_u32(&mut meta, PAGE_HEADER + 8, CATALOG_ROOT);
    io.write(META_PGNO, meta);
    let mut root = page::new_page(ps, CATALOG_ROOT, PageKind::Leaf);
    super::Node::Leaf(Vec::new()).encode_into(&mut root);
    io.write(CATALOG_ROOT, root);
}

/// Allocates a page and returns a fresh buffer for it of `kind`.
pub fn alloc(io: &mut dyn PageIo, kind: PageKind) -> Result<(u32, Vec<u8>)> {
    let mut m = read_meta(io)?;
    let pgno = if m.free_head != 0 {
        let pgno = m.free_head;
        let p = io.read(pgno)?;
        if page::kind(&p) != Some(PageKind::Free) || pgno > m.last_page {
            return Err(Error::DatabaseCorrupted);
        }
        m.free_head = get_u32(&p, PAGE_HEADER);
        pgno
    } else {
        m.last_page = m
            .last_page
            .checked_add(1)
            .ok_or(Error::OutOfDatabaseSpace)?;
        m.last_page
    };
    write_meta(io, m)?;
    Ok((pgno, page::new_page(io.page_size(), pgno, kind)))
}

/// Puts a page on the free chain.
pub fn free(io: &mut dyn PageIo, pgno: u32) -> Result<()> {
    let mut m = read_meta(io)?;
    let mut p = page::new_page(io.page_size(), pgno, PageKind::Free);
    put_u32(&mut p, PAGE_HEADER, m.free_head);
    io.write(pgno, p);
    m.free_head = pgno;
    write_meta(io, m)
}
