//! Damaged remote objects: a flipped byte, a truncated object, a missing log, a manifest of
//! another set, a manifest edited after it was written. `verify` (each depth that can see
//! it) and `restore` refuse each with its specific error; no restore goes ahead on a damaged
//! set.

use crate::support;

use std::path::Path;

use bytes::Bytes;
use ese_actors::{
    restore_from, verify_at, BackupKind, BackupManifest, BackupOptions, BackupTarget, Engine,
    Instance, SetChoice, Term, VerifyDepth,
};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use support::actor::remote::*;
use support::actor::*;

async fn get(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    store
        .get(&Key::from(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn put(store: &dyn ObjectStore, key: &str, bytes: Vec<u8>) {
    store
        .put(&Key::from(key), Bytes::from(bytes).into())
        .await
        .unwrap();
}

/// A fresh full set of `inst` in `target`.
async fn full(inst: &Instance, target: &BackupTarget, compress: Option<i32>) -> BackupManifest {
    let o = BackupOptions {
        compress,
        ..BackupOptions::default()
    };
    inst.backup_to(target, BackupKind::Full, o).await.unwrap()
}

/// `verify` at `depth` and `restore` both give `code`.
async fn refused(target: &BackupTarget, set: &str, depth: VerifyDepth, code: i32, scratch: &Path) {
    let e = verify_at(target, set, depth, None).await.unwrap_err();
    assert_eq!(e.code(), code, "verify {depth:?}: {e}");
    let engine = Engine::new();
    let to = scratch.join(format!("r-{set}"));
    let e = restore_from(
        &engine,
        target,
        SetChoice::Named(set.into()),
        &to,
        None,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), code, "restore: {e}");
    let left: Vec<_> = walk(&to);
    assert!(left.is_empty(), "a refused restore left {left:?}");
}

/// The files under `dir` (none if it is missing).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_objects_are_refused_with_their_own_error() {
    let c = ese_garage::shared();
    let b = bucket("damage");
    c.create_bucket(&b).unwrap();
    let raw = store(c, 1, &b, Retries::Normal);
    let target = s3_target(c, 1, &b, "d", Retries::Normal);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let gated = GatedStorage::new(ese::io::os());
    let (inst, t, _) = instance_on(
        &engine,
        gated.storage(),
        "src",
        &dir.path().join("src"),
        2000,
    )
    .await;
    let key = |m: &BackupManifest, file: &Path| {
        format!("d/{}/{}", m.name.as_deref().unwrap(), file.display())
    };

    // A flipped byte in a log: sizes still match (quick passes), the full form and restore
    // see it.
    let m = full(&inst, &target, None).await;
    let log = key(&m, &m.logs[0].file);
    let mut bytes = get(&*raw, &log).await;
    // The first record's durable mark, which its checksum covers (a byte further in could
    // be padding, depending on the records).
    bytes[4096 + 16] ^= 0x10;
    put(&*raw, &log, bytes).await;
    let name = m.name.clone().unwrap();
    verify_at(&target, &name, VerifyDepth::Quick, None)
        .await
        .unwrap();
    refused(&target, &name, VerifyDepth::Full, -501, dir.path()).await;

    // A flipped byte in a compressed log: the frame's checksum refuses it.
    let m = full(&inst, &target, Some(3)).await;
    let log = key(&m, &m.logs[0].file);
    let mut bytes = get(&*raw, &log).await;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    put(&*raw, &log, bytes).await;
    refused(
        &target,
        m.name.as_deref().unwrap(),
        VerifyDepth::Full,
        -501,
        dir.path(),
    )
    .await;

    // A truncated database image: even the quick form sees it.
    let m = full(&inst, &target, None).await;
    let image = key(&m, &m.databases[0].file);
    let bytes = get(&*raw, &image).await;
    put(&*raw, &image, bytes[..bytes.len() - 4096].to_vec()).await;
    let name = m.name.clone().unwrap();
    // The quick form compares the stored size with the manifest's; the full form and restore
    // check the image's structure first, and its trailer no longer matches (-552).
    let e = verify_at(&target, &name, VerifyDepth::Quick, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), -1206, "{e}");
    refused(&target, &name, VerifyDepth::Full, -552, dir.path()).await;

    // A missing log: the first of the set is a missing file (-1811), a later one a gap in
    // the logs (-557), as the contract's log checks say it.
    // A set of two logs at least: a log rolled while the backup is held at its image.
    let m = with_rolls(&inst, &gated, t, 1, full(&inst, &target, None)).await;
    assert!(m.logs.len() >= 2, "{} log(s)", m.logs.len());
    let name = m.name.clone().unwrap();
    raw.delete(&Key::from(key(&m, &m.logs[1].file)))
        .await
        .unwrap();
    refused(&target, &name, VerifyDepth::Quick, -557, dir.path()).await;
    refused(&target, &name, VerifyDepth::Full, -557, dir.path()).await;
    raw.delete(&Key::from(key(&m, &m.logs[0].file)))
        .await
        .unwrap();
    refused(&target, &name, VerifyDepth::Quick, -1811, dir.path()).await;
    refused(&target, &name, VerifyDepth::Full, -1811, dir.path()).await;

    // The manifest of another set, copied over this one's.
    let a = full(&inst, &target, None).await;
    let other = full(&inst, &target, None).await;
    let theirs = get(&*raw, &key(&other, Path::new("manifest.json"))).await;
    put(&*raw, &key(&a, Path::new("manifest.json")), theirs).await;
    refused(
        &target,
        a.name.as_deref().unwrap(),
        VerifyDepth::Quick,
        -526,
        dir.path(),
    )
    .await;

    // A manifest edited after it was written (a size changed): its digest no longer matches.
    let m = full(&inst, &target, None).await;
    let mk = key(&m, Path::new("manifest.json"));
    let text = String::from_utf8(get(&*raw, &mk).await).unwrap();
    let edited = text.replacen(
        &format!("\"size\": {}", m.logs[0].size),
        &format!("\"size\": {}", m.logs[0].size + 1),
        1,
    );
    assert_ne!(text, edited);
    put(&*raw, &mk, edited.into_bytes()).await;
    refused(
        &target,
        m.name.as_deref().unwrap(),
        VerifyDepth::Quick,
        -526,
        dir.path(),
    )
    .await;

    inst.term(Term::empty()).await.unwrap();
}
