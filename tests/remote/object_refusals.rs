//! A store the backup cannot use: wrong credentials, an unknown bucket, an endpoint that is
//! down. Each fails with a clear error naming the store, in bounded time, before the backup
//! begins; nothing is written and the instance goes on. Listing, verifying and restoring
//! from the same store fail with the same code.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ese_actors::{
    list_sets, restore_from, restore_sets, verify_at, BackupKind, BackupOptions, BackupTarget,
    Engine, SetChoice, Term, VerifyDepth,
};
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, RetryConfig};
use support::actor::remote::*;
use support::actor::*;

fn fast() -> RetryConfig {
    RetryConfig {
        max_retries: 1,
        retry_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn target_of(store: AmazonS3Builder, url: &str) -> BackupTarget {
    let store: Arc<dyn ObjectStore> = Arc::new(store.with_retry(fast()).build().unwrap());
    BackupTarget::object_store(store, "p", url).with_options(small_parts())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_that_cannot_be_used_refuse_the_backup_before_it_begins() {
    let c = ese_garage::shared();
    let b = bucket("refuse");
    c.create_bucket(&b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, _) = instance_with_data(&engine, "src", &dir.path().join("src"), 300).await;
    let base = |bucket: &str| {
        AmazonS3Builder::new()
            .with_endpoint(c.endpoint(1))
            .with_region(c.region())
            .with_bucket_name(bucket)
            .with_access_key_id(c.key_id())
            .with_allow_http(true)
    };
    let cases = [
        (
            "wrong secret",
            target_of(
                base(&b).with_secret_access_key("0".repeat(64)),
                "s3://refuse/p",
            ),
            -1032,
        ),
        (
            "unknown bucket",
            target_of(
                base("no-such-bucket").with_secret_access_key(c.secret()),
                "s3://no-such-bucket/p",
            ),
            -1022,
        ),
        (
            "endpoint down",
            target_of(
                base(&b)
                    .with_secret_access_key(c.secret())
                    .with_endpoint("http://127.0.0.1:9"),
                "s3://down/p",
            ),
            -1022,
        ),
    ];
    for (what, target, code) in cases {
        let t0 = Instant::now();
        let e = inst
            .backup_to(&target, BackupKind::Full, BackupOptions::default())
            .await
            .unwrap_err();
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{what}: {:?}",
            t0.elapsed()
        );
        assert_eq!(e.code(), code, "{what}: {e}");
        let detail = e.detail().unwrap_or_default().to_string();
        assert!(
            detail.contains("object store") && detail.contains(&target.location()),
            "{what}: {detail}"
        );
        assert!(
            !format!("{e:?}").contains(c.secret()),
            "{what}: the secret is in the error"
        );
        // The instance goes on: no backup is left running, a write and another backup work.
        put_rows(&inst, t, 0..5).await;
        reads_refused_alike(&engine, &target, what, code, &dir.path().join("restored")).await;
    }
    let raw = store(c, 1, &b, Retries::Normal);
    let listed: Vec<_> = futures_list(&*raw).await;
    assert!(listed.is_empty(), "written: {listed:?}");
    let good = s3_target(c, 1, &b, "p", Retries::Normal);
    inst.backup_to(&good, BackupKind::Full, BackupOptions::default())
        .await
        .unwrap();
    inst.term(Term::empty()).await.unwrap();
}

/// The commands that read a target give the backup's code for the same store: an unknown
/// bucket is the store's failure (-1022), not a missing set (-1811).
async fn reads_refused_alike(
    engine: &Engine,
    target: &BackupTarget,
    what: &str,
    code: i32,
    to: &std::path::Path,
) {
    let set = ese_actors::ese::backup::repo::name::new_name(BackupKind::Full, 0);
    let got = [
        ("sets", list_sets(target).await.map(|_| ())),
        (
            "verify --quick",
            verify_at(target, &set, VerifyDepth::Quick, None)
                .await
                .map(|_| ()),
        ),
        (
            "restore latest",
            restore_from(engine, target, SetChoice::Latest, to, None, None)
                .await
                .map(|_| ()),
        ),
        (
            "restore by name",
            restore_sets(engine, &[(target.clone(), set.clone())], to, None, None)
                .await
                .map(|_| ()),
        ),
    ];
    for (cmd, r) in got {
        let e = r.unwrap_err();
        assert_eq!(e.code(), code, "{what}, {cmd}: {e}");
        assert!(
            e.detail().unwrap_or_default().contains("object store"),
            "{what}, {cmd}: {e}"
        );
    }
    assert!(!to.join("backup-logs").exists(), "{what}: a restore began");
}

async fn futures_list(store: &dyn ObjectStore) -> Vec<String> {
    let r = store.list_with_delimiter(None).await.unwrap();
    r.objects
        .iter()
        .map(|o| o.location.to_string())
        .chain(r.common_prefixes.iter().map(|p| p.to_string()))
        .collect()
}
