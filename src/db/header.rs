//! The database header (page 0, shadowed at page 1's slot) and the backup trailer page.
//! Byte layouts are in `docs/design.md`; both are checksummed over the whole page.

use crate::page::{get_u32, get_u64, put_u32, put_u64};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"ESEDBHDR";
const TRAILER_MAGIC: &[u8; 8] = b"ESETRAIL";
const VERSION: u32 = 1;

/// ESE's `JET_dbstateJustCreated`: a file `create_database` made whose attach is not yet
/// logged. Recovery removes one the log names but never formatted; one no log names is a
/// creation a crash cut, which the next `create_database` of its path replaces.
pub const STATE_JUST_CREATED: u8 = 1;
/// ESE's `JET_dbstateDirtyShutdown`.
pub const STATE_DIRTY: u8 = 2;
/// ESE's `JET_dbstateCleanShutdown`.
pub const STATE_CLEAN: u8 = 3;

/// A signature: random bits plus creation time, as ESE's `SIGNATURE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Signature {
    /// Random bits.
    pub random: u64,
    /// Creation time, ms since the epoch.
    pub time_ms: u64,
}

impl Signature {
    /// No signature: a database header's log signature naming no stream (a restored copy, or
    /// an attach midway), which the next attach treats as another stream's.
    pub const NONE: Signature = Signature {
        random: 0,
        time_ms: 0,
    };

    /// A new, unique signature.
    pub fn generate() -> Signature {
        Signature {
            random: random_u64(),
            time_ms: crate::lsn::now_ms(),
        }
    }
    fn read(b: &[u8], at: usize) -> Signature {
        Signature {
            random: get_u64(b, at),
            time_ms: get_u64(b, at + 8),
        }
    }
    fn write(&self, b: &mut [u8], at: usize) {
        put_u64(b, at, self.random);
        put_u64(b, at + 8, self.time_ms);
    }
    /// The 4-byte tag a backup record keeps of the log stream it was made on: CRC-32C of the
    /// signature's 16 bytes (random, then time, little-endian). It tells streams apart in the
    /// 32-byte record, which has no room for the whole signature.
    pub fn stream_tag(&self) -> u32 {
        let mut b = [0u8; 16];
        self.write(&mut b, 0);
        crc32c::crc32c(&b)
    }

    /// Hex form, for manifests and dumps.
    pub fn to_hex(&self) -> String {
        format!("{:016x}{:016x}", self.random, self.time_ms)
    }
    /// Parses [`Signature::to_hex`].
    pub fn from_hex(s: &str) -> Option<Signature> {
        if s.len() != 32 {
            return None;
        }
        Some(Signature {
            random: u64::from_str_radix(&s[..16], 16).ok()?,
            time_ms: u64::from_str_radix(&s[16..], 16).ok()?,
        })
    }
}

fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(crate::lsn::now_ms());
    h.write_usize(&h as *const _ as usize);
    h.finish()
}

/// One backup record of a header (ESE's `JET_BKINFO`), with the log stream it was made on:
/// marks and generations only compare within one stream (behaviour.md §2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BackupInfo {
    /// Log position of the backup mark.
    pub mark: u64,
    /// Time of the mark, ms since the epoch.
    pub time_ms: u64,
    /// Lowest log generation of the backup (inclusive).
    pub gen_low: u32,
    /// Highest log generation of the backup (inclusive).
    pub gen_high: u32,
    /// The log stream the backup was made on: [`Signature::stream_tag`] of its log signature.
    /// `None` in a record written before streams were recorded: any new record replaces it,
    /// and it never counts as this stream's backup.
    pub stream: Option<u32>,
}

impl BackupInfo {
    /// Whether the record was made on the log stream with this signature.
    pub fn on_stream(&self, log_signature: &Signature) -> bool {
        self.stream == Some(log_signature.stream_tag())
    }
}

const BKINFO_SIZE: usize = 32;

fn read_bkinfo(b: &[u8], at: usize) -> Option<BackupInfo> {
    if b[at] == 0 {
        return None;
    }
    Some(BackupInfo {
        mark: get_u64(b, at + 8),
        time_ms: get_u64(b, at + 16),
        gen_low: get_u32(b, at + 24),
        gen_high: get_u32(b, at + 28),
        // An older header has zeros here: an unknown stream.
        stream: (b[at + 1] == 1).then(|| get_u32(b, at + 4)),
    })
}

fn write_bkinfo(b: &mut [u8], at: usize, v: &Option<BackupInfo>) {
    b[at..at + BKINFO_SIZE].fill(0);
    if let Some(v) = v {
        b[at] = 1;
        if let Some(tag) = v.stream {
            b[at + 1] = 1;
            put_u32(b, at + 4, tag);
        }
        put_u64(b, at + 8, v.mark);
        put_u64(b, at + 16, v.time_ms);
        put_u32(b, at + 24, v.gen_low);
        put_u32(b, at + 28, v.gen_high);
    }
}

/// Which backup field of the header an update names (behaviour.md §2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BackupField {
    /// `last_full`: full backup with truncation.
    Full = 1,
    /// `last_incremental`: incremental with truncation.
    Incremental = 2,
    /// `last_copy`: full backup without truncation.
    Copy = 3,
    /// `last_differential`: incremental without truncation.
    Differential = 4,
}

impl BackupField {
    /// Decodes the byte stored in a log record.
    pub fn from_u8(v: u8) -> Option<BackupField> {
        Some(match v {
            1 => BackupField::Full,
            2 => BackupField::Incremental,
            3 => BackupField::Copy,
            4 => BackupField::Differential,
            _ => return None,
        })
    }
}

/// The database header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbHeader {
    /// Page size of the file.
    pub page_size: u32,
    /// This database's signature.
    pub db_signature: Signature,
    /// Signature of the log stream the database belongs to.
    pub log_signature: Signature,
    /// [`STATE_CLEAN`], [`STATE_DIRTY`] or [`STATE_JUST_CREATED`].
    pub state: u8,
    /// Oldest log generation recovery needs (0 when clean).
    pub gen_min_required: u32,
    /// Newest log generation recovery needs (0 when clean).
    pub gen_max_required: u32,
    /// Log position the database was last made consistent at: its clean detach or shutdown,
    /// or the end of the log soft recovery replayed (restore: its last replayed commit).
    pub consistent_lsn: u64,
    /// Set only in a streamed backup copy (ESE's `bkinfoFullCur`): the backup mark.
    pub backup_mark: Option<BackupInfo>,
    /// Last full backup (with truncation).
    pub last_full: Option<BackupInfo>,
    /// Last incremental backup (with truncation).
    pub last_incremental: Option<BackupInfo>,
    /// Last copy backup (full without truncation).
    pub last_copy: Option<BackupInfo>,
    /// Last differential backup (incremental without truncation).
    pub last_differential: Option<BackupInfo>,
    /// A random token that the instance whose attach, create, detach or clean term wrote this
    /// header last keeps in its checkpoint file ([`crate::db::OwnerTokens`]); soft recovery
    /// keeps it as found. 0 in a header written before tokens.
    pub owner_token: u64,
}

impl DbHeader {
    /// A header for a new database.
    pub fn new(page_size: u32, log_signature: Signature) -> DbHeader {
        DbHeader {
            page_size,
            db_signature: Signature::generate(),
            log_signature,
            state: STATE_DIRTY,
            gen_min_required: 0,
            gen_max_required: 0,
            consistent_lsn: 0,
            backup_mark: None,
            last_full: None,
            last_incremental: None,
            last_copy: None,
            last_differential: None,
            owner_token: 0,
        }
    }

    /// Whether the header says clean shutdown.
    pub fn is_clean(&self) -> bool {
        self.state == STATE_CLEAN
    }

    /// Whether the header is of a creation whose attach was never logged as far as it knows
    /// ([`STATE_JUST_CREATED`]).
    pub fn is_just_created(&self) -> bool {
        self.state == STATE_JUST_CREATED
    }

    /// Encodes into a full, sealed page.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.page_size as usize];
        b[4..12].copy_from_slice(MAGIC);
        put_u32(&mut b, 12, VERSION);
        put_u32(&mut b, 16, self.page_size);
        self.db_signature.write(&mut b, 20);
        self.log_signature.write(&mut b, 36);
        b[52] = self.state;
        put_u32(&mut b, 56, self.gen_min_required);
        put_u32(&mut b, 60, self.gen_max_required);
        put_u64(&mut b, 64, self.consistent_lsn);
        write_bkinfo(&mut b, 72, &self.backup_mark);
        write_bkinfo(&mut b, 104, &self.last_full);
        write_bkinfo(&mut b, 136, &self.last_incremental);
        write_bkinfo(&mut b, 168, &self.last_copy);
        write_bkinfo(&mut b, 200, &self.last_differential);
        put_u64(&mut b, 232, self.owner_token);
        let c = crc32c::crc32c(&b[4..]);
        put_u32(&mut b, 0, c);
        b
    }

    /// Decodes a header page; `DatabaseCorrupted` if it is not one.
    pub fn decode(b: &[u8]) -> Result<DbHeader> {
        if b.len() < 4096 || &b[4..12] != MAGIC || get_u32(b, 12) != VERSION {
            return Err(Error::DatabaseCorrupted);
        }
        let page_size = get_u32(b, 16);
        if page_size as usize != b.len() || crc32c::crc32c(&b[4..]) != get_u32(b, 0) {
            return Err(Error::DatabaseCorrupted);
        }
        let state = b[52];
        if ![STATE_CLEAN, STATE_DIRTY, STATE_JUST_CREATED].contains(&state) {
            return Err(Error::DatabaseCorrupted);
        }
        Ok(DbHeader {
            page_size,
            db_signature: Signature::read(b, 20),
            log_signature: Signature::read(b, 36),
            state,
            gen_min_required: get_u32(b, 56),
            gen_max_required: get_u32(b, 60),
            consistent_lsn: get_u64(b, 64),
            backup_mark: read_bkinfo(b, 72),
            last_full: read_bkinfo(b, 104),
            last_incremental: read_bkinfo(b, 136),
            last_copy: read_bkinfo(b, 168),
            last_differential: read_bkinfo(b, 200),
            owner_token: get_u64(b, 232),
        })
    }

    /// Applies a backup-field update (behaviour.md §2.5): a field only moves forward within one
    /// log stream (a mark is a log position, meaningless in another stream), a record of
    /// another or an unknown stream is replaced, and a full backup with truncation clears
    /// the incremental and differential records.
    pub fn apply_backup(&mut self, field: BackupField, info: BackupInfo) {
        let slot = match field {
            BackupField::Full => &mut self.last_full,
            BackupField::Incremental => &mut self.last_incremental,
            BackupField::Copy => &mut self.last_copy,
            BackupField::Differential => &mut self.last_differential,
        };
        let newer_of_same_stream = |old: &BackupInfo| {
            old.stream.is_some() && old.stream == info.stream && old.mark > info.mark
        };
        if slot.as_ref().is_some_and(newer_of_same_stream) {
            return;
        }
        *slot = Some(info);
        if field == BackupField::Full {
            self.last_incremental = None;
            self.last_differential = None;
        }
    }

    /// Reads the page size field of a header page without checking anything else, to learn
    /// how many bytes a whole header occupies.
    pub fn peek_page_size(first_bytes: &[u8]) -> Option<u32> {
        if first_bytes.len() < 20 || &first_bytes[4..12] != MAGIC {
            return None;
        }
        let s = get_u32(first_bytes, 16);
        crate::page::PAGE_SIZES.contains(&s).then_some(s)
    }
}

/// The last page of a streamed database image: what the backup covered, checksummed like a
/// header, so restore can tell a complete, matching copy (ESE's former patch-file header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// Page size of the database.
    pub page_size: u32,
    /// The database's signature.
    pub db_signature: Signature,
    /// The log stream's signature.
    pub log_signature: Signature,
    /// The backup mark and generation range.
    pub backup: BackupInfo,
    /// Last data page in the image.
    pub last_page: u32,
}

impl Trailer {
    /// Encodes into a sealed page.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.page_size as usize];
        b[4..12].copy_from_slice(TRAILER_MAGIC);
        put_u32(&mut b, 12, VERSION);
        put_u32(&mut b, 16, self.page_size);
        self.db_signature.write(&mut b, 20);
        self.log_signature.write(&mut b, 36);
        write_bkinfo(&mut b, 52, &Some(self.backup));
        put_u32(&mut b, 84, self.last_page);
        let c = crc32c::crc32c(&b[4..]);
        put_u32(&mut b, 0, c);
        b
    }

    /// Decodes a trailer page; `DatabasePatchFileMismatch` if it is not one.
    pub fn decode(b: &[u8]) -> Result<Trailer> {
        let bad = Error::DatabasePatchFileMismatch;
        if b.len() < 4096 || &b[4..12] != TRAILER_MAGIC || get_u32(b, 12) != VERSION {
            return Err(bad);
        }
        let page_size = get_u32(b, 16);
        if page_size as usize != b.len() || crc32c::crc32c(&b[4..]) != get_u32(b, 0) {
            return Err(bad);
        }
        Ok(Trailer {
            page_size,
            db_signature: Signature::read(b, 20),
            log_signature: Signature::read(b, 36),
            backup: read_bkinfo(b, 52).ok_or(Error::DatabasePatchFileMismatch)?,
            last_page: get_u32(b, 84),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let mut h = DbHeader::new(8192, Signature::generate());
        h.last_full = Some(BackupInfo {
            mark: 5,
            time_ms: 6,
            gen_low: 1,
            gen_high: 2,
            stream: Some(0x1234_5678),
        });
        h.last_copy = Some(BackupInfo {
            stream: None,
            ..h.last_full.unwrap_or_default()
        });
        let mut b = h.encode();
        assert_eq!(DbHeader::decode(&b).unwrap(), h);
        b[300] ^= 4;
        assert!(matches!(
            DbHeader::decode(&b),
            Err(Error::DatabaseCorrupted)
        ));
    }

    #[test]
    fn an_old_header_reads_as_an_unknown_stream() {
        let mut h = DbHeader::new(4096, Signature::generate());
        h.last_full = Some(BackupInfo {
            mark: 5,
            time_ms: 6,
            gen_low: 1,
            gen_high: 2,
            stream: Some(7),
        });
        let mut b = h.encode();
        // What a header written before streams were recorded holds: zeros in bytes 1..8.
        b[105..112].fill(0);
        let c = crc32c::crc32c(&b[4..]);
        put_u32(&mut b, 0, c);
        let old = DbHeader::decode(&b).unwrap().last_full.unwrap();
        assert_eq!((old.stream, old.mark, old.gen_high), (None, 5, 2));
        assert!(!old.on_stream(&h.log_signature));
    }

    fn record(mark: u64, stream: &Signature) -> BackupInfo {
        BackupInfo {
            mark,
            time_ms: 1,
            gen_low: 1,
            gen_high: 3,
            stream: Some(stream.stream_tag()),
        }
    }

    #[test]
    fn a_record_of_another_stream_is_replaced() {
        let (a, b) = (Signature::generate(), Signature::generate());
        assert_ne!(a.stream_tag(), b.stream_tag());
        let mut h = DbHeader::new(4096, b);
        let on_a = record(1 << 40, &a);
        let inc_a = record(2 << 40, &a);
        h.apply_backup(BackupField::Full, on_a);
        h.apply_backup(BackupField::Incremental, inc_a);
        // B's stream starts at generation 1 again: its marks are all older than A's.
        let on_b = record(1 << 32, &b);
        h.apply_backup(BackupField::Full, on_b);
        assert_eq!(h.last_full, Some(on_b));
        assert!(h.last_full.is_some_and(|r| r.on_stream(&b)));
        assert_eq!(
            h.last_incremental, None,
            "a full backup clears the incremental"
        );
        // Within B, only forward; A's record comes back only as a replacement.
        h.apply_backup(BackupField::Full, record(1, &b));
        assert_eq!(h.last_full, Some(on_b));
        h.apply_backup(BackupField::Copy, record(9 << 40, &a));
        h.apply_backup(BackupField::Copy, record(1 << 32, &b));
        assert_eq!(h.last_copy, Some(record(1 << 32, &b)));
    }

    #[test]
    fn a_record_of_an_unknown_stream_is_replaced() {
        let s = Signature::generate();
        let mut h = DbHeader::new(4096, s);
        h.last_full = Some(BackupInfo {
            stream: None,
            ..record(9 << 40, &s)
        });
        h.apply_backup(BackupField::Full, record(1 << 32, &s));
        assert_eq!(h.last_full, Some(record(1 << 32, &s)));
    }

    #[test]
    fn backup_fields_only_move_forward() {
        let mut h = DbHeader::new(4096, Signature::generate());
        let new = BackupInfo {
            mark: 10,
            time_ms: 1,
            gen_low: 1,
            gen_high: 3,
            stream: Some(Signature::generate().stream_tag()),
        };
        let old = BackupInfo { mark: 5, ..new };
        h.apply_backup(BackupField::Incremental, new);
        h.apply_backup(BackupField::Incremental, old);
        assert_eq!(h.last_incremental, Some(new));
        h.apply_backup(BackupField::Full, new);
        assert_eq!(h.last_incremental, None);
    }

    #[test]
    fn trailer_round_trip() {
        let t = Trailer {
            page_size: 4096,
            db_signature: Signature::generate(),
            log_signature: Signature::generate(),
            backup: BackupInfo {
                mark: 1,
                time_ms: 2,
                gen_low: 3,
                gen_high: 4,
                stream: Some(5),
            },
            last_page: 9,
        };
        assert_eq!(Trailer::decode(&t.encode()).unwrap(), t);
    }
}
