//! Log file reader: `reader::parse` and `read_record` on arbitrary bytes, raw and re-sealed
//! (header and record checksums recomputed so the decoders behind them are reached).
#![no_main]

use ese::internals::log::{frame_payload, read_record, reader, Record};
use ese::Lsn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        // The whole file as it is.
        0 => {
            let _ = reader::parse(rest);
        }
        // The whole file, re-sealed, with the header's file size made to match.
        1 => {
            let mut b = rest.to_vec();
            if b.len() >= ese_fuzz::LOG_HEADER {
                let len = (b.len() as u64).to_le_bytes();
                b[48..56].copy_from_slice(&len);
                b[4..12].copy_from_slice(b"ESELOG01");
            }
            ese_fuzz::reseal_log(&mut b);
            if let Ok(f) = reader::parse(&b) {
                for r in &f.records {
                    assert!(r.start < r.end);
                    assert!(r.end.offset() as usize <= b.len());
                }
            }
        }
        // One record at a chosen position.
        2 => {
            if rest.len() < 8 {
                return;
            }
            let gen = u32::from_le_bytes(rest[..4].try_into().unwrap());
            let off = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
            let _ = read_record(&rest[8..], gen, off % (rest.len() + 8));
            let _ = read_record(&rest[8..], gen, off);
        }
        // A payload of a type: decode, and a decoded record frames and reads back equal.
        _ => {
            let Some((&ty, payload)) = rest.split_first() else {
                return;
            };
            if let Ok(r) = Record::decode(ty, payload) {
                let at = Lsn::new(3, 4096);
                let mut file = vec![0u8; 4096];
                file.extend(frame_payload(ty, payload, at, Lsn::new(2, 0)));
                let f = read_record(&file, 3, 4096).expect("a framed record reads back");
                assert_eq!(f.record, r);
                // Re-encoding gives a payload that decodes to the same record (a flag byte
                // other than 0 or 1 is not re-encoded as it was).
                assert_eq!(Record::decode(ty, &r.payload()).unwrap(), r);
            }
        }
    }
});
