//! Damaged backup sets are refused by restore with the error behaviour.md names for that damage, leave
//! nothing that a later attach would accept silently, and never panic. Also spec checks, mode
//! checks, and map targets that escape.

use crate::support;

use std::path::{Path, PathBuf};

use ese_actors::{BackupKind, BackupManifest, Engine, RestoreSpec, Term};
use support::actor::*;

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn spec(set: &Path, m: &BackupManifest) -> RestoreSpec {
    RestoreSpec {
        checkpoint_dir: set.to_path_buf(),
        log_dir: set.join("logs"),
        backup_log_dir: set.join("logs"),
        gen_low: m.gen_low,
        gen_high: m.gen_high,
        base_name: m.base_name.clone(),
        restore_map: vec![(
            m.databases[0].original_path.clone(),
            set.join(&m.databases[0].file),
        )],
        stop_at: None,
    }
}

/// A later attach must not accept the database silently.
async fn assert_not_attachable(engine: &Engine, db: &Path, scratch: &Path) {
    if !db.exists() {
        return;
    }
    let i = engine
        .create_instance("probe", params(scratch))
        .await
        .unwrap();
    i.init().await.unwrap();
    let r = i.attach_database(db).await;
    assert!(
        r.is_err(),
        "a damaged restore left {} attachable",
        db.display()
    );
    i.term(Term::empty()).await.unwrap();
}

type Damage = Box<dyn Fn(&Path, &mut RestoreSpec)>;

#[tokio::test]
async fn each_damage_has_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let gated = GatedStorage::new(ese::io::os());
    let (inst, t, _) = instance_on(&engine, gated.storage(), "a", &dir.path().join("a"), 500).await;
    let good = dir.path().join("good");
    let m = copy_with_logs(&inst, &gated, t, &good, 3).await;
    inst.term(Term::empty()).await.unwrap();
    let gated = GatedStorage::new(ese::io::os());
    let (other, t, _) =
        instance_on(&engine, gated.storage(), "b", &dir.path().join("b"), 500).await;
    let foreign = dir.path().join("foreign");
    let fm = copy_with_logs(&other, &gated, t, &foreign, 2).await;
    other.term(Term::empty()).await.unwrap();

    let db = m.databases[0].file.clone();
    let dbsize = m.databases[0].size as usize;
    let l0 = m.logs[0].file.clone();
    let l1 = m.logs[1].file.clone();
    let foreign_log = foreign.join(&fm.logs[1].file);
    let cases: Vec<(&str, Damage, i32)> = vec![
        (
            "database header bit",
            Box::new({
                let f = db.clone();
                move |d: &Path, _: &mut RestoreSpec| flip(&d.join(&f), 70)
            }),
            -1206,
        ),
        (
            "database page bit",
            Box::new({
                let f = db.clone();
                move |d: &Path, _: &mut RestoreSpec| flip(&d.join(&f), 4 * PAGE + 500)
            }),
            -1206,
        ),
        (
            "trailer bit",
            Box::new({
                let f = db.clone();
                move |d: &Path, _: &mut RestoreSpec| flip(&d.join(&f), dbsize - PAGE + 40)
            }),
            -552,
        ),
        (
            "database truncated",
            Box::new({
                let f = db.clone();
                move |d: &Path, _: &mut RestoreSpec| {
                    truncate(&d.join(&f), (dbsize - 2 * PAGE) as u64)
                }
            }),
            -552,
        ),
        (
            "database cut to nothing",
            Box::new({
                let f = db.clone();
                move |d: &Path, _: &mut RestoreSpec| truncate(&d.join(&f), 0)
            }),
            -1206,
        ),
        (
            "log header bit",
            Box::new({
                let f = l1.clone();
                move |d: &Path, _: &mut RestoreSpec| flip(&d.join(&f), 30)
            }),
            -501,
        ),
        (
            "log record bit",
            Box::new({
                let f = l1.clone();
                // The first record's durable mark, which its checksum covers.
                move |d: &Path, _: &mut RestoreSpec| flip(&d.join(&f), 4096 + 16)
            }),
            -501,
        ),
        (
            "log truncated",
            Box::new({
                let f = l1.clone();
                move |d: &Path, _: &mut RestoreSpec| truncate(&d.join(&f), 9000)
            }),
            -501,
        ),
        (
            "log dropped",
            Box::new({
                let f = l1.clone();
                move |d: &Path, _: &mut RestoreSpec| std::fs::remove_file(d.join(&f)).unwrap()
            }),
            -557,
        ),
        (
            "first log dropped",
            Box::new({
                let f = l0.clone();
                move |d: &Path, _: &mut RestoreSpec| std::fs::remove_file(d.join(&f)).unwrap()
            }),
            -1811,
        ),
        (
            "log of another instance",
            Box::new({
                let f = l1.clone();
                move |d: &Path, _: &mut RestoreSpec| {
                    std::fs::copy(&foreign_log, d.join(&f)).unwrap();
                }
            }),
            -555,
        ),
        (
            "logs reordered",
            Box::new({
                let (a, b) = (l0.clone(), l1.clone());
                move |d: &Path, _: &mut RestoreSpec| {
                    let t = d.join("t");
                    std::fs::rename(d.join(&a), &t).unwrap();
                    std::fs::rename(d.join(&b), d.join(&a)).unwrap();
                    std::fs::rename(&t, d.join(&b)).unwrap();
                }
            }),
            -556,
        ),
        (
            "range starts too late",
            Box::new(|_: &Path, s: &mut RestoreSpec| s.gen_low += 1),
            -554,
        ),
        (
            "range ends too early",
            Box::new(|_: &Path, s: &mut RestoreSpec| s.gen_high -= 1),
            -553,
        ),
        (
            "not a backup copy",
            Box::new({
                let f = db.clone();
                let live = dir.path().join("a").join("db.edb");
                move |d: &Path, _: &mut RestoreSpec| {
                    std::fs::copy(&live, d.join(&f)).unwrap();
                }
            }),
            -615,
        ),
        (
            "not a database",
            Box::new({
                let f = db.clone();
                move |d: &Path, _: &mut RestoreSpec| {
                    std::fs::write(d.join(&f), vec![0xA5u8; 3 * PAGE]).unwrap()
                }
            }),
            -1206,
        ),
        (
            "gen_low above gen_high",
            Box::new(|_: &Path, s: &mut RestoreSpec| s.gen_low = s.gen_high + 1),
            -1003,
        ),
        (
            "bad base name",
            Box::new(|_: &Path, s: &mut RestoreSpec| s.base_name = "edbx".into()),
            -1003,
        ),
        (
            "empty map entry",
            Box::new(|_: &Path, s: &mut RestoreSpec| s.restore_map[0].1 = PathBuf::new()),
            -1003,
        ),
        (
            "too many map entries",
            Box::new(|_: &Path, s: &mut RestoreSpec| {
                let e = s.restore_map[0].clone();
                s.restore_map = vec![e; 15];
            }),
            -1003,
        ),
    ];
    for (i, (what, damage, want)) in cases.iter().enumerate() {
        let d = dir.path().join(format!("case{i}"));
        copy_set(&good, &d);
        let mut s = spec(&d, &m);
        damage(&d, &mut s);
        let got = engine
            .external_restore(s)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: restored"))
            .code();
        assert_eq!(got, *want, "{what}");
        // A plain database that was never streamed is the host's own file: restore refused it
        // and left it as it was. Every other refused file must not be attachable.
        if *want != -615 {
            assert_not_attachable(&engine, &d.join(&db), &d.join("probe")).await;
        }
    }
    // And the undamaged set restores.
    let d = dir.path().join("ok");
    copy_set(&good, &d);
    engine.external_restore(spec(&d, &m)).await.unwrap();
}

#[tokio::test]
async fn a_map_target_that_escapes_is_invalid_path_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "a", &dir.path().join("a"), 100).await;
    let set = dir.path().join("set");
    let m = inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let mut s = spec(&set, &m);
    let escape = target.join("..").join("escaped.edb");
    s.restore_map = vec![(m.databases[0].original_path.clone(), escape.clone())];
    assert_eq!(engine.external_restore(s).await.unwrap_err().code(), -1023);
    assert!(!dir.path().join("escaped.edb").exists());
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!before.iter().any(|n| n == "escaped.edb"));
}

#[tokio::test]
async fn restore_in_one_instance_mode_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let l = engine.init_legacy(params(dir.path())).await.unwrap();
    let s = RestoreSpec {
        checkpoint_dir: dir.path().into(),
        log_dir: dir.path().into(),
        backup_log_dir: dir.path().into(),
        gen_low: 1,
        gen_high: 1,
        base_name: "edb".into(),
        restore_map: vec![("a".into(), "b".into())],
        stop_at: None,
    };
    assert_eq!(engine.external_restore(s).await.unwrap_err().code(), -1080);
    l.term(Term::empty()).await.unwrap();
}
