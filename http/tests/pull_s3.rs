//! A pull into an object store: `RemoteBackup` writes its sets into the real Garage cluster
//! of `ese-garage` (`s3://`, configured from the standard AWS environment) while a writer
//! commits. The set writer's uploads bridge to the host's runtime from the client's
//! receiving thread, which runs outside any runtime. Its own binary: the environment is the
//! process's, set before any thread starts.

mod support;

use ese_actors::{
    list_sets, restore_from, verify_at, BackupKind, BackupTarget, SetChoice, SetState, Term,
    VerifyDepth,
};
use ese_http::client::{RemoteBackup, RemoteOptions};
use support::*;

#[test]
fn a_full_and_an_incremental_pulled_into_an_object_store_verify_and_restore() {
    let (bucket, rt) = garage_bucket("pull");
    rt.block_on(pull_verify_restore(&bucket));
}

async fn pull_verify_restore(bucket: &str) {
    let h = host(Opts::default()).await;
    let w = h.writer();
    let target = BackupTarget::parse(&format!("s3://{bucket}/pulls")).unwrap();
    let mut sets = Vec::new();
    for kind in [BackupKind::Full, BackupKind::Incremental] {
        let b = RemoteBackup::new(&h.url, RemoteOptions::default().kind(kind)).unwrap();
        let done = b.run(&target).await.unwrap();
        assert!(done.location.starts_with("s3://"), "{}", done.location);
        assert!(done.progress.bytes_done > 0);
        sets.push(done.manifest.id.clone());
    }
    w.stop().await;
    let listed = list_sets(&target).await.unwrap();
    assert_eq!(listed.len(), 2);
    for l in &listed {
        assert!(matches!(l.state, SetState::Complete(_)), "{}", l.name);
        verify_at(&target, &l.name, VerifyDepth::Full, None)
            .await
            .unwrap();
    }
    let restored = h.dir.path().join("restored");
    let report = restore_from(&h.engine, &target, SetChoice::Latest, &restored, None, None)
        .await
        .unwrap();
    assert_eq!(
        report.sets, sets,
        "the chain is the full and the incremental"
    );
    assert_restored(&h, &report.databases[0].1).await;
    h.inst.term(Term::empty()).await.unwrap();
}
