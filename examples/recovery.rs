//! Writes a few thousand transactions with the storage core, terminates dirty (a simulated
//! crash: nothing flushed, nothing marked clean), runs soft recovery, and checks that every
//! acknowledged transaction came back whole.
//!
//! `cargo run --release --example recovery [-- DIR]`

use std::ops::Bound;
use std::time::Instant;

use ese::io::os;
use ese::{Commit, Core, Direction, InstanceParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let params = InstanceParams::new(&dir).log_file_size(1 << 20);
    let db_path = dir.join("demo.edb");
    let _ = std::fs::remove_file(&db_path);

    let mut core = Core::open(os(), params.clone())?;
    let (db, t) = core.create_database(&db_path)?;
    core.wait(t)?;
    let s = core.begin_session()?;
    let (table, t) = core.create_table(db, "accounts")?;
    core.wait(t)?;

    const TXNS: u32 = 3000;
    let start = Instant::now();
    for i in 0..TXNS {
        core.begin_transaction(s)?;
        core.put(
            s,
            table,
            format!("acct{i:06}").as_bytes(),
            format!("balance={}", i * 10).as_bytes(),
        )?;
        core.put(s, table, b"~last", &i.to_le_bytes())?;
        let durability = if i % 10 == 9 {
            Commit::Durable
        } else {
            Commit::Lazy
        };
        let t = core.commit(s, durability)?;
        if durability == Commit::Durable {
            core.wait(t)?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let gen = core.log().gen();
    println!(
        "wrote {TXNS} transactions in {secs:.2}s ({:.0}/s), log generation {gen}",
        TXNS as f64 / secs
    );
    core.term_dirty();
    println!("terminated dirty: database header left dirty, cache not flushed");

    let start = Instant::now();
    let mut core = Core::open(os(), params)?;
    let stats = core.stats().recovery;
    println!(
        "soft recovery: {} commits replayed, {} pages written, {:.1} MiB of log, {:.2}s",
        stats.commits,
        stats.pages_written,
        stats.log_bytes as f64 / (1 << 20) as f64,
        start.elapsed().as_secs_f64()
    );
    let db = core.attach_database(&db_path)?;
    let table = core.open_table(db, "accounts")?;
    let s = core.begin_session()?;
    let rows = core.scan(
        s,
        table,
        Bound::Unbounded,
        Bound::Unbounded,
        Direction::Forward,
    )?;
    let last = core.get(s, table, b"~last")?.ok_or("running row missing")?;
    let last = u32::from_le_bytes(last.as_slice().try_into()?);
    // Every durable commit (each 10th) is acknowledged; lazy ones after the last durable one
    // may be lost, but never partly.
    let accounts = rows.len() as u32 - 1;
    let ok = accounts == last + 1
        && last + 1 >= TXNS - (TXNS % 10)
        && rows
            .iter()
            .take(accounts as usize)
            .enumerate()
            .all(|(i, (k, v))| {
                k == format!("acct{i:06}").as_bytes()
                    && v == format!("balance={}", i * 10).as_bytes()
            });
    println!(
        "verified: {accounts} accounts present, running row says {last}, every row whole: {ok}"
    );
    core.term_clean()?;
    if !ok {
        return Err("verification failed".into());
    }
    println!("OK");
    Ok(())
}
