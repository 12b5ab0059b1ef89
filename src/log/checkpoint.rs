//! The checkpoint file `<base>.chk`: where recovery starts and which databases were
//! attached then. Two 32 KiB slots written alternately, each checksummed: a torn write
//! destroys at most the slot being written, and the newer valid slot wins. After the attach
//! list come the owner tokens (`crate::db::OwnerTokens`); a checkpoint of the first layout
//! (`ESECHK01`) ends with the list and reads as holding none.

use std::path::{Path, PathBuf};

use super::format::{get_attach_list, AttachEntry, Cur};
use crate::db::{Held, OwnerTokens, Signature};
use crate::io::{OpenMode, Storage};
use crate::lsn::Lsn;
use crate::page::{get_u32, put_u32};
use crate::{Error, Result};

const SLOT: usize = 32 * 1024;
/// The layout with owner tokens after the attach list.
const MAGIC: &[u8; 8] = b"ESECHK02";
/// The layout before owner tokens: the body ends with the attach list.
const MAGIC_V1: &[u8; 8] = b"ESECHK01";

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
    /// The owner tokens of the database headers this instance wrote.
    pub owner_tokens: OwnerTokens,
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
        let tokens = self.owner_tokens.entries();
        w.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
        for h in tokens {
            w.extend_from_slice(&h.db.random.to_le_bytes());
            w.extend_from_slice(&h.db.time_ms.to_le_bytes());
            w.extend_from_slice(&h.token.to_le_bytes());
            w.extend_from_slice(&h.before.to_le_bytes());
        }
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
        if b.len() != SLOT || crc32c::crc32c(&b[4..]) != get_u32(b, 0) {
            return None;
        }
        let with_tokens = match &b[4..12] {
            m if m == MAGIC => true,
            m if m == MAGIC_V1 => false,
            _ => return None,
        };
        let n = get_u32(b, 12) as usize;
        let body = b.get(16..16 + n)?;
        let mut r = Cur { b: body, at: 0 };
        let seq = r.u64().ok()?;
        let log_signature = Signature {
            random: r.u64().ok()?,
            time_ms: r.u64().ok()?,
        };
        let lsn = Lsn(r.u64().ok()?);
        let attached = get_attach_list(&mut r).ok()?;
        let owner_tokens = match with_tokens {
            true => decode_tokens(&mut r)?,
            false => OwnerTokens::default(),
        };
        if r.at != body.len() {
            return None;
        }
        Some(Checkpoint {
            seq,
            log_signature,
            lsn,
            attached,
            owner_tokens,
        })
    }
}

/// The owner tokens after the attach list.
fn decode_tokens(r: &mut Cur) -> Option<OwnerTokens> {
    let n = r.u32().ok()? as usize;
    let mut entries = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        let db = Signature {
            random: r.u64().ok()?,
            time_ms: r.u64().ok()?,
        };
        entries.push(Held {
            db,
            token: r.u64().ok()?,
            before: r.u64().ok()?,
        });
    }
    Some(OwnerTokens::from_entries(entries))
}

/// Whether a checkpoint with this attach list fits its slot beside the most owner tokens an
/// instance keeps. A checkpoint that cannot be written fails the flush that carries it, which
/// makes the instance unavailable, so an attach past this is refused instead.
pub fn attach_list_fits(attached: &[AttachEntry]) -> bool {
    let most = Held {
        db: Signature::NONE,
        token: 0,
        before: 0,
    };
    Checkpoint {
        seq: 0,
        log_signature: Signature::NONE,
        lsn: Lsn(0),
        attached: attached.to_vec(),
        owner_tokens: OwnerTokens::from_entries(vec![most; OwnerTokens::REMEMBERED]),
    }
    .encode()
    .is_ok()
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
            owner_tokens: OwnerTokens::default(),
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

    fn with_tokens() -> Checkpoint {
        let mut tokens = OwnerTokens::default();
        tokens.issue(Signature::generate(), 0, |_| false);
        tokens.issue(Signature::generate(), 0, |_| false);
        Checkpoint {
            seq: 7,
            log_signature: Signature::generate(),
            lsn: Lsn::new(3, 8192),
            attached: vec![AttachEntry {
                dbid: 1,
                signature: Signature::generate(),
                path: PathBuf::from("/d/a.edb"),
            }],
            owner_tokens: tokens,
        }
    }

    #[test]
    fn an_attach_list_that_fits_leaves_room_for_every_owner_token() {
        let entry = |i: u32| AttachEntry {
            dbid: i,
            signature: Signature::generate(),
            path: PathBuf::from(format!("/d/{}{i:05}.edb", "x".repeat(90))),
        };
        let mut list: Vec<AttachEntry> = Vec::new();
        while attach_list_fits(&list) {
            list.push(entry(list.len() as u32));
        }
        list.pop();
        let mut c = with_tokens();
        c.attached = list;
        for _ in 0..OwnerTokens::REMEMBERED {
            c.owner_tokens.issue(Signature::generate(), 0, |_| false);
        }
        assert!(c.encode().is_ok(), "{} entries", c.attached.len());
        c.attached.push(entry(9999));
        assert!(c.encode().is_err());
    }

    #[test]
    fn owner_tokens_follow_the_attach_list() {
        let c = with_tokens();
        assert_eq!(Checkpoint::decode(&c.encode().unwrap()), Some(c));
    }

    #[test]
    fn a_checkpoint_from_before_tokens_reads_as_holding_none() {
        let c = with_tokens();
        let mut b = c.encode().unwrap();
        // The first layout: its own magic, and the body ends with the attach list.
        let len = get_u32(&b, 12) as usize;
        // 32 bytes a token entry: signature, newest token, the one before.
        let old_len = len - 4 - 32 * c.owner_tokens.entries().len();
        b[16 + old_len..16 + len].fill(0);
        put_u32(&mut b, 12, old_len as u32);
        b[4..12].copy_from_slice(MAGIC_V1);
        let reseal = |b: &mut Vec<u8>| {
            let crc = crc32c::crc32c(&b[4..]);
            put_u32(b, 0, crc);
        };
        reseal(&mut b);
        let old = Checkpoint::decode(&b).unwrap();
        assert_eq!(old.owner_tokens, OwnerTokens::default());
        assert_eq!(old.attached, c.attached);
        // The new layout's magic over a body without tokens, or bytes past the tokens: none.
        b[4..12].copy_from_slice(MAGIC);
        reseal(&mut b);
        assert_eq!(Checkpoint::decode(&b), None);
        let mut b = c.encode().unwrap();
        put_u32(&mut b, 12, len as u32 + 1);
        reseal(&mut b);
        assert_eq!(Checkpoint::decode(&b), None);
    }
}
