//! Database header, trailer and data pages: `DbHeader::decode`, `Trailer::decode`,
//! `page::verify` and `Node::decode` on page-sized slices (4 or 8 KiB), raw and re-sealed.
#![no_main]

use ese::internals::btree::Node;
use ese::internals::db::{DbHeader, Trailer};
use ese::internals::page;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let size = if mode & 1 == 0 { 4096 } else { 8192 };
    let mut b = rest.to_vec();
    b.resize(size, 0);
    if mode & 2 != 0 {
        ese_fuzz::seal(&mut b);
    }
    let _ = DbHeader::peek_page_size(rest);
    if let Ok(h) = DbHeader::decode(&b) {
        assert_eq!(DbHeader::decode(&h.encode()).unwrap(), h);
    }
    if let Ok(t) = Trailer::decode(&b) {
        assert_eq!(Trailer::decode(&t.encode()).unwrap(), t);
    }
    let pgno = page::pgno(&b);
    let _ = page::verify(&b, pgno);
    let _ = page::verify(&b, pgno.wrapping_add(1));
    let _ = page::kind(&b);
    if let Ok(n) = Node::decode(&b) {
        assert!(n.encoded_len() <= size - page::PAGE_HEADER);
        let mut p = page::new_page(size as u32, pgno, page::PageKind::Leaf);
        n.encode_into(&mut p);
        assert_eq!(Node::decode(&p).unwrap(), n);
    }
});
