//! behaviour.md §1 through the actor runtime: modes, names and limits, the gate, init and
//! term, each asserting ESE's exact code.

use std::path::Path;
use std::sync::Arc;

use ese::io::{Fault, FaultStorage, StorageRef};
use ese_actors::{Commit, Engine, InstanceParams, KeyRange, Mode, Term};

fn params(dir: &Path) -> InstanceParams {
    InstanceParams::new(dir)
        .log_file_size(128 * 1024)
        .page_size(4096)
        .cache_pages(128)
}

fn code<T: std::fmt::Debug>(r: ese::Result<T>) -> i32 {
    r.expect_err("expected an error").code()
}

#[tokio::test]
async fn modes_follow_the_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    assert_eq!(engine.mode(), Mode::Unset);
    // Legacy calls in Unset mode: InvalidParameter.
    assert_eq!(code(engine.legacy().stop_service().await), -1003);
    assert_eq!(
        code(
            engine
                .legacy()
                .begin_external_backup(ese::BackupBegin::empty())
                .await
        ),
        -1003
    );
    let a = engine
        .create_instance("a", params(&dir.path().join("a")))
        .await
        .unwrap();
    assert_eq!(engine.mode(), Mode::MultiInstance);
    // Legacy calls and the implicit instance in MultiInstance mode: -1081.
    assert_eq!(code(engine.legacy().stop_backup().await), -1081);
    assert_eq!(code(engine.legacy().get_log_info().await), -1081);
    assert_eq!(
        code(engine.init_legacy(params(&dir.path().join("l"))).await),
        -1081
    );
    a.term(Term::empty()).await.unwrap();
    assert_eq!(
        engine.mode(),
        Mode::Unset,
        "mode returns to Unset after the last term"
    );
    // Legacy init: OneInstance; named instances then fail with -1080.
    let l = engine
        .init_legacy(params(&dir.path().join("l")))
        .await
        .unwrap();
    assert_eq!(engine.mode(), Mode::OneInstance);
    assert_eq!(
        code(
            engine
                .create_instance("b", params(&dir.path().join("b")))
                .await
        ),
        -1080
    );
    engine.legacy().stop_backup().await.unwrap();
    engine.legacy().term(Term::empty()).await.unwrap();
    assert_eq!(code(l.init().await), -1115);
    assert_eq!(engine.mode(), Mode::Unset);
}

#[tokio::test]
async fn names_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new().with_max_instances(2);
    let a = engine
        .create_instance("a", params(&dir.path().join("a")))
        .await
        .unwrap();
    assert_eq!(
        code(
            engine
                .create_instance("a", params(&dir.path().join("x")))
                .await
        ),
        -1086
    );
    let b = engine
        .create_instance("b", params(&dir.path().join("b")))
        .await
        .unwrap();
    assert_eq!(
        code(
            engine
                .create_instance("c", params(&dir.path().join("c")))
                .await
        ),
        -1214
    );
    a.term(Term::empty()).await.unwrap();
    // The name and the slot are free again.
    let a2 = engine
        .create_instance("a", params(&dir.path().join("a")))
        .await
        .unwrap();
    assert_eq!(
        code(
            engine
                .create_instance("d", InstanceParams::new(dir.path()).base_name("ab"))
                .await
        ),
        -1214
    );
    a2.term(Term::empty()).await.unwrap();
    assert_eq!(
        code(
            engine
                .create_instance("d", InstanceParams::new(dir.path()).base_name("ab"))
                .await
        ),
        -1003
    );
    b.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn init_twice_and_calls_before_init() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let i = engine
        .create_instance("i", params(dir.path()))
        .await
        .unwrap();
    assert_eq!(code(i.begin_session().await), -1029);
    assert_eq!(
        code(i.create_database(dir.path().join("x.edb")).await),
        -1029
    );
    i.init().await.unwrap();
    assert_eq!(code(i.init().await), -1030);
    i.term(Term::COMPLETE).await.unwrap();
    assert_eq!(code(i.init().await), -1115);
    assert_eq!(code(i.term(Term::empty()).await), -1115);
    assert_eq!(code(i.stop_service().await), -1115);
    assert_eq!(code(i.stop_backup().await), -1115);
}

#[tokio::test]
async fn stop_service_beats_every_later_check() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    // Before init: stop_service beats NotInitialized.
    let i = engine
        .create_instance("i", params(&dir.path().join("i")))
        .await
        .unwrap();
    i.stop_service().await.unwrap();
    i.stop_service().await.unwrap();
    assert_eq!(code(i.begin_session().await), -1329);
    assert_eq!(code(i.init().await), -1329);
    i.term(Term::empty()).await.unwrap();
    // Running: every call, session calls included, gets -1329; stop_backup and term still work.
    let j = engine
        .create_instance("j", params(&dir.path().join("j")))
        .await
        .unwrap();
    j.init().await.unwrap();
    let db = j.create_database(dir.path().join("j.edb")).await.unwrap();
    let t = j.create_table(db, "t").await.unwrap();
    let s = j.begin_session().await.unwrap();
    j.stop_service().await.unwrap();
    assert_eq!(code(s.put(t, b"k", b"v").await), -1329);
    assert_eq!(code(s.get(t, b"k").await), -1329);
    assert_eq!(
        code(j.end_external_backup(ese::BackupEnd::NORMAL).await),
        -1329
    );
    assert_eq!(
        code(j.close_file(ese_actors::BackupFile::from_raw(0)).await),
        -1329
    );
    assert_eq!(
        code(j.begin_external_backup(ese::BackupBegin::empty()).await),
        -1329
    );
    j.stop_backup().await.unwrap();
    j.term(Term::empty()).await.unwrap();
    assert_eq!(code(s.get(t, b"k").await), -1115);
}

#[tokio::test]
async fn dirty_term_leaves_files_the_next_init_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let path = dir.path().join("d.edb");
    let i = engine
        .create_instance("i", params(dir.path()))
        .await
        .unwrap();
    i.init().await.unwrap();
    let db = i.create_database(&path).await.unwrap();
    let t = i.create_table(db, "t").await.unwrap();
    let mut s = i.begin_session().await.unwrap();
    for n in 0..50u32 {
        let mut tx = s.transaction().await.unwrap();
        tx.put(t, &n.to_be_bytes(), b"value").await.unwrap();
        tx.commit(Commit::Durable).await.unwrap();
    }
    i.term(Term::DIRTY).await.unwrap();
    drop(s);
    let info = {
        let j = engine
            .create_instance("j", params(&dir.path().join("other")))
            .await
            .unwrap();
        j.init().await.unwrap();
        let info = j.database_info(&path).await.unwrap();
        j.term(Term::empty()).await.unwrap();
        info
    };
    assert!(!info.clean_shutdown, "a dirty term leaves the header dirty");
    let i = engine
        .create_instance("i", params(dir.path()))
        .await
        .unwrap();
    i.init().await.unwrap();
    assert!(
        i.database_info(&path).await.unwrap().clean_shutdown,
        "recovery leaves it clean"
    );
    let db = i.attach_database(&path).await.unwrap();
    let t = i.open_table(db, "t").await.unwrap();
    let s = i.begin_session().await.unwrap();
    assert_eq!(s.scan(t, KeyRange::all()).await.unwrap().len(), 50);
    assert_eq!(code(i.attach_database(&path).await), -1201);
    i.detach_database(&path).await.unwrap();
    assert_eq!(code(i.detach_database(&path).await), -1203);
    i.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn attaching_a_database_dirty_from_another_log_stream_fails() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let path = dir.path().join("shared.edb");
    let a = engine
        .create_instance("a", params(&dir.path().join("a")))
        .await
        .unwrap();
    a.init().await.unwrap();
    a.create_database(&path).await.unwrap();
    a.term(Term::DIRTY).await.unwrap();
    let b = engine
        .create_instance("b", params(&dir.path().join("b")))
        .await
        .unwrap();
    b.init().await.unwrap();
    assert_eq!(code(b.attach_database(&path).await), -550);
    b.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn fatal_fsync_failure_makes_the_instance_unavailable_and_term_still_works() {
    let dir = Path::new("/f");
    let fs = FaultStorage::new();
    let storage: StorageRef = Arc::new(fs.clone());
    let engine = Engine::new();
    let i = engine
        .create_instance_on("f", params(dir), storage.clone())
        .await
        .unwrap();
    i.init().await.unwrap();
    let db = i.create_database(dir.join("f.edb")).await.unwrap();
    let t = i.create_table(db, "t").await.unwrap();
    let s = i.begin_session().await.unwrap();
    s.put(t, b"acked", b"1").await.unwrap();
    fs.arm(Fault::FailSync {
        nth: 1,
        path_contains: Some("edb.log".into()),
    });
    assert_eq!(code(s.put(t, b"lost", b"2").await), -510);
    assert_eq!(code(s.get(t, b"acked").await), -510);
    assert_eq!(code(i.begin_session().await), -510);
    i.stop_service().await.unwrap();
    assert_eq!(
        code(s.get(t, b"acked").await),
        -1329,
        "stop_service beats unavailable"
    );
    i.term(Term::empty()).await.unwrap();
    drop(s);
    fs.crash();
    fs.restart();
    fs.disarm_all();
    let i = engine
        .create_instance_on("f", params(dir), storage)
        .await
        .unwrap();
    i.init().await.unwrap();
    let db = i.attach_database(dir.join("f.edb")).await.unwrap();
    let t = i.open_table(db, "t").await.unwrap();
    let s = i.begin_session().await.unwrap();
    assert_eq!(
        s.get(t, b"acked").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(s.get(t, b"lost").await.unwrap(), None);
    drop(s);
    i.term(Term::empty()).await.unwrap();
}

#[tokio::test]
async fn commands_whose_callers_went_away_are_still_handled() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let i = engine
        .create_instance("c", params(dir.path()))
        .await
        .unwrap();
    i.init().await.unwrap();
    let db = i.create_database(dir.path().join("c.edb")).await.unwrap();
    let t = i.create_table(db, "t").await.unwrap();
    let s = i.begin_session().await.unwrap();
    // Start durable puts and drop their futures once the message is in the mailbox.
    for n in 0..20u32 {
        let key = n.to_be_bytes();
        let fut = s.put(t, &key, b"v");
        tokio::pin!(fut);
        // One poll sends the message (the mailbox has room), then the caller goes away.
        let _ = futures_poll_once(fut.as_mut()).await;
    }
    // A stop_service whose caller vanishes still stops the instance.
    {
        let fut = i.stop_service();
        tokio::pin!(fut);
        let _ = futures_poll_once(fut.as_mut()).await;
    }
    // Every put was served before the stop: after a term and re-init they are all there.
    assert_eq!(code(s.get(t, b"x").await), -1329);
    drop(s);
    i.term(Term::empty()).await.unwrap();
    let i = engine
        .create_instance("c", params(dir.path()))
        .await
        .unwrap();
    i.init().await.unwrap();
    let db = i.attach_database(dir.path().join("c.edb")).await.unwrap();
    let t = i.open_table(db, "t").await.unwrap();
    let s = i.begin_session().await.unwrap();
    assert_eq!(s.scan(t, KeyRange::all()).await.unwrap().len(), 20);
    drop(s);
    i.term(Term::empty()).await.unwrap();
}

/// Polls a future once and reports whether it finished.
async fn futures_poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
    let mut f = Some(f);
    std::future::poll_fn(move |cx| {
        let r = f.take().unwrap().poll(cx).is_ready();
        std::task::Poll::Ready(r)
    })
    .await
}
