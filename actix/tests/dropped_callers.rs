//! A caller that drops its future after sending. A plain actix actor never sees a message
//! whose caller dropped it before the actor reached it (an `EndBackup` vanishes, the backup
//! keeps running). Through the adapter, `AskExt::ask` is delivered whatever the caller does,
//! and a message the adapter took is served to the end even if its caller goes away.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, ResponseFuture};
use ese_actix::{Ask, AskExt, InstanceActor, InstanceRuntime};
use ese_actors::messages::{EndBackup, GetStats, ReadFile, StopBackup, StopService};
use ese_actors::{BackupBegin, BackupEnd, Engine, Instance, WriteBatch};
use support::{code, gated, instance_on, GatedStorage, ReleaseOnDrop, PAGE};

const DB: &str = "/s/db.edb";

/// An initialised instance on `rt` with a database of 200 rows and a full backup running.
async fn backup_running(rt: &InstanceRuntime) -> (Instance, GatedStorage) {
    let gate = gated();
    let inst = instance_on(rt, &Engine::new(), "i", gate.storage()).await;
    inst.init().await.unwrap();
    let db = inst.create_database(DB).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..200u32 {
        batch.put(t, format!("k{i:04}").as_bytes(), &[1u8; 300]);
    }
    inst.write(batch, ese_actors::Commit::Durable)
        .await
        .unwrap();
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    (inst, gate)
}

/// Asserts the backup still runs: its calls work and a new one is refused with -505.
async fn assert_backup_running(inst: &Instance) {
    inst.get_attach_info().await.expect("the backup still runs");
    let again = inst.begin_external_backup(BackupBegin::empty()).await;
    assert_eq!(code(&again), -505, "BackupInProgress");
}

/// Asserts the backup ended: -520 for its calls, and a new one begins.
async fn assert_backup_ended(inst: &Instance) {
    assert_eq!(code(&inst.get_attach_info().await), -520, "NoBackup");
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .expect("a new backup begins");
}

/// The usual way to put an instance behind actix: a plain actor whose handler awaits the
/// `Instance` call.
struct PlainHolder {
    inst: Instance,
    handled: Arc<AtomicUsize>,
}

impl Actor for PlainHolder {
    type Context = Context<Self>;
}

struct PlainEnd(BackupEnd);

impl actix::Message for PlainEnd {
    type Result = ese_actors::Result<()>;
}

impl Handler<PlainEnd> for PlainHolder {
    type Result = ResponseFuture<ese_actors::Result<()>>;

    fn handle(&mut self, m: PlainEnd, _: &mut Context<Self>) -> Self::Result {
        self.handled.fetch_add(1, Ordering::SeqCst);
        let inst = self.inst.clone();
        Box::pin(async move { inst.end_external_backup(m.0).await })
    }
}

/// Returns once every message sent to the adapter before has reached the instance and been
/// served: the adapter forwards in the order it takes messages, and the instance serves
/// `GetStats` after the jobs before it (its answer, maybe a refusal, does not matter).
async fn after_the_adapter_took_everything(addr: &Addr<InstanceActor>) {
    let _ = addr
        .send(Ask(GetStats {}))
        .await
        .expect("the adapter answers");
}

#[actix_rt::test]
async fn a_plain_actix_actor_drops_an_end_whose_caller_went_away() {
    let rt = InstanceRuntime::dedicated(1).unwrap();
    let (inst, _gate) = backup_running(&rt).await;
    let handled = Arc::new(AtomicUsize::new(0));
    let plain = PlainHolder {
        inst: inst.clone(),
        handled: handled.clone(),
    }
    .start();
    // Sent, then the caller's future is dropped (a timeout, a cancelled request) before the
    // actor, on this same thread, could reach the message.
    drop(plain.send(PlainEnd(BackupEnd::ABORT)));
    // A later message is served: the actor ran, and skipped the first.
    plain.send(PlainEnd(BackupEnd::ABORT)).await.unwrap().ok();
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "the dropped end was skipped"
    );
    // (The second end did end it; begin again to show the first one never ran.)
    inst.begin_external_backup(BackupBegin::empty())
        .await
        .unwrap();
    drop(plain.send(PlainEnd(BackupEnd::ABORT)));
    actix_rt::task::yield_now().await;
    assert_backup_running(&inst).await;
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn an_end_sent_with_ask_lands_though_its_caller_went_away() {
    let rt = InstanceRuntime::dedicated(1).unwrap();
    let (inst, _gate) = backup_running(&rt).await;
    let addr = InstanceActor::new(inst.clone(), rt.clone()).start();
    // Dropped at once, before the adapter (on this thread) could take it.
    drop(addr.ask(EndBackup {
        grbit: BackupEnd::ABORT,
    }));
    after_the_adapter_took_everything(&addr).await;
    assert_backup_ended(&inst).await;
    // The same for the lifecycle: a stop_service whose caller went away still stops.
    drop(addr.ask(StopService {}));
    after_the_adapter_took_everything(&addr).await;
    assert_eq!(code(&inst.stats().await), -1329);
    inst.term(ese_actors::Term::STOP_BACKUP).await.unwrap();
}

/// For contrast, and so that the docs stay true: `Addr::send` dropped before the adapter
/// took the message is skipped by actix, as for every actor; `ask` is the form that lands.
#[actix_rt::test]
async fn send_dropped_before_the_adapter_took_it_is_skipped_by_actix() {
    let rt = InstanceRuntime::dedicated(1).unwrap();
    let (inst, _gate) = backup_running(&rt).await;
    let addr = InstanceActor::new(inst.clone(), rt.clone()).start();
    drop(addr.send(Ask(EndBackup {
        grbit: BackupEnd::ABORT,
    })));
    after_the_adapter_took_everything(&addr).await;
    assert_backup_running(&inst).await;
    inst.term(ese_actors::Term::STOP_BACKUP).await.unwrap();
}

/// A message the adapter took is served to the end even if its caller then goes away: a
/// read held on disk whose caller is dropped still moves the file to its end.
#[actix_rt::test]
async fn a_read_whose_caller_went_away_mid_read_is_still_served() {
    let rt = InstanceRuntime::dedicated(1).unwrap();
    let (inst, gate) = backup_running(&rt).await;
    let addr = InstanceActor::new(inst.clone(), rt.clone()).start();
    let (f, size) = inst.open_file(Path::new(DB)).await.unwrap();
    let whole = usize::try_from(size).unwrap();
    assert_eq!(whole % PAGE, 0);
    let latch = ReleaseOnDrop(gate.latch_reads("db.edb"));
    let req = addr.send(Ask(ReadFile {
        file: f,
        max_len: whole,
    }));
    // Polled on its own task until the read is on disk: the adapter took it.
    let req = actix::spawn(req);
    latch.0.arrived_at_least(1).await;
    gate.clear();
    req.abort();
    latch.0.release();
    // The read goes on without its caller; once it is done the file is at its end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let next = loop {
        match inst.read_file(f, 8 * PAGE).await {
            // -1003: the abandoned read is still in flight on this handle.
            Err(e) if e.code() == -1003 && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await
            }
            other => break other,
        }
    };
    assert!(next.expect("read after the abandoned one").is_empty());
    inst.close_file(f).await.unwrap();
    addr.send(Ask(StopBackup {})).await.unwrap().unwrap();
    inst.term(ese_actors::Term::STOP_BACKUP).await.unwrap();
}

/// The adapter's actix thread stops (an actix-web worker shutting down) while a read it
/// forwarded is on disk: the read is still served to its end.
#[test]
fn a_read_whose_actix_thread_stopped_is_still_served() {
    let rt = InstanceRuntime::dedicated(1).unwrap();
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (inst, gate) = setup.block_on(backup_running(&rt));
    let (f, size) = setup.block_on(inst.open_file(Path::new(DB))).unwrap();
    let whole = usize::try_from(size).unwrap();
    let latch = ReleaseOnDrop(gate.latch_reads("db.edb"));
    let (inst2, rt2, held) = (inst.clone(), rt.clone(), latch.0.clone());
    std::thread::spawn(move || {
        let system = actix::System::new();
        system.block_on(async move {
            let addr = InstanceActor::new(inst2, rt2).start();
            let read = ReadFile {
                file: f,
                max_len: whole,
            };
            let req = actix::spawn(addr.send(Ask(read)));
            held.arrived_at_least(1).await;
            // The System stops with the read on disk and its answer still to come.
            actix::System::current().stop();
            drop(req);
        });
        system.run().unwrap();
    })
    .join()
    .unwrap();
    gate.clear();
    latch.0.release();
    setup.block_on(async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let next = loop {
            match inst.read_file(f, 8 * PAGE).await {
                Err(e) if e.code() == -1003 && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await
                }
                other => break other,
            }
        };
        assert!(next.expect("read after the abandoned one").is_empty());
        inst.term(ese_actors::Term::STOP_BACKUP).await.unwrap();
    });
}
