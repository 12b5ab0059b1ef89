//! The shapes api.md fixes: handles are Clone + Send + Sync, every future is Send, every public
//! type is Debug. Compile-time checks, run as a test.

use ese_actors::*;

fn send<T: Send>(_: &T) {}
fn handle<T: Clone + Send + Sync + std::fmt::Debug>() {}
fn debug<T: std::fmt::Debug>() {}

#[tokio::test]
async fn handles_and_futures() {
    handle::<Engine>();
    handle::<Instance>();
    debug::<Session>();
    debug::<Legacy>();
    debug::<Error>();
    debug::<LogInfo>();
    debug::<DatabaseInfo>();
    debug::<BackupManifest>();
    debug::<RestoreSpec>();
    debug::<RestoreReport>();
    debug::<BackupFile>();
    debug::<DbId>();
    debug::<TableId>();
    debug::<Transaction<'static>>();
    debug::<KeyRange<'static>>();
    debug::<RowStream<'static>>();
    debug::<WriteBatch>();
    debug::<OpenOptions>();
    let engine = Engine::new();
    let dir = tempfile::tempdir().unwrap();
    let inst = engine
        .create_instance("shape", InstanceParams::new(dir.path()))
        .await
        .unwrap();
    send(&inst.init());
    send(&inst.term(Term::empty()));
    send(&inst.begin_external_backup(BackupBegin::empty()));
    send(&inst.read_file(BackupFile::from_raw(1), 8192));
    send(&inst.backup_to_dir(dir.path().join("b"), BackupKind::Full));
    send(&engine.create_instance("x", InstanceParams::new(dir.path())));
    send(&engine.legacy().end_external_backup());
    let spec = RestoreSpec {
        checkpoint_dir: dir.path().into(),
        log_dir: dir.path().into(),
        backup_log_dir: dir.path().into(),
        gen_low: 1,
        gen_high: 1,
        base_name: "edb".into(),
        restore_map: vec![],
        stop_at: None,
    };
    send(&engine.external_restore(spec));
    send(&restore_backup_chain(&engine, &[dir.path()], dir.path()));
    inst.init().await.unwrap();
    let db = inst
        .create_database(dir.path().join("shape.edb"))
        .await
        .unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    send(&inst.open_database(dir.path().join("shape.edb"), OpenOptions::default()));
    send(&inst.ensure_table(db, "t"));
    send(&inst.get(t, b"k"));
    send(&inst.scan(t, KeyRange::all()));
    send(&inst.transaction());
    send(&inst.write(WriteBatch::new(), Commit::Durable));
    let mut s = inst.begin_session().await.unwrap();
    send(&s.put(t, b"k", b"v"));
    send(&s.scan(t, KeyRange::all()));
    send(&s.stream(t, KeyRange::all()).next());
    send(&s.transaction());
    let mut tx = s.transaction().await.unwrap();
    send(&tx.put(t, b"k", b"v"));
    send(&tx.scan(t, KeyRange::prefix(b"k")));
    send(&tx.commit(Commit::Durable));
    send(&inst.ask(messages::StopService {}));
    drop(s);
    inst.term(Term::empty()).await.unwrap();
}
