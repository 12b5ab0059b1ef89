//! Chains of every kind (behaviour.md §2.7, §3.1): a compressed full set, incrementals,
//! a differential after an incremental, incrementals with no commit between them. Each chain
//! restores to every row committed before its last set; a stop at a set's last generation
//! gives that set's rows; a damaged compressed file is refused with its error.

use crate::support;

use std::path::{Path, PathBuf};

use ese_actors::{
    restore_backup_chain, restore_backup_chain_to, verify_backup_set, BackupKind, BackupManifest,
    BackupOptions, Engine, Instance, StopAt, Term,
};
use support::actor::*;

async fn set(inst: &Instance, dir: &Path, kind: BackupKind, compress: bool) -> BackupManifest {
    let options = BackupOptions {
        max_rate: None,
        chunk_size: None,
        compress: compress.then_some(3),
    };
    inst.start_backup(dir, kind, options)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_of_every_kind_restore_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let p = |n: &str| dir.path().join(n);
    set(&inst, &p("f"), BackupKind::Full, true).await;
    put_rows(&inst, t, 100..300).await;
    let i1 = set(&inst, &p("i1"), BackupKind::Incremental, false).await;
    put_rows(&inst, t, 300..500).await;
    let d = set(&inst, &p("d"), BackupKind::Differential, true).await;
    assert_eq!(d.parent_id.as_deref(), Some(i1.id.as_str()));
    let i2 = set(&inst, &p("i2"), BackupKind::Incremental, true).await;
    let i3 = set(&inst, &p("i3"), BackupKind::Incremental, false).await;
    put_rows(&inst, t, 500..520).await;
    inst.term(Term::empty()).await.unwrap();

    let chains: [(&str, &[&str], usize); 5] = [
        ("f", &["f"], 100),
        ("f-i1", &["f", "i1"], 300),
        ("f-i1-d", &["f", "i1", "d"], 500),
        ("f-i1-i2", &["f", "i1", "i2"], 500),
        ("f-i1-i2-i3", &["f", "i1", "i2", "i3"], 500),
    ];
    for (name, sets, rows) in chains {
        let sets: Vec<PathBuf> = sets.iter().map(|s| p(s)).collect();
        for s in &sets {
            verify_backup_set(s).unwrap();
        }
        let target = p(&format!("r-{name}"));
        let r = restore_backup_chain(&engine, &sets, &target)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = rows_in(&engine, &r.databases[0].1, &target.join("probe")).await;
        assert_eq!(got, rows, "{name}");
    }
    // A stop at the first incremental's last generation, through a longer chain.
    let target = p("r-stop");
    let sets: Vec<PathBuf> = ["f", "i1", "i2", "i3"].iter().map(|s| p(s)).collect();
    let r = restore_backup_chain_to(
        &engine,
        &sets,
        &target,
        Some(StopAt::Generation(i1.gen_high)),
    )
    .await
    .unwrap();
    assert_eq!(
        rows_in(&engine, &r.databases[0].1, &target.join("probe")).await,
        300
    );
    let _ = i2;
    let _ = i3;
}

/// Flips one bit of `file` at `at` (its middle when negative).
fn flip(file: &Path, at: i64) {
    let mut b = std::fs::read(file).unwrap();
    let i = if at < 0 { b.len() / 2 } else { at as usize };
    b[i] ^= 0x10;
    std::fs::write(file, b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_compressed_file_is_refused_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 100).await;
    let p = |n: &str| dir.path().join(n);
    let f = set(&inst, &p("f"), BackupKind::Full, true).await;
    put_rows(&inst, t, 100..300).await;
    let i = set(&inst, &p("i"), BackupKind::Incremental, true).await;
    inst.term(Term::empty()).await.unwrap();
    let cases: Vec<(&str, PathBuf, i64, i32)> = vec![
        (
            "image middle",
            p("f").join(&f.databases[0].file),
            -200,
            -1206,
        ),
        ("image start", p("f").join(&f.databases[0].file), 20, -1206),
        (
            "log middle",
            p("i").join(&i.logs.last().unwrap().file),
            -100,
            -501,
        ),
        (
            "log start",
            p("i").join(&i.logs.last().unwrap().file),
            30,
            -501,
        ),
    ];
    for (n, (what, file, at, want)) in cases.into_iter().enumerate() {
        let copy = p(&format!("c{n}"));
        let (from, m) = if file.starts_with(p("f")) {
            ("f", &f)
        } else {
            ("i", &i)
        };
        copy_set(&p(from), &copy);
        let rel = file.strip_prefix(p(from)).unwrap();
        flip(&copy.join(rel), at);
        let e = verify_backup_set(&copy).unwrap_err();
        assert_eq!(e.code(), want, "verify, {what}: {e}");
        let sets = match from {
            "f" => vec![copy.clone(), p("i")],
            _ => vec![p("f"), copy.clone()],
        };
        let e = restore_backup_chain(&engine, &sets, p(&format!("r{n}")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), want, "restore, {what}: {e}");
        let _ = m;
    }
}

/// A hostile manifest whose logs end at the last generation there is: the chain checks
/// answer with an error, never a panic (behaviour.md §3.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_at_the_last_generation_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 10).await;
    let p = |n: &str| dir.path().join(n);
    set(&inst, &p("f"), BackupKind::Full, false).await;
    put_rows(&inst, t, 10..20).await;
    set(&inst, &p("i"), BackupKind::Incremental, false).await;
    inst.term(Term::empty()).await.unwrap();
    edit_manifest(&p("f").join("manifest.json"), |v| {
        v["gen_low"] = u32::MAX.into();
        v["gen_high"] = u32::MAX.into();
        let mut log = v["logs"][0].clone();
        log["gen"] = u32::MAX.into();
        log["file"] = "logs/edbFFFFFFFF.log".into();
        v["logs"] = serde_json::Value::Array(vec![log]);
    });
    // The log it names is not there: the first log missing.
    assert_eq!(verify_backup_set(p("f")).unwrap_err().code(), -1811);
    let sets = [p("f"), p("i")];
    let e = restore_backup_chain(&engine, &sets, p("r"))
        .await
        .expect_err("a chain whose full set ends at the last generation");
    assert_eq!(e.code(), -556, "{e}");
}

/// A hostile manifest naming a set's folder itself as a file: refused as a name outside the
/// set's files (`InvalidPath` -1023), never read as a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_naming_a_folder_as_a_file_is_invalid_path() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 10).await;
    let p = |n: &str| dir.path().join(n);
    set(&inst, &p("f"), BackupKind::Full, false).await;
    inst.term(Term::empty()).await.unwrap();
    for (n, (field, name)) in [("databases", "databases"), ("logs", "logs")]
        .into_iter()
        .enumerate()
    {
        let bad = p(&format!("bad{n}"));
        copy_set(&p("f"), &bad);
        edit_manifest(&bad.join("manifest.json"), |v| {
            v[field][0]["file"] = name.into();
        });
        let e = verify_backup_set(&bad).unwrap_err();
        assert_eq!(e.code(), -1023, "verify, {field}: {e}");
        let e = restore_backup_chain(&engine, &[&bad], p(&format!("r{n}")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), -1023, "restore, {field}: {e}");
    }
}

/// What each kind truncates (behaviour.md §2.3, §2.7): a copy and a differential nothing;
/// a full or an incremental only logs its chain holds. Every log gone from the source is in
/// a set of the chain, and every chain restores every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_a_backup_truncates_lives_in_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let src = dir.path().join("src");
    let (inst, t, _) = instance_with_data(&engine, "src", &src, 100).await;
    let p = |n: &str| dir.path().join(n);
    let os = ese::io::os();
    let name = |l: &PathBuf| l.file_name().unwrap().to_os_string();
    let mut next = 1000;
    let mut held: std::collections::BTreeSet<std::ffi::OsString> = Default::default();
    let mut full_low = 0;
    let steps = [
        ("f", BackupKind::Full),
        ("c", BackupKind::Copy),
        ("d1", BackupKind::Differential),
        ("i1", BackupKind::Incremental),
        ("d2", BackupKind::Differential),
        ("i2", BackupKind::Incremental),
        ("i3", BackupKind::Incremental),
    ];
    for (s, kind) in steps {
        next = roll_logs(&inst, t, 2, next).await;
        let before = archived_logs(&*os, &src);
        let m = set(&inst, &p(s), kind, s == "i2").await;
        let after = archived_logs(&*os, &src);
        if matches!(kind, BackupKind::Copy | BackupKind::Differential) {
            assert_logs_kept(&before, &after, s);
        } else {
            held.extend(m.logs.iter().map(|l| name(&l.file)));
        }
        if s == "f" {
            full_low = m.gen_low;
        }
        for gone in before.difference(&after) {
            let stem = gone.file_stem().unwrap().to_str().unwrap();
            let gen = u32::from_str_radix(&stem[3..], 16).unwrap();
            // Below the full's first log: its image holds what they changed.
            assert!(
                gen < full_low || held.contains(&name(gone)),
                "{s}: {} left the source, and no set of the chain holds it",
                gone.display()
            );
        }
    }
    inst.term(Term::empty()).await.unwrap();
    let rows = 100 + (next - 1000) as usize;
    for (n, chain) in [
        vec!["f", "i1", "i2", "i3"],
        vec!["f", "d1"],
        vec!["f", "i1", "d2"],
        vec!["c", "i1", "i2"],
    ]
    .into_iter()
    .enumerate()
    {
        let sets: Vec<PathBuf> = chain.iter().map(|s| p(s)).collect();
        let target = p(&format!("r{n}"));
        let r = restore_backup_chain(&engine, &sets, &target)
            .await
            .unwrap_or_else(|e| panic!("{chain:?}: {e}"));
        let got = rows_in(&engine, &r.databases[0].1, &target.join("probe")).await;
        if n == 0 {
            assert_eq!(got, rows, "{chain:?}");
        } else {
            assert!(got > 100, "{chain:?}: {got} rows");
        }
    }
}
