//! Checkpoint reader: the bytes as `<base>.chk` in a `FaultStorage`, then
//! `checkpoint::read`. Mode 1 builds a sealed slot around the input body, so the decoding
//! behind the checksum is reached.
#![no_main]

use std::path::Path;

use ese::io::{FaultStorage, Storage};
use ese::internals::log::checkpoint;
use libfuzzer_sys::fuzz_target;

const SLOT: usize = 32 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = match mode % 3 {
        0 => rest.to_vec(),
        // Input = body length field and body of slot 0 (slot 1 empty), sealed.
        1 => {
            let mut b = vec![0u8; SLOT];
            b[4..12].copy_from_slice(b"ESECHK01");
            let n = rest.len().min(SLOT - 12);
            b[12..12 + n].copy_from_slice(&rest[..n]);
            ese_fuzz::seal(&mut b);
            b
        }
        // Whole file, both slots re-sealed.
        _ => {
            let mut b = rest.to_vec();
            for s in 0..2 {
                if b.len() >= (s + 1) * SLOT {
                    ese_fuzz::seal(&mut b[s * SLOT..(s + 1) * SLOT]);
                }
            }
            b
        }
    };
    let fs = FaultStorage::new();
    let p = Path::new("/d/edb.chk");
    fs.write_file_raw(p, &file);
    let _ = checkpoint::read(&fs, p);
    assert!(fs.exists(p));
});
