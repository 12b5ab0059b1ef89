//! 1,024 instances in one process: created, initialised, written to, terminated.

use std::sync::Arc;

use ese::io::{FaultStorage, StorageRef};
use ese_actors::{Commit, Engine, InstanceParams, Mode, Term};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_and_twenty_four_instances() {
    let storage: StorageRef = Arc::new(FaultStorage::new());
    let engine = Engine::new();
    let mut handles = Vec::new();
    for n in 0..1024 {
        let engine = engine.clone();
        let storage = storage.clone();
        handles.push(tokio::spawn(async move {
            let dir = format!("/scale/{n}");
            let params = InstanceParams::new(&dir)
                .log_file_size(64 * 1024)
                .page_size(4096)
                .cache_pages(64);
            let inst = engine
                .create_instance_on(&format!("i{n}"), params, storage)
                .await
                .unwrap();
            inst.init().await.unwrap();
            let db = inst.create_database(format!("{dir}/db.edb")).await.unwrap();
            let t = inst.create_table(db, "t").await.unwrap();
            let mut s = inst.begin_session().await.unwrap();
            let mut tx = s.transaction().await.unwrap();
            tx.put(t, b"who", format!("instance {n}").as_bytes())
                .await
                .unwrap();
            tx.commit(Commit::Durable).await.unwrap();
            inst
        }));
    }
    let mut instances = Vec::new();
    for h in handles {
        instances.push(h.await.unwrap());
    }
    assert_eq!(engine.instance_count(), 1024);
    assert_eq!(
        engine
            .create_instance("one-more", InstanceParams::new("/x"))
            .await
            .unwrap_err()
            .code(),
        -1214
    );
    for (n, inst) in instances.iter().enumerate() {
        let s = inst.begin_session().await.unwrap();
        let stats = inst.stats().await.unwrap();
        assert!(stats.commits >= 3, "instance {n}");
        drop(s);
    }
    let terms: Vec<_> = instances
        .into_iter()
        .map(|i| tokio::spawn(async move { i.term(Term::empty()).await }))
        .collect();
    for t in terms {
        t.await.unwrap().unwrap();
    }
    assert_eq!(engine.instance_count(), 0);
    assert_eq!(engine.mode(), Mode::Unset);
}
