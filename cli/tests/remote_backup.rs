//! `ese backup --url` against the backup router served in this process on loopback, with a
//! real instance in a tempdir: the pulled set passes `ese verify` and `ese restore` gives the
//! rows back; a bad token and a URL with nothing listening fail with a clear message.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;

use common::*;
use ese_actors::{Commit, Engine, Instance, InstanceParams, Term};
use ese_http::{Builder, Tokens};

const ROWS: u32 = 400;
const TOKENS: &str = "good-0123456789abcdef read,truncate,end\n";

/// An instance with `ROWS` rows, served under `src`; answers it and the instance URL.
async fn serve(dir: &Path, tokens: bool) -> (Engine, Instance, String) {
    let engine = Engine::new();
    let home = dir.join("inst");
    let inst = engine
        .create_instance("src", InstanceParams::new(&home).log_file_size(256 << 10))
        .await
        .unwrap();
    inst.init().await.unwrap();
    let db = inst.create_database(home.join("data.edb")).await.unwrap();
    let t = inst.create_table(db, "t").await.unwrap();
    let mut s = inst.begin_session().await.unwrap();
    let mut tx = s.transaction().await.unwrap();
    for i in 0..ROWS {
        tx.put(
            t,
            format!("k{i:05}").as_bytes(),
            format!("value {i}").as_bytes(),
        )
        .await
        .unwrap();
    }
    tx.commit(Commit::Durable).await.unwrap();
    drop(s);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut b = Builder::new().instance("src", inst.clone());
    if tokens {
        b = b.tokens(Tokens::parse(TOKENS).unwrap());
    }
    let server = b.build(addr).unwrap();
    tokio::spawn(ese_http::serve(listener, server.router()));
    (engine, inst, format!("http://{addr}/v1/instances/src"))
}

/// Runs `ese` off the runtime's workers (the server answers it from them).
async fn run(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ese_env(&args, &env)
    })
    .await
    .unwrap()
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_over_url_verifies_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, inst, url) = serve(dir.path(), true).await;
    let sets = dir.path().join("sets");
    let token = dir.path().join("token");
    std::fs::write(&token, "good-0123456789abcdef\n").unwrap();
    let out = run(
        strings(&[
            "backup",
            "--url",
            &url,
            "--to",
            sets.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
            "--json",
        ]),
        vec![],
    )
    .await;
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["kind"], "full");
    // The token from the environment, for an incremental, paced.
    let out = run(
        strings(&[
            "backup",
            "--url",
            &url,
            "--to",
            sets.to_str().unwrap(),
            "--kind",
            "incremental",
            "--max-rate-mib",
            "64",
        ]),
        vec![("ESE_TOKEN".into(), "good-0123456789abcdef".into())],
    )
    .await;
    assert!(out.status.success(), "incremental: {}", text(&out.stderr));
    inst.term(Term::empty()).await.unwrap();

    let mut names: Vec<_> = std::fs::read_dir(&sets)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    for set in &names {
        let out = run(strings(&["verify", set.to_str().unwrap()]), vec![]).await;
        assert!(out.status.success(), "verify: {}", text(&out.stderr));
    }
    let to = dir.path().join("restored");
    let out = run(
        strings(&[
            "restore",
            sets.to_str().unwrap(),
            "--set",
            "latest",
            "--to",
            to.to_str().unwrap(),
        ]),
        vec![],
    )
    .await;
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    let scratch = dir.path().join("scratch");
    let rows = tokio::task::spawn_blocking(move || read_rows(&to.join("data.edb"), &scratch))
        .await
        .unwrap();
    assert_eq!(rows.len(), ROWS as usize);
    assert_eq!(rows[7], (b"k00007".to_vec(), b"value 7".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_exits_1_with_the_401() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, inst, url) = serve(dir.path(), true).await;
    let sets = dir.path().join("sets");
    let out = run(
        strings(&["backup", "--url", &url, "--to", sets.to_str().unwrap()]),
        vec![("ESE_TOKEN".into(), "wrong-0123456789abcdef".into())],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("ese: error: JET_errAccessDenied (-1907)"),
        "{err}"
    );
    assert!(err.contains("a valid bearer token is required"), "{err}");
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(!err.contains("panicked"));
    assert!(
        !err.contains("wrong-0123456789abcdef"),
        "the token was printed"
    );
    inst.term(Term::empty()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_exits_1_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/instances/src", free.local_addr().unwrap());
    drop(free);
    let out = run(
        strings(&[
            "backup",
            "--url",
            &url,
            "--to",
            dir.path().join("sets").to_str().unwrap(),
        ]),
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("ese: error: {url}")), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    let out = run(
        strings(&["backup", "--url", &url, "--instance-dir", "x", "--to", "y"]),
        vec![],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "--url and --instance-dir conflict"
    );
    let out = run(
        strings(&["backup", "--url", &url, "--to", "y", "--max-rate-mib", "0"]),
        vec![],
    )
    .await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--max-rate-mib"), "{err}");
}

/// The host stops the backup (or the service) while `ese backup --url` streams a ~32 MiB
/// image through a throttling proxy: the client exits 1 naming the contract's code, and
/// leaves no set behind.
async fn host_stop_while_streaming(stop_service: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("inst");
    let h = home.clone();
    tokio::task::spawn_blocking(move || make_instance_sized(&h, 16_000, 2000))
        .await
        .unwrap();
    let engine = Engine::new();
    let inst = engine
        .create_instance("src", InstanceParams::new(&home).log_file_size(256 << 10))
        .await
        .unwrap();
    inst.init().await.unwrap();
    inst.attach_database(home.join("data.edb")).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Builder::new()
        .instance("src", inst.clone())
        .build(addr)
        .unwrap();
    tokio::spawn(ese_http::serve(listener, server.router()));
    let proxy = common::proxy::SlowProxy::start(addr, 256 << 10).await;
    let url = proxy.url(&format!("http://{addr}/v1/instances/src"));
    let sets = dir.path().join("sets");
    let args = strings(&["backup", "--url", &url, "--to", sets.to_str().unwrap()]);
    let client = tokio::spawn(run(args, vec![]));
    while proxy.carried() < 2 << 20 {
        assert!(!client.is_finished(), "the client ended before it streamed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    match stop_service {
        true => inst.stop_service().await.unwrap(),
        false => inst.stop_backup().await.unwrap(),
    }
    let out = client.await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let left = std::fs::read_dir(&sets).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "the partial set is removed");
    let _ = inst.term(Term::STOP_BACKUP).await;
    text(&out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_backup_on_the_host_fails_the_client_with_801() {
    let err = host_stop_while_streaming(false).await;
    assert!(err.contains("-801"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_service_on_the_host_fails_the_client_with_1329() {
    let err = host_stop_while_streaming(true).await;
    assert!(err.contains("-1329"), "{err}");
}
