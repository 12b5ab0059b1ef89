//! Helpers for tests that go through the actor runtime.
#![allow(dead_code)]

mod faulty;
mod gated;
pub mod remote;
mod sets;
mod writer;
#[allow(unused_imports)]
pub use faulty::{Fault, FaultyStore, Req};
#[allow(unused_imports)]
pub use gated::{GatedStorage, Latch};
#[allow(unused_imports)]
pub use sets::{
    archived_logs, assert_logs_kept, copy_with_logs, instance_on, instance_with, tree, with_rolls,
    PauseAt,
};
#[allow(unused_imports)]
pub use writer::{check_prefix, spawn_writer, writer_source, Writer};

use std::path::{Path, PathBuf};

use bytes::Bytes;
use ese_actors::{BackupBegin, BackupEnd, Engine, Instance, InstanceParams, TableId};

pub const PAGE: usize = 4096;

pub fn params(dir: &Path) -> InstanceParams {
    InstanceParams::new(dir)
        .log_file_size(128 * 1024)
        .page_size(PAGE as u32)
        .cache_pages(256)
}

pub fn code<T: std::fmt::Debug>(r: ese::Result<T>) -> i32 {
    r.expect_err("expected an error").code()
}

/// An initialised instance with database `db.edb` holding table "t" and `rows` rows: the
/// instance, the table (its database is `t.db()`) and the database's path.
pub async fn instance_with_data(
    engine: &Engine,
    name: &str,
    dir: &Path,
    rows: u32,
) -> (Instance, TableId, PathBuf) {
    sets::instance_on(engine, ese::io::os(), name, dir, rows).await
}

/// Rows `k{i:06}` of `range` (200 bytes of `i % 251`) into table `t`, 20 to a durable
/// transaction.
pub async fn put_rows(inst: &Instance, t: TableId, range: std::ops::Range<u32>) {
    let mut s = inst.begin_session().await.unwrap();
    for chunk in range.collect::<Vec<_>>().chunks(20) {
        let mut tx = s.transaction().await.unwrap();
        for i in chunk {
            tx.put(t, format!("k{i:06}").as_bytes(), &[(*i % 251) as u8; 200])
                .await
                .unwrap();
        }
        tx.commit(ese::Commit::Durable).await.unwrap();
    }
}

/// The rows of table "t" in the database file `db`, attached by an instance of its own whose
/// files go in `scratch` (named after that folder, so that each probe's name is its own).
pub async fn rows_in(engine: &Engine, db: &Path, scratch: &Path) -> usize {
    let name = scratch.file_name().unwrap().to_str().unwrap();
    let inst = engine.create_instance(name, params(scratch)).await.unwrap();
    inst.init().await.unwrap();
    let db = inst.attach_database(db).await.unwrap();
    let t = inst.open_table(db, "t").await.unwrap();
    let rows = inst
        .scan(t, ese_actors::KeyRange::all())
        .await
        .unwrap()
        .len();
    inst.term(ese::Term::empty()).await.unwrap();
    rows
}

/// Writes rows (100 to a batch, keys from `first` on) until the log has rolled `rolls`
/// times; returns the next unused key.
pub async fn roll_logs(inst: &Instance, t: TableId, rolls: u32, first: u32) -> u32 {
    let mut next = first;
    for _ in 0..rolls {
        let gen = inst.instance_info().await.unwrap().current_gen;
        while inst.instance_info().await.unwrap().current_gen == gen {
            put_rows(inst, t, next..next + 100).await;
            next += 100;
        }
    }
    next
}

/// Reads a whole open file in chunks of `chunk` bytes.
pub async fn read_all(inst: &Instance, f: ese_actors::BackupFile, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b: Bytes = inst.read_file(f, chunk).await.unwrap();
        if b.is_empty() {
            return out;
        }
        out.extend_from_slice(&b);
    }
}

/// A whole backup sequence by hand. Returns the database images and the log files.
pub async fn run_backup(
    inst: &Instance,
    incremental: bool,
    truncate: bool,
) -> (Vec<Vec<u8>>, Vec<(PathBuf, Vec<u8>)>) {
    let grbit = if incremental {
        BackupBegin::INCREMENTAL
    } else {
        BackupBegin::empty()
    };
    inst.begin_external_backup(grbit).await.unwrap();
    let mut images = Vec::new();
    if !incremental {
        for p in inst.get_attach_info().await.unwrap() {
            let (f, size) = inst.open_file(&p).await.unwrap();
            let img = read_all(inst, f, 64 * 1024).await;
            assert_eq!(img.len() as u64, size);
            inst.close_file(f).await.unwrap();
            images.push(img);
        }
    }
    let info = inst.get_log_info().await.unwrap();
    let mut logs = Vec::new();
    for p in &info.files {
        let (f, _) = inst.open_file(p).await.unwrap();
        let bytes = read_all(inst, f, 256 * 1024).await;
        inst.close_file(f).await.unwrap();
        logs.push((p.clone(), bytes));
    }
    if truncate {
        inst.truncate_log().await.unwrap();
    }
    inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    (images, logs)
}

/// Rewrites the manifest at `path` with `edit` applied to its JSON, sealed again with a
/// digest that matches: what a hostile or buggy writer can produce, so the checks behind
/// the digest are still tested.
pub fn edit_manifest(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    let mut m: ese_actors::BackupManifest = serde_json::from_value(v).unwrap();
    m.seal().unwrap();
    std::fs::write(path, m.to_json().unwrap()).unwrap();
}

/// Copies a backup set (`databases/`, `logs/`, `manifest.json`) to `to`.
pub fn copy_set(from: &Path, to: &Path) {
    for sub in ["databases", "logs"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, to.join(sub).join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(from.join("manifest.json"), to.join("manifest.json")).unwrap();
}
