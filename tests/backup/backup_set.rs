//! `backup_to_dir` and `verify_backup_set`: a set with its manifest, chains of ids, and
//! damage found without restoring.

use crate::support;

use std::path::Path;

use ese_actors::{verify_backup_set, BackupKind, Engine, Term};
use support::actor::*;

/// Something done to a copy of a good set.
type Damage = Box<dyn Fn(&Path)>;

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x08;
    std::fs::write(path, b).unwrap();
}

#[tokio::test]
async fn full_then_incremental_sets_chain_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let sets = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "i", &dir.path().join("inst"), 400).await;
    let full = inst
        .backup_to_dir(sets.path().join("full"), BackupKind::Full)
        .await
        .unwrap();
    assert_eq!(full.kind, BackupKind::Full);
    assert_eq!(full.databases.len(), 1);
    assert_eq!(full.logs.len() as u32, full.gen_high - full.gen_low + 1);
    assert_eq!(full.parent_id, None);
    let r = verify_backup_set(sets.path().join("full")).unwrap();
    assert!(r.pages > 10 && r.logs == full.logs.len());

    put_rows(&inst, t, 400..800).await;
    let inc = inst
        .backup_to_dir(sets.path().join("inc"), BackupKind::Incremental)
        .await
        .unwrap();
    assert_eq!(inc.parent_id.as_deref(), Some(full.id.as_str()));
    assert!(inc.databases.is_empty());
    assert!(inc.gen_low <= full.gen_high + 1 && inc.gen_high > full.gen_high);
    verify_backup_set(sets.path().join("inc")).unwrap();

    put_rows(&inst, t, 800..900).await;
    let inc2 = inst
        .backup_to_dir(sets.path().join("inc2"), BackupKind::Incremental)
        .await
        .unwrap();
    assert_eq!(inc2.parent_id.as_deref(), Some(inc.id.as_str()));

    let copy = inst
        .backup_to_dir(sets.path().join("copy"), BackupKind::Copy)
        .await
        .unwrap();
    assert_eq!(copy.parent_id, None);
    let diff = inst
        .backup_to_dir(sets.path().join("diff"), BackupKind::Differential)
        .await
        .unwrap();
    assert_eq!(diff.parent_id.as_deref(), Some(inc2.id.as_str()));
    verify_backup_set(sets.path().join("diff")).unwrap();

    assert_eq!(
        code(
            inst.backup_to_dir(sets.path().join("full"), BackupKind::Full)
                .await
        ),
        -504
    );
    // A failed sequence leaves no backup running.
    inst.begin_external_backup(ese_actors::BackupBegin::empty())
        .await
        .unwrap();
    inst.end_external_backup(ese_actors::BackupEnd::ABORT)
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn verify_finds_damage_with_the_specific_error() {
    let dir = tempfile::tempdir().unwrap();
    let sets = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let gated = GatedStorage::new(ese::io::os());
    let (inst, t, _) = instance_on(&engine, gated.storage(), "i", &dir.path().join("a"), 400).await;
    let good = sets.path().join("good");
    let m = copy_with_logs(&inst, &gated, t, &good, 2).await;
    inst.term(Term::empty()).await.unwrap();
    let (other, _, _) = instance_with_data(&engine, "o", &dir.path().join("b"), 400).await;
    let foreign = sets.path().join("foreign");
    let fm = other
        .backup_to_dir(&foreign, BackupKind::Copy)
        .await
        .unwrap();
    other.term(Term::empty()).await.unwrap();

    let db_file = m.databases[0].file.clone();
    let size = m.databases[0].size as usize;
    let log1 = m.logs[1].file.clone();
    let cases: Vec<(&str, Damage, i32)> = vec![
        (
            "db header",
            Box::new(move |d: &Path| {
                flip(&d.join(&db_file), 60);
            }),
            -1206,
        ),
        (
            "db page",
            Box::new({
                let f = m.databases[0].file.clone();
                move |d: &Path| flip(&d.join(&f), 3 * PAGE + 200)
            }),
            -1206,
        ),
        (
            "trailer",
            Box::new({
                let f = m.databases[0].file.clone();
                move |d: &Path| flip(&d.join(&f), size - PAGE + 30)
            }),
            -552,
        ),
        (
            "db truncated",
            Box::new({
                let f = m.databases[0].file.clone();
                move |d: &Path| {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(d.join(&f))
                        .unwrap();
                    file.set_len((size - PAGE) as u64).unwrap();
                }
            }),
            -552,
        ),
        (
            "log header",
            Box::new({
                let f = log1.clone();
                move |d: &Path| flip(&d.join(&f), 20)
            }),
            -501,
        ),
        (
            "log record",
            Box::new({
                let f = log1.clone();
                // The first record's durable mark, which its checksum covers.
                move |d: &Path| flip(&d.join(&f), 4096 + 16)
            }),
            -501,
        ),
        (
            "log truncated",
            Box::new({
                let f = log1.clone();
                move |d: &Path| {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(d.join(&f))
                        .unwrap();
                    file.set_len(50_000).unwrap();
                }
            }),
            -501,
        ),
        (
            "log dropped",
            Box::new({
                let f = log1.clone();
                move |d: &Path| std::fs::remove_file(d.join(&f)).unwrap()
            }),
            -557,
        ),
        (
            "first log dropped",
            Box::new({
                let f = m.logs[0].file.clone();
                move |d: &Path| std::fs::remove_file(d.join(&f)).unwrap()
            }),
            -1811,
        ),
        (
            "log of another instance",
            Box::new({
                let f = log1.clone();
                let src = foreign.join(&fm.logs[0].file);
                move |d: &Path| {
                    std::fs::copy(&src, d.join(&f)).unwrap();
                }
            }),
            -555,
        ),
        (
            "logs reordered",
            Box::new({
                let a = m.logs[0].file.clone();
                let b = log1.clone();
                move |d: &Path| {
                    let tmp = d.join("swap");
                    std::fs::rename(d.join(&a), &tmp).unwrap();
                    std::fs::rename(d.join(&b), d.join(&a)).unwrap();
                    std::fs::rename(&tmp, d.join(&b)).unwrap();
                }
            }),
            -556,
        ),
        (
            "manifest garbage",
            Box::new(|d: &Path| std::fs::write(d.join("manifest.json"), "{ not json").unwrap()),
            -526,
        ),
    ];
    for (i, (what, damage, want)) in cases.iter().enumerate() {
        let d = sets.path().join(format!("case{i}"));
        copy_set(&good, &d);
        verify_backup_set(&d).unwrap();
        damage(&d);
        let got = verify_backup_set(&d).map(|_| ()).unwrap_err().code();
        assert_eq!(got, *want, "{what}");
    }
}

/// Errors of set verification name the file and what is wrong with it (issue 11.8): the
/// expected and found size or checksum, an empty or missing manifest, the page that fails.
#[tokio::test]
async fn verify_errors_name_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let sets = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", &dir.path().join("a"), 400).await;
    let good = sets.path().join("good");
    let m = inst.backup_to_dir(&good, BackupKind::Copy).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
    let image = m.databases[0].file.clone();
    let log = m.logs[0].file.clone();
    let (log_size, image_crc) = (m.logs[0].size, m.databases[0].crc32c.clone());
    let cases: Vec<(&str, Damage, i32, Vec<String>)> = vec![
        (
            "shadow header (only the checksum sees it)",
            Box::new({
                let f = image.clone();
                move |d: &Path| flip(&d.join(&f), PAGE + 100)
            }),
            -1206,
            vec![
                image.display().to_string(),
                format!("expected crc32c {image_crc}, found "),
            ],
        ),
        (
            "size in the manifest",
            Box::new(|d: &Path| {
                edit_manifest(&d.join("manifest.json"), |v| {
                    let size = v["logs"][0]["size"].as_u64().unwrap();
                    v["logs"][0]["size"] = (size + 1).into();
                })
            }),
            -501,
            vec![
                log.display().to_string(),
                format!("expected size {} bytes, found {log_size}", log_size + 1),
            ],
        ),
        (
            "a data page",
            Box::new({
                let f = image.clone();
                move |d: &Path| flip(&d.join(&f), 3 * PAGE + 200)
            }),
            -1206,
            vec![image.display().to_string(), "page 2 does not verify".into()],
        ),
        (
            "a log header",
            Box::new({
                let f = log.clone();
                move |d: &Path| flip(&d.join(&f), 20)
            }),
            -501,
            vec![log.display().to_string()],
        ),
        (
            "empty manifest",
            Box::new(|d: &Path| std::fs::write(d.join("manifest.json"), b"").unwrap()),
            -526,
            vec!["manifest.json".into(), "empty (0 bytes)".into()],
        ),
        (
            "no manifest",
            Box::new(|d: &Path| std::fs::remove_file(d.join("manifest.json")).unwrap()),
            -1811,
            vec!["manifest.json".into(), "incomplete".into()],
        ),
        (
            "manifest garbage",
            Box::new(|d: &Path| std::fs::write(d.join("manifest.json"), "{ not json").unwrap()),
            -526,
            vec!["manifest.json".into(), "not a backup manifest".into()],
        ),
    ];
    for (i, (what, damage, code, wants)) in cases.iter().enumerate() {
        let d = sets.path().join(format!("case{i}"));
        copy_set(&good, &d);
        damage(&d);
        let e = verify_backup_set(&d).map(|_| ()).unwrap_err();
        assert_eq!(e.code(), *code, "{what}: {e}");
        let text = e.to_string();
        for want in wants {
            assert!(
                text.contains(want.as_str()),
                "{what}: {text:?} lacks {want:?}"
            );
        }
        assert!(!text.contains("circular"), "{what}: {text}");
    }
}
