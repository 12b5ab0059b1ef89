//! Self-test of the harness against a real cluster: an S3 client can use what `Cluster`
//! hands out, and a killed node can come back and serve the writes it missed.

use std::time::Instant;

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ObjectStoreExt, RetryConfig, WriteMultipart};

use ese_garage::Cluster;

/// A client of node `n` built only from `Cluster::env`, so the variables it hands out are the
/// ones under test.
fn store(cluster: &Cluster, n: usize, bucket: &str) -> AmazonS3 {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        // Garage needs path-style requests on 127.0.0.1.
        .with_virtual_hosted_style_request(false)
        // Fail fast rather than retry for minutes if a node is down by mistake.
        .with_retry(RetryConfig {
            max_retries: 2,
            ..Default::default()
        });
    for (key, value) in cluster.env(n) {
        let key: AmazonS3ConfigKey = key
            .to_ascii_lowercase()
            .parse()
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        builder = builder.with_config(key, value);
    }
    builder.build().expect("S3 client")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

async fn put_multipart(store: &AmazonS3, key: &str, data: &[u8]) {
    let upload = store
        .put_multipart(&Path::from(key))
        .await
        .expect("start upload");
    // 5 MiB parts, the AWS minimum: Garage accepts smaller ones but real S3 would not.
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    for chunk in data.chunks(1 << 20) {
        writer.wait_for_capacity(4).await.expect("upload capacity");
        writer.write(chunk);
    }
    writer.finish().await.expect("finish upload");
}

async fn get(store: &AmazonS3, key: &str) -> Bytes {
    store
        .get(&Path::from(key))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("get body")
}

/// A plain test driving a runtime only for the S3 calls: the cluster calls block (they wait on
/// daemons and CLI processes) and have no business on an async worker thread.
#[test]
fn write_read_kill_restart() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut cluster = Cluster::start().expect("cluster start");
    eprintln!("start: {:?}", started.elapsed());
    cluster.create_bucket("self-test").expect("create bucket");
    assert!((1..=3).all(|n| cluster.is_running(n)));

    let first = pattern(6 * 1024 * 1024, 1);
    let s1 = store(&cluster, 1, "self-test");
    rt.block_on(put_multipart(&s1, "first", &first));
    // Read through another node: every node serves every object.
    let s2 = store(&cluster, 2, "self-test");
    assert!(rt.block_on(get(&s2, "first")).as_ref() == first.as_slice());

    let t = Instant::now();
    cluster.kill(3).expect("kill node 3");
    eprintln!("kill: {:?}", t.elapsed());
    assert!(!cluster.is_running(3));
    assert!(cluster.pid(3).is_none());

    // Two of three is a quorum in the default consistent mode.
    let second = pattern(6 * 1024 * 1024, 2);
    let t = Instant::now();
    rt.block_on(put_multipart(&s1, "second", &second));
    assert!(rt.block_on(get(&s1, "second")).as_ref() == second.as_slice());
    eprintln!("6 MiB put + get with node 3 down: {:?}", t.elapsed());

    let t = Instant::now();
    cluster.restart(3).expect("restart node 3");
    eprintln!("restart: {:?}", t.elapsed());
    assert!(cluster.is_running(3));
    assert!(cluster.restart(3).is_err(), "restarting a running node");

    // Node 3 missed `second`; as coordinator it still reads it from its peers' quorum.
    let s3 = store(&cluster, 3, "self-test");
    assert!(rt.block_on(get(&s3, "second")).as_ref() == second.as_slice());
    assert!(rt.block_on(get(&s3, "first")).as_ref() == first.as_slice());
    cluster.repair_tables().expect("repair tables");

    let dir = cluster.dir().to_path_buf();
    let t = Instant::now();
    drop(cluster);
    eprintln!("drop: {:?}; total {:?}", t.elapsed(), started.elapsed());
    assert!(!dir.exists(), "the cluster dir is removed on drop");
}

#[test]
fn shared_cluster_is_started_once() {
    let a = ese_garage::shared();
    let b = ese_garage::shared();
    assert!(std::ptr::eq(a, b));
    assert!((1..=3).all(|n| a.is_running(n)));
    a.create_bucket("shared-test").expect("create bucket");
    let env = a.env(2);
    assert!(env.contains(&("AWS_ENDPOINT_URL".to_string(), a.endpoint(2))));
    assert!(env.contains(&("AWS_REGION".to_string(), "garage".to_string())));
    let health = a.cli(1, &["health"]).expect("health");
    assert!(health.contains("HEALTHY"), "{health}");
}
