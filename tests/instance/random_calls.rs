//! Random sequences of public API calls against one instance (chaos test): databases, tables,
//! sessions, transactions, rows, write batches, the external backup calls in any order with
//! any arguments, `backup_to_dir`, `stop_backup`, `stop_service`, `term` with any grbit, calls
//! after `term`, a second instance of the engine reaching for the first one's paths, ranged
//! scans (bounds, limit, order), and futures dropped at random points. For every call: it answers (30 s is only
//! a hang detector), the actor survives (no `InvalidInstance` -1115 while the instance lives),
//! and every error is one behaviour.md names for that call. A model of the committed rows is
//! checked by reads as the case runs, after every term and reopen, and on a restore of a full
//! backup set taken at the end.
//!
//! `RANDOM_CALLS_CASES` (default 6), `RANDOM_CALLS_STEPS` (default 150) and
//! `RANDOM_CALLS_SEED` (a first seed; case `i` uses `seed + i`) for longer runs. A failure
//! prints its seed; `RANDOM_CALLS_TRACE=1` prints every step of a case.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Bound;
use std::path::PathBuf;
use std::time::Duration;

use ese_actors::{
    restore_backup_chain, BackupBegin, BackupEnd, BackupFile, BackupKind, Commit, DbId, Engine,
    Instance, KeyRange, Session, TableId, Term, Transaction, WriteBatch,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::actor::params;

const HANG: Duration = Duration::from_secs(30);
const DBS: [&str; 2] = ["a.edb", "b.edb"];

type Key = (String, String, Vec<u8>);
/// A transaction's write: database file, table, key, value (`None`: a delete).
type Write = (String, String, Vec<u8>, Option<Vec<u8>>);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn trace() -> bool {
    std::env::var_os("RANDOM_CALLS_TRACE").is_some()
}

/// Awaits `fut`, failing the case if it hangs.
async fn within<T>(seed: u64, what: &str, fut: impl Future<Output = T>) -> T {
    if trace() {
        eprintln!("  {what}");
    }
    match tokio::time::timeout(HANG, fut).await {
        Ok(v) => v,
        Err(_) => panic!("seed {seed}: {what} did not answer within {HANG:?} (hang)"),
    }
}

struct Tx {
    tx: Transaction<'static>,
    writes: Vec<Write>,
}

struct Case {
    seed: u64,
    rng: StdRng,
    engine: Engine,
    dir: PathBuf,
    inst: Instance,
    /// Old handles of terminated instances: every call on them must be -1115.
    old: Vec<Instance>,
    terminated: bool,
    stopped: bool,
    /// A term was refused with -505: no backup may begin until the instance is terminated.
    term_refused: bool,
    dbs: BTreeMap<String, DbId>,
    /// Ids of detached databases.
    stale_dbs: Vec<DbId>,
    /// Databases created (their files exist).
    created: BTreeSet<String>,
    tables: Vec<(String, String, TableId)>,
    /// Handles of tables whose database was detached.
    stale_tables: Vec<TableId>,
    sessions: Vec<Session>,
    txs: Vec<Tx>,
    /// Committed rows per (database file, table).
    rows: BTreeMap<(String, String), BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Tables whose creation was acknowledged.
    made: BTreeSet<(String, String)>,
    /// Keys whose value is not known (a dropped write, a lazy commit before a dirty term).
    uncertain: BTreeSet<Key>,
    /// Keys committed lazily since the last durable acknowledgement.
    lazy: BTreeSet<Key>,
    handles: Vec<BackupFile>,
    listed_logs: Vec<PathBuf>,
    sets: u32,
    unexpected: Vec<String>,
    calls: u64,
}

fn key_pool(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..12) {
        0 => Vec::new(),
        1 => vec![0u8; 1024],
        2 => vec![1u8; 1025],
        3 => vec![0xff; 3],
        4 => "ключ/\u{0}".as_bytes().to_vec(),
        5 | 6 => long_key(rng),
        _ => format!("k{}", rng.gen_range(0..6)).into_bytes(),
    }
}

/// A key of one of a few lengths near the largest (around where a leaf entry stops fitting
/// in a quarter page), from a small set so that keys repeat.
fn long_key(rng: &mut StdRng) -> Vec<u8> {
    let len = [1000, 1009, 1010, 1011, 1017, 1023, 1024][rng.gen_range(0..7)];
    let mut k = vec![b'L'; len];
    k[len - 1] = b'0' + rng.gen_range(0..3);
    k
}

/// A value of a length near the bounds of a leaf and of an overflow page.
fn edge_value(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.gen_range(0..6) {
        0 => rng.gen_range(0..8),
        1 => rng.gen_range(1000..1030),
        2 => rng.gen_range(4040..4100),
        3 => rng.gen_range(8100..8200),
        _ => rng.gen_range(0..200),
    };
    vec![rng.gen(); len]
}

fn value_pool(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..20) {
        0 => Vec::new(),
        1 => vec![7u8; 300 * 1024],
        2 => vec![9u8; 64 * 1024 * 1024 + 1],
        3 => vec![3u8; 8192],
        4..=7 => edge_value(rng),
        _ => format!("v{}", rng.gen::<u32>()).into_bytes(),
    }
}

fn table_name(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => String::new(),
        1 => "x".repeat(255),
        2 => "x".repeat(256),
        3 => "таблица/..\\:*\u{0}".to_string(),
        4 => "é".repeat(128), // 256 bytes, 128 chars
        _ => format!("t{}", rng.gen_range(0..3)),
    }
}

impl Case {
    fn note(&mut self, what: &str, e: &ese::Error, allowed: &[i32]) {
        let c = e.code();
        if trace() {
            eprintln!("  -> {what}: {c}");
        }
        let ok = allowed.contains(&c)
            || (c == -1115 && self.terminated)
            || (c == -1329 && self.stopped && !self.terminated);
        if !ok {
            let line = format!(
                "seed {}: {what}: unexpected {} ({c}): {}",
                self.seed,
                e.name(),
                e.detail_or_message()
            );
            eprintln!("{line}");
            self.unexpected.push(line);
        }
    }

    /// Runs `fut`, dropping it at a random point one time in `drop_one_in` (0: never).
    /// `None` if it was dropped.
    async fn maybe_drop<T>(&mut self, drop_one_in: u32, fut: impl Future<Output = T>) -> Option<T> {
        self.calls += 1;
        let seed = self.seed;
        if drop_one_in > 0 && self.rng.gen_range(0..drop_one_in) == 0 {
            let wait = Duration::from_micros(self.rng.gen_range(0..3000));
            tokio::select! {
                biased;
                v = fut => Some(v),
                _ = tokio::time::sleep(wait) => None,
            }
        } else {
            Some(within(seed, "call", fut).await)
        }
    }

    fn db_path(&mut self) -> PathBuf {
        match self.rng.gen_range(0..14) {
            0 => PathBuf::new(),
            1 => self.dir.join("no-such-dir/x.edb"),
            2 => self.dir.join("sub/../a.edb"),
            3 => self.dir.join("garbage.edb"),
            4 => self.dir.clone(),
            5 => self.dir.join("edb.log"),
            _ => self.dir.join(DBS[self.rng.gen_range(0..2)]),
        }
    }

    fn table(&mut self) -> Option<TableId> {
        if !self.stale_tables.is_empty() && self.rng.gen_range(0..15) == 0 {
            let i = self.rng.gen_range(0..self.stale_tables.len());
            return Some(self.stale_tables[i]);
        }
        if self.tables.is_empty() {
            return None;
        }
        let i = self.rng.gen_range(0..self.tables.len());
        Some(self.tables[i].2)
    }

    fn table_of(&self, t: TableId) -> Option<(String, String)> {
        self.tables
            .iter()
            .find(|x| x.2 == t)
            .map(|x| (x.0.clone(), x.1.clone()))
    }

    fn apply(&mut self, db: &str, table: &str, key: &[u8], value: Option<&[u8]>, lazy: bool) {
        let k: Key = (db.into(), table.into(), key.to_vec());
        let m = self.rows.entry((db.into(), table.into())).or_default();
        match value {
            Some(v) => {
                m.insert(key.to_vec(), v.to_vec());
            }
            None => {
                m.remove(key);
            }
        }
        self.uncertain.remove(&k);
        if lazy {
            self.lazy.insert(k);
        }
    }

    fn durable_ack(&mut self) {
        self.lazy.clear();
    }

    fn check_row(&mut self, what: &str, t: TableId, key: &[u8], got: Option<&[u8]>) {
        let Some((db, table)) = self.table_of(t) else {
            return;
        };
        if self
            .uncertain
            .contains(&(db.clone(), table.clone(), key.to_vec()))
        {
            return;
        }
        let want = self
            .rows
            .get(&(db.clone(), table.clone()))
            .and_then(|m| m.get(key))
            .map(|v| v.as_slice());
        if want != got {
            let line = format!(
                "seed {}: {what}: row {db}/{table}/{:?}: model {:?}, engine {:?}",
                self.seed,
                String::from_utf8_lossy(&key[..key.len().min(16)]),
                want.map(|v| v.len()),
                got.map(|v| v.len())
            );
            eprintln!("{line}");
            self.unexpected.push(line);
        }
    }

    /// Compares every row of `t` (in `inst`) with the model of (`db`, `table`).
    async fn check_table(
        &mut self,
        what: &str,
        inst: &Instance,
        db: &str,
        table: &str,
        t: TableId,
    ) {
        let seed = self.seed;
        let got = match within(seed, "scan", inst.scan(t, KeyRange::all())).await {
            Ok(rows) => rows,
            Err(e) => {
                self.note(&format!("{what}: scan"), &e, &[]);
                return;
            }
        };
        let got: BTreeMap<Vec<u8>, Vec<u8>> = got
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let want = self
            .rows
            .get(&(db.to_string(), table.to_string()))
            .cloned()
            .unwrap_or_default();
        let keys: BTreeSet<&Vec<u8>> = got.keys().chain(want.keys()).collect();
        for k in keys {
            if self
                .uncertain
                .contains(&(db.to_string(), table.to_string(), k.clone()))
            {
                continue;
            }
            if got.get(k) != want.get(k) {
                let line = format!(
                    "seed {seed}: {what}: {db}/{table} key {:?}: model {:?} bytes, engine {:?}",
                    String::from_utf8_lossy(&k[..k.len().min(16)]),
                    want.get(k).map(|v| v.len()),
                    got.get(k).map(|v| v.len())
                );
                eprintln!("{line}");
                self.unexpected.push(line);
            }
        }
    }

    async fn step(&mut self) {
        let seed = self.seed;
        let op = self.rng.gen_range(0..100);
        if trace() {
            eprintln!("step op {op}");
        }
        let inst = self.inst.clone();
        match op {
            0..=3 => {
                let p = self.db_path();
                if self.rng.gen_range(0..3) == 0 && p.ends_with("garbage.edb") && !p.exists() {
                    let _ = std::fs::write(&p, b"not a database at all");
                }
                let create = self.rng.gen_bool(0.5);
                if trace() {
                    eprintln!("  create {create} {p:?}");
                }
                let r = match create {
                    true => within(seed, "create_database", inst.create_database(&p)).await,
                    false => within(seed, "attach_database", inst.attach_database(&p)).await,
                };
                self.calls += 1;
                match r {
                    Ok(id) => {
                        let name = p.file_name().unwrap().to_string_lossy().to_string();
                        // A database made at that path earlier (by a create), not tracked.
                        if name == "garbage.edb" {
                            return;
                        }
                        if !DBS.contains(&name.as_str()) {
                            self.unexpected.push(format!(
                                "seed {seed}: create/attach of {p:?} succeeded ({create})"
                            ));
                            return;
                        }
                        self.created.insert(name.clone());
                        self.dbs.insert(name, id);
                    }
                    Err(e) => self.note(
                        &format!("create({create})/attach {p:?}"),
                        &e,
                        &[
                            -505, -1003, -1201, -1814, -1811, -1206, -1213, -550, -1222, -1018,
                            -1023, -1022, -1032,
                        ],
                    ),
                }
            }
            4..=5 => {
                let p = self.db_path();
                self.calls += 1;
                match within(seed, "detach", inst.detach_database(&p)).await {
                    Ok(()) => {
                        let name = p.file_name().unwrap().to_string_lossy().to_string();
                        if let Some(id) = self.dbs.remove(&name) {
                            self.stale_dbs.push(id);
                        }
                        let (gone, kept): (Vec<_>, Vec<_>) =
                            self.tables.drain(..).partition(|t| t.0 == name);
                        self.tables = kept;
                        self.stale_tables.extend(gone.into_iter().map(|t| t.2));
                    }
                    Err(e) => self.note(&format!("detach {p:?}"), &e, &[-505, -1003, -1203, -1202]),
                }
            }
            6..=9 => {
                let names: Vec<(String, DbId)> =
                    self.dbs.iter().map(|(n, d)| (n.clone(), *d)).collect();
                let stale = !self.stale_dbs.is_empty() && self.rng.gen_range(0..10) == 0;
                let (dbname, db) = match (names.is_empty(), stale) {
                    (_, true) => ("?".to_string(), self.stale_dbs[0]),
                    (true, false) => return,
                    (false, false) => names[self.rng.gen_range(0..names.len())].clone(),
                };
                let name = table_name(&mut self.rng);
                let which = self.rng.gen_range(0..3);
                if trace() {
                    eprintln!(
                        "  table call {which} on {dbname} name {name:?} ({} bytes)",
                        name.len()
                    );
                }
                let r = match which {
                    0 => within(seed, "create_table", inst.create_table(db, &name)).await,
                    1 => within(seed, "open_table", inst.open_table(db, &name)).await,
                    _ => within(seed, "ensure_table", inst.ensure_table(db, &name)).await,
                };
                self.calls += 1;
                match r {
                    Ok(t) => {
                        if dbname == "?" {
                            self.unexpected
                                .push(format!("seed {seed}: table call on an unknown db: Ok"));
                            return;
                        }
                        self.made.insert((dbname.clone(), name.clone()));
                        if !self.tables.iter().any(|x| x.2 == t) {
                            self.tables.push((dbname, name, t));
                        }
                    }
                    Err(e) => self.note(
                        &format!("table call {which} {name:?}"),
                        &e,
                        &[-1002, -1010, -1303, -1305],
                    ),
                }
            }
            10..=24 => {
                // A write of its own (a session's put or delete).
                let Some(t) = self.table() else { return };
                if self.sessions.is_empty() || self.rng.gen_range(0..10) == 0 {
                    match within(seed, "begin_session", inst.begin_session()).await {
                        Ok(s) => self.sessions.push(s),
                        Err(e) => self.note("begin_session", &e, &[-1101]),
                    }
                    if self.sessions.len() > 4 {
                        self.sessions.remove(0);
                    }
                    if self.sessions.is_empty() {
                        return;
                    }
                }
                let si = self.rng.gen_range(0..self.sessions.len());
                let key = key_pool(&mut self.rng);
                let put = self.rng.gen_range(0..4) != 0;
                let value = value_pool(&mut self.rng);
                if trace() {
                    eprintln!(
                        "  session {si} put {put} {t:?} key {} value {}",
                        key.len(),
                        value.len()
                    );
                }
                let s = &self.sessions[si];
                let fut = async {
                    match put {
                        true => s.put(t, &key, &value).await,
                        false => s.delete(t, &key).await,
                    }
                };
                let r = {
                    let wait = Duration::from_micros(self.rng.gen_range(0..3000));
                    let dropit = self.rng.gen_range(0..12) == 0;
                    self.calls += 1;
                    if dropit {
                        tokio::select! { biased; v = fut => Some(v), _ = tokio::time::sleep(wait) => None }
                    } else {
                        Some(within(seed, "put/delete", fut).await)
                    }
                };
                let tab = self.table_of(t);
                match r {
                    None => {
                        if let Some((db, table)) = tab {
                            self.uncertain.insert((db, table, key));
                        }
                    }
                    Some(Ok(())) => {
                        if let Some((db, table)) = tab {
                            self.apply(&db, &table, &key, put.then_some(&value[..]), false);
                            self.durable_ack();
                        }
                    }
                    Some(Err(e)) => {
                        let allowed: &[i32] = match put {
                            true => &[-408, -1026, -1010, -1310],
                            false => &[-408, -1010, -1310, -1601],
                        };
                        self.note(&format!("session put({put})"), &e, allowed);
                    }
                }
            }
            25..=32 => {
                let Some(t) = self.table() else { return };
                let key = key_pool(&mut self.rng);
                let r = self.maybe_drop(10, inst.get(t, &key)).await;
                match r {
                    None => {}
                    Some(Ok(v)) => self.check_row("get", t, &key, v.as_deref()),
                    Some(Err(e)) => self.note("get", &e, &[-408, -1010, -1310]),
                }
            }
            33..=34 => self.ranged_scan().await,
            35..=36 => {
                let Some(t) = self.table() else { return };
                match self.maybe_drop(10, inst.scan(t, KeyRange::all())).await {
                    None => {}
                    Some(Ok(rows)) => {
                        let Some((db, table)) = self.table_of(t) else {
                            return;
                        };
                        let _ = rows;
                        self.check_table("scan", &inst, &db, &table, t).await;
                    }
                    Some(Err(e)) => self.note("scan", &e, &[-1010, -1310]),
                }
            }
            37..=42 => {
                // A write batch: a few rows, or many (splits and merges of the tree).
                let mut batch = WriteBatch::new();
                let mut rows = Vec::new();
                let n = match self.rng.gen_range(0..4) {
                    0 => self.rng.gen_range(20..120),
                    _ => self.rng.gen_range(0..5),
                };
                for _ in 0..n {
                    let Some(t) = self.table() else { break };
                    let key = match n > 10 {
                        true => {
                            let len = self.rng.gen_range(1..=1024);
                            let mut k = vec![b'b'; len];
                            let i = self.rng.gen_range(0..200u32).to_be_bytes();
                            let m = len.min(4);
                            k[..m].copy_from_slice(&i[4 - m..]);
                            k
                        }
                        false => key_pool(&mut self.rng),
                    };
                    let v = match self.rng.gen_range(0..4) {
                        0 => None,
                        _ => {
                            let mut v = value_pool(&mut self.rng);
                            if v.len() > 64 * 1024 * 1024 && self.rng.gen_range(0..3) != 0 {
                                v.truncate(10);
                            }
                            Some(v)
                        }
                    };
                    match &v {
                        Some(v) => batch.put(t, &key, v),
                        None => batch.delete(t, &key),
                    };
                    rows.push((t, key, v));
                }
                let lazy = self.rng.gen_bool(0.3);
                let d = if lazy { Commit::Lazy } else { Commit::Durable };
                if trace() {
                    let r: Vec<_> = rows
                        .iter()
                        .map(|r| (r.0, r.1.len(), r.2.as_ref().map(|v| v.len())))
                        .collect();
                    eprintln!("  batch {d:?} {r:?}");
                }
                match self.maybe_drop(10, inst.write(batch, d)).await {
                    None => {
                        for (t, key, _) in rows {
                            if let Some((db, table)) = self.table_of(t) {
                                self.uncertain.insert((db, table, key));
                            }
                        }
                    }
                    Some(Ok(())) => {
                        for (t, key, v) in rows {
                            if let Some((db, table)) = self.table_of(t) {
                                self.apply(&db, &table, &key, v.as_deref(), lazy);
                            }
                        }
                        if !lazy {
                            self.durable_ack();
                        }
                    }
                    Some(Err(e)) => self.note("write batch", &e, &[-408, -1026, -1010, -1310]),
                }
            }
            43..=54 => self.tx_step().await,
            55..=84 => self.backup_step().await,
            85..=89 => {
                // backup_to_dir into a fresh folder, an existing non-empty one, or a file.
                let kind = match self.rng.gen_range(0..4) {
                    0 => BackupKind::Full,
                    1 => BackupKind::Incremental,
                    2 => BackupKind::Copy,
                    _ => BackupKind::Differential,
                };
                self.sets += 1;
                let target = match self.rng.gen_range(0..8) {
                    0 => self.dir.join("a.edb"),
                    1 => self.dir.clone(),
                    _ => self
                        .dir
                        .parent()
                        .unwrap()
                        .join(format!("set-{}", self.sets)),
                };
                let r = self.maybe_drop(8, inst.backup_to_dir(&target, kind)).await;
                if trace() {
                    eprintln!(
                        "  backup_to_dir {kind:?} {target:?}: {:?}",
                        r.as_ref().map(|r| r
                            .as_ref()
                            .map(|m| (m.gen_low, m.gen_high))
                            .map_err(|e| e.code()))
                    );
                }
                if let Some(Err(e)) = r {
                    self.note(
                        &format!("backup_to_dir {kind:?} {target:?}"),
                        &e,
                        // -569: an incremental or differential after logs were truncated
                        // by a backup that did not end normally (behaviour.md §2.3).
                        &[-1023, -504, -523, -526, -505, -560, -801, -569],
                    );
                }
            }
            90..=91 => {
                self.calls += 1;
                if let Err(e) = within(seed, "stop_backup", inst.stop_backup()).await {
                    self.note("stop_backup", &e, &[]);
                }
            }
            92 => {
                if self.rng.gen_range(0..3) == 0 {
                    self.calls += 1;
                    match within(seed, "stop_service", inst.stop_service()).await {
                        Ok(()) => self.stopped = true,
                        Err(e) => self.note("stop_service", &e, &[]),
                    }
                }
            }
            93..=95 => {
                if self.rng.gen_range(0..2) == 0 {
                    self.term_and_reopen().await;
                }
            }
            96..=97 => self.other_instance().await,
            _ => {
                // A call on a handle of a terminated instance.
                if let Some(old) = self.old.last().cloned() {
                    let r = match self.rng.gen_range(0..4) {
                        0 => within(seed, "old init", old.init()).await,
                        1 => within(seed, "old term", old.term(Term::empty())).await,
                        2 => within(seed, "old stop_backup", old.stop_backup()).await,
                        _ => {
                            within(
                                seed,
                                "old begin",
                                old.begin_external_backup(BackupBegin::empty()),
                            )
                            .await
                        }
                    };
                    self.calls += 1;
                    match r {
                        Ok(()) => self
                            .unexpected
                            .push(format!("seed {seed}: a call on a terminated handle: Ok")),
                        Err(e) if e.code() == -1115 => {}
                        Err(e) => self.note("old handle", &e, &[]),
                    }
                }
            }
        }
    }

    /// A second instance of the engine: the paths the first holds are refused, the
    /// databases it does not hold are its to use.
    async fn other_instance(&mut self) {
        let seed = self.seed;
        let root = self.dir.parent().unwrap().to_path_buf();
        let (sys, log) = match self.rng.gen_range(0..3) {
            0 => (self.dir.clone(), root.join("other")),
            1 => (root.join("other"), self.dir.clone()),
            _ => (root.join("other"), root.join("other")),
        };
        let p = params(&sys).system_path(&sys).log_path(&log);
        let other = match within(
            seed,
            "create other",
            self.engine.create_instance("other", p),
        )
        .await
        {
            Ok(i) => i,
            Err(e) => return self.note("create other", &e, &[]),
        };
        self.calls += 2;
        match within(seed, "init other", other.init()).await {
            Ok(()) => {
                let name = DBS[self.rng.gen_range(0..2)];
                let path = self.dir.join(name);
                if trace() {
                    eprintln!(
                        "  other attach {name}, first holds {:?}",
                        self.dbs.keys().collect::<Vec<_>>()
                    );
                }
                let held =
                    self.dbs.contains_key(name) || (self.terminated && self.created.contains(name));
                self.calls += 1;
                match within(seed, "other attach", other.attach_database(&path)).await {
                    Ok(_) => {
                        if held {
                            self.unexpected.push(format!(
                                "seed {seed}: a second instance attached {name}, which the first holds"
                            ));
                        }
                        let r = within(seed, "other detach", other.detach_database(&path)).await;
                        if let Err(e) = r {
                            self.note("other detach", &e, &[]);
                        }
                    }
                    Err(e) => match held {
                        true => self.note("other attach (held)", &e, &[-1215]),
                        false => self.note("other attach", &e, &[-1811, -550]),
                    },
                }
            }
            Err(e) => {
                let want = if sys == self.dir { -1083 } else { -1084 };
                self.note("init other", &e, &[want]);
            }
        }
        let g = if self.rng.gen_bool(0.5) {
            Term::empty()
        } else {
            Term::DIRTY
        };
        if let Err(e) = within(seed, "term other", other.term(g)).await {
            self.note("term other", &e, &[]);
        }
    }

    /// A scan of a random range, order and limit, compared with the model.
    async fn ranged_scan(&mut self) {
        let Some(t) = self.table() else { return };
        let lo = key_pool(&mut self.rng);
        let hi = key_pool(&mut self.rng);
        let bound = |rng: &mut StdRng, k: Vec<u8>| match rng.gen_range(0..3) {
            0 => Bound::Unbounded,
            1 => Bound::Included(k),
            _ => Bound::Excluded(k),
        };
        let lo = bound(&mut self.rng, lo);
        let hi = bound(&mut self.rng, hi);
        let limit = match self.rng.gen_range(0..3) {
            0 => usize::MAX,
            _ => self.rng.gen_range(0..6),
        };
        let reverse = self.rng.gen_bool(0.5);
        let mut range = KeyRange::new(
            lo.as_ref().map(|k| k.as_slice()),
            hi.as_ref().map(|k| k.as_slice()),
        )
        .limit(limit);
        if reverse {
            range = range.reverse();
        }
        let inst = self.inst.clone();
        let r = self.maybe_drop(10, inst.scan(t, range)).await;
        let got = match r {
            None => return,
            Some(Err(e)) => return self.note("ranged scan", &e, &[-1010, -1310, -408, -1003]),
            Some(Ok(rows)) => rows,
        };
        let Some((db, table)) = self.table_of(t) else {
            return;
        };
        if self.uncertain.iter().any(|k| k.0 == db && k.1 == table) {
            return;
        }
        let empty = BTreeMap::new();
        let m = self
            .rows
            .get(&(db.clone(), table.clone()))
            .unwrap_or(&empty);
        let mut want: Vec<(Vec<u8>, Vec<u8>)> = match range_ok(&lo, &hi) {
            true => m
                .range::<Vec<u8>, _>((lo.clone(), hi.clone()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            false => Vec::new(),
        };
        if reverse {
            want.reverse();
        }
        want.truncate(limit);
        let got: Vec<(Vec<u8>, Vec<u8>)> = got
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        if got != want {
            let line = format!(
                "seed {}: ranged scan {db}/{table} lo {:?} hi {:?} limit {limit} reverse {reverse}: model {} rows, engine {} rows",
                self.seed,
                lo.as_ref().map(|k| k.len()),
                hi.as_ref().map(|k| k.len()),
                want.len(),
                got.len()
            );
            eprintln!("{line}");
            self.unexpected.push(line);
        }
    }

    async fn tx_step(&mut self) {
        let seed = self.seed;
        let inst = self.inst.clone();
        let op = self.rng.gen_range(0..10);
        if self.txs.is_empty() || op == 0 {
            if self.txs.len() >= 3 {
                return;
            }
            self.calls += 1;
            match within(seed, "transaction", inst.transaction()).await {
                Ok(tx) => self.txs.push(Tx {
                    tx,
                    writes: Vec::new(),
                }),
                Err(e) => self.note("transaction", &e, &[-1101]),
            }
            return;
        }
        let i = self.rng.gen_range(0..self.txs.len());
        match op {
            1..=5 => {
                let Some(t) = self.table() else { return };
                let key = key_pool(&mut self.rng);
                let put = self.rng.gen_range(0..3) != 0;
                let mut value = value_pool(&mut self.rng);
                if value.len() > 1024 * 1024 && self.rng.gen_range(0..2) == 0 {
                    value.truncate(5);
                }
                let tab = self.table_of(t);
                if trace() {
                    eprintln!(
                        "  tx {i} put {put} {t:?} key {} value {}",
                        key.len(),
                        value.len()
                    );
                }
                let tx = &mut self.txs[i];
                self.calls += 1;
                let r = match put {
                    true => within(seed, "tx put", tx.tx.put(t, &key, &value)).await,
                    false => within(seed, "tx delete", tx.tx.delete(t, &key)).await,
                };
                match r {
                    Ok(()) => {
                        if let Some((db, table)) = tab {
                            tx.writes.push((db, table, key, put.then_some(value)));
                        }
                    }
                    Err(e) => {
                        let allowed: &[i32] = match put {
                            true => &[-408, -1026, -1010, -1310],
                            false => &[-408, -1010, -1310, -1601],
                        };
                        self.note(&format!("tx put({put})"), &e, allowed);
                    }
                }
            }
            6 => {
                let Some(t) = self.table() else { return };
                let key = key_pool(&mut self.rng);
                self.calls += 1;
                let tx = &mut self.txs[i];
                if let Err(e) = within(seed, "tx get", tx.tx.get(t, &key)).await {
                    self.note("tx get", &e, &[-408, -1010, -1310]);
                }
            }
            7..=8 => {
                let Tx { tx, writes } = self.txs.remove(i);
                let lazy = self.rng.gen_bool(0.3);
                let d = if lazy { Commit::Lazy } else { Commit::Durable };
                match self.maybe_drop(10, tx.commit(d)).await {
                    None => {
                        for (db, table, key, _) in writes {
                            self.uncertain.insert((db, table, key));
                        }
                    }
                    Some(Ok(())) => {
                        for (db, table, key, v) in writes {
                            self.apply(&db, &table, &key, v.as_deref(), lazy);
                        }
                        if !lazy {
                            self.durable_ack();
                        }
                    }
                    Some(Err(e)) => self.note("commit", &e, &[-1102]),
                }
            }
            _ => {
                let Tx { tx, .. } = self.txs.remove(i);
                if self.rng.gen_bool(0.5) {
                    self.calls += 1;
                    if let Err(e) = within(seed, "rollback", tx.rollback()).await {
                        self.note("rollback", &e, &[]);
                    }
                } // else dropped: rolled back
            }
        }
    }

    async fn backup_step(&mut self) {
        let seed = self.seed;
        let inst = self.inst.clone();
        match self.rng.gen_range(0..13) {
            11 | 12 => self.hand_backup().await,
            0 => {
                let g = match self.rng.gen_range(0..6) {
                    0 | 1 => BackupBegin::empty(),
                    2 | 3 => BackupBegin::INCREMENTAL,
                    4 => BackupBegin::ATOMIC,
                    _ => BackupBegin::from_bits_retain(self.rng.gen()),
                };
                let r = self.maybe_drop(10, inst.begin_external_backup(g)).await;
                if let Some(Err(e)) = r {
                    self.note(&format!("begin {g:?}"), &e, &[-523, -900, -526, -505, -560]);
                }
            }
            1 => {
                self.calls += 1;
                if let Err(e) = within(seed, "get_attach_info", inst.get_attach_info()).await {
                    self.note("get_attach_info", &e, &[-520, -801, -521]);
                }
            }
            2 | 3 => {
                let p = match self.rng.gen_range(0..9) {
                    0 => PathBuf::new(),
                    1 => self.dir.join("edb.log"),
                    2 => self.dir.join("nothing"),
                    3 => self.dir.join("../x"),
                    4 if !self.listed_logs.is_empty() => {
                        let i = self.rng.gen_range(0..self.listed_logs.len());
                        let p = self.listed_logs[i].clone();
                        match self.rng.gen_bool(0.3) {
                            true => p.parent().unwrap().join(".").join(p.file_name().unwrap()),
                            false => p,
                        }
                    }
                    5 | 6 if !self.listed_logs.is_empty() => {
                        let i = self.rng.gen_range(0..self.listed_logs.len());
                        self.listed_logs[i].clone()
                    }
                    _ => self.dir.join(DBS[self.rng.gen_range(0..2)]),
                };
                match self.maybe_drop(10, inst.open_file(&p)).await {
                    Some(Ok((f, _))) => self.handles.push(f),
                    Some(Err(e)) => self.note(
                        &format!("open_file {p:?}"),
                        &e,
                        &[-520, -801, -1003, -1011, -521, -1203, -569],
                    ),
                    None => {}
                }
            }
            4 | 5 => {
                let f = match self.handles.last() {
                    Some(&f) if self.rng.gen_range(0..4) != 0 => f,
                    _ => BackupFile::from_raw(self.rng.gen_range(0..40)),
                };
                let len = match self.rng.gen_range(0..6) {
                    0 => 0,
                    1 => 4095,
                    2 => 4096,
                    3 => 2 * 4096,
                    4 => usize::MAX - 4095,
                    _ => 64 * 4096,
                };
                let r = self.maybe_drop(10, inst.read_file(f, len)).await;
                if let Some(Err(e)) = r {
                    self.note(
                        &format!("read_file {f:?} {len}"),
                        &e,
                        &[-520, -801, -1003, -1018, -612, -569],
                    );
                }
            }
            6 => {
                let f = match self.handles.pop() {
                    Some(f) if self.rng.gen_range(0..4) != 0 => f,
                    _ => BackupFile::from_raw(self.rng.gen_range(0..40)),
                };
                self.calls += 1;
                if let Err(e) = within(seed, "close_file", inst.close_file(f)).await {
                    self.note("close_file", &e, &[-520, -1003]);
                }
            }
            7 => {
                let r = match self.rng.gen_bool(0.7) {
                    true => self
                        .maybe_drop(10, inst.get_log_info())
                        .await
                        .map(|r| r.map(|i| i.files)),
                    false => self.maybe_drop(10, inst.get_truncate_log_info()).await,
                };
                match r {
                    Some(Ok(files)) => {
                        self.listed_logs.extend(files);
                        self.listed_logs.sort();
                        self.listed_logs.dedup();
                    }
                    Some(Err(e)) => self.note("get_log_info", &e, &[-520, -801, -521, -569]),
                    None => {}
                }
            }
            8 => {
                let r = self.maybe_drop(10, inst.truncate_log()).await;
                if let Some(Err(e)) = r {
                    self.note("truncate_log", &e, &[-520, -801, -521, -616]);
                }
            }
            _ => {
                let g = match self.rng.gen_range(0..8) {
                    0..=2 => BackupEnd::NORMAL,
                    3 | 4 => BackupEnd::ABORT,
                    5 => BackupEnd::NORMAL | BackupEnd::TRUNCATE_DONE,
                    6 => BackupEnd::ABORT | BackupEnd::NORMAL,
                    _ => BackupEnd::from_bits_retain(self.rng.gen()),
                };
                let r = self.maybe_drop(10, inst.end_external_backup(g)).await;
                if let Some(Err(e)) = r {
                    self.note(&format!("end {g:?}"), &e, &[-1003, -520, -801, -800]);
                }
            }
        }
    }

    /// A whole external backup by hand, in order, cut short at a random call (the backup is
    /// then left running for the random calls that follow).
    async fn hand_backup(&mut self) {
        let seed = self.seed;
        let inst = self.inst.clone();
        let stop_at = self.rng.gen_range(0..8);
        let incremental = self.rng.gen_bool(0.3);
        let g = match incremental {
            true => BackupBegin::INCREMENTAL,
            false => BackupBegin::empty(),
        };
        self.calls += 1;
        if let Err(e) = within(seed, "hand begin", inst.begin_external_backup(g)).await {
            return self.note("hand begin", &e, &[-523, -505, -560]);
        }
        if stop_at == 0 {
            return;
        }
        let chunk = 4096 * self.rng.gen_range(3..20);
        if !incremental {
            let dbs = match within(seed, "hand attach info", inst.get_attach_info()).await {
                Ok(d) => d,
                Err(e) => return self.note("hand attach info", &e, &[-801]),
            };
            for p in dbs {
                if stop_at == 1 {
                    return;
                }
                let f = match within(seed, "hand open", inst.open_file(&p)).await {
                    Ok((f, _)) => f,
                    Err(e) => return self.note("hand open db", &e, &[-801]),
                };
                self.handles.push(f);
                loop {
                    self.calls += 1;
                    match within(seed, "hand read", inst.read_file(f, chunk)).await {
                        Ok(b) if b.is_empty() => break,
                        Ok(_) => {}
                        Err(e) => return self.note("hand read db", &e, &[-801]),
                    }
                }
                if let Err(e) = within(seed, "hand close", inst.close_file(f)).await {
                    return self.note("hand close", &e, &[]);
                }
            }
        }
        if stop_at == 2 {
            return;
        }
        let info = match within(seed, "hand log info", inst.get_log_info()).await {
            Ok(i) => i,
            Err(e) => return self.note("hand log info", &e, &[-801, -569]),
        };
        self.listed_logs.extend(info.files.iter().cloned());
        for p in &info.files {
            if stop_at == 3 {
                return;
            }
            let f = match within(seed, "hand open log", inst.open_file(p)).await {
                Ok((f, _)) => f,
                Err(e) => return self.note("hand open log", &e, &[-801]),
            };
            loop {
                self.calls += 1;
                match within(seed, "hand read log", inst.read_file(f, chunk)).await {
                    Ok(b) if b.is_empty() => break,
                    Ok(_) => {}
                    Err(e) => return self.note("hand read log", &e, &[-801]),
                }
            }
            if let Err(e) = within(seed, "hand close log", inst.close_file(f)).await {
                return self.note("hand close log", &e, &[]);
            }
        }
        if stop_at == 4 {
            return;
        }
        if self.rng.gen_bool(0.5) {
            if let Err(e) = within(seed, "hand truncate", inst.truncate_log()).await {
                return self.note("hand truncate", &e, &[-801]);
            }
        }
        if stop_at == 5 {
            return;
        }
        let end = match self.rng.gen_bool(0.8) {
            true => BackupEnd::NORMAL,
            false => BackupEnd::NORMAL | BackupEnd::TRUNCATE_DONE,
        };
        if let Err(e) = within(seed, "hand end", inst.end_external_backup(end)).await {
            self.note("hand end", &e, &[-801]);
        }
    }

    /// Terms the instance with a random grbit; on success, checks calls on the old handle and
    /// reopens an instance on the same files, whose rows must be the model's.
    async fn term_and_reopen(&mut self) {
        let seed = self.seed;
        let g = match self.rng.gen_range(0..7) {
            0 | 1 => Term::empty(),
            2 => Term::COMPLETE,
            3 => Term::ABRUPT,
            4 => Term::STOP_BACKUP,
            5 => Term::DIRTY,
            _ => Term::from_bits_retain(self.rng.gen()),
        };
        self.calls += 1;
        if trace() {
            eprintln!("  term {g:?}");
        }
        match within(seed, "term", self.inst.term(g)).await {
            Ok(()) => {}
            Err(e) => {
                if e.code() == -505 {
                    self.term_refused = true;
                }
                self.note(&format!("term {g:?}"), &e, &[-505]);
                return;
            }
        }
        self.terminated = true;
        let seed = self.seed;
        // Every call on the terminated handle is -1115.
        let old = self.inst.clone();
        for r in [
            within(seed, "get_attach_info", old.get_attach_info())
                .await
                .map(|_| ()),
            within(seed, "stop_service", old.stop_service()).await,
            within(seed, "begin_session", old.begin_session())
                .await
                .map(|_| ()),
        ] {
            match r {
                Err(e) if e.code() == -1115 => {}
                other => self
                    .unexpected
                    .push(format!("seed {seed}: after term: {other:?}, not -1115")),
            }
        }
        // A dirty term may lose what was committed lazily since the last durable commit.
        let dirty = g.contains(Term::DIRTY);
        if dirty {
            let lazy = std::mem::take(&mut self.lazy);
            self.uncertain.extend(lazy);
        }
        self.reopen().await;
    }

    async fn reopen(&mut self) {
        let seed = self.seed;
        self.txs.clear();
        self.sessions.clear();
        self.handles.clear();
        self.listed_logs.clear();
        self.stale_tables.clear();
        self.tables.clear();
        self.dbs.clear();
        self.stale_dbs.clear();
        self.old.push(self.inst.clone());
        let inst = within(
            seed,
            "create_instance",
            self.engine.create_instance("chaos", params(&self.dir)),
        )
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: create_instance after term: {e}"));
        within(seed, "init", inst.init())
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: init after term: {e}"));
        self.inst = inst.clone();
        self.terminated = false;
        self.stopped = false;
        self.term_refused = false;
        for name in self.created.clone() {
            let path = self.dir.join(&name);
            match within(seed, "attach", inst.attach_database(&path)).await {
                Ok(id) => {
                    self.dbs.insert(name.clone(), id);
                }
                Err(e) => {
                    self.unexpected
                        .push(format!("seed {seed}: attach {name} after reopen: {e}"));
                    continue;
                }
            }
        }
        self.verify_all("after reopen").await;
    }

    /// Opens every acknowledged table of the attached databases of `self.inst` and compares it
    /// with the model.
    async fn verify_all(&mut self, what: &str) {
        let seed = self.seed;
        let inst = self.inst.clone();
        for (db, table) in self.made.clone() {
            let Some(&id) = self.dbs.get(&db) else {
                continue;
            };
            match within(seed, "open_table", inst.open_table(id, &table)).await {
                Ok(t) => {
                    if !self.tables.iter().any(|x| x.2 == t) {
                        self.tables.push((db.clone(), table.clone(), t));
                    }
                    self.check_table(what, &inst, &db, &table, t).await;
                }
                Err(e) => self.unexpected.push(format!(
                    "seed {seed}: {what}: acknowledged table {db}/{table}: {e}"
                )),
            }
        }
    }

    /// The end of a case: a full backup set restored must hold the model, and so must the
    /// files after a clean term.
    async fn finish(&mut self) {
        let seed = self.seed;
        self.txs.clear();
        self.sessions.clear();
        if self.stopped || self.term_refused {
            // Only a term ends these; STOP_BACKUP ends a backup left running.
            within(seed, "term", self.inst.term(Term::STOP_BACKUP))
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: term STOP_BACKUP: {e}"));
            self.terminated = true;
            self.reopen().await;
        }
        let inst = self.inst.clone();
        // End whatever backup is running, then a full backup set.
        let _ = within(seed, "end", inst.end_external_backup(BackupEnd::ABORT)).await;
        let set = self.dir.parent().unwrap().join("final-set");
        let snapshot = self.rows.clone();
        match within(
            seed,
            "backup_to_dir",
            inst.backup_to_dir(&set, BackupKind::Full),
        )
        .await
        {
            Ok(_) => {}
            Err(e) => panic!("seed {seed}: final full backup_to_dir: {e}"),
        }
        let target = self.dir.parent().unwrap().join("restored");
        // A set without databases is no restorable chain (MissingFullBackup -560, documented).
        let restorable = !self.dbs.is_empty();
        if restorable {
            within(
                seed,
                "restore",
                restore_backup_chain(&self.engine, &[&set], &target),
            )
            .await
            .unwrap_or_else(|e| {
                let m = std::fs::read_to_string(set.join("manifest.json")).unwrap_or_default();
                panic!("seed {seed}: restore of the final set: {e}\n{m}")
            });
            let r = self
                .engine
                .create_instance("restored", params(&target.join("inst")))
                .await
                .unwrap();
            r.init().await.unwrap();
            for (db, _) in self.dbs.clone() {
                let id = match r.attach_database(target.join(&db)).await {
                    Ok(id) => id,
                    Err(e) => {
                        self.unexpected
                            .push(format!("seed {seed}: attach restored {db}: {e}"));
                        continue;
                    }
                };
                for (d, table) in self.made.clone() {
                    if d != db {
                        continue;
                    }
                    match r.open_table(id, &table).await {
                        Ok(t) => {
                            self.rows = snapshot.clone();
                            self.check_table("restored set", &r, &db, &table, t).await
                        }
                        Err(e) => self
                            .unexpected
                            .push(format!("seed {seed}: restored table {db}/{table}: {e}")),
                    }
                }
            }
            r.term(Term::empty()).await.unwrap();
        }
        // A clean term and a reopen keep every acknowledged row.
        within(seed, "term", self.inst.term(Term::empty()))
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: final clean term: {e}"));
        self.terminated = true;
        self.reopen().await;
        within(seed, "term", self.inst.term(Term::empty()))
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: last term: {e}"));
    }
}

/// Whether `BTreeMap::range` accepts the bounds (it panics on an inverted or empty-excluded
/// range; such a range holds no key).
fn range_ok(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a), Bound::Excluded(b)) | (Bound::Excluded(a), Bound::Included(b)) => {
            a < b
        }
        (Bound::Excluded(a), Bound::Excluded(b)) => a < b,
        _ => true,
    }
}

async fn run_case(seed: u64, steps: u64) -> (u64, Vec<String>) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("inst");
    std::fs::create_dir_all(&dir).unwrap();
    let engine = Engine::new();
    let inst = engine.create_instance("chaos", params(&dir)).await.unwrap();
    inst.init().await.unwrap();
    let mut c = Case {
        seed,
        rng: StdRng::seed_from_u64(seed),
        engine,
        dir: dir.clone(),
        inst: inst.clone(),
        old: Vec::new(),
        terminated: false,
        stopped: false,
        term_refused: false,
        dbs: BTreeMap::new(),
        stale_dbs: Vec::new(),
        created: BTreeSet::new(),
        tables: Vec::new(),
        stale_tables: Vec::new(),
        sessions: Vec::new(),
        txs: Vec::new(),
        rows: BTreeMap::new(),
        made: BTreeSet::new(),
        uncertain: BTreeSet::new(),
        lazy: BTreeSet::new(),
        handles: Vec::new(),
        listed_logs: Vec::new(),
        sets: 0,
        unexpected: Vec::new(),
        calls: 0,
    };
    // Start with a database and a table so that most cases write rows.
    let db = inst.create_database(dir.join("a.edb")).await.unwrap();
    c.created.insert("a.edb".into());
    c.dbs.insert("a.edb".into(), db);
    let t = inst.create_table(db, "t0").await.unwrap();
    c.made.insert(("a.edb".into(), "t0".into()));
    c.tables.push(("a.edb".into(), "t0".into(), t));
    for _ in 0..steps {
        c.step().await;
    }
    c.finish().await;
    (c.calls, c.unexpected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_calls_keep_the_contract() {
    let cases = env("RANDOM_CALLS_CASES", 6);
    let steps = env("RANDOM_CALLS_STEPS", 150);
    let first = env("RANDOM_CALLS_SEED", 0x5eed);
    let mut all = Vec::new();
    let mut calls = 0;
    for i in 0..cases {
        let seed = first + i;
        let h = tokio::spawn(run_case(seed, steps));
        match h.await {
            Ok((n, found)) => {
                calls += n;
                all.extend(found);
            }
            Err(e) => panic!("seed {seed}: the case panicked: {e}"),
        }
    }
    eprintln!("random_calls: {cases} cases, {calls} calls");
    assert!(
        all.is_empty(),
        "{} findings:\n{}",
        all.len(),
        all.join("\n")
    );
}
