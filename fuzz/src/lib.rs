//! Shared parts of the fuzz targets: one real backup set made with the engine (a streamed
//! database image and its logs, on a `FaultStorage`), helpers that re-seal checksums after a
//! mutation so inputs reach the decoders behind them, and the mutation language of the
//! `restore_mutated_set` target.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ese::internals::backup::stream;
use ese::io::{FaultStorage, OpenMode, Storage, StorageRef};
use ese::{BackupBegin, BackupEnd, Commit, Core, InstanceParams};

/// Page size of the database in the set.
pub const PAGE_SIZE: usize = 4096;
/// Size of every log file of the set.
pub const LOG_SIZE: u64 = 64 * 1024;
/// Log file header size.
pub const LOG_HEADER: usize = 4096;
const REC_MAGIC: u32 = 0x4C52_5345;

/// A backup set made once per process.
#[derive(Debug)]
pub struct Set {
    /// Where the database was attached (the restore map's key).
    pub original: PathBuf,
    /// The streamed image (header twice, pages, trailer).
    pub image: Vec<u8>,
    /// The backed-up logs, `(generation, bytes)`, ascending.
    pub logs: Vec<(u32, Vec<u8>)>,
    /// The checkpoint file the instance left.
    pub checkpoint: Vec<u8>,
    /// Record offsets of each log, for record-relative mutations.
    pub records: Vec<Vec<(usize, usize)>>,
}

impl Set {
    /// First generation.
    pub fn gen_low(&self) -> u32 {
        self.logs.first().map_or(1, |l| l.0)
    }
    /// Last generation.
    pub fn gen_high(&self) -> u32 {
        self.logs.last().map_or(1, |l| l.0)
    }
}

/// The set, built on first use.
pub fn set() -> &'static Set {
    static SET: OnceLock<Set> = OnceLock::new();
    SET.get_or_init(|| build_set().expect("building the backup set"))
}

fn params() -> InstanceParams {
    InstanceParams::new("/f")
        .log_file_size(LOG_SIZE)
        .page_size(PAGE_SIZE as u32)
        .cache_pages(64)
}

fn build_set() -> ese::Result<Set> {
    let fs = FaultStorage::new();
    let storage: StorageRef = Arc::new(fs.clone());
    let mut core = Core::open(storage.clone(), params())?;
    let original = PathBuf::from("/f/test.edb");
    let (db, t) = core.create_database(&original)?;
    core.wait(t)?;
    let s = core.begin_session()?;
    let (tbl, t) = core.create_table(db, "t")?;
    core.wait(t)?;
    let mut n = 0u32;
    let mut commit = |core: &mut Core, rows: u32| -> ese::Result<()> {
        for _ in 0..rows {
            let i = n;
            n += 1;
            core.begin_transaction(s)?;
            // Mostly small rows; every 7th one large enough for overflow pages.
            let len = if i % 7 == 3 {
                3000
            } else {
                40 + (i as usize % 50)
            };
            core.put(s, tbl, format!("k{i:05}").as_bytes(), &vec![i as u8; len])?;
            if i % 5 == 4 {
                core.delete(s, tbl, format!("k{:05}", i - 2).as_bytes())?;
            }
            let t = core.commit(s, Commit::Durable)?;
            core.wait(t)?;
        }
        Ok(())
    };
    commit(&mut core, 20)?;
    core.checkpoint_now()?;
    core.backup_begin(BackupBegin::empty())?;
    let (h, _) = core.backup_open(&original)?;
    let image = read_all(&mut core, h)?;
    core.backup_close(h)?;
    commit(&mut core, 6)?;
    core.backup_prepare_logs()?;
    let (lo, _hi, files) = core.backup_log_info()?;
    let mut logs = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (h, _) = core.backup_open(f)?;
        logs.push((lo + i as u32, read_all(&mut core, h)?));
        core.backup_close(h)?;
    }
    core.backup_end(BackupEnd::NORMAL)?;
    core.term_clean()?;
    let checkpoint = fs
        .read_file(Path::new("/f/edb.chk"))
        .ok_or(ese::Error::FileNotFound)?;
    let records = logs.iter().map(|(g, b)| record_offsets(b, *g)).collect();
    Ok(Set {
        original,
        image,
        logs,
        checkpoint,
        records,
    })
}

fn read_all(core: &mut Core, h: u64) -> ese::Result<Vec<u8>> {
    let sig = core.log().signature();
    let log = core.log().shared().clone();
    let mut out = Vec::new();
    loop {
        let (ticket, plan) = core.backup_plan_read(h, 64 * 1024)?;
        let res = stream::execute(&**core.storage(), &plan, sig, &|| log.durable());
        let chunk = core.backup_read_done(ticket, res)?;
        // The sum put together from page checksums must be the chunk's.
        assert_eq!(chunk.crc32c, crc32c::crc32c(&chunk.bytes), "chunk sum");
        let chunk = chunk.bytes;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
    }
}

/// `(start, framed length)` of every valid record of a log file.
pub fn record_offsets(bytes: &[u8], gen: u32) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = LOG_HEADER;
    while let Some(f) = ese::internals::log::read_record(bytes, gen, off) {
        let end = f.end.offset() as usize;
        out.push((off, end - off));
        off = end;
    }
    out
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Re-seals a 4-byte CRC-32C at 0 over `b[4..]` (log header, checkpoint slot, pages).
pub fn seal(b: &mut [u8]) {
    if b.len() >= 4 {
        let c = crc32c::crc32c(&b[4..]);
        put_u32(b, 0, c);
    }
}

/// Re-seals a log file: the header's checksum, and every record frame found by walking
/// from the first record (magic at an 8-byte boundary, length inside the file).
pub fn reseal_log(b: &mut [u8]) {
    if b.len() < LOG_HEADER {
        return;
    }
    seal(&mut b[..LOG_HEADER]);
    let gen = get_u32(b, 12);
    let mut off = LOG_HEADER;
    while off + 24 <= b.len() {
        if get_u32(b, off) != REC_MAGIC {
            off += 8;
            continue;
        }
        let len = get_u32(b, off + 12) as usize;
        let Some(end) = (off + 24).checked_add(len).filter(|&e| e <= b.len()) else {
            off += 8;
            continue;
        };
        let mut pos = [0u8; 8];
        put_u32(&mut pos, 0, gen);
        put_u32(&mut pos, 4, off as u32);
        let c = crc32c::crc32c_append(crc32c::crc32c(&pos), &b[off + 8..end]);
        put_u32(b, off + 4, c);
        off += ese::internals::log::framed_len(len).max(8);
    }
}

/// Re-seals the page of `b` that holds byte `at`.
pub fn reseal_page_at(b: &mut [u8], at: usize, ps: usize) {
    let start = at / ps * ps;
    if start + ps <= b.len() {
        seal(&mut b[start..start + ps]);
    }
}

/// A little-endian reader over fuzz input that yields zeros when it runs dry.
pub struct Input<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    /// Wraps `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Input { b, at: 0 }
    }
    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.b.len()
    }
    /// Next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let v = self.b.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v
    }
    /// Next u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    /// Next u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Up to `n` next bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let s = self.at.min(self.b.len());
        let e = self.at.saturating_add(n).min(self.b.len());
        self.at = self.at.saturating_add(n);
        &self.b[s..e]
    }
}

/// The files of a set laid out for restore (`/r/restored.edb`, `/r/edbXXXXXXXX.log`).
pub struct Files {
    /// `(path, bytes)`; `None` bytes: deleted.
    pub files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

/// Restore's directory in the fuzzed storage.
pub const RESTORE_DIR: &str = "/r";

/// Applies the mutations `input` describes to a copy of the set. Each operation is
/// `file u8, kind u8, where u32, n u8, n bytes`:
///
/// | kind % 7 | what |
/// |---|---|
/// | 0 | overwrite at `where` with the bytes (raw) |
/// | 1 | overwrite, then re-seal (log: header and every record; image: the page) |
/// | 2 | truncate to `where` |
/// | 3 | overwrite inside record `where & 0xffff` (image: page) at `where >> 16`, re-seal |
/// | 4 | xor the bytes in at `where` (raw) |
/// | 5 | copy the file as the next generation (`where` odd: as the current `edb.log`) |
/// | 6 | delete the file |
pub fn mutate(set: &Set, input: &mut Input) -> Files {
    let dir = Path::new(RESTORE_DIR);
    let mut files: Vec<(PathBuf, Option<Vec<u8>>)> =
        vec![(dir.join("restored.edb"), Some(set.image.clone()))];
    for (g, b) in &set.logs {
        files.push((ese::internals::log::names::archived(dir, "edb", *g), Some(b.clone())));
    }
    let mut extra: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
    for _ in 0..8 {
        if input.is_empty() {
            break;
        }
        let which = input.u8() as usize % files.len();
        let kind = input.u8() % 7;
        let at = input.u32() as usize;
        let n = input.u8() as usize;
        let data = input.bytes(n).to_vec();
        let is_log = which > 0;
        let Some(b) = files[which].1.as_mut() else {
            continue;
        };
        match kind {
            0 | 1 | 4 => {
                let at = at % (b.len() + 1);
                if at + data.len() > b.len() {
                    b.resize(at + data.len(), 0);
                }
                for (i, d) in data.iter().enumerate() {
                    if kind == 4 {
                        b[at + i] ^= d;
                    } else {
                        b[at + i] = *d;
                    }
                }
                if kind == 1 {
                    if is_log {
                        reseal_log(b);
                    } else {
                        reseal_page_at(b, at, PAGE_SIZE);
                        reseal_page_at(b, at + data.len().saturating_sub(1), PAGE_SIZE);
                    }
                }
            }
            2 => {
                let at = at % (b.len() + 1);
                b.truncate(at);
            }
            3 => {
                let (start, len) = if is_log {
                    let recs = &set.records[which - 1];
                    if recs.is_empty() {
                        continue;
                    }
                    recs[(at & 0xffff) % recs.len()]
                } else {
                    let pages = b.len() / PAGE_SIZE;
                    if pages == 0 {
                        continue;
                    }
                    ((at & 0xffff) % pages * PAGE_SIZE, PAGE_SIZE)
                };
                let inner = (at >> 16) % len.max(1);
                for (i, d) in data.iter().enumerate() {
                    if let Some(x) = b.get_mut(start + inner + i) {
                        *x = *d;
                    }
                }
                if is_log {
                    reseal_log(b);
                } else {
                    reseal_page_at(b, start, PAGE_SIZE);
                }
            }
            5 => {
                let path = if at % 2 == 1 {
                    ese::internals::log::names::current(dir, "edb")
                } else {
                    ese::internals::log::names::archived(dir, "edb", set.gen_high() + 1 + extra.len() as u32)
                };
                extra.push((path, Some(b.clone())));
            }
            _ => files[which].1 = None,
        }
    }
    files.extend(extra);
    Files { files }
}

/// Puts `files` into a fresh in-memory storage.
pub fn storage_with(files: &Files) -> FaultStorage {
    let fs = FaultStorage::new();
    for (p, b) in &files.files {
        if let Some(b) = b {
            fs.write_file_raw(p, b);
        }
    }
    fs
}

/// Writes the set as a backup-set directory (`databases/00-test.edb`, `logs/...`) under
/// `dir`; returns `(relative path, bytes)` of each file.
pub fn write_set_dir(set: &Set, dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = vec![("databases/00-test.edb".to_string(), set.image.clone())];
    for (g, b) in &set.logs {
        out.push((format!("logs/edb{g:08X}.log"), b.clone()));
    }
    for (rel, b) in &out {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent"))?;
        std::fs::write(p, b)?;
    }
    Ok(out)
}

/// Fills a manifest template: `@LOGSIG@`, `@DBSIG@` and `@CRC:<rel>@` become the set's values, so a committed seed matches a set made afresh (signatures and
/// checksums differ from run to run).
pub fn fill_manifest(template: &[u8], set: &Set, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(template) else {
        return template.to_vec();
    };
    if !text.contains('@') {
        return template.to_vec();
    }
    let mut text = text.to_string();
    if let Ok(h) = ese::internals::db::DbHeader::decode(&set.image[..PAGE_SIZE]) {
        text = text.replace("@LOGSIG@", &h.log_signature.to_hex());
        text = text.replace("@DBSIG@", &h.db_signature.to_hex());
    }
    for (rel, b) in files {
        text = text.replace(
            &format!("@CRC:{rel}@"),
            &format!("{:08x}", crc32c::crc32c(b)),
        );
    }
    text.into_bytes()
}

/// A manifest template for the set (the seed of `manifest_reader`).
pub fn manifest_template(set: &Set, files: &[(String, Vec<u8>)]) -> String {
    let logs: Vec<serde_json::Value> = set
        .logs
        .iter()
        .zip(files.iter().skip(1))
        .map(|((g, _), (rel, _))| {
            serde_json::json!({
                "gen": g,
                "file": rel,
                "size": LOG_SIZE,
                "crc32c": format!("@CRC:{rel}@"),
            })
        })
        .collect();
    let db = &files[0].0;
    let m = serde_json::json!({
        "format": 1,
        "kind": "full",
        "id": "0123456789abcdef",
        "parent_id": null,
        "instance": "fuzz",
        "base_name": "edb",
        "page_size": PAGE_SIZE,
        "log_signature": "@LOGSIG@",
        "gen_low": set.gen_low(),
        "gen_high": set.gen_high(),
        "mark": 0,
        "mark_time_ms": 0,
        "databases": [{
            "original_path": set.original,
            "file": db,
            "size": set.image.len(),
            "crc32c": format!("@CRC:{db}@"),
            "db_signature": "@DBSIG@",
        }],
        "logs": logs,
    });
    serde_json::to_string_pretty(&m).expect("json")
}

/// Opens `path` in `storage` and reads it whole (test helper).
pub fn read_whole(storage: &dyn Storage, path: &Path) -> ese::Result<Vec<u8>> {
    let f = storage.open(path, OpenMode::ReadOnly)?;
    let mut b = vec![0u8; f.len()? as usize];
    f.read_exact_at(&mut b, 0)?;
    Ok(b)
}
