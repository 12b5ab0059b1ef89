//! Object-store targets on a real Garage cluster (`ese_garage`), built from the cluster's
//! endpoint and key directly (the CLI tests go through the AWS environment instead), and a
//! fast bulk load so that sets span several multipart parts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ese_actors::{BackupTarget, Commit, Instance, ObjectOptions, TableId};
use ese_garage::Cluster;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ObjectStore, RetryConfig};

/// How the tests' stores retry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// object_store's defaults shortened as `ObjectOptions::default` does.
    Normal,
    /// One retry within 5 s: for tests that expect failures (each 503 would otherwise cost
    /// seconds of retrying).
    Fast,
}

/// A fresh bucket name: each test has its own.
pub fn bucket(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The raw store of `bucket` through node `node`.
pub fn store(c: &Cluster, node: usize, bucket: &str, retries: Retries) -> Arc<dyn ObjectStore> {
    s3(c, node, bucket, retries)
}

/// [`store`] as its own type (for its multipart requests one by one).
pub fn s3(c: &Cluster, node: usize, bucket: &str, retries: Retries) -> Arc<AmazonS3> {
    let retry = match retries {
        Retries::Normal => RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..Default::default()
        },
        Retries::Fast => RetryConfig {
            max_retries: 1,
            retry_timeout: Duration::from_secs(5),
            ..Default::default()
        },
    };
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(c.endpoint(node))
            .with_region(c.region())
            .with_bucket_name(bucket)
            .with_access_key_id(c.key_id())
            .with_secret_access_key(c.secret())
            .with_allow_http(true)
            .with_retry(retry)
            .build()
            .unwrap(),
    )
}

/// Small parts (the 5 MiB minimum), so that a set of a few tens of MiB is many parts.
pub fn small_parts() -> ObjectOptions {
    ObjectOptions {
        part_size: ese_actors::target::MIN_PART,
        parts_in_flight: 4,
        read_block: 1 << 20,
        read_ahead: 4,
        ..ObjectOptions::default()
    }
}

/// The target `s3://bucket/prefix` of the cluster, through node `node`.
pub fn s3_target(
    c: &Cluster,
    node: usize,
    bucket: &str,
    prefix: &str,
    retries: Retries,
) -> BackupTarget {
    BackupTarget::object_store(
        store(c, node, bucket, retries),
        prefix,
        &format!("s3://{bucket}/{prefix}"),
    )
    .with_options(small_parts())
}

/// `n` rows `b{i:08}` of 1000 incompressible-ish bytes, 500 to a lazy transaction, then one
/// durable commit: about `n` KiB of database, fast.
pub async fn bulk_load(inst: &Instance, t: TableId, n: u32) {
    let mut s = inst.begin_session().await.unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut tx = s.transaction().await.unwrap();
        for i in chunk {
            let v: Vec<u8> = (0..1000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 7) as u8
                })
                .collect();
            tx.put(t, format!("b{i:08}").as_bytes(), &v).await.unwrap();
        }
        tx.commit(Commit::Lazy).await.unwrap();
    }
    let mut tx = s.transaction().await.unwrap();
    tx.put(t, b"b~", b"loaded").await.unwrap();
    tx.commit(Commit::Durable).await.unwrap();
}

/// The listing of `target` once it no longer shows `gone`, names removed a moment ago.
/// Garage filters a listing on each node before it merges the nodes' answers, so for a
/// moment a node that has not yet heard of a delete still lists what was deleted. Waits at
/// most 10 s, then returns the listing as it is.
pub async fn list_sets_without(target: &BackupTarget, gone: &[&str]) -> Vec<ese_actors::Listed> {
    let mut listed = Vec::new();
    for _ in 0..40 {
        listed = ese_actors::list_sets(target).await.unwrap();
        if !listed.iter().any(|s| gone.contains(&s.name.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    listed
}
