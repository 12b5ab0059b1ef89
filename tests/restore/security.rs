//! Backup and restore never reach outside the instance's files or the restore target: absolute
//! paths, `..`, and symbolic links planted in the log directory or the target. One test a case.

use crate::support;

use std::os::unix::fs::symlink;
use std::path::Path;

use ese_actors::{
    restore_backup_chain, BackupBegin, BackupKind, Engine, Instance, RestoreSpec, Term,
};
use support::actor::*;

async fn in_log_phase(engine: &Engine, dir: &Path) -> (Instance, ese_actors::LogInfo) {
    let (inst, _, _) = instance_with_data(engine, "i", dir, 300).await;
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    let info = inst.get_log_info().await.unwrap();
    (inst, info)
}

#[tokio::test]
async fn absolute_path_outside_the_instance_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _) = in_log_phase(&engine, dir.path()).await;
    assert_eq!(code(inst.open_file("/etc/passwd").await), -1003);
    assert_eq!(
        code(inst.get_log_info().await),
        -520,
        "the backup is aborted"
    );
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn dot_dot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, info) = in_log_phase(&engine, dir.path()).await;
    let name = info.files[0].file_name().unwrap();
    let sneaky = dir
        .path()
        .join("..")
        .join(dir.path().file_name().unwrap())
        .join(name);
    assert_eq!(code(inst.open_file(&sneaky).await), -1003);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn symlink_planted_in_the_log_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, b"do not disclose").unwrap();
    let engine = Engine::new();
    let inst_dir = dir.path().join("inst");
    let (inst, info) = in_log_phase(&engine, &inst_dir).await;
    // Replace a listed log with a link to a file outside the instance.
    let victim = info.files[0].clone();
    std::fs::remove_file(&victim).unwrap();
    symlink(&secret, &victim).unwrap();
    assert_eq!(code(inst.open_file(&victim).await), -1003);
    assert_eq!(code(inst.get_log_info().await), -520);
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn restore_map_target_through_a_symlink_is_invalid_path() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", &dir.path().join("inst"), 100).await;
    let set = dir.path().join("set");
    let m = inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
    let outside = dir.path().join("outside.edb");
    std::fs::copy(set.join(&m.databases[0].file), &outside).unwrap();
    let before = std::fs::read(&outside).unwrap();
    let link = set.join("link.edb");
    symlink(&outside, &link).unwrap();
    let spec = RestoreSpec {
        checkpoint_dir: set.clone(),
        log_dir: set.join("logs"),
        backup_log_dir: set.join("logs"),
        gen_low: m.gen_low,
        gen_high: m.gen_high,
        base_name: "edb".into(),
        restore_map: vec![(m.databases[0].original_path.clone(), link)],
        stop_at: None,
    };
    assert_eq!(
        engine.external_restore(spec).await.unwrap_err().code(),
        -1023
    );
    assert_eq!(
        std::fs::read(&outside).unwrap(),
        before,
        "nothing written through the link"
    );
}

#[tokio::test]
async fn restore_chain_refuses_a_planted_link_in_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", &dir.path().join("inst"), 100).await;
    let set = dir.path().join("set");
    inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let outside = dir.path().join("precious.edb");
    std::fs::write(&outside, b"precious").unwrap();
    symlink(&outside, target.join("db.edb")).unwrap();
    let e = restore_backup_chain(&engine, &[&set], &target)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -1023);
    assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
}

#[tokio::test]
async fn manifest_naming_files_outside_the_set_is_invalid_path() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", &dir.path().join("inst"), 100).await;
    let set = dir.path().join("set");
    inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
    for evil in ["../../../etc/passwd", "/etc/passwd", "logs/../../outside"] {
        let bad = dir.path().join(format!("bad{}", evil.len()));
        copy_set(&set, &bad);
        edit_manifest(&bad.join("manifest.json"), |v| {
            v["databases"][0]["file"] = serde_json::Value::String(evil.into());
        });
        assert_eq!(
            ese_actors::verify_backup_set(&bad).unwrap_err().code(),
            -1023,
            "{evil}"
        );
        let e = restore_backup_chain(
            &engine,
            &[&bad],
            dir.path().join(format!("t{}", evil.len())),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), -1023, "{evil}");
    }
}

#[tokio::test]
async fn manifest_base_name_cannot_climb_out_of_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, _, _) = instance_with_data(&engine, "i", &dir.path().join("inst"), 50).await;
    let set = dir.path().join("set");
    inst.backup_to_dir(&set, BackupKind::Full).await.unwrap();
    inst.term(Term::empty()).await.unwrap();
    edit_manifest(&set.join("manifest.json"), |v| {
        v["base_name"] = serde_json::Value::String("../../x".into());
    });
    assert_eq!(
        ese_actors::verify_backup_set(&set).unwrap_err().code(),
        -1023
    );
}
