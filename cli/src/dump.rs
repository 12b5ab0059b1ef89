//! `ese dump header|log|checkpoint`: like eseutil `/mh`, `/ml`, `/mk`.

use std::collections::BTreeMap;
use std::path::Path;

use ese_actors::ese::internals::db::{BackupInfo, DbHeader, Trailer};
use ese_actors::ese::internals::log::checkpoint;
use ese_actors::ese::internals::log::reader::{self, Tail};
use ese_actors::ese::internals::log::Record;
use ese_actors::ese::Lsn;
use serde_json::{json, Value};

use crate::{Failure, Out};

/// The largest page size a database may have: its two header pages are all `dump header`
/// needs from the start of the file.
const MAX_PAGE_SIZE: u64 = 32 * 1024;

fn bk(b: &Option<BackupInfo>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => {
            let stream = b.stream.map(|t| format!("{t:08x}"));
            json!({ "mark": Lsn(b.mark).to_string(), "time_ms": b.time_ms, "gen_low": b.gen_low, "gen_high": b.gen_high, "stream": stream })
        }
    }
}

fn print(out: Out, v: &Value) {
    if out.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    if let Value::Object(m) = v {
        for (k, v) in m {
            match v {
                Value::String(s) => println!("{k:>22}: {s}"),
                other => println!("{k:>22}: {other}"),
            }
        }
    }
}

/// `ese dump header DB`: the database header (and the trailer of a streamed image).
pub fn header(path: &Path, out: Out) -> Result<(), Failure> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| Failure::Ese(ese_actors::Error::from_io(e).in_file(path));
    // The two header pages and the last page: never the whole file, which may be tens of
    // gigabytes.
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut bytes = Vec::new();
    (&mut f)
        .take(2 * MAX_PAGE_SIZE)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let ps = DbHeader::peek_page_size(&bytes).ok_or(ese_actors::Error::DatabaseCorrupted)? as usize;
    let h = bytes
        .get(..ps)
        .and_then(|b| DbHeader::decode(b).ok())
        .or_else(|| bytes.get(ps..2 * ps).and_then(|b| DbHeader::decode(b).ok()))
        .ok_or(ese_actors::Error::DatabaseCorrupted)?;
    let trailer = match len >= 3 * ps as u64 {
        true => {
            let mut last = vec![0; ps];
            f.seek(SeekFrom::Start(len - ps as u64)).map_err(io)?;
            f.read_exact(&mut last).map_err(io)?;
            Trailer::decode(&last).ok()
        }
        false => None,
    };
    let v = json!({
        "file": path.display().to_string(),
        "state": match (h.is_clean(), h.is_just_created()) {
            (true, _) => "clean shutdown",
            (_, true) => "just created",
            _ => "dirty shutdown",
        },
        "page_size": h.page_size,
        "db_signature": h.db_signature.to_hex(),
        "log_signature": h.log_signature.to_hex(),
        "gen_min_required": h.gen_min_required,
        "gen_max_required": h.gen_max_required,
        "consistent_position": Lsn(h.consistent_lsn).to_string(),
        "backup_mark": bk(&h.backup_mark),
        "last_full": bk(&h.last_full),
        "last_incremental": bk(&h.last_incremental),
        "last_copy": bk(&h.last_copy),
        "last_differential": bk(&h.last_differential),
        "owner_token": format!("{:016x}", h.owner_token),
        "trailer": trailer.map(|t| json!({ "last_page": t.last_page, "backup": bk(&Some(t.backup)) })),
    });
    print(out, &v);
    Ok(())
}

/// `ese dump log LOGFILE`: header, how the file ends, and records per type.
pub fn log(path: &Path, out: Out) -> Result<(), Failure> {
    let f = reader::read_file(&*ese_actors::ese::io::os(), path).map_err(|e| e.in_file(path))?;
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut pages = 0u64;
    let mut deltas = 0u64;
    let (mut first_commit, mut last_commit) = (None, None);
    for r in &f.records {
        let name = match &r.record {
            Record::Pages(p) => {
                pages += p.len() as u64;
                "pages"
            }
            Record::Commit { time_ms, .. } => {
                first_commit.get_or_insert(*time_ms);
                last_commit = Some(*time_ms);
                "commit"
            }
            Record::Deltas(d) => {
                deltas += d.len() as u64;
                "deltas"
            }
            Record::Attach { .. } => "attach",
            Record::Detach { .. } => "detach",
            Record::AttachList(_) => "attach_list",
            Record::BackupUpdate { .. } => "backup_update",
            Record::BackupMark { .. } => "backup_mark",
            Record::End => "end",
            Record::Shutdown => "shutdown",
        };
        *counts.entry(name).or_default() += 1;
    }
    let h = &f.header;
    let v = json!({
        "file": path.display().to_string(),
        "generation": h.gen,
        "base_name": h.base_name,
        "log_signature": h.signature.to_hex(),
        "created_ms": h.created_ms,
        "prev_created_ms": h.prev_created_ms,
        "file_size": h.file_size,
        "state": match f.tail { Tail::Complete => "complete (archived)".to_string(), Tail::Open { at } => format!("open, records end at byte {at}") },
        "records": counts,
        "page_images": pages,
        "page_deltas": deltas,
        "first_commit_ms": first_commit,
        "last_commit_ms": last_commit,
    });
    print(out, &v);
    Ok(())
}

/// `ese dump checkpoint CHK`.
pub fn checkpoint(path: &Path, out: Out) -> Result<(), Failure> {
    let c = checkpoint::read(&*ese_actors::ese::io::os(), path)
        .map_err(|e| e.in_file(path))?
        .ok_or_else(|| ese_actors::Error::CheckpointFileNotFound.in_file(path))?;
    let v = json!({
        "file": path.display().to_string(),
        "sequence": c.seq,
        "checkpoint": c.lsn.to_string(),
        "generation": c.lsn.gen(),
        "log_signature": c.log_signature.to_hex(),
        "attached": c.attached.iter().map(|a| json!({ "dbid": a.dbid, "path": a.path, "signature": a.signature.to_hex() })).collect::<Vec<_>>(),
        "owner_tokens": c.owner_tokens.entries().iter().map(|h| json!({ "db_signature": h.db.to_hex(), "token": format!("{:016x}", h.token), "before": format!("{:016x}", h.before) })).collect::<Vec<_>>(),
    });
    print(out, &v);
    Ok(())
}
