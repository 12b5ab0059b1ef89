//! A push into an object store: the real Garage cluster of `ese-garage`, named by an `s3://`
//! target that the server opens with the standard AWS environment, as an operator sets it.
//! Its own binary: the environment is the process's, set before any thread starts.

mod support;

use ese_actors::{list_sets, verify_at, BackupTarget, SetState, Term, VerifyDepth};
use support::*;

#[test]
fn a_push_into_an_object_store_verifies() {
    let (bucket, rt) = garage_bucket("push");
    rt.block_on(push_and_verify(&bucket));
}

async fn push_and_verify(bucket: &str) {
    let allowed = format!("s3://{bucket}/ese");
    let h = host_with(Opts::default(), |b, _| b.push_targets([allowed.clone()])).await;
    let w = h.writer();
    let outside = format!("s3://{bucket}/elsewhere");
    let res = h
        .begin_with(serde_json::json!({"kind": "full", "target": outside}), None)
        .await;
    assert_eq!(ese_error(res).await.1, -1809);

    let id = h.push("full", &format!("{allowed}/nightly")).await;
    let (st, phases) = h.push_outcome(&id).await;
    w.stop().await;
    assert_eq!(phases.last().unwrap(), "done", "{st}");
    let set = st["outcome"]["set"].as_str().unwrap();
    let target = BackupTarget::parse(&format!("{allowed}/nightly")).unwrap();
    let listed = list_sets(&target).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, set);
    assert!(matches!(listed[0].state, SetState::Complete(_)));
    verify_at(&target, set, VerifyDepth::Full, None)
        .await
        .unwrap();
    let outside = BackupTarget::parse(&format!("s3://{bucket}/elsewhere")).unwrap();
    assert!(list_sets(&outside).await.unwrap().is_empty());
    h.inst.term(Term::empty()).await.unwrap();
}
