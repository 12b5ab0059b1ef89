//! Helpers shared by the CLI's test binaries: running `ese`, making an instance directory
//! with rows, reading a restored database back.
#![allow(dead_code)]

pub mod proxy;
pub mod serve;

use std::path::Path;
use std::process::{Command, Output};

use ese_actors::{Commit, Engine, InstanceParams, KeyRange, Term};

/// Runs `ese` with `args`.
pub fn ese(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ese"))
        .args(args)
        .output()
        .expect("run ese")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `ese` with `args` and the environment `env`.
pub fn ese_env(args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ese"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run ese")
}

/// Makes an instance directory with a database holding `n` rows; returns the rows.
pub fn make_instance(dir: &Path, n: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    make_instance_sized(dir, n, 0)
}

/// [`make_instance`] with each value padded to at least `value_len` bytes (a database of
/// about `n * value_len * 2` bytes, for streams that must take a while).
pub fn make_instance_sized(dir: &Path, n: u32, value_len: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::new();
        let inst = engine
            .create_instance("t", InstanceParams::new(dir).log_file_size(256 * 1024))
            .await
            .unwrap();
        inst.init().await.unwrap();
        let db = inst.create_database(dir.join("data.edb")).await.unwrap();
        let t = inst.create_table(db, "t").await.unwrap();
        let mut s = inst.begin_session().await.unwrap();
        // A transaction per 1000 rows: a big database need not be one huge transaction.
        for first in (0..n).step_by(1000) {
            let mut tx = s.transaction().await.unwrap();
            for i in first..(first + 1000).min(n) {
                let mut v = format!("value {i}").into_bytes();
                v.resize(v.len().max(value_len), b'.');
                tx.put(t, format!("k{i:05}").as_bytes(), &v).await.unwrap();
            }
            tx.commit(Commit::Durable).await.unwrap();
        }
        let rows = s
            .scan(t, KeyRange::all())
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        drop(s);
        inst.term(Term::DIRTY).await.unwrap();
        rows
    })
}

pub fn read_rows(db: &Path, scratch: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::new();
        let inst = engine
            .create_instance("r", InstanceParams::new(scratch))
            .await
            .unwrap();
        inst.init().await.unwrap();
        let id = inst.attach_database(db).await.unwrap();
        let t = inst.open_table(id, "t").await.unwrap();
        let s = inst.begin_session().await.unwrap();
        let rows = s
            .scan(t, KeyRange::all())
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        drop(s);
        inst.term(Term::empty()).await.unwrap();
        rows
    })
}

/// The one set a backup wrote into the folder target `repo`.
pub fn only_set(repo: &Path) -> std::path::PathBuf {
    let sets: Vec<_> = std::fs::read_dir(repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sets.len(), 1, "{sets:?}");
    sets[0].clone()
}

/// Makes an instance directory whose database holds about `mib` MiB of rows that do not
/// compress to nothing, in transactions of 500 rows.
pub fn make_big_instance(dir: &Path, mib: u32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::new();
        let inst = engine
            .create_instance("t", InstanceParams::new(dir).log_file_size(1 << 20))
            .await
            .unwrap();
        inst.init().await.unwrap();
        let db = inst.create_database(dir.join("data.edb")).await.unwrap();
        let t = inst.create_table(db, "t").await.unwrap();
        let mut s = inst.begin_session().await.unwrap();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for chunk in (0..mib * 1024).collect::<Vec<_>>().chunks(500) {
            let mut tx = s.transaction().await.unwrap();
            for i in chunk {
                let v: Vec<u8> = (0..900)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x % 13) as u8
                    })
                    .collect();
                tx.put(t, format!("k{i:08}").as_bytes(), &v).await.unwrap();
            }
            tx.commit(Commit::Lazy).await.unwrap();
        }
        let mut tx = s.transaction().await.unwrap();
        tx.put(t, b"~end", b"end").await.unwrap();
        tx.commit(Commit::Durable).await.unwrap();
        drop(s);
        inst.term(Term::empty()).await.unwrap();
    })
}
