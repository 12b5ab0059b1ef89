//! Which runtime the instance lives on. The instance's task lives on an
//! [`InstanceRuntime`]; the adapter lives on an actix thread. An actix `System` or an
//! actix-web worker that stops takes its adapters with it, never the instance, which keeps
//! answering through a new adapter or its handle. For contrast, an instance created on the
//! actix thread's own runtime dies with that thread.

use std::path::Path;
use std::time::Duration;

use actix::Actor;
use actix_web::{web, App, HttpResponse, HttpServer};
use ese_actix::{Ask, AskExt, InstanceActor, InstanceRuntime};
use ese_actors::messages::{ApplyBatch, BeginSession, Get, GetStats};
use ese_actors::{
    Commit, Engine, Instance, InstanceParams, OpenOptions, TableId, Term, WriteBatch,
};

fn params(dir: &Path) -> InstanceParams {
    InstanceParams::new(dir)
        .log_file_size(128 * 1024)
        .page_size(4096)
}

/// Initialises `inst` with a database in `dir` and table `t`.
async fn open_table(inst: &Instance, dir: &Path) -> TableId {
    inst.init().await.unwrap();
    let db = inst
        .open_database(dir.join("db.edb"), OpenOptions { create: true })
        .await
        .unwrap();
    inst.ensure_table(db, "t").await.unwrap()
}

fn one_row(t: TableId, key: &str) -> ApplyBatch {
    let mut batch = WriteBatch::new();
    batch.put(t, key.as_bytes(), b"v");
    ApplyBatch {
        batch,
        durability: Commit::Durable,
    }
}

/// Runs `f` on a new thread inside an actix `System` that is stopped and run out when `f`
/// is done, as a host's actix thread ends: its arbiter's tasks, adapters included, end too.
fn in_a_system_that_ends<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let system = actix::System::new();
        let out = system.block_on(async move {
            let out = f().await;
            actix::System::current().stop();
            out
        });
        system.run().unwrap();
        out
    })
    .join()
    .expect("the actix thread")
}

#[test]
fn the_instance_outlives_the_actix_system_it_was_used_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let rt = InstanceRuntime::dedicated(1).unwrap();
    let (rt2, p) = (rt.clone(), path.clone());
    let (inst, t) = in_a_system_that_ends(move || {
        Box::pin(async move {
            let inst = rt2
                .create_instance(&Engine::new(), "outlives", params(&p))
                .await
                .unwrap();
            let t = open_table(&inst, &p).await;
            let addr = InstanceActor::new(inst.clone(), rt2).start();
            addr.send(Ask(one_row(t, "written from the first system")))
                .await
                .unwrap()
                .unwrap();
            (inst, t)
        })
    });
    // That System is gone, and its adapter with it. A second one reaches the instance.
    let (inst2, rt3) = (inst.clone(), rt.clone());
    in_a_system_that_ends(move || {
        Box::pin(async move {
            let addr = InstanceActor::new(inst2, rt3).start();
            let s = addr.send(Ask(BeginSession {})).await.unwrap().unwrap();
            let key = b"written from the first system".to_vec();
            let got = addr.ask(Get {
                session: s,
                table: t,
                key,
            });
            assert_eq!(got.await.unwrap().unwrap().as_deref(), Some(&b"v"[..]));
        })
    });
    // And so does a plain thread, with no runtime of its own.
    let direct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    direct.block_on(async {
        inst.stats().await.expect("the instance still answers");
        inst.term(Term::empty()).await.unwrap();
    });
}

/// Why the adapter insists on an `InstanceRuntime`: an instance created on an actix thread's
/// runtime ends with it, and its handle then answers `InvalidInstance` (-1115).
#[test]
fn an_instance_created_on_the_actix_thread_dies_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    let inst = in_a_system_that_ends(move || {
        Box::pin(async move {
            let inst = Engine::new()
                .create_instance("on-actix", params(&p))
                .await
                .unwrap();
            inst.init().await.unwrap();
            inst
        })
    });
    let direct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = direct.block_on(inst.stats());
    assert_eq!(r.unwrap_err().code(), -1115);
}

/// An actix-web server whose workers each start their own adapter: stopping the server ends
/// the workers' runtimes and adapters; the instance, on the host's runtime, keeps answering.
#[actix_rt::test]
async fn stopping_actix_web_workers_leaves_the_instance_running() {
    let dir = tempfile::tempdir().unwrap();
    let rt = InstanceRuntime::dedicated(1).unwrap();
    let inst = rt
        .create_instance(&Engine::new(), "web", params(dir.path()))
        .await
        .unwrap();
    let t = open_table(&inst, dir.path()).await;
    let (inst2, rt2) = (inst.clone(), rt.clone());
    let server = HttpServer::new(move || {
        // One adapter per worker, on the worker's own runtime.
        let addr = InstanceActor::new(inst2.clone(), rt2.clone()).start();
        App::new().app_data(web::Data::new(addr)).route(
            "/put/{key}",
            web::post().to(
                move |addr: web::Data<actix::Addr<InstanceActor>>, key: web::Path<String>| async move {
                    match addr.send(Ask(one_row(t, &key))).await {
                        Ok(Ok(())) => HttpResponse::NoContent().finish(),
                        _ => HttpResponse::InternalServerError().finish(),
                    }
                },
            ),
        )
    })
    .workers(2)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let serving = actix::spawn(server);
    let client = reqwest::Client::new();
    for i in 0..20 {
        let r = client
            .post(format!("http://{addr}/put/k{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    handle.stop(true).await;
    serving.await.unwrap().unwrap();
    // The workers and their adapters are gone; the instance is not.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..20 {
        let row = inst.get(t, format!("k{i}").as_bytes()).await.unwrap();
        assert!(row.is_some(), "k{i}");
    }
    let fresh = InstanceActor::new(inst.clone(), rt.clone()).start();
    fresh.send(Ask(GetStats {})).await.unwrap().unwrap();
    inst.term(Term::empty()).await.unwrap();
}

/// A tokio host with no actix of its own: the instance on the host's main runtime, the
/// adapter on an actix thread of its own that ends with its last `Addr`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_tokio_host() {
    let dir = tempfile::tempdir().unwrap();
    let rt = InstanceRuntime::on(tokio::runtime::Handle::current());
    let inst = rt
        .create_instance(&Engine::new(), "tokio-host", params(dir.path()))
        .await
        .unwrap();
    let t = open_table(&inst, dir.path()).await;
    let addr = InstanceActor::new(inst.clone(), rt.clone())
        .start_in_thread()
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let m = one_row(t, &format!("w{w}-{i}"));
                addr.send(Ask(m)).await.unwrap().unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    drop(addr);
    assert_eq!(
        inst.scan(t, ese_actors::KeyRange::all())
            .await
            .unwrap()
            .len(),
        100
    );
    inst.term(Term::empty()).await.unwrap();
}
