//! A backup that is refused leaves nothing behind (issue 11.8): the loser of two concurrent
//! `backup_to_dir` calls gets `BackupInProgress` (-505) and creates no folder, so a retry into
//! the same directory works; a target that is a file or a folder that is not empty is refused
//! with an error that says so, and is left as it was.

use crate::support;

use std::path::Path;

use ese_actors::{verify_backup_set, BackupKind, Engine, Term};
use support::actor::*;

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refusals_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let gated = GatedStorage::new(ese::io::os());
    let home = dir.path().join("inst");
    let (inst, _, _) = instance_on(&engine, gated.storage(), "i", &home, 200).await;

    // Incremental without a full backup: refused at begin, nothing created.
    let early = dir.path().join("early");
    let e = inst
        .backup_to_dir(&early, BackupKind::Incremental)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -560, "{e}");
    assert!(!early.exists());

    // Two at once: the winner is held at a read of its database image.
    let latch = gated.latch_reads("db.edb");
    let winner = {
        let inst = inst.clone();
        let to = dir.path().join("winner");
        tokio::spawn(async move { inst.backup_to_dir(&to, BackupKind::Full).await })
    };
    latch.arrived_at_least(1).await;
    let loser = dir.path().join("loser");
    let e = inst
        .backup_to_dir(&loser, BackupKind::Full)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -505, "{e}");
    assert!(!loser.exists(), "the loser created {:?}", listing(&loser));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = inst
        .backup_to_dir(&empty, BackupKind::Copy)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -505, "{e}");
    assert!(
        empty.is_dir() && listing(&empty).is_empty(),
        "a folder that was there stays, empty"
    );
    latch.release();
    gated.clear();
    winner.await.unwrap().unwrap();
    // The retries into the same directories work.
    inst.backup_to_dir(&loser, BackupKind::Full).await.unwrap();
    verify_backup_set(&loser).unwrap();
    inst.backup_to_dir(&empty, BackupKind::Copy).await.unwrap();
    verify_backup_set(&empty).unwrap();

    // A file as the target: refused with a message that says so; the file is untouched.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a set").unwrap();
    let e = inst
        .backup_to_dir(&file, BackupKind::Full)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -1023, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("is a file") && text.contains("a-file"),
        "{text}"
    );
    assert!(!text.contains("temporary"), "{text}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a set");

    // A folder under a file cannot be made: the backup fails and the file is untouched.
    let under = file.join("set");
    let e = inst
        .backup_to_dir(&under, BackupKind::Full)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("a-file"), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a set");

    // A folder that is not empty: refused, its contents untouched.
    let full = dir.path().join("not-empty");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep.txt"), b"mine").unwrap();
    let e = inst
        .backup_to_dir(&full, BackupKind::Full)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -504, "{e}");
    assert!(e.to_string().contains("not-empty"), "{e}");
    assert_eq!(listing(&full), ["keep.txt"]);

    // After all of it the instance backs up and terminates normally.
    let last = dir.path().join("last");
    inst.backup_to_dir(&last, BackupKind::Incremental)
        .await
        .unwrap();
    verify_backup_set(&last).unwrap();
    inst.term(Term::empty()).await.unwrap();
}
