//! The checkpoint file `<base>.chk`: where recovery starts and which databases were
//! attached then. Two 32 KiB slots written alternately, each checksummed: a torn write
//! destroys at most the slot being written, and the newer valid slot wins.

use std::path::{Path, PathBuf};

use super::format::{AttachEntry, Cur};
use crate::db::Signature;
use crate::io::{OpenMode, Storage};
use crate::lsn::Lsn;
use crate::page::{get_u32, put_u32};
use crate::{Error, Result};

const SLOT: usize = 32 * 1024;
const MAGIC: &[u8; 8] = b"ESECHK01";

/// The checkpoint's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Write counter; the larger valid slot wins.
    pub seq: u64,
    /// Signature of the log stream.
    pub log_signature: Signature,
    /// Every change before this position is in the database files.
    pub lsn: Lsn,
    /// The databases attached at `lsn`.
    pub attached: Vec<AttachEntry>,
}

impl Checkpoint {
    fn encode(&self) -> Result<Vec<u8>> {
        let mut b = vec![0u8; SLOT];
        b[4..12].copy_from_slice(MAGIC);
        let mut w = Vec::new();
        w.extend_from_slice(&self.seq.to_le_bytes());
        w.extend_from_slice(&self.log_signature.random.to_le_bytes());
        w.extend_from_slice(&self.log_signature.time_ms.to_le_bytes());
        w.extend_from_slice(&self.lsn.0.to_le_bytes());
        w.extend_from_slice(&super::Record::AttachList(self.attached.clone()).payload());
        if 16 + w.len() > SLOT {
            return Err(Error::InvalidParameter);
        }
        put_u32(&mut b, 12, w.len() as u32);
        b[16..16 + w.len()].copy_from_slice(&w);
        let c = crc32c::crc32c(&b[4..]);
        put_u32(&mut b, 0, c);
        Ok(b)
    }

    fn decode(b: &[u8]) -> Option<Checkpoint> {
        if b.len() != SLOT || &b[4..12] != MAGIC || crc32c::crc32c(&b[4..]) != get_u32(b, 0) {
            return None;
        }
        let n = get_u32(b, 12) as usize;
        let body = b.get(16..16 + n)?;
        let mut r = Cur { b: body, at: 0 };
        let seq = r.u64().ok()?;
        let log_signature = Signature {
            random: r.u64().ok()?,
            time_ms: r.u64().ok()?,
        };
        let lsn = Lsn(r.u64().ok()?);
        let attached = match super::Record::decode(5, &body[r.at..]).ok()? {
            super::Record::AttachList(l) => l,
            _ => return None,
        };
        Some(Checkpoint {
            seq,
            log_signature,
            lsn,
            attached,
        })
    }
}

/// Reads the checkpoint: `Ok(None)` if there is no file, `CheckpointCorrupt` if neither
/// slot is valid.
pub fn read(storage: &dyn Storage, path: &Path) -> Result<Option<Checkpoint>> {
    if !storage.exists(path) {
        return Ok(None);
    }
    let f = storage.open(path, OpenMode::ReadOnly)?;
    let mut best: Option<Checkpoint> = None;
    for slot in 0..2 {
        let mut b = vec![0u8; SLOT];
        if f.read_exact_at(&mut b, (slot * SLOT) as u64).is_err() {
            continue;
        }
        if let Some(c) = Checkpoint::decode(&b) {
            if best.as_ref().is_none_or(|x| c.seq > x.seq) {
                best = Some(c);
            }
        }
    }
    best.map(Some).ok_or(Error::CheckpointCorrupt)
}

/// Writes `c` into the slot its sequence number picks, and syncs.
pub fn write(storage: &dyn Storage, path: &Path, c: &Checkpoint) -> Result<()> {
    let f = storage.open(path, OpenMode::Create)?;
    let b = c.encode()?;
    f.write_at(&b, (c.seq % 2) * SLOT as u64)?;
    f.sync()
}

/// The checkpoint file's path for an instance.
pub fn path(dir: &Path, base: &str) -> PathBuf {
    super::names::checkpoint(dir, base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::FaultStorage;

    #[test]
    fn newer_valid_slot_wins_and_damage_is_reported() {
        let s = FaultStorage::new();
        s.create_dir_all(Path::new("/d")).unwrap();
        let p = Path::new("/d/edb.chk");
        assert_eq!(read(&s, p).unwrap(), None);
        let mut c = Checkpoint {
            seq: 1,
            log_signature: Signature::generate(),
            lsn: Lsn::new(1, 4096),
            attached: vec![],
        };
        write(&s, p, &c).unwrap();
        c.seq = 2;
        c.lsn = Lsn::new(2, 4096);
        write(&s, p, &c).unwrap();
        assert_eq!(read(&s, p).unwrap().unwrap().lsn, Lsn::new(2, 4096));
        s.flip_bit(p, 100, 0).unwrap();
        assert_eq!(
            read(&s, p).unwrap().unwrap().seq,
            1,
            "torn newer slot falls back"
        );
        s.flip_bit(p, SLOT as u64 + 100, 0).unwrap();
        assert!(matches!(read(&s, p), Err(Error::CheckpointCorrupt)));
    }
}
